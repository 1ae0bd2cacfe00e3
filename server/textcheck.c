#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "textcheck.h"

enum { MODE_UNKNOWN, MODE_TEXT, MODE_JSONL };

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

void textcheck_begin(TextCheck *c, const char *filename) {
    memset(c, 0, sizeof(*c));
    c->mode = filename && ends_with(filename, ".jsonl") ? MODE_JSONL : MODE_UNKNOWN;
    c->lineno = 1;
}

void textcheck_free(TextCheck *c) {
    buf_free(&c->line);
}

__attribute__((format(printf, 2, 3))) static int refuse(TextCheck *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    c->failed = 1;
    buf_free(&c->line);
    return -1;
}

// The first invalid UTF-8 sequence or NUL byte in data, as an offset from the content's
// start, or -1. Carries a sequence cut by the piece's end over to the next piece.
static long scan_bytes(TextCheck *c, const unsigned char *u, size_t n, int *nul) {
    for (size_t i = 0; i < n; i++) {
        unsigned char b = u[i];
        if (c->need) {
            if (b < c->lo || b > c->hi) return (long)c->seq_at;
            c->lo = 0x80;
            c->hi = 0xBF;
            c->need--;
            continue;
        }
        if (b < 0x80) {
            if (b == 0) {
                *nul = 1;
                return (long)(c->bytes + i);
            }
            continue;
        }
        c->seq_at = c->bytes + i;
        c->lo = 0x80;
        c->hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            c->need = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            c->need = 2;
            if (b == 0xE0) c->lo = 0xA0; // overlong
            if (b == 0xED) c->hi = 0x9F; // surrogates
        } else if (b >= 0xF0 && b <= 0xF4) {
            c->need = 3;
            if (b == 0xF0) c->lo = 0x90; // overlong
            if (b == 0xF4) c->hi = 0x8F; // past U+10FFFF
        } else {
            return (long)c->seq_at;
        }
    }
    return -1;
}

static int is_blank(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

// A whole JSON line (without its '\n') is in c->line.
static int line_check(TextCheck *c) {
    size_t i = 0;
    while (i < c->line.len && is_blank(c->line.s[i])) i++;
    if (i < c->line.len) {
        cJSON *o = cJSON_ParseWithLength(c->line.s, c->line.len);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        int ok = cJSON_IsObject(o) && cJSON_IsString(t);
        cJSON_Delete(o);
        if (!ok)
            return refuse(c,
                          "line %zu is not a JSON object with a string \"text\" (a file of JSON "
                          "lines needs one on every line)",
                          c->lineno);
        c->texts++;
    }
    c->line.len = 0;
    return 0;
}

static int line_add(TextCheck *c, const char *data, size_t n) {
    if (c->line.len + n > TEXTCHECK_LINE_MAX)
        return refuse(c,
                      "line %zu is longer than %d bytes, the longest JSON line an upload may have",
                      c->lineno, TEXTCHECK_LINE_MAX);
    buf_add(&c->line, data, n);
    return c->line.failed ? refuse(c, "out of memory checking line %zu", c->lineno) : 0;
}

static int lines_feed(TextCheck *c, const char *data, size_t n) {
    const char *p = data, *end = data + n;
    while (p < end && c->mode == MODE_UNKNOWN) {
        // Only blanks so far: the first other byte decides.
        if (*p == '\n') {
            c->lineno++;
        } else if (!is_blank(*p)) {
            c->mode = *p == '{' ? MODE_JSONL : MODE_TEXT;
            break;
        }
        p++;
    }
    if (c->mode != MODE_JSONL) return 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (line_add(c, p, nl ? (size_t)(nl - p) : (size_t)(end - p))) return -1;
        if (!nl) break;
        if (line_check(c)) return -1;
        c->lineno++;
        p = nl + 1;
    }
    return 0;
}

int textcheck_feed(TextCheck *c, const char *data, size_t n) {
    if (c->failed) return -1;
    int nul = 0;
    long bad = scan_bytes(c, (const unsigned char *)data, n, &nul);
    if (bad >= 0)
        return nul ? refuse(c, "the file holds a NUL byte (at byte %ld): binary, not text", bad)
                   : refuse(c, "the file is not UTF-8 text (an invalid byte at byte %ld)", bad);
    c->bytes += n;
    return lines_feed(c, data, n);
}

int textcheck_end(TextCheck *c) {
    if (c->failed) return -1;
    if (c->bytes == 0) return refuse(c, "the file is empty");
    if (c->need)
        return refuse(c, "the file is not UTF-8 text (an invalid byte at byte %zu)", c->seq_at);
    if (c->mode != MODE_JSONL) return 0;
    if (line_check(c)) return -1;
    if (!c->texts) return refuse(c, "the file holds no JSON line");
    return 0;
}

int textcheck_is_jsonl(const TextCheck *c) {
    return c->mode == MODE_JSONL;
}
