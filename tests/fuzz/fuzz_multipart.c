// libFuzzer target: server/multipart.c and the upload's content check (textcheck.h), fed in
// pieces. The input's first line is a Content-Type, its first byte also the seed of the
// chunking, the rest the body. Whatever the bytes and however they are cut: the parse
// gives the same parts, contents and verdict as a parse of the body whole, a refusal has a
// reason, parts end before the next begins, and a part the check accepts is UTF-8 without
// NUL bytes.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "multipart.h"
#include "textcheck.h"
#include "utf8.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

// What a parse gave: the parts' names and contents, each ended by a marker byte, and the
// check's verdict on each content.
typedef struct {
    Buf out;
    int open, parts;
    size_t start; // where the open part's content begins in out
    TextCheck check;
} Seen;

static int on_part(void *ctx, const MultipartPart *p) {
    Seen *s = ctx;
    CHECK(!s->open && p->name);
    s->open = 1;
    s->parts++;
    buf_add(&s->out, "\x01", 1);
    buf_add(&s->out, p->name, p->name_len);
    if (p->filename) buf_add(&s->out, p->filename, p->filename_len);
    buf_add(&s->out, "\x02", 1);
    s->start = s->out.len;
    textcheck_begin(&s->check, "f.txt");
    return s->parts > 16; // a sink may stop the parse
}

static int on_data(void *ctx, const char *data, size_t n) {
    Seen *s = ctx;
    CHECK(s->open && n > 0);
    buf_add(&s->out, data, n);
    if (!s->check.failed && textcheck_feed(&s->check, data, n) == 0) {
        CHECK(!memchr(data, 0, n));
    }
    return 0;
}

static int on_end(void *ctx) {
    Seen *s = ctx;
    CHECK(s->open);
    s->open = 0;
    int ok = !s->check.failed && textcheck_end(&s->check) == 0;
    CHECK(ok || s->check.why[0]);
    if (ok && !s->out.failed)
        CHECK(s->out.len > s->start &&
              utf8_find_invalid(s->out.s + s->start, s->out.len - s->start) == -1);
    buf_add(&s->out, ok ? "\x03" : "\x04", 1);
    textcheck_free(&s->check);
    return 0;
}

static const MultipartSink sink = {on_part, on_data, on_end};

// Parses body in pieces whose sizes come from a small generator seeded by seed (0: whole).
static int parse(const char *boundary, const char *body, size_t len, unsigned seed, Seen *s,
                 const char **why) {
    MultipartStream st;
    memset(s, 0, sizeof(*s));
    if (multipart_begin(&st, boundary) != 0) return -2;
    unsigned x = seed * 2654435761u + 1;
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        x = x * 1103515245u + 12345u;
        size_t n = seed ? 1 + (x >> 16) % 17 : len;
        if (n > len - at) n = len - at;
        rc = multipart_feed(&st, body + at, n, &sink, s, why);
        at += n;
    }
    if (rc == 0) rc = multipart_end(&st, why);
    if (s->open) textcheck_free(&s->check);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *nl = memchr(data, '\n', size);
    size_t head = nl ? (size_t)(nl - (const char *)data) : size;
    char *ct = malloc(head + 1);
    if (!ct) return 0;
    memcpy(ct, data, head);
    ct[head] = '\0';
    char boundary[MULTIPART_BOUNDARY_MAX + 1];
    if (multipart_boundary(ct, boundary, sizeof(boundary)) != 0) {
        // Still exercise the parser on the body, with a fixed boundary.
        strcpy(boundary, "B");
    } else {
        CHECK(boundary[0] && strlen(boundary) <= MULTIPART_BOUNDARY_MAX);
    }
    free(ct);
    size_t len = nl ? size - head - 1 : 0;
    // A copy of exactly the body's bytes, so that ASan sees any read past its end.
    char *body = malloc(len ? len : 1);
    if (!body) return 0;
    if (len) memcpy(body, nl + 1, len);
    Seen whole, cut;
    const char *why1 = NULL, *why2 = NULL;
    int rc1 = parse(boundary, body, len, 0, &whole, &why1);
    int rc2 = parse(boundary, body, len, size ? data[0] | 1u : 1, &cut, &why2);
    CHECK(rc1 != -2);
    CHECK(rc1 == rc2);
    if (rc1) CHECK((why1 && why1[0]) || whole.parts > 16);
    CHECK(whole.out.len == cut.out.len &&
          (whole.out.len == 0 || memcmp(whole.out.s, cut.out.s, whole.out.len) == 0));
    buf_free(&whole.out);
    buf_free(&cut.out);
    free(body);
    return 0;
}
