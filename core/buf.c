/* buf.c — the growable byte buffer: see buf.h. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(Buf *b, size_t need) {
    if (b->failed) return -1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return -1;
    }
    if (!b->s) s[0] = '\0';
    b->s = s;
    b->cap = cap;
    return 0;
}

int buf_init(Buf *b, size_t cap) {
    memset(b, 0, sizeof *b);
    return grow(b, cap ? cap : 1);
}

char *buf_room(Buf *b, size_t n) {
    if (n > (size_t)-1 - b->len - 1) {
        b->failed = 1;
        return NULL;
    }
    return grow(b, b->len + n + 1) == 0 ? b->s + b->len : NULL;
}

void buf_add(Buf *b, const void *data, size_t n) {
    char *p = buf_room(b, n);
    if (!p) return;
    memcpy(p, data, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void buf_adds(Buf *b, const char *s) {
    buf_add(b, s, strlen(s));
}

void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = n < 0 ? NULL : buf_room(b, (size_t)n);
    if (!p) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_drop(Buf *b, size_t n) {
    if (n == 0 || !b->s) return;
    memmove(b->s, b->s + n, b->len - n + 1);
    b->len -= n;
}

void buf_free(Buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}
