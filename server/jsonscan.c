#include "jsonscan.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

cJSON *jsonscan_parse(const char *body, size_t len, const char **end, int *nomem) {
    // Counting the NUL after the bytes makes cJSON refuse anything after the value.
    errno = 0;
    cJSON *o = cJSON_ParseWithLengthOpts(body, len + 1, end, 1);
    // cJSON says the same for a node it could not allocate as for a syntax error; malloc
    // sets ENOMEM, and nothing else cJSON calls does.
    *nomem = !o && errno == ENOMEM;
    return o;
}

// The walk's body is JSON that cJSON accepted, so the walk only has to find the bounds of each
// key and value; it never reads past end all the same.

// cJSON takes every byte up to ' ' as whitespace.
static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (unsigned char)*p <= ' ') p++;
    return p;
}

static const char *skip_string(const char *p, const char *end) {
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\') p++;
    return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end) {
    if (p < end && *p == '"') return skip_string(p, end);
    if (p < end && (*p == '{' || *p == '[')) {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
            p++;
        }
        return end;
    }
    while (p < end && (unsigned char)*p > ' ' && *p != ',' && *p != '}' && *p != ']') p++;
    return p;
}

const char *jsonscan_begin(const char *body, size_t len) {
    const char *p = skip_ws(body, body + len);
    return p < body + len ? p + 1 : p;
}

int jsonscan_next(const char **cursor, const char *end, JsonMember *m) {
    const char *p = skip_ws(*cursor, end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
    if (p >= end || *p != '"') return 0;
    m->key = p;
    p = m->key_end = skip_string(p, end);
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return 0;
    m->val = p = skip_ws(p + 1, end);
    *cursor = m->val_end = skip_value(p, end);
    return 1;
}

// Outside strings there are no backslashes.
int jsonscan_has_nul(const char *p, const char *end) {
    for (; p < end; p++) {
        if (*p != '\\') continue;
        if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) return 1;
        p++;
    }
    return 0;
}

// mag as a double, rounded away from zero when a double does not hold it.
static double away_from_zero(uint64_t mag) {
    double v = (double)mag;
    if (v < 0x1p64 && (uint64_t)v < mag) v = nextafter(v, HUGE_VAL);
    return v;
}

int jsonscan_integer(const char *p, const char *end, double *out) {
    int neg = p < end && *p == '-';
    p += neg;
    char digits[24]; // the significant digits, leading zeros dropped
    int nd = 0, dropped = 0, seen = 0;
    long scale = 0; // value = digits * 10^scale
    for (int frac = 0; p < end; p++) {
        if (*p == '.' && !frac) {
            frac = 1;
            continue;
        }
        if (*p < '0' || *p > '9') break;
        seen = 1;
        if (frac) scale--;
        if (nd == 0 && *p == '0') continue;
        if (nd < (int)sizeof(digits))
            digits[nd++] = *p;
        else if (*p != '0')
            dropped = 1; // more digits than any integer within 2^64, unless they are zeros
        else
            scale++;
    }
    if (!seen) return -1;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = p < end && *p == '-';
        p += p < end && (*p == '-' || *p == '+');
        long e = 0;
        if (p >= end || *p < '0' || *p > '9') return -1;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            if (e < 100000) e = e * 10 + (*p - '0');
        scale += eneg ? -e : e;
    }
    if (p != end) return -1;
    while (nd > 0 && digits[nd - 1] == '0') nd--, scale++;
    if (nd == 0) {
        *out = 0;
        return 0;
    }
    if (scale < 0) return -1;
    double huge = neg ? -DBL_MAX : DBL_MAX;
    if (dropped || nd + scale > 20) {
        *out = huge;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < nd + scale; i++) {
        int d = i < nd ? digits[i] - '0' : 0;
        if (v > (UINT64_MAX - (uint64_t)d) / 10) {
            *out = huge;
            return 0;
        }
        v = v * 10 + (uint64_t)d;
    }
    *out = neg ? -away_from_zero(v) : away_from_zero(v);
    return 0;
}

// Walks back from the bad value over ':' to the key's closing quote.
int jsonscan_nonfinite_key(const char *body, size_t len, const char *at, char *key, size_t cap) {
    if (at < body || at >= body + len) return 0;
    const char *p = at;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p == '-' || *p == '+') p++;
    if (strncasecmp(p, "nan", 3) != 0 && strncasecmp(p, "inf", 3) != 0) return 0;
    const char *q = at - 1;
    while (q > body && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q--;
    if (q <= body || *q != ':') return 0;
    q--;
    while (q > body && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q--;
    if (q <= body || *q != '"') return 0;
    const char *kend = q;
    q--;
    // Escaped keys are not worth decoding for a message.
    while (q >= body && *q != '"') {
        if (*q == '\\') return 0;
        q--;
    }
    if (q < body || (q > body && q[-1] == '\\') || (size_t)(kend - q - 1) >= cap) return 0;
    memcpy(key, q + 1, (size_t)(kend - q - 1));
    key[kend - q - 1] = '\0';
    return 1;
}

const cJSON *jsonscan_member(const cJSON *o, const char *name) {
    const cJSON *last = NULL;
    for (const cJSON *it = cJSON_IsObject(o) ? o->child : NULL; it; it = it->next)
        if (strcmp(it->string, name) == 0) last = it;
    return last;
}
