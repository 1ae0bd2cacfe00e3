/*
 * server.h — what the parts of charlm-server share: the configuration, the loaded model,
 * the per-request context, and each part's entry points.
 *
 *   main.c     flag rows (core/cli.h), startup, signals, draining
 *   http.c     the libmicrohttpd daemon, routing, request bodies, responses, access log
 *   api.c      JSON request parsing and validation (/generate and /v1/completions)
 *   gen.c      admitting generations, JSON replies and SSE streams
 *   sched.c    the worker threads that step generations in batches
 *   info.c     /health, /model, /v1/models
 *   metrics.c  Prometheus counters and /metrics
 *   static.c   the web page and its assets
 */
#ifndef CHARLM_SERVER_H
#define CHARLM_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "artefacts.h"
#include "generate.h"

#define SERVER_NAME "charlm-server"
#define MODEL_ID    "charlm"

/* Filled by main.c from its flag rows, which state each setting's flag, variable, range
 * and default. */
typedef struct {
    const char *model_dir;
    const char *host;
    int port;
    int threads;        // scheduler workers
    int max_tokens;     // per request
    int max_prompt;     // chars
    long max_body;      // bytes
    int max_concurrent; // generations in flight
    const char *cors_origin;
} ServerConfig;

typedef struct {
    ServerConfig cfg;
    Model model;
    Vocab vocab;
    ModelInfo info;
    char *model_card; // GET /model body, built once at startup
    char *static_dir; // resolved page folder, or NULL when none was found
    time_t started;
    atomic_int in_flight;     // generations admitted and not yet finished
    atomic_int shutting_down; // 1: refuse new generations; 2: cancel running ones
} Server;

extern Server srv;

typedef enum {
    ROUTE_INDEX,
    ROUTE_STATIC,
    ROUTE_GENERATE,
    ROUTE_COMPLETIONS,
    ROUTE_MODELS,
    ROUTE_HEALTH,
    ROUTE_MODEL,
    ROUTE_METRICS,
    ROUTE_OTHER,
    ROUTE_COUNT
} Route;

/* One HTTP request, from its first header callback to libmicrohttpd's completion notice. */
typedef struct {
    Route route;
    char method[16];
    char path[256]; // for the access log, control bytes replaced
    struct timespec t0;
    int first_call_done;
    char *body; // [len + 1] NUL-terminated
    size_t len, cap;
    size_t discarded; // bytes dropped once the body went over --max-body
    int status;
    size_t bytes;
    int logged_elsewhere; // a stream logs itself when it ends
} Request;

/* http.c */
struct MHD_Daemon *http_start(int listen_fd, char *err);
double elapsed_ms(const struct timespec *since);
void request_log(const char *method, const char *path, int status, size_t bytes, double ms);
/* Adds the headers every response carries (CORS, nosniff). */
void response_add_common(struct MHD_Response *resp);
/* Queues body (malloc'd, taken over) with status and content type. */
enum MHD_Result respond(struct MHD_Connection *conn, Request *rq, int status, const char *type,
                        char *body, size_t len);
enum MHD_Result respond_json(struct MHD_Connection *conn, Request *rq, int status, char *json);
/* {"error": {"message": ..., "type": ..., "param": ...}}; param may be NULL. */
enum MHD_Result respond_error(struct MHD_Connection *conn, Request *rq, int status,
                              const char *message, const char *param);

/* api.c */
typedef struct {
    int status;
    char message[256];
    char param[64]; // empty when no single field is at fault
} ApiError;

typedef struct {
    int openai; // parsed as /v1/completions
    char *prompt;
    size_t prompt_len;
    GenerateParams gen;
    char *stop[GEN_MAX_STOP]; // owned; gen.stop points here
    int stream;
    int include_usage; // OpenAI stream_options.include_usage
} GenRequest;

int api_parse(const char *body, size_t len, int openai, const ServerConfig *cfg, GenRequest *r,
              ApiError *e);
void gen_request_free(GenRequest *r);

/* gen.c */
enum MHD_Result gen_handle(struct MHD_Connection *conn, Request *rq, int openai);

/* sched.c: a generation handed to the workers. Between sched_submit and its release the
 * Generation belongs to a worker and is read only through sched_wait. */
typedef struct Task {
    Generation *gen;
    pthread_cond_t cv; // signalled on new text (if wants_text) and on release
    int wants_text;    // a stream: wake the owner for every new chunk
    int cancel;        // asked by the owner
    int released;      // finished or cancelled; the worker no longer touches it
    struct Worker *worker;
    struct Task *next;
} Task;

int sched_start(int nworkers, char *err);
void sched_stop(void);
void sched_submit(Task *t, Generation *g, int wants_text);
/* Waits up to timeout_ms for text past `have` bytes (streams) or for the release, and
 * copies any new text into *chunk (malloc'd, may be NULL). Returns 1 once released (the
 * final text may still come with it), 0 with new text, -1 on timeout. */
int sched_wait(Task *t, size_t have, int timeout_ms, char **chunk, size_t *len);
/* Cancels and waits for the release. */
void sched_cancel(Task *t);
void sched_task_destroy(Task *t);

/* info.c */
int info_build_model_card(char *err);
enum MHD_Result info_health(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_models(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_model_card(struct MHD_Connection *conn, Request *rq);

/* metrics.c */
const char *route_name(Route r);
void metrics_request(Route route, int status, double seconds);
void metrics_generation(int prompt_chars, int generated_chars, FinishReason finish);
enum MHD_Result metrics_handle(struct MHD_Connection *conn, Request *rq);

/* static.c */
/* Finds the page folder: $CHARLM_STATIC_DIR, ./static, <exe>/../static,
 * /usr/share/charlm/static. Fails only when CHARLM_STATIC_DIR names no folder. */
int static_init(char *err);
enum MHD_Result static_serve(struct MHD_Connection *conn, Request *rq, const char *rel);

#endif
