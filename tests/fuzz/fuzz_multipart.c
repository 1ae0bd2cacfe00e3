// libFuzzer target: server/multipart.c and the upload's content check (filestore_check).
// The input's first line is a Content-Type, the rest the body. Whatever the bytes: every
// part lies inside the body and in order, names are non-empty spans, a refusal has a
// reason, and a part the check accepts is UTF-8 without NUL bytes.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filestore.h"
#include "multipart.h"
#include "utf8.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static int inside(const char *p, size_t n, const char *body, size_t len) {
    return p >= body && n <= len && p - body <= (ptrdiff_t)(len - n);
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
    MultipartPart parts[8];
    int n = -1;
    const char *why = NULL;
    if (multipart_parse(body, len, boundary, parts, 8, &n, &why) != 0) {
        CHECK(why && why[0]);
    } else {
        CHECK(n >= 0 && n <= 8);
        const char *prev = body;
        for (int i = 0; i < n; i++) {
            CHECK(inside(parts[i].name, parts[i].name_len, body, len));
            CHECK(!parts[i].filename ||
                  inside(parts[i].filename, parts[i].filename_len, body, len));
            CHECK(inside(parts[i].data, parts[i].len, body, len));
            CHECK(parts[i].data >= prev);
            prev = parts[i].data + parts[i].len;
            char why2[256];
            if (filestore_check(parts[i].data, parts[i].len, "f.txt", why2, sizeof(why2)) == 0) {
                CHECK(parts[i].len > 0 && !memchr(parts[i].data, 0, parts[i].len));
                CHECK(utf8_find_invalid(parts[i].data, parts[i].len) == -1);
            } else {
                CHECK(why2[0]);
            }
        }
    }
    free(body);
    return 0;
}
