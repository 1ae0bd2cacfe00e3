#include <string.h>

#include "utf8.h"

int utf8_decode_one(const unsigned char *s, size_t len, uint32_t *cp) {
    if (len == 0) return 0;
    unsigned char b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    int n;
    uint32_t c, min;
    if ((b0 & 0xE0) == 0xC0) {
        n = 2, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        n = 3, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        n = 4, c = b0 & 0x07, min = 0x10000;
    } else {
        return 0; // a continuation byte or 0xF8..0xFF cannot start a sequence
    }
    if (len < (size_t)n) return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return n;
}

long utf8_find_invalid(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int n = utf8_decode_one(u + i, len - i, &cp);
        if (n == 0) return (long)i;
        i += (size_t)n;
    }
    return -1;
}

size_t utf8_count(const char *s, size_t len) {
    size_t n = 0;
    // In valid UTF-8 every code point has exactly one byte that is not a continuation.
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

int utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_cut(const char *s, size_t len, size_t max) {
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

// What one byte or sequence of s becomes: the sequence itself, U+FFFD or an escape.
static size_t piece(const unsigned char *s, size_t len, int escape, char *out, size_t *used) {
    uint32_t cp;
    int n = utf8_decode_one(s, len, &cp);
    *used = n > 0 ? (size_t)n : 1;
    if (n == 0 && !escape) return (size_t)utf8_encode(0xFFFD, out);
    if (escape && (n == 0 || cp < 0x20 || cp == 0x7f || cp == '\\')) {
        static const char hex[] = "0123456789abcdef";
        const char *named = cp == '\n' ? "\\n" : cp == '\r' ? "\\r" : cp == '\t' ? "\\t" : NULL;
        if (n > 0 && cp == '\\') named = "\\\\";
        if (n > 0 && named) {
            memcpy(out, named, 2);
            return 2;
        }
        out[0] = '\\', out[1] = 'x', out[2] = hex[s[0] >> 4], out[3] = hex[s[0] & 15];
        return 4;
    }
    memcpy(out, s, (size_t)n);
    return (size_t)n;
}

static size_t copy_text(const char *s, size_t len, char *out, size_t cap, int escape) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        char p[4];
        size_t used, n = piece(u + i, len - i, escape, p, &used);
        if (o + n > cap - 1) break;
        memcpy(out + o, p, n);
        o += n;
        i += used;
    }
    out[o] = '\0';
    return i;
}

size_t utf8_sanitize(const char *s, size_t len, char *out, size_t cap) {
    return copy_text(s, len, out, cap, 0);
}

size_t utf8_escape(const char *s, size_t len, char *out, size_t cap) {
    return copy_text(s, len, out, cap, 1);
}
