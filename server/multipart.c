#include <string.h>
#include <strings.h>

#include "multipart.h"

static const char *find(const char *hay, size_t hlen, const char *needle, size_t nlen) {
    if (nlen > hlen) return NULL;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0) return hay + i;
    return NULL;
}

int multipart_boundary(const char *ct, char *out, size_t cap) {
    static const char type[] = "multipart/form-data";
    if (!ct || cap < MULTIPART_BOUNDARY_MAX + 1) return -1;
    ct += strspn(ct, " \t");
    if (strncasecmp(ct, type, sizeof(type) - 1) != 0) return -1;
    const char *p = ct + sizeof(type) - 1;
    while (*p) {
        p += strspn(p, " \t");
        if (*p != ';') return -1;
        p++;
        p += strspn(p, " \t");
        size_t klen = strcspn(p, "=; \t");
        const char *key = p;
        p += klen;
        if (*p != '=') return -1;
        p++;
        const char *v = p;
        size_t vlen;
        if (*p == '"') {
            v = ++p;
            const char *q = strchr(p, '"');
            if (!q) return -1;
            vlen = (size_t)(q - v);
            p = q + 1;
        } else {
            vlen = strcspn(p, "; \t");
            p += vlen;
        }
        if (klen == 8 && strncasecmp(key, "boundary", 8) == 0) {
            // No CR or LF: the parser's delimiter then holds one CR only, at its start.
            if (vlen == 0 || vlen > MULTIPART_BOUNDARY_MAX || memchr(v, '\0', vlen) ||
                memchr(v, '\r', vlen) || memchr(v, '\n', vlen))
                return -1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 0;
        }
    }
    return -1;
}

// The value of parameter key (name or filename) in a Content-Disposition value line
// [p, end): quoted or a token. Returns 1 when found.
static int disposition_param(const char *p, const char *end, const char *key, const char **v,
                             size_t *vlen) {
    size_t klen = strlen(key);
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (!semi) return 0;
        p = semi + 1;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if ((size_t)(end - p) <= klen || strncasecmp(p, key, klen) != 0 || p[klen] != '=') continue;
        p += klen + 1;
        if (p < end && *p == '"') {
            const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
            if (!q) return 0;
            *v = p + 1;
            *vlen = (size_t)(q - p - 1);
        } else {
            const char *q = p;
            while (q < end && *q != ';' && *q != ' ' && *q != '\t') q++;
            *v = p;
            *vlen = (size_t)(q - p);
        }
        return 1;
    }
    return 0;
}

// Reads the part's header lines [p, end) into part; returns 0 or -1 with *why.
static int part_headers(const char *p, const char *end, MultipartPart *part, const char **why) {
    memset(part, 0, sizeof(*part));
    static const char cd[] = "content-disposition:";
    int disposed = 0;
    while (p < end) {
        const char *eol = find(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) eol = end;
        if ((size_t)(eol - p) >= sizeof(cd) - 1 && strncasecmp(p, cd, sizeof(cd) - 1) == 0) {
            const char *v = p + sizeof(cd) - 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            if ((size_t)(eol - v) < 9 || strncasecmp(v, "form-data", 9) != 0 ||
                (v + 9 < eol && v[9] != ';' && v[9] != ' ')) {
                *why = "a part's Content-Disposition is not form-data";
                return -1;
            }
            if (!disposition_param(v, eol, "name", &part->name, &part->name_len)) {
                *why = "a part's Content-Disposition has no name";
                return -1;
            }
            if (!disposition_param(v, eol, "filename", &part->filename, &part->filename_len))
                part->filename = NULL;
            disposed = 1;
        }
        p = eol + 2;
    }
    if (!disposed) *why = "a part has no Content-Disposition header";
    return disposed ? 0 : -1;
}

enum {
    IN_PREAMBLE, // looking for the first delimiter
    AFTER_DELIM, // padding, then "--" or CRLF
    AFTER_DASH,  // one '-' of the closing "--"
    AFTER_CR,    // the CR of the CRLF starting a part
    IN_HEAD,     // a part's header lines, up to the blank line
    IN_DATA,     // a part's content, up to the next delimiter
    DONE,        // the closing delimiter seen: the epilogue is ignored
    FAILED
};

static const char NOT_CRLF[] = "a multipart delimiter is not followed by CRLF or \"--\"";

