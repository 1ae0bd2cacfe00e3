/*
 * headers.h — a request's header section judged before anything acts on it: the framing
 * and field rules of RFC 9112 that libmicrohttpd 0.9.75 does not enforce, where a proxy in
 * front of the server could read the same bytes as a different request (smuggling), or
 * where libmicrohttpd would wait for a body it can never delimit.
 *
 * Pure: fed the fields in the order received, each with its true length (fields.h
 * recovers what libmicrohttpd cut). The first rule broken, in this order, is the verdict:
 *
 *   400  a field name that is not a token: empty, or with a space, a control character or
 *        another separator in it ("Transfer-Encoding : chunked" included)
 *   400  a field value with a control character in it: NUL, CR, LF, ... (HTAB is allowed)
 *   400  more than one Host field, or more than one Authorization field
 *   400  Content-Length together with Transfer-Encoding
 *   400  a Content-Length that is not digits, or two Content-Length fields that differ
 *        (the same value repeated is allowed, as RFC 9110 permits)
 *   501  Transfer-Encoding naming any coding but chunked ("xchunked", "chunked, identity",
 *        "gzip, chunked"): the server decodes chunked only
 *   400  any other Transfer-Encoding than one field whose value is exactly "chunked" (in
 *        any letter case): chunked twice, an empty value, a list, spaces after it
 *
 * Every one of these refusals ends the connection: after it the server cannot know where
 * the next request would begin.
 */
#ifndef CHARLM_HEADERS_H
#define CHARLM_HEADERS_H

#include <stddef.h>

typedef struct {
    const char *name;
    size_t name_len;
    const char *value; // without the whitespace before it; may hold NULs
    size_t value_len;
} HeaderField;

/* The verdict: status 0 when the header section is fine, else the status to answer with
 * and a one-sentence message (a static string, never an echo of the request). */
typedef struct {
    int status;
    const char *message;
} HeaderVerdict;

/* The rules above, as the fields arrive (headers_begin, headers_add for each field in
 * order, headers_end for the verdict); HeaderCheck is the state between calls. */
typedef struct {
    unsigned bad_name : 1, bad_value : 1, bad_cl : 1, cl_differs : 1, te_unknown : 1, te_exact : 1;
    int hosts, auths, cls, tes;
    const char *cl;
    size_t cl_len;
} HeaderCheck;

void headers_begin(HeaderCheck *c);
void headers_add(HeaderCheck *c, const HeaderField *f);
HeaderVerdict headers_end(const HeaderCheck *c);
/* The three together, for n fields at once. */
HeaderVerdict headers_check(const HeaderField *fields, int n);

#endif
