/*
 * buf.h — the growable byte buffer every text and body is built in.
 *
 * A Buf starts zeroed (or with buf_init's capacity) and grows by doubling. It always keeps
 * a NUL after its len bytes, so s is a C string whenever the bytes hold no NUL. Running
 * out of memory does not stop the caller at each call: the buffer is marked failed, every
 * later call does nothing, and the caller checks `failed` once, where it can explain it.
 */
#ifndef CHARLM_BUF_H
#define CHARLM_BUF_H

#include <stddef.h>

typedef struct {
    char *s;    // [cap] the bytes, NUL-terminated at len; NULL until the first growth
    size_t len; // bytes held
    size_t cap; // bytes allocated
    int failed; // out of memory once: nothing more is added
} Buf;

/* Allocates cap bytes up front (an empty string). Returns 0, or -1 and failed set. */
int buf_init(Buf *b, size_t cap);
/* Room for n more bytes and the NUL after them: a pointer to write them at (the caller
 * then adds n to len and writes the NUL), or NULL once failed. */
char *buf_room(Buf *b, size_t n);
void buf_add(Buf *b, const void *data, size_t n);
void buf_adds(Buf *b, const char *s);
__attribute__((format(printf, 2, 3))) void buf_printf(Buf *b, const char *fmt, ...);
/* Drops the first n bytes (n <= len), keeping the rest. */
void buf_drop(Buf *b, size_t n);
void buf_free(Buf *b);

#endif
