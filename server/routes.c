#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "error.h"
#include "fields.h"
#include "files_api.h"
#include "tuning_api.h"
#include "gen.h"
#include "hostcheck.h"
#include "info.h"
#include "metrics.h"
#include "routes.h"
#include "server.h"
#include "static.h"
#include "utf8.h"

// GET /v1/models/{id} answers every server; DELETE, only one with --training-dir, whose
// fine-tuned models it removes.
static enum MHD_Result models_item(struct MHD_Connection *conn, Request *rq) {
    if (strcmp(rq->method, "DELETE") != 0) return info_model(conn, rq);
    if (srv.cfg.training_dir) return tuning_api_delete_model(conn, rq);
    snprintf(rq->allow, sizeof(rq->allow), "GET, HEAD");
    return respond_error(conn, rq, MHD_HTTP_METHOD_NOT_ALLOWED,
                         "DELETE removes fine-tuned models: the server has no --training-dir",
                         NULL);
}

// Looked up in order, the first match serving; also the order of /metrics' lines. The
// page and /health (the probes') stay open when keys are configured. The training rows
// (last field 1) exist only with --training-dir.
const Route route_table[] = {
    {"/", "/index.html", 0, ROUTE_GET, static_index, "/", 0, 0},
    {"/static/", NULL, 1, ROUTE_GET, static_asset, "/static", 0, 0},
    {"/generate", NULL, 0, ROUTE_POST, gen_handle_native, "/generate", 1, 0},
    {"/v1/completions", NULL, 0, ROUTE_POST, gen_handle_openai, "/v1/completions", 1, 0},
    {"/v1/chat/completions", NULL, 0, ROUTE_POST, gen_handle_chat, "/v1/chat/completions", 1, 0},
    {"/v1/models", NULL, 0, ROUTE_GET, info_models, "/v1/models", 1, 0},
    {"/v1/models/", NULL, 1, ROUTE_GET | ROUTE_DELETE, models_item, "/v1/models/{id}", 1, 0},
    {"/tokenize", NULL, 0, ROUTE_POST, info_tokenize, "/tokenize", 1, 0},
    {"/detokenize", NULL, 0, ROUTE_POST, info_detokenize, "/detokenize", 1, 0},
    {"/health", NULL, 0, ROUTE_GET, info_health, "/health", 0, 0},
    {"/model", NULL, 0, ROUTE_GET, info_model_card, "/model", 1, 0},
    {"/metrics", NULL, 0, ROUTE_GET, metrics_handle, "/metrics", 1, 0},
    {"/admin/reload", NULL, 0, ROUTE_POST, info_reload, "/admin/reload", 1, 0},
    {"/v1/files", NULL, 0, ROUTE_GET | ROUTE_UPLOAD, files_api_collection, "/v1/files", 1, 1},
    {"/v1/files/", NULL, 1, ROUTE_GET | ROUTE_DELETE, files_api_item, "/v1/files/{id}", 1, 1},
    {"/v1/fine_tuning/jobs", NULL, 0, ROUTE_GET | ROUTE_POST, tuning_api_collection,
     "/v1/fine_tuning/jobs", 1, 1},
    {"/v1/fine_tuning/jobs/", NULL, 1, ROUTE_GET | ROUTE_POST, tuning_api_item,
     "/v1/fine_tuning/jobs/{id}", 1, 1},
};
const int route_count = (int)(sizeof(route_table) / sizeof(*route_table));

int routes_init(char *err) {
    // One label per row, then the one for requests no row matched: rq->route indexes both.
    static const char *labels[sizeof(route_table) / sizeof(*route_table) + 1];
    for (int i = 0; i < route_count; i++) labels[i] = route_table[i].label;
    labels[route_count] = ROUTE_LABEL_NONE;
    return metrics_init(labels, route_count + 1, err);
}

int routes_find(const char *path) {
    for (int i = 0; i < route_count; i++) {
        const Route *r = &route_table[i];
        if (r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0 : strcmp(path, r->path) == 0)
            return i;
        if (r->alias && strcmp(path, r->alias) == 0) return i;
    }
    return -1;
}

int route_allows(const Route *r, const char *method) {
    if (r->methods & ROUTE_GET && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return 1;
    if (r->methods & ROUTE_DELETE && strcmp(method, "DELETE") == 0) return 1;
    return r->methods & (ROUTE_POST | ROUTE_UPLOAD) && strcmp(method, "POST") == 0;
}

// The methods of r in a fixed order, each as names, joined by sep.
static void methods_text(const Route *r, const char *get, const char *sep, char *buf, size_t cap) {
    const char *names[3];
    int n = 0;
    if (r->methods & ROUTE_GET) names[n++] = get;
    if (r->methods & (ROUTE_POST | ROUTE_UPLOAD)) names[n++] = "POST";
    if (r->methods & ROUTE_DELETE) names[n++] = "DELETE";
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? sep : "", names[i]);
}

void route_allow_text(const Route *r, int cors, char *buf, size_t cap) {
    methods_text(r, "GET, HEAD", ", ", buf, cap);
    size_t at = strlen(buf);
    if (cors && at < cap) snprintf(buf + at, cap - at, ", OPTIONS");
}

