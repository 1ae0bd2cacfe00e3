/*
 * server_harness.h — running charlm-server from a test and talking to it over loopback.
 *
 * A server suite makes one tiny model for the whole suite (suite_model_make in an
 * unchecked fixture), and gets a fresh server on it before each test (start_default /
 * stop_default as the checked fixture), reachable as S.port. Tests that need other flags
 * or environment start their own Srv with srv_start / srv_start_env.
 *
 * Requests go through libcurl with nothing added or cleaned up: the path is sent as is,
 * a missing content type is sent as none, and a body can be sent chunked. Assertions
 * inside these helpers fail the calling test, so they may only run inside a check test
 * or fixture.
 */
#ifndef CHARLM_SERVER_HARNESS_H
#define CHARLM_SERVER_HARNESS_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "artefacts.h"

typedef struct {
    pid_t pid; // 0 once it has exited
    int port;  // the one it chose (it is started with --port 0)
    char *dir; // holds the server's stderr log
    char *log; // path of that log
} Srv;

/* The suite fixture's state: a temp folder, the tiny model in <root>/model, and the
 * server started on it for the current test. */
extern char *root, *model_dir;
extern Srv S;

void sleep_ms(int ms);

/* Starts charlm-server --model model_dir --port 0 [args...] (args NULL-terminated, or
 * NULL; a NULL model_dir passes no --model, for args that choose the models) with extra
 * environment entries "NAME=value" (likewise), and waits for its "listening on" line.
 * The server serves the source tree's static/ (CHARLM_STATIC_DIR) unless env names
 * another, wherever the build folder is.
 * Returns 0 on success; otherwise the process has exited and its stderr is in the log. */
int srv_start_env(Srv *s, const char *model_dir, const char *const *args, const char *const *env);
int srv_start(Srv *s, const char *model_dir, const char *const *args);
/* SIGTERM, then waits for the exit (SIGKILL after 30 s). Returns the exit status (-1 if it
 * had to be killed or died from a signal) and fails the test on sanitizer reports in its
 * stderr. */
int srv_stop(Srv *s);
/* Sends sig to pid and reaps it within ms (*status set); returns 1, or 0 when it had to be
 * killed (SIGKILL) at the end of that time. */
int proc_signal_wait(pid_t pid, int sig, int ms, int *status);

/* A response: status is the HTTP status, or -CURLcode when the request failed. body and
 * headers (the raw header lines) are malloc'd and NUL-terminated, never NULL. */
typedef struct {
    long status;
    char *body;
    size_t len;
    char *headers;
    size_t hlen;
} Resp;

void resp_free(Resp *r);

/* One request to 127.0.0.1:port. ctype NULL sends no Content-Type; chunked sends the
 * body with Transfer-Encoding: chunked in pieces of 1000 bytes. */
Resp http_req(int port, const char *method, const char *path, const char *ctype, const char *body,
              size_t len, int chunked);
/* The same with extra header lines ("Name: value", NULL-terminated; NULL for none). */
Resp http_req_headers(int port, const char *method, const char *path, const char *ctype,
                      const char *body, size_t len, int chunked, const char *const *headers);
Resp http_get(int port, const char *path);
/* POST of a JSON text as application/json. */
Resp http_post(int port, const char *path, const char *json);

/* POSTs json and returns the parsed reply, failing the test unless it is a 200. */
cJSON *http_post_ok(int port, const char *path, const char *json);

/* Value of a response header (first match, case-insensitive), malloc'd, or NULL. */
char *resp_header(const Resp *r, const char *name);
/* The body parsed; fails the test when it is not JSON. Free with cJSON_Delete. */
cJSON *resp_json(const Resp *r);
/* Asserts an error reply: the status, the JSON error body with a message, and its param
 * (NULL: the reply must have none). */
void assert_error(const Resp *r, long status, const char *param);
/* Members of a JSON object that must be a string / a number. */
const char *json_str(const cJSON *o, const char *k);
double json_num(const cJSON *o, const char *k);

/* The "data: ..." payloads of an SSE body, in order, each malloc'd; returns the count.
 * Fails the test on anything else in the body. */
int sse_events(const char *body, char **events, int max);

/* The text of a /generate SSE body, its events checked (non-empty text chunks, then one
 * "done" event, returned in *final); malloc'd. */
char *sse_generate_text(const char *body, cJSON **final);
/* The concatenated choices[0].text of a /v1/completions SSE body, its chunk shapes
 * checked up to the closing [DONE]; *finish is "stop" or "length", *usage the usage chunk
 * (NULL without one). malloc'd. */
char *sse_completion_text(const char *body, const char **finish, cJSON **usage);

/* A raw connection that sends a request and then does not read: keeps a generation in
 * flight until the returned socket is closed. */
int raw_send(int port, const char *request);
/* raw_send of POST /generate with body json, then waits (up to 10 s) until one generation
 * is in flight. */
int raw_generate(int port, const char *json);
/* generations_in_flight from /health. */
int health_in_flight(int port);

/* Makes root and a model in model_dir from text_len chars of tu_sample_text, and
 * initialises libcurl; suite_model_remove undoes it. */
void suite_model_make(size_t text_len, int embed, int hidden, int layers, uint64_t seed);
void suite_model_remove(void);
/* Loads the suite's model into model and vocab too, for reference computations;
 * suite_model_unload frees them and removes the folder. */
void suite_model_load(Model *model, Vocab *vocab);
void suite_model_unload(Model *model, Vocab *vocab);
/* S started on model_dir with no extra flags; stopped asserting exit status 0. */
void start_default(void);
void stop_default(void);

#endif
