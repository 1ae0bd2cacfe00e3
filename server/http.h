/*
 * http.h — the transport: the libmicrohttpd daemon, request bodies up to --max-body,
 * responses and the access log. It knows no route and no handler: the router given to
 * http_start decides what each request means (routes.h).
 */
#ifndef CHARLM_HTTP_H
#define CHARLM_HTTP_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

/* One HTTP request, from its first header callback to libmicrohttpd's completion notice. */
typedef struct Request Request;
struct Request {
    const char *url; // as decoded by http_unescape; valid during the router's callbacks
    const char *raw; // the method as libmicrohttpd passed it: its copy of the head (fields.h)
    char method[16]; // control bytes and spaces replaced by '?' (so "GET" stays "GET")
    char path[256];  // for the access log, control bytes replaced
    struct timespec t0;
    Buf body;          // the body so far, NUL-terminated (body.s NULL while empty)
    size_t discarded;  // bytes dropped once the body went over its limit
    size_t body_limit; // the router's limit for this body; 0: --max-body
    int later_status;  // a refusal answered once the body is in (respond_error_after_body)
    char *later_body;  // its JSON, malloc'd
    // A route that takes its body as it arrives (an upload) sets `sink` before the body is
    // read: each piece goes to it instead of into `body`, and once the body goes over its
    // limit it gets (NULL, 0), the rest being dropped. Nonzero closes the connection.
    int (*sink)(Request *rq, const char *data, size_t n);
    size_t sunk; // bytes given to the sink
    int status;
    size_t bytes;
    int close; // the reply says Connection: close, after which libmicrohttpd closes

    // A handler that suspends its connection (waiting for work elsewhere) sets `resume`,
    // which runs instead of the router each time libmicrohttpd calls for the request again,
    // until a reply is queued; `finish`, when set, runs when the request ends, delivered
    // or not (the completion notice), after the access log line.
    enum MHD_Result (*resume)(struct MHD_Connection *conn, Request *rq);
    void (*finish)(Request *rq);
    void *ctx;

    // The router's, carried here and never read by http.c.
    int route;        // row of the route table, or past its end for no route
    const char *tail; // a prefix route's rest of the URL, set before its handler runs
    char allow[32];   // the Allow header of a 405 reply; empty otherwise
};

/* What http.c calls for every request. */
typedef struct {
    /* The request line and headers are in. Routes the request and, to refuse it without
     * reading its body, answers (setting rq->status). Returns MHD_YES to go on. */
    enum MHD_Result (*on_headers)(struct MHD_Connection *conn, Request *rq);
    /* The whole body is in (within --max-body): answers the request. */
    enum MHD_Result (*on_request)(struct MHD_Connection *conn, Request *rq);
    /* The reply was delivered, or abandoned (status 499), after `seconds`. */
    void (*on_done)(const Request *rq, int status, double seconds);
} HttpRouter;

/* Starts the daemon on an already listening socket; the router must outlive it. Takes
 * --max-connections, --max-connections-per-ip and --idle-timeout from srv.cfg (conns.h). */
struct MHD_Daemon *http_start(int listen_fd, const HttpRouter *router, char *err);
/* Stops it: every connection is closed. */
void http_stop(struct MHD_Daemon *d);

double elapsed_ms(const struct timespec *since);
void request_log(const char *method, const char *path, int status, size_t bytes, double ms);
/* Adds the headers every response carries: nosniff, and with --cors-origin the CORS
 * answer to the request's Origin (conn's): "*", the Origin when it is listed, else none;
 * Vary: Origin when the answer depends on it. */
void response_add_common(struct MHD_Response *resp, struct MHD_Connection *conn);
/* How many origins --cors-origin lists (0: CORS is off). */
int http_cors_origins(void);
/* Queues body (malloc'd, taken over) with status and content type; a 405 carries
 * rq->allow as its Allow header, a 401 WWW-Authenticate: Bearer, a 503 Retry-After, and
 * with rq->close set any reply Connection: close. */
enum MHD_Result respond(struct MHD_Connection *conn, Request *rq, int status, const char *type,
                        char *body, size_t len);
enum MHD_Result respond_json(struct MHD_Connection *conn, Request *rq, int status, char *json);
/* respond_json of o printed; o is freed (a NULL o, or no memory to print it: a 503). */
enum MHD_Result respond_object(struct MHD_Connection *conn, Request *rq, int status, cJSON *o);
/* {"error": {"message": ..., "type": ..., "param": ...}}; param may be NULL. Bytes of
 * message or param that are not UTF-8 go out as U+FFFD, so the body is always UTF-8. */
enum MHD_Result respond_error(struct MHD_Connection *conn, Request *rq, int status,
                              const char *message, const char *param);
/* The same refusal, answered once the request's body has come and been dropped, at most
 * HTTP_DRAIN_MAX bytes of it (past that the connection is cut). A client that streams a
 * large body (an upload) would otherwise meet a reset connection before it has read the
 * reply: closing a socket with unread bytes in it resets it. For refusals made from the
 * headers, before any body is read. */
#define HTTP_DRAIN_MAX (1u << 20)
enum MHD_Result respond_error_after_body(struct MHD_Connection *conn, Request *rq, int status,
                                         const char *message, const char *param);
/* respond_error's body (malloc'd), or NULL when out of memory. */
char *http_error_json(int status, const char *message, const char *param);
/* 413: the body is (or says it will be) larger than its limit (body_limit, --max-body). */
enum MHD_Result respond_too_large(struct MHD_Connection *conn, Request *rq);
/* 204 to a CORS preflight (OPTIONS), with the methods and headers a page may use. */
enum MHD_Result respond_preflight(struct MHD_Connection *conn, Request *rq);

/* Percent-decodes s in place and returns its new length. "%00" stays as it is: a decoded
 * NUL would silently cut the path short ("/static/x.html%00.js"). */
size_t http_unescape(char *s);
/* 1 for "application/json" with any parameters ("; charset=utf-8"), in any letter case. */
int http_is_json_type(const char *content_type);

#endif
