/*
 * multipart.h — a multipart/form-data body (RFC 7578) split into its parts, without
 * copying: every pointer points into the body. Pure: no I/O, no allocation.
 *
 *   --BOUNDARY\r\n
 *   Content-Disposition: form-data; name="file"; filename="a.txt"\r\n
 *   Content-Type: text/plain\r\n
 *   \r\n
 *   <bytes>\r\n
 *   --BOUNDARY--\r\n
 *
 * A preamble before the first delimiter and an epilogue after the last are ignored, as the
 * RFC says. Header names are matched in any letter case; a part without a
 * Content-Disposition of form-data with a name is an error, as is a body that ends before
 * the closing delimiter.
 */
#ifndef CHARLM_MULTIPART_H
#define CHARLM_MULTIPART_H

#include <stddef.h>

/* The longest boundary RFC 2046 allows. */
#define MULTIPART_BOUNDARY_MAX 70

typedef struct {
    const char *name; // the form field's name (its length in name_len), never NULL
    size_t name_len;
    const char *filename; // NULL when the part has no filename parameter
    size_t filename_len;
    const char *data; // the part's content
    size_t len;
} MultipartPart;

/* The boundary of a Content-Type "multipart/form-data; boundary=..." (quoted or not, any
 * letter case for the type and the parameter name) into out (NUL-terminated, cap at least
 * MULTIPART_BOUNDARY_MAX + 1). Returns 0, or -1 when the type is another or the boundary
 * is missing, empty or longer than MULTIPART_BOUNDARY_MAX. */
int multipart_boundary(const char *content_type, char *out, size_t cap);

/* Splits body into at most max parts (*n of them, in order). Returns 0, or -1 with *why a
 * static sentence saying what is wrong (also when there are more than max parts). */
int multipart_parse(const char *body, size_t len, const char *boundary, MultipartPart *parts,
                    int max, int *n, const char **why);

#endif
