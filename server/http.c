#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conns.h"
#include "error.h"
#include "http.h"
#include "server.h"
#include "utf8.h"

double elapsed_ms(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) * 1e3 +
           (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

void request_log(const char *method, const char *path, int status, size_t bytes, double ms) {
    // One write per line so lines from concurrent requests do not interleave.
    char line[512];
    int n = snprintf(line, sizeof(line), "%s %s %d %zu %.1fms\n", method, path, status, bytes, ms);
    if (n > 0) fwrite(line, 1, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, stderr);
}

// The next origin of --cors-origin: each value holds one or several, separated by commas
// or spaces. Start with *vi = 0 and *p = NULL; returns NULL after the last.
static const char *cors_next(int *vi, const char **p, size_t *len) {
    const CliList *l = &srv.cfg.cors_origins;
    for (;;) {
        if (!*p) {
            if (*vi >= l->n) return NULL;
            *p = l->value[(*vi)++];
        }
        *p += strspn(*p, ", \t");
        if (**p) {
            const char *o = *p;
            *len = strcspn(o, ", \t");
            *p += *len;
            return o;
        }
        *p = NULL;
    }
}

int http_cors_origins(void) {
    int vi = 0, n = 0;
    const char *p = NULL;
    size_t len;
    while (cors_next(&vi, &p, &len)) n++;
    return n;
}

void response_add_common(struct MHD_Response *resp, struct MHD_Connection *conn) {
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (!srv.cfg.cors_origins.n) return;
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    size_t olen = origin ? strlen(origin) : 0, len, first_len = 0;
    const char *p = NULL, *o, *first = NULL;
    int vi = 0, n = 0, any = 0, listed = 0;
    while ((o = cors_next(&vi, &p, &len))) {
        if (!n++) {
            first = o;
            first_len = len;
        }
        any |= len == 1 && *o == '*';
        listed |= origin && len == olen && memcmp(o, origin, len) == 0;
    }
    if (any) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
        return;
    }
    // A listed Origin is echoed, another gets none. Without an Origin (no browser's
    // cross-origin call) a single configured origin is named, as before several could be.
    if (listed) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    } else if (!origin && n == 1) {
        char one[512];
        snprintf(one, sizeof(one), "%.*s", (int)first_len, first);
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", one);
    }
    MHD_add_response_header(resp, "Vary", "Origin");
}

enum MHD_Result respond(struct MHD_Connection *conn, Request *rq, int status, const char *type,
                        char *body, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (type) MHD_add_response_header(resp, "Content-Type", type);
    response_add_common(resp, conn);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) MHD_add_response_header(resp, "Retry-After", "1");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (rq->close) MHD_add_response_header(resp, "Connection", "close");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && rq->allow[0])
        MHD_add_response_header(resp, "Allow", rq->allow);
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    rq->status = status;
    rq->bytes = len;
    return r;
}

enum MHD_Result respond_json(struct MHD_Connection *conn, Request *rq, int status, char *json) {
    if (!json) return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    return respond(conn, rq, status, "application/json", json, strlen(json));
}

enum MHD_Result respond_object(struct MHD_Connection *conn, Request *rq, int status, cJSON *o) {
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return respond_json(conn, rq, status, json);
}

