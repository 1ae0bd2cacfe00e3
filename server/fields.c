#include <stdint.h>
#include <string.h>

#include "fields.h"

typedef struct {
    uintptr_t begin, end; // the head in libmicrohttpd's buffer; 0, 0 when not known
    HeaderCheck check;
    HeaderField prev; // the field whose line end is known once the next one comes
    int have_prev, misplaced;
} Walk;

static int layout_known(void) {
    static int known = -1;
    if (known < 0) known = strncmp(MHD_get_version(), "0.9.", 4) == 0;
    return known;
}

// Gives the previous field its true length: its line runs up to next (the next name, or
// the end of the head), ending in at most max_end NULs that were line ends.
static void walk_flush(Walk *w, uintptr_t next, size_t max_end) {
    if (!w->have_prev) return;
    HeaderField f = w->prev;
    uintptr_t shown = (uintptr_t)f.value + f.value_len;
    if (next <= shown) {
        w->misplaced = 1;
        return;
    }
    size_t tail = (size_t)(next - shown), ends = 0;
    while (ends < tail && ends < max_end && f.value[f.value_len + tail - 1 - ends] == '\0') ends++;
    f.value_len += tail - ends;
    headers_add(&w->check, &f);
    w->have_prev = 0;
}

static enum MHD_Result walk_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_size, const char *value, size_t value_size) {
    (void)kind;
    Walk *w = cls;
    HeaderField f = {key, key_size, value, value_size};
    if (!w->end) {
        headers_add(&w->check, &f);
        return MHD_YES;
    }
    uintptr_t k = (uintptr_t)key, v = (uintptr_t)value;
    if (k < w->begin || v < k + key_size + 1 || v + value_size >= w->end) {
        w->misplaced = 1;
        return MHD_NO;
    }
    walk_flush(w, k, 2);
    if (w->misplaced) return MHD_NO;
    w->prev = f;
    w->have_prev = 1;
    return MHD_YES;
}

HeaderVerdict fields_check(struct MHD_Connection *conn, const char *method) {
    Walk w = {0};
    headers_begin(&w.check);
    const union MHD_ConnectionInfo *ci =
        layout_known() ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE)
                       : NULL;
    if (ci && method) {
        w.begin = (uintptr_t)method;
        w.end = w.begin + ci->header_size;
    }
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, walk_field, &w);
    // The last line's end, then the empty line's: two of one or two NULs each.
    if (!w.misplaced) walk_flush(&w, w.end, 4);
    if (w.misplaced) return (HeaderVerdict){400, "a header line is folded (obs-fold) or malformed"};
    return headers_end(&w.check);
}
