/*
 * textcheck.h — whether an upload is a training text, checked as its bytes arrive, in
 * pieces of any size, with bounded memory: a TextCheck plus, for JSON lines, the current
 * line (at most TEXTCHECK_LINE_MAX bytes) and its parse.
 *
 * A text is non-empty UTF-8 without NUL bytes. One named *.jsonl, or whose first non-blank
 * byte is '{', is JSON lines: every non-blank line an object with a string "text", and at
 * least one such line. The reason given is the first problem met in the byte stream, with
 * its byte offset or line number. Pure: no I/O.
 */
#ifndef CHARLM_TEXTCHECK_H
#define CHARLM_TEXTCHECK_H

#include <stddef.h>

#include "buf.h"

/* The longest line a JSON lines upload may have, in bytes. */
#define TEXTCHECK_LINE_MAX (256 * 1024)

typedef struct {
    int mode;     // TEXTCHECK_*: plain text, JSON lines, or not yet known (all blanks so far)
    size_t bytes; // seen so far
    int need;     // continuation bytes the current UTF-8 sequence still needs
    unsigned char lo, hi; // the range of its next byte
    size_t seq_at;        // where that sequence began
    size_t lineno;        // the current line, from 1
    size_t texts;         // JSON lines seen
    Buf line;             // JSON lines: the current line so far
    int failed;
    char why[256]; // the reason, once failed
} TextCheck;

/* Starts a check; filename (NULL for none) names *.jsonl or not. */
void textcheck_begin(TextCheck *c, const char *filename);
/* The next n bytes. 0, or -1 with c->why once the content cannot be a training text (then
 * every later call returns -1). */
int textcheck_feed(TextCheck *c, const char *data, size_t n);
/* The content has ended: 0 when it is a training text, else -1 with c->why. */
int textcheck_end(TextCheck *c);
/* 1 when the content fed so far is read as JSON lines (its name, or its first non-blank
 * byte, said so). */
int textcheck_is_jsonl(const TextCheck *c);
/* Frees what the check holds; after begin, always. */
void textcheck_free(TextCheck *c);

#endif
