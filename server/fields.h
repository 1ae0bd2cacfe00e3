/*
 * fields.h — a request's header fields as the client sent them, judged by headers.h.
 *
 * libmicrohttpd 0.9.75 ends a field value at its first NUL byte and reports that shorter
 * value, through MHD_lookup_connection_value_n and MHD_get_connection_values_n alike, so
 * "Authorization: Bearer KEY\0junk" reads as "Bearer KEY". The bytes are still there: it
 * parses the request's head in place in its read buffer, which starts at the method string
 * it passes to the access handler and is MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE bytes
 * long. Each line's CRLF (or bare LF) becomes NULs and each field's colon one NUL, and the
 * names and values it reports point into that buffer. So a field's line runs from its name
 * to the next field's name (the last one's to the empty line that ends the head), and what
 * lies between the end of the value reported and the line end was cut off.
 *
 * A line end is one or two NULs there, so a single NUL just before a bare LF looks like a
 * CRLF: that NUL, with nothing after it, is the one byte the check cannot see.
 *
 * A folded line (obs-fold: a line starting with a space or tab) makes libmicrohttpd move the
 * field's name out of the buffer and append the continuation to the name; such a field, or
 * any other that does not sit where its line is, is a 400 (RFC 9112 lets a server refuse
 * obs-fold). With another libmicrohttpd than 0.9.x (1.0 refuses NULs itself) the values are
 * taken as it reports them.
 */
#ifndef CHARLM_FIELDS_H
#define CHARLM_FIELDS_H

#include <microhttpd.h>

#include "headers.h"

/* The verdict of headers.h's rules on conn's header fields; method is the pointer
 * libmicrohttpd passed to the access handler. Call from the handler's first call. */
HeaderVerdict fields_check(struct MHD_Connection *conn, const char *method);

#endif
