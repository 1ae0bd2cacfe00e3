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
            if (vlen == 0 || vlen > MULTIPART_BOUNDARY_MAX || memchr(v, '\0', vlen)) return -1;
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

int multipart_parse(const char *body, size_t len, const char *boundary, MultipartPart *parts,
                    int max, int *n, const char **why) {
    // "\r\n--" + boundary: the delimiter between parts; the first one may start the body.
    char delim[MULTIPART_BOUNDARY_MAX + 5];
    size_t blen = strlen(boundary);
    *n = 0;
    if (blen == 0 || blen > MULTIPART_BOUNDARY_MAX) {
        *why = "the multipart boundary is empty or too long";
        return -1;
    }
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = blen + 4;
    const char *end = body + len, *p;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0)
        p = body + dlen - 2;
    else if ((p = find(body, len, delim, dlen)))
        p += dlen;
    else {
        *why = "the body holds no multipart boundary";
        return -1;
    }
    for (;;) {
        // After a delimiter: "--" closes the body, CRLF starts a part (transport padding
        // of spaces and tabs may come before either).
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return 0;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            *why = "a multipart delimiter is not followed by CRLF or \"--\"";
            return -1;
        }
        p += 2;
        if (*n == max) {
            *why = "the form has too many parts";
            return -1;
        }
        MultipartPart *part = &parts[*n];
        memset(part, 0, sizeof(*part));
        const char *hend;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
            hend = p; // no headers at all
        else if (!(hend = find(p, (size_t)(end - p), "\r\n\r\n", 4))) {
            *why = "a part's headers do not end";
            return -1;
        }
        if (part_headers(p, hend, part, why)) return -1;
        p = hend + (hend == p ? 2 : 4);
        const char *next = find(p, (size_t)(end - p), delim, dlen);
        if (!next) {
            *why = "the body ends before the closing multipart boundary";
            return -1;
        }
        part->data = p;
        part->len = (size_t)(next - p);
        (*n)++;
        p = next + dlen;
    }
}
