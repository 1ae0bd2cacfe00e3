/*
 * utf8.h — strict UTF-8 decoding and encoding of Unicode code points.
 *
 * Strict means: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF, no truncated sequences. The corpus loader and the HTTP API both reject
 * such input, and they need the byte offset of the first bad byte to say where.
 */
#ifndef CHARLM_UTF8_H
#define CHARLM_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one code point from s[0..len). Returns the bytes consumed (1..4) and
 * stores the code point in *cp, or returns 0 if the bytes there are not valid UTF-8. */
int utf8_decode_one(const unsigned char *s, size_t len, uint32_t *cp);

/* Returns the byte offset of the first invalid sequence, or -1 if all of s is valid. */
long utf8_find_invalid(const char *s, size_t len);

/* Number of code points in valid UTF-8 s. */
size_t utf8_count(const char *s, size_t len);

/* Writes cp as UTF-8 into out (room for 4 bytes); returns the bytes written. */
int utf8_encode(uint32_t cp, char *out);

/* How many bytes of s[0..len) to keep to fit in max without ending inside a character:
 * len when it fits, else max backed off to the start of the character it would split. */
size_t utf8_cut(const char *s, size_t len, size_t max);

/* Text from any bytes, for a reply: copies s[0..len) into out[cap] (cap >= 1,
 * NUL-terminated), each byte that does not begin a valid sequence written as U+FFFD.
 * Stops before a character that would not fit. Returns the bytes of s consumed (len when
 * all of it fit). */
size_t utf8_sanitize(const char *s, size_t len, char *out, size_t cap);

/* Text from any bytes, for a log line: the same, but control characters, DEL and a
 * backslash are written as \n, \r, \t, \\ or \xNN, and so is each byte that does not
 * begin a valid sequence. The result holds on one line: a file name with a newline in it
 * cannot pass for two log lines. */
size_t utf8_escape(const char *s, size_t len, char *out, size_t cap);

#endif
