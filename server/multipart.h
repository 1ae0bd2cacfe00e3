/*
 * multipart.h — a multipart/form-data body (RFC 7578) parsed as it arrives, in pieces of
 * any size: the parts' headers and the pieces of their content are handed to callbacks,
 * and what the parser keeps is a fixed MultipartStream (about 8 KiB), whatever the body's
 * size. Pure: no I/O, no allocation.
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
 * Content-Disposition of form-data with a name is an error, as are a part's headers longer
 * than MULTIPART_HEAD_MAX and a body that ends before the closing delimiter.
 */
#ifndef CHARLM_MULTIPART_H
#define CHARLM_MULTIPART_H

#include <stddef.h>

/* The longest boundary RFC 2046 allows. */
#define MULTIPART_BOUNDARY_MAX 70
/* The most bytes of header lines one part may have. */
#define MULTIPART_HEAD_MAX 8192

typedef struct {
    const char *name; // the form field's name (its length in name_len), never NULL
    size_t name_len;
    const char *filename; // NULL when the part has no filename parameter
    size_t filename_len;
} MultipartPart;

/* What the parser calls; each returns 0 to go on, or nonzero to stop the parse (the
 * caller refuses the body: multipart_feed then returns -1 with *why NULL). */
typedef struct {
    /* A part begins; part (its strings inside the stream) is valid until the part ends. */
    int (*part)(void *ctx, const MultipartPart *part);
    /* The next n bytes of the part's content (n > 0; a piece of any size). */
    int (*data)(void *ctx, const char *data, size_t n);
    /* The part's content is complete. */
    int (*end)(void *ctx);
} MultipartSink;

typedef struct {
    char delim[MULTIPART_BOUNDARY_MAX + 5]; // "\r\n--" boundary
    size_t dlen;
    size_t match; // bytes of delim matched by the last bytes seen (content held back)
    int state;
    char head[MULTIPART_HEAD_MAX + 4]; // the current part's header lines and blank line
    size_t hlen;
    MultipartPart part;
    const char *why; // the first error, sticky
} MultipartStream;

/* The boundary of a Content-Type "multipart/form-data; boundary=..." (quoted or not, any
 * letter case for the type and the parameter name) into out (NUL-terminated, cap at least
 * MULTIPART_BOUNDARY_MAX + 1). Returns 0, or -1 when the type is another or the boundary
 * is missing, empty, longer than MULTIPART_BOUNDARY_MAX or holds CR or LF. */
int multipart_boundary(const char *content_type, char *out, size_t cap);

/* Starts a parse; 0, or -1 when the boundary is not one multipart_boundary gives. */
int multipart_begin(MultipartStream *s, const char *boundary);
/* Parses the next len bytes of the body, calling sink with ctx. Returns 0, or -1 with *why
 * a static sentence saying what is wrong (NULL when a callback stopped it); after -1 every
 * call returns -1 again. */
int multipart_feed(MultipartStream *s, const char *data, size_t len, const MultipartSink *sink,
                   void *ctx, const char **why);
/* The body has ended: 0 when it was a whole form (its closing delimiter seen), else -1
 * with *why. */
int multipart_end(MultipartStream *s, const char **why);

#endif
