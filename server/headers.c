#include <string.h>
#include <strings.h>

#include "headers.h"

// RFC 9110's tchar: what a field name is made of.
static int is_tchar(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int name_is(const HeaderField *f, const char *name) {
    return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

// Leading zeros do not make a different length; the digits are compared as text, so any
// number of them is fine (libmicrohttpd refuses the ones that overflow).
static void skip_zeros(const char **s, size_t *n) {
    while (*n > 1 && **s == '0') (*s)++, (*n)--;
}

static void add_content_length(HeaderCheck *c, const HeaderField *f) {
    const char *v = f->value;
    size_t n = f->value_len;
    int digits = n > 0;
    for (size_t i = 0; i < n; i++) digits &= v[i] >= '0' && v[i] <= '9';
    if (!digits) {
        c->bad_cl = 1;
        return;
    }
    skip_zeros(&v, &n);
    if (c->cls++ == 0) {
        c->cl = v;
        c->cl_len = n;
    } else if (n != c->cl_len || memcmp(v, c->cl, n) != 0) {
        c->cl_differs = 1;
    }
}

// libmicrohttpd decodes chunked only when the first Transfer-Encoding field is exactly
// "chunked"; every coding in every field is looked at here, so that no other value
// reaches it.
static void add_transfer_encoding(HeaderCheck *c, const HeaderField *f) {
    if (c->tes++ == 0) c->te_exact = f->value_len == 7 && strncasecmp(f->value, "chunked", 7) == 0;
    const char *p = f->value, *end = f->value + f->value_len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        while (p < e && (*p == ' ' || *p == '\t')) p++;
        const char *q = e;
        while (q > p && (q[-1] == ' ' || q[-1] == '\t')) q--;
        if (q > p) {
            c->te_unknown |= !(q - p == 7 && strncasecmp(p, "chunked", 7) == 0);
        }
        p = comma ? comma + 1 : end;
    }
}

void headers_begin(HeaderCheck *c) {
    memset(c, 0, sizeof(*c));
}

void headers_add(HeaderCheck *c, const HeaderField *f) {
    int name_ok = f->name_len > 0;
    for (size_t i = 0; i < f->name_len; i++) name_ok &= is_tchar((unsigned char)f->name[i]);
    c->bad_name |= !name_ok;
    for (size_t i = 0; i < f->value_len; i++) {
        unsigned char ch = (unsigned char)f->value[i];
        c->bad_value |= (ch < 0x20 && ch != '\t') || ch == 0x7f;
    }
    if (name_is(f, "Host")) c->hosts++;
    if (name_is(f, "Authorization")) c->auths++;
    if (name_is(f, "Content-Length")) add_content_length(c, f);
    if (name_is(f, "Transfer-Encoding")) add_transfer_encoding(c, f);
}

HeaderVerdict headers_end(const HeaderCheck *c) {
    if (c->bad_name) return (HeaderVerdict){400, "a header field name is not a token"};
    if (c->bad_value) return (HeaderVerdict){400, "a header field value holds a control character"};
    if (c->hosts > 1) return (HeaderVerdict){400, "more than one Host header"};
    if (c->auths > 1) return (HeaderVerdict){400, "more than one Authorization header"};
    if (c->tes && (c->cls || c->bad_cl))
        return (HeaderVerdict){400, "Content-Length and Transfer-Encoding together"};
    if (c->bad_cl) return (HeaderVerdict){400, "Content-Length must be a number of bytes"};
    if (c->cl_differs) return (HeaderVerdict){400, "Content-Length fields that differ"};
    if (c->te_unknown) return (HeaderVerdict){501, "the only transfer coding supported is chunked"};
    if (c->tes && !(c->tes == 1 && c->te_exact))
        return (HeaderVerdict){400, "Transfer-Encoding must be exactly chunked"};
    return (HeaderVerdict){0, NULL};
}

HeaderVerdict headers_check(const HeaderField *fields, int n) {
    HeaderCheck c;
    headers_begin(&c);
    for (int i = 0; i < n; i++) headers_add(&c, &fields[i]);
    return headers_end(&c);
}
