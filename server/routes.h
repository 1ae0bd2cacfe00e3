/*
 * routes.h — the route table: every path the server answers, with its methods, handler,
 * metric label and whether it needs an API key, stated once. Routing, 404, CORS
 * preflights, the key check (401), 405 with its Allow header, the Content-Type (415) and
 * early Content-Length (413) checks of POST routes, and the `route` label of the request
 * metrics all follow from it, in that order, before any body is read; an upload route's
 * request then goes to files_api_begin (--max-uploads, its body's sink).
 *
 * Adding a route is one row in routes.c plus its handler; docs/API.md must document it
 * (tests/test_routes.c checks).
 */
#ifndef CHARLM_ROUTES_H
#define CHARLM_ROUTES_H

#include <stddef.h>

#include "http.h"

enum {
    ROUTE_GET = 1,    // and HEAD, which libmicrohttpd answers from the GET reply
    ROUTE_POST = 2,   // with a JSON body: other Content-Types get 415
    ROUTE_UPLOAD = 4, // POST of multipart/form-data (else 415), up to --max-upload
    ROUTE_DELETE = 8
};

typedef enum MHD_Result (*RouteHandler)(struct MHD_Connection *conn, Request *rq);

typedef struct {
    const char *path;  // exact, or a prefix when `prefix` (its handler gets the rest: rq->tail)
    const char *alias; // another exact path for the same route, or NULL
    int prefix;
    unsigned methods; // ROUTE_GET | ROUTE_POST | ROUTE_UPLOAD | ROUTE_DELETE
    RouteHandler handler;
    const char *label; // the metrics' route label
    int needs_key;     // with API keys configured, answer only "Authorization: Bearer <key>"
    int training;      // exists only with --training-dir: without it, 404 as an unknown path
} Route;

extern const Route route_table[];
extern const int route_count;

/* The metrics label of requests that match no route (404s). */
#define ROUTE_LABEL_NONE "other"

/* Hands the labels to metrics_init. Before http_start. */
int routes_init(char *err);
/* What http_start calls for every request. */
extern const HttpRouter routes_router;

/* The index of the row serving path, or -1 when none does (404). */
int routes_find(const char *path);
/* 1 when route r answers method. */
int route_allows(const Route *r, const char *method);
/* The Allow header for r ("GET, HEAD", "POST", "GET, HEAD, DELETE"), ", OPTIONS" appended
 * when cors. */
void route_allow_text(const Route *r, int cors, char *buf, size_t cap);
/* The route list of --help, one line per row: "  GET   /v1/models/{id}" (several methods
 * joined by '|': "GET|POST"), an alias after
 * a comma, "(open)" on the rows that need no key. A prefix row shows its label when the
 * label spells out the tail ("/v1/models/{id}"), else its path and "*". Returns what
 * snprintf would: the length of the whole text, however much of it fit in cap. */
int routes_help_text(char *buf, size_t cap);

#endif