int multipart_begin(MultipartStream *s, const char *boundary) {
    size_t blen = strlen(boundary);
    if (blen == 0 || blen > MULTIPART_BOUNDARY_MAX || strpbrk(boundary, "\r\n")) return -1;
    memset(s, 0, sizeof(*s));
    memcpy(s->delim, "\r\n--", 4);
    memcpy(s->delim + 4, boundary, blen);
    s->dlen = blen + 4;
    // As if the body followed a CRLF: its first delimiter may start it without one.
    s->match = 2;
    s->state = IN_PREAMBLE;
    return 0;
}

static int fail(MultipartStream *s, const char *why, const char **out) {
    s->state = FAILED;
    s->why = why;
    *out = why;
    return -1;
}

// The part's header lines are in head[0, hlen), blank line included.
static int head_done(MultipartStream *s) {
    if (s->hlen == 2 && memcmp(s->head, "\r\n", 2) == 0) return 1; // no headers at all
    return s->hlen >= 4 && memcmp(s->head + s->hlen - 4, "\r\n\r\n", 4) == 0;
}

int multipart_feed(MultipartStream *s, const char *data, size_t len, const MultipartSink *sink,
                   void *ctx, const char **why) {
    const char *p = data, *end = data + len;
    *why = s->why;
    if (s->state == FAILED) return -1;
    while (p < end) {
        char c = *p;
        switch (s->state) {
        case IN_PREAMBLE:
        case IN_DATA:
            if (s->state == IN_DATA && s->match == 0) {
                // Content up to the next CR, the only byte that can start a delimiter.
                const char *cr = memchr(p, '\r', (size_t)(end - p));
                size_t run = cr ? (size_t)(cr - p) : (size_t)(end - p);
                if (run && sink->data(ctx, p, run)) return fail(s, NULL, why);
                p += run;
                if (!cr) break;
                s->match = 1;
                p++;
                break;
            }
            if (c == s->delim[s->match]) {
                p++;
                if (++s->match < s->dlen) break;
                s->match = 0;
                if (s->state == IN_DATA && sink->end(ctx)) return fail(s, NULL, why);
                s->state = AFTER_DELIM;
            } else if (s->match) {
                // What was held back is content (or preamble); c is looked at again, as it
                // may start a delimiter itself.
                if (s->state == IN_DATA && sink->data(ctx, s->delim, s->match))
                    return fail(s, NULL, why);
                s->match = 0;
            } else {
                p++;
            }
            break;
        case AFTER_DELIM:
            if (c == ' ' || c == '\t')
                ;
            else if (c == '-')
                s->state = AFTER_DASH;
            else if (c == '\r')
                s->state = AFTER_CR;
            else
                return fail(s, NOT_CRLF, why);
            p++;
            break;
        case AFTER_DASH:
        case AFTER_CR:
            if (c != (s->state == AFTER_DASH ? '-' : '\n')) return fail(s, NOT_CRLF, why);
            s->state = s->state == AFTER_DASH ? DONE : IN_HEAD;
            s->hlen = 0;
            p++;
            break;
        case IN_HEAD:
            if (s->hlen == sizeof(s->head))
                return fail(s, "a part's headers are longer than 8192 bytes", why);
            s->head[s->hlen++] = c;
            p++;
            if (!head_done(s)) break;
            if (part_headers(s->head, s->head + (s->hlen == 2 ? 0 : s->hlen - 4), &s->part, why))
                return fail(s, *why, why);
            if (sink->part(ctx, &s->part)) return fail(s, NULL, why);
            s->state = IN_DATA;
            break;
        default: // DONE: the epilogue
            p = end;
        }
    }
    return 0;
}

int multipart_end(MultipartStream *s, const char **why) {
    switch (s->state) {
    case DONE:
        return 0;
    case FAILED:
        *why = s->why ? s->why : "the form was refused";
        return -1;
    case IN_PREAMBLE:
        *why = "the body holds no multipart boundary";
        break;
    case IN_HEAD:
        *why = "a part's headers do not end";
        break;
    case IN_DATA:
        *why = "the body ends before the closing multipart boundary";
        break;
    default:
        *why = NOT_CRLF;
    }
    s->state = FAILED;
    s->why = *why;
    return -1;
}