int routes_help_text(char *buf, size_t cap) {
    size_t n = 0;
    for (int i = 0; i < route_count; i++) {
        const Route *r = &route_table[i];
        char name[96];
        if (!r->prefix)
            snprintf(name, sizeof(name), "%s%s%s", r->path, r->alias ? ", " : "",
                     r->alias ? r->alias : "");
        else if (strncmp(r->label, r->path, strlen(r->path)) == 0)
            snprintf(name, sizeof(name), "%s", r->label);
        else
            snprintf(name, sizeof(name), "%s*", r->path);
        char methods[32];
        methods_text(r, "GET", "|", methods, sizeof(methods));
        int k = snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, "  %-4s %s%s%s\n",
                         methods, name, r->needs_key ? "" : "  (open)",
                         r->training ? "  (with --training-dir)" : "");
        if (k < 0) return k;
        n += (size_t)k;
    }
    return (int)n;
}

// A refusal from the headers. An upload's waits for its body to be dropped, so that its
// client, still sending, reads the reason (http.h, respond_error_after_body).
static enum MHD_Result refuse(struct MHD_Connection *conn, Request *rq, const Route *r, int status,
                              const char *message) {
    if (r->methods & ROUTE_UPLOAD && strcmp(rq->method, "POST") == 0)
        return respond_error_after_body(conn, rq, status, message, NULL);
    return respond_error(conn, rq, status, message, NULL);
}

// Everything that can be decided from the request line and headers alone: answers a
// request that goes no further, or returns MHD_YES to read its body.
static enum MHD_Result on_headers(struct MHD_Connection *conn, Request *rq) {
    int i = routes_find(rq->url);
    if (i >= 0 && route_table[i].training && !srv.cfg.training_dir) i = -1;
    rq->route = i < 0 ? route_count : i;
    // Framing first: after a refusal here the next request's start is unknown, so the
    // connection ends whatever the path.
    HeaderVerdict v = fields_check(conn, rq->raw);
    if (v.status) {
        rq->close = 1;
        return respond_error(conn, rq, v.status, v.message, NULL);
    }
    if (!hostcheck_allows(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host")))
        return respond_error(conn, rq, MHD_HTTP_FORBIDDEN,
                             "this server on a loopback address answers Host localhost or a "
                             "loopback address only (DNS rebinding protection); see "
                             "--allowed-host",
                             NULL);
    if (i < 0) return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "no such endpoint", NULL);
    const Route *r = &route_table[i];
    int cors = srv.cfg.cors_origins.n > 0;
    // A browser sends a preflight without credentials, so it cannot need a key.
    if (cors && strcmp(rq->method, "OPTIONS") == 0) return respond_preflight(conn, rq);
    // Before the method: without a key, a protected route says nothing about itself.
    if (r->needs_key && auth_enabled()) {
        switch (auth_check(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"))) {
        case AUTH_OK:
            break;
        case AUTH_MISSING:
            return refuse(conn, rq, r, MHD_HTTP_UNAUTHORIZED,
                          "missing API key: send the header Authorization: Bearer <key>");
        case AUTH_INVALID:
            return refuse(conn, rq, r, MHD_HTTP_UNAUTHORIZED, "invalid API key");
        }
    }
    if (!route_allows(r, rq->method)) {
        // The method as sent, cut at 15 bytes: it may end inside a character, or hold none.
        char method[64], msg[96];
        utf8_sanitize(rq->method, strlen(rq->method), method, sizeof(method));
        snprintf(msg, sizeof(msg), "method %s is not allowed here", method);
        route_allow_text(r, cors, rq->allow, sizeof(rq->allow));
        return respond_error(conn, rq, MHD_HTTP_METHOD_NOT_ALLOWED, msg, NULL);
    }
    if (strcmp(rq->method, "POST") != 0) return MHD_YES;
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    // An action without a body (POST .../cancel) needs no Content-Type.
    if (!(r->methods & ROUTE_UPLOAD) && !ct && (!cl || strcmp(cl, "0") == 0) &&
        !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding"))
        return MHD_YES;
    if (r->methods & ROUTE_UPLOAD) {
        if (!ct || strncasecmp(ct + strspn(ct, " \t"), "multipart/form-data", 19) != 0)
            return refuse(conn, rq, r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                          "Content-Type must be multipart/form-data");
        rq->body_limit = (size_t)srv.cfg.max_upload + FILES_FORM_SLACK;
    } else if (!http_is_json_type(ct))
        return respond_error(conn, rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                             "Content-Type must be application/json", NULL);
    if (cl &&
        strtoull(cl, NULL, 10) > (rq->body_limit ? rq->body_limit : (size_t)srv.cfg.max_body)) {
        if (!(r->methods & ROUTE_UPLOAD)) return respond_too_large(conn, rq);
        char msg[128];
        snprintf(msg, sizeof(msg), FILES_TOO_LARGE, srv.cfg.max_upload);
        rq->close = 1; // its body is not read
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, msg, "file");
    }
    return r->methods & ROUTE_UPLOAD ? files_api_begin(conn, rq) : MHD_YES;
}

static enum MHD_Result on_request(struct MHD_Connection *conn, Request *rq) {
    const Route *r = &route_table[rq->route];
    rq->tail = r->prefix ? rq->url + strlen(r->path) : NULL;
    return r->handler(conn, rq);
}

static void on_done(const Request *rq, int status, double seconds) {
    metrics_request(rq->route, status, seconds);
}

const HttpRouter routes_router = {on_headers, on_request, on_done};