static const char *error_type(int status) {
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 405:
        return "method_not_allowed";
    case 413:
        return "request_too_large";
    case 415:
        return "unsupported_media_type";
    case 501: // a transfer coding the server does not decode: the request's doing
        return "invalid_request_error";
    case 503:
        return "overloaded_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

// cJSON writes a string's bytes as they are: one that is not UTF-8 would make the reply
// invalid JSON text.
static void add_text(cJSON *o, const char *name, const char *s) {
    size_t len = strlen(s);
    if (utf8_find_invalid(s, len) < 0) {
        cJSON_AddStringToObject(o, name, s);
        return;
    }
    char clean[1024];
    utf8_sanitize(s, len, clean, sizeof(clean));
    cJSON_AddStringToObject(o, name, clean);
}

char *http_error_json(int status, const char *message, const char *param) {
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    add_text(e, "message", message);
    cJSON_AddStringToObject(e, "type", error_type(status));
    if (param && param[0]) add_text(e, "param", param);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

enum MHD_Result respond_error(struct MHD_Connection *conn, Request *rq, int status,
                              const char *message, const char *param) {
    char *json = http_error_json(status, message, param);
    if (!json) {
        // Even the error could not be built: a static body still says what happened.
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\"}}";
        rq->status = 503;
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        enum MHD_Result r = MHD_queue_response(conn, 503, resp);
        MHD_destroy_response(resp);
        return r;
    }
    return respond(conn, rq, status, "application/json", json, strlen(json));
}

int http_is_json_type(const char *ct) {
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0) return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t') ct++;
    return *ct == '\0' || *ct == ';';
}

static void copy_printable(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = ch < 0x20 || ch == 0x7f || ch == ' ' ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

enum MHD_Result respond_preflight(struct MHD_Connection *conn, Request *rq) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    response_add_common(resp, conn);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Content-Type, Authorization");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_NO_CONTENT, resp);
    MHD_destroy_response(resp);
    rq->status = MHD_HTTP_NO_CONTENT;
    return r;
}

static size_t body_limit(const Request *rq) {
    return rq->body_limit ? rq->body_limit : (size_t)srv.cfg.max_body;
}

static int body_append(Request *rq, const char *data, size_t n) {
    if (rq->later_body) { // refused already: the body is only read to be dropped
        rq->discarded += n;
        return rq->discarded > HTTP_DRAIN_MAX ? -1 : 0;
    }
    size_t have = rq->sink ? rq->sunk : rq->body.len;
    if (rq->discarded || have + n > body_limit(rq)) {
        // Chunked bodies have no length up front: count them as they come and drop the
        // rest; the 413 goes out once the client has finished sending.
        if (!rq->discarded && rq->sink && rq->sink(rq, NULL, 0)) return -1;
        rq->discarded += n;
        return 0;
    }
    if (rq->sink) {
        rq->sunk += n;
        return rq->sink(rq, data, n);
    }
    buf_add(&rq->body, data, n);
    return rq->body.failed ? -1 : 0;
}

enum MHD_Result respond_error_after_body(struct MHD_Connection *conn, Request *rq, int status,
                                         const char *message, const char *param) {
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    int chunked = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding") != NULL;
    unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
    // Nothing to wait for, or too much to read: answered now.
    if ((!chunked && len == 0) || len > HTTP_DRAIN_MAX)
        return respond_error(conn, rq, status, message, param);
    rq->later_body = http_error_json(status, message, param);
    if (!rq->later_body)
        return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    rq->later_status = status;
    return MHD_YES;
}

enum MHD_Result respond_too_large(struct MHD_Connection *conn, Request *rq) {
    char msg[96];
    snprintf(msg, sizeof(msg), "request body is larger than %zu bytes", body_limit(rq));
    return respond_error(conn, rq, MHD_HTTP_CONTENT_TOO_LARGE, msg, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    (void)version;
    const HttpRouter *router = cls;
    Request *rq = *req_cls;
    if (!rq) {
        rq = calloc(1, sizeof(*rq));
        if (!rq) return MHD_NO;
        *req_cls = rq;
        clock_gettime(CLOCK_MONOTONIC, &rq->t0);
        rq->url = url;
        rq->raw = method;
        copy_printable(rq->method, sizeof(rq->method), method);
        copy_printable(rq->path, sizeof(rq->path), url);
        // Answering here, before libmicrohttpd has looked for a body, would make it close
        // the connection; only refusals do that (their body is not worth reading).
        enum MHD_Result r = router->on_headers(conn, rq);
        if (rq->status) conns_busy(conn);
        return r;
    }
    if (*upload_data_size) {
        if (body_append(rq, upload_data, *upload_data_size)) return MHD_NO;
        // A client that keeps sending far past the limit is cut off rather than read.
        if (rq->discarded > 16 * body_limit(rq) + (1u << 20)) return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    conns_busy(conn);               // the whole request is in
    if (rq->status) return MHD_YES; // already answered
    if (rq->resume) return rq->resume(conn, rq);
    if (rq->later_body) {
        char *body = rq->later_body;
        rq->later_body = NULL;
        return respond(conn, rq, rq->later_status, "application/json", body, strlen(body));
    }
    if (rq->discarded && !rq->sink) return respond_too_large(conn, rq); // a sink answers its own
    rq->url = url;
    return router->on_request(conn, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    const HttpRouter *router = cls;
    Request *rq = *req_cls;
    if (!rq) return;
    conns_idle(conn);
    *req_cls = NULL;
    // A reply that could not be delivered is logged as nginx does: 499.
    int status = rq->status ? rq->status : 499;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status < 400) status = 499;
    double ms = elapsed_ms(&rq->t0);
    request_log(rq->method, rq->path, status, rq->bytes, ms);
    router->on_done(rq, status, ms / 1e3);
    if (rq->finish) rq->finish(rq);
    buf_free(&rq->body);
    free(rq->later_body);
    free(rq);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// As libmicrohttpd's own percent-decoding, but for "%00".
size_t http_unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static size_t unescape_url(void *cls, struct MHD_Connection *conn, char *s) {
    (void)cls;
    (void)conn;
    return http_unescape(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    fprintf(stderr, SERVER_NAME ": http: %s\n", msg);
}

struct MHD_Daemon *http_start(int listen_fd, const HttpRouter *router, char *err) {
    // Threading: event-driven, one thread running an epoll loop over every connection. An
    // open connection costs a socket and its memory pool (32 KB at most), not a thread:
    // thousands of idle or slow clients cannot exhaust the server the way they exhausted
    // one thread per connection. No callback ever blocks, and parsing and writing are cheap
    // next to generating, which has its own workers. (Not a pool of such threads:
    // libmicrohttpd 0.9.75 can abort in MHD_quiesce_daemon with one, a race with its own
    // threads over the listening socket's epoll registration.)
    // The generation runs on the scheduler's workers (sched.c); a request waiting for its
    // text is suspended (MHD_suspend_connection, out of the event loop, where no timeout
    // runs) and resumed by the worker when its text or its next SSE chunk is ready (gen.c).
    // libmicrohttpd's own idle timeout is off: it counts only its own reads and writes,
    // and so cut a client draining a full socket buffer slowly; conns.c times connections
    // out by their progress instead, and makes idle ones give way at --max-connections
    // (libmicrohttpd's limit is a little higher, for those being shut down).
    // MHD_ALLOW_SUSPEND_RESUME brings the inter-thread channel (MHD_USE_ITC) that wakes a
    // thread for a resume, and that lets SIGTERM quiesce the listening socket.
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (conns_start(srv.cfg.max_conns, srv.cfg.idle_timeout, err)) return NULL;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, (void *)router, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape_url, NULL, MHD_OPTION_LISTEN_SOCKET, listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)router, MHD_OPTION_NOTIFY_CONNECTION,
        conns_notify, NULL, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(srv.cfg.max_conns + CONNS_SLACK), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)srv.cfg.max_conns_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, 0u, MHD_OPTION_END);
    if (!d) {
        conns_stop();
        conns_free();
        err_set(err, "cannot start the HTTP daemon");
    }
    return d;
}

void http_stop(struct MHD_Daemon *d) {
    conns_stop();
    MHD_stop_daemon(d);
    conns_free();
}
