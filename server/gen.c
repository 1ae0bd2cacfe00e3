#include <cjson/cJSON.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api.h"
#include "error.h"
#include "gen.h"
#include "http.h"
#include "metrics.h"
#include "scheduler.h"
#include "server.h"

// How often the watcher looks at the sockets of parked connections.
#define WATCH_MS 100

/* One admitted generation. A JSON reply's belongs to its Request and ends in job_end; a
 * stream's belongs to the libmicrohttpd response and ends in stream_free. Either counts in
 * srv.in_flight until then, that is until its last byte went to the socket (or the client
 * left): the drain on SIGTERM waits for exactly that. */
typedef struct Job {
    GenRequest req;
    Generation gen;
    Task task; // the scheduler's handle while gen is being generated
    int submitted;
    struct MHD_Connection *conn;
    Request *rq; // a stream's, for its byte count; valid while libmicrohttpd reads the stream
    int fd;      // the client's socket, watched while the connection is parked
    struct timespec t0;
    char id[40]; // OpenAI completion id
    time_t created;

    // streaming
    char *out; // pending SSE bytes out[pos .. len)
    size_t out_len, out_pos, out_cap;
    size_t sent;  // gen.text[0 .. sent) has gone out in events
    int finished; // the last event is queued
    int counted;  // in-flight count and generation metrics done
    int gone;     // the client closed the connection (set by the watcher)
    struct Job *watch_prev, *watch_next;
} Job;

/* Parked jobs. A suspended connection is out of libmicrohttpd's event loop, which then
 * does not notice its client leaving; the watcher polls their sockets instead and cancels
 * the generation of a client that left, whose wake then finds j->gone. A job is on the
 * list exactly while parked: added by park and removed by wake, both with the worker's
 * lock held, so the watcher (which holds only watch_mu) never sees a freed job. */
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cv = PTHREAD_COND_INITIALIZER;
static Job *watch_head;
static int watch_count, watch_stop, watch_started;
static pthread_t watch_thread;

// Admitting a generation and setting srv.shutting_down exclude each other, so that once
// the drain has begun no task is submitted that main would not wait for.
static pthread_mutex_t admit_mu = PTHREAD_MUTEX_INITIALIZER;

static void *watch_main(void *arg) {
    (void)arg;
    struct pollfd *fds = NULL;
    Job **jobs = NULL;
    int cap = 0;
    pthread_mutex_lock(&watch_mu);
    while (!watch_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCH_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&watch_cv, &watch_mu, &until);
        if (watch_count > cap) {
            int c = watch_count * 2;
            struct pollfd *f = realloc(fds, (size_t)c * sizeof(*f));
            if (f) fds = f;
            Job **js = realloc(jobs, (size_t)c * sizeof(*js));
            if (js) jobs = js;
            if (!f || !js) continue; // try again next round
            cap = c;
        }
        int n = 0;
        for (Job *j = watch_head; j; j = j->watch_next) {
            if (j->gone || j->fd < 0) continue;
            fds[n] = (struct pollfd){.fd = j->fd, .events = POLLRDHUP};
            jobs[n++] = j;
        }
        if (n == 0 || poll(fds, (nfds_t)n, 0) <= 0) continue;
        for (int i = 0; i < n; i++) {
            if (!(fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) continue;
            jobs[i]->gone = 1;
            sched_cancel_async(&jobs[i]->task);
        }
    }
    pthread_mutex_unlock(&watch_mu);
    free(fds);
    free(jobs);
    return NULL;
}

int gen_start(char *err) {
    if (pthread_create(&watch_thread, NULL, watch_main, NULL) != 0)
        return err_set(err, "cannot start the connection watcher");
    watch_started = 1;
    return 0;
}

void gen_stop(void) {
    if (!watch_started) return;
    pthread_mutex_lock(&watch_mu);
    watch_stop = 1;
    pthread_cond_signal(&watch_cv);
    pthread_mutex_unlock(&watch_mu);
    pthread_join(watch_thread, NULL);
    watch_started = 0;
}

void gen_stop_admitting(void) {
    pthread_mutex_lock(&admit_mu);
    atomic_store(&srv.shutting_down, 1);
    pthread_mutex_unlock(&admit_mu);
}

// The Waker of every job: nothing to send yet suspends the connection (from its
// libmicrohttpd thread, inside sched_poll), and the worker resumes it.
static void job_park(void *arg) {
    Job *j = arg;
    pthread_mutex_lock(&watch_mu);
    j->watch_prev = NULL;
    j->watch_next = watch_head;
    if (watch_head) watch_head->watch_prev = j;
    watch_head = j;
    watch_count++;
    pthread_mutex_unlock(&watch_mu);
    MHD_suspend_connection(j->conn);
}

static void job_wake(void *arg) {
    Job *j = arg;
    pthread_mutex_lock(&watch_mu);
    if (j->watch_prev)
        j->watch_prev->watch_next = j->watch_next;
    else
        watch_head = j->watch_next;
    if (j->watch_next) j->watch_next->watch_prev = j->watch_prev;
    watch_count--;
    pthread_mutex_unlock(&watch_mu);
    MHD_resume_connection(j->conn);
}

static const Waker job_waker = {job_park, job_wake};

static void job_free(Job *j) {
    gen_request_free(&j->req);
    if (j->submitted) sched_task_destroy(&j->task);
    generation_free(&j->gen);
    free(j->out);
}

// The slot is freed once the reply has gone out, not when the generation is done: until
// then a SIGTERM drain must wait for it.
static void job_finish_metrics(Job *j) {
    if (j->counted) return;
    j->counted = 1;
    metrics_generation(j->gen.prompt_tokens, j->gen.tokens, j->gen.finish);
    atomic_fetch_sub(&srv.in_flight, 1);
}

// The end of a job, delivered or not: its generation is stopped if still running.
static void job_end(Job *j) {
    if (j->submitted) sched_cancel(&j->task); // returns at once when it is already over
    job_finish_metrics(j);
    job_free(j);
    free(j);
}

static double job_ms(const Job *j) {
    return round(elapsed_ms(&j->t0) * 1000.0) / 1000.0;
}

// cJSON prints numbers near 2^53 with 15 significant digits, which is not exact.
static void add_seed(cJSON *o, const Job *j) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)j->req.gen.seed);
    cJSON_AddRawToObject(o, "seed", buf);
}

// The final summary fields shared by the JSON reply and the stream's last event.
static void add_summary(cJSON *o, const Job *j) {
    cJSON_AddStringToObject(o, "finish_reason", finish_reason_name(j->gen.finish));
    cJSON_AddNumberToObject(o, "tokens", j->gen.tokens);
    cJSON_AddNumberToObject(o, "prompt_tokens", j->gen.prompt_tokens);
    add_seed(o, j);
    cJSON_AddStringToObject(o, "unknown_chars", j->gen.unknown_chars);
    cJSON_AddNumberToObject(o, "elapsed_ms", job_ms(j));
}

// What every OpenAI answer starts with; *choices gets the array its choices go into.
static cJSON *openai_head(const Job *j, const char *object, cJSON **choices) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", srv.cfg.model_id);
    *choices = cJSON_AddArrayToObject(o, "choices");
    return o;
}

// Choice 0's closing fields, then the choice into choices.
static void openai_choice_end(cJSON *choices, cJSON *c, const char *finish) {
    cJSON_AddNullToObject(c, "logprobs");
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
}

static cJSON *openai_object(const Job *j, const char *text, const char *finish) {
    cJSON *choices;
    cJSON *o = openai_head(j, "text_completion", &choices);
    if (text) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "text", text);
        cJSON_AddNumberToObject(c, "index", 0);
        openai_choice_end(choices, c, finish);
    }
    return o;
}

/* A chat.completion (message), or with stream a chat.completion.chunk (delta): role and
 * content go into it when not NULL; choice 0 means an empty choices array (the usage
 * chunk). */
static cJSON *chat_object(const Job *j, int stream, const char *role, const char *content,
                          const char *finish, int choice) {
    cJSON *choices;
    cJSON *o = openai_head(j, stream ? "chat.completion.chunk" : "chat.completion", &choices);
    if (!choice) return o;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *m = cJSON_AddObjectToObject(c, stream ? "delta" : "message");
    if (role) cJSON_AddStringToObject(m, "role", role);
    if (content) cJSON_AddStringToObject(m, "content", content);
    openai_choice_end(choices, c, finish);
    return o;
}

static void add_usage(cJSON *o, const Job *j) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", j->gen.prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", j->gen.tokens);
    cJSON_AddNumberToObject(u, "total_tokens", j->gen.prompt_tokens + j->gen.tokens);
}

static int job_start(Job *j, struct MHD_Connection *conn, Request *rq, char *err) {
    clock_gettime(CLOCK_MONOTONIC, &j->t0);
    j->created = time(NULL);
    unsigned char rnd[12] = {0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) memset(rnd, 0, sizeof(rnd));
    int n = snprintf(j->id, sizeof(j->id), j->req.chat ? "chatcmpl-" : "cmpl-");
    for (size_t i = 0; i < sizeof(rnd); i++) n += snprintf(j->id + n, 3, "%02x", rnd[i]);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    j->conn = conn;
    j->rq = rq;
    if (generation_init(&j->gen, &srv.model, &srv.vocab, j->req.prompt, j->req.prompt_len,
                        &j->req.gen, err))
        return -1;
    return 0;
}

// Called for the request until the reply is queued: first by the handler, then each time
// the connection is resumed. A generation cancelled by the drain is answered like any other,
// with finish_reason "cancelled" and the text so far.
static enum MHD_Result reply_json(struct MHD_Connection *conn, Request *rq) {
    Job *j = rq->ctx;
    if (sched_poll(&j->task, 0, NULL, NULL) < 0) return MHD_YES; // parked until the release
    if (j->gone) return MHD_NO; // nobody to answer; closes the connection
    cJSON *o;
    if (j->req.chat) {
        o = chat_object(j, 0, "assistant", j->gen.text, finish_reason_name(j->gen.finish), 1);
        add_usage(o, j);
        add_seed(o, j);
    } else if (j->req.openai) {
        o = openai_object(j, j->gen.text, finish_reason_name(j->gen.finish));
        add_usage(o, j);
        add_seed(o, j);
    } else {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", j->gen.text);
        add_summary(o, j);
    }
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return respond_json(conn, rq, MHD_HTTP_OK, json);
}

static int out_event(Job *j, cJSON *o) {
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    const char *data = json ? json : "[DONE]";
    size_t need = strlen(data) + 9; // "data: " + data + "\n\n" + NUL
    if (j->out_len + need > j->out_cap) {
        size_t cap = j->out_cap ? j->out_cap : 256;
        while (cap < j->out_len + need) cap *= 2;
        char *b = realloc(j->out, cap);
        if (!b) {
            free(json);
            return -1;
        }
        j->out = b;
        j->out_cap = cap;
    }
    j->out_len += (size_t)sprintf(j->out + j->out_len, "data: %s\n\n", data);
    free(json);
    return 0;
}

static int stream_text(Job *j, const char *chunk) {
    cJSON *o;
    if (j->req.chat) {
        o = chat_object(j, 1, NULL, chunk, NULL, 1);
    } else if (j->req.openai) {
        o = openai_object(j, chunk, NULL);
    } else {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", chunk);
    }
    return out_event(j, o);
}

// The closing events, once the generation is released.
static int stream_final(Job *j) {
    const char *finish = finish_reason_name(j->gen.finish);
    if (j->req.openai) {
        cJSON *o =
            j->req.chat ? chat_object(j, 1, NULL, NULL, finish, 1) : openai_object(j, "", finish);
        add_seed(o, j);
        if (out_event(j, o)) return -1;
        if (j->req.include_usage) {
            o = j->req.chat ? chat_object(j, 1, NULL, NULL, NULL, 0) : openai_object(j, NULL, NULL);
            add_usage(o, j);
            if (out_event(j, o)) return -1;
        }
        if (out_event(j, NULL)) return -1;
    } else {
        cJSON *o = cJSON_CreateObject();
        add_summary(o, j);
        cJSON_AddBoolToObject(o, "done", 1);
        if (out_event(j, o)) return -1;
    }
    j->finished = 1;
    return 0;
}

// libmicrohttpd's content reader: 0 bytes when the connection has just been parked until
// the next chunk; the chunked body ends once the last event has gone.
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    Job *j = cls;
    while (j->out_pos == j->out_len) {
        j->out_pos = j->out_len = 0;
        if (j->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        char *chunk;
        size_t len;
        int rc = sched_poll(&j->task, j->sent, &chunk, &len);
        if (rc < 0) return 0;
        if (j->gone) {
            free(chunk);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        int failed = chunk && stream_text(j, chunk);
        free(chunk);
        j->sent += len;
        if (failed || (rc == 1 && stream_final(j))) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = j->out_len - j->out_pos;
    if (n > max) n = max;
    memcpy(buf, j->out + j->out_pos, n);
    j->out_pos += n;
    j->rq->bytes += n;
    return (ssize_t)n;
}

// Called by libmicrohttpd when the stream's response is released: after its last byte
// went to the socket, or when the client went away (then its generation is cancelled).
static void stream_free(void *cls) {
    job_end(cls);
}

static void json_finish(Request *rq) {
    job_end(rq->ctx);
}

// kind: api.h's API_NATIVE, API_COMPLETIONS or API_CHAT.
static enum MHD_Result handle(struct MHD_Connection *conn, Request *rq, int kind) {
    Job *j = calloc(1, sizeof(*j));
    if (!j) return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    ApiError e;
    if (api_parse(rq->body ? rq->body : "", rq->len, kind, &srv.cfg, &srv.vocab, &j->req, &e)) {
        free(j);
        return respond_error(conn, rq, e.status, e.message, e.param);
    }
    pthread_mutex_lock(&admit_mu);
    if (atomic_load(&srv.shutting_down)) {
        pthread_mutex_unlock(&admit_mu);
        job_free(j);
        free(j);
        return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is shutting down",
                             NULL);
    }
    if (atomic_fetch_add(&srv.in_flight, 1) >= srv.cfg.max_concurrent) {
        atomic_fetch_sub(&srv.in_flight, 1);
        pthread_mutex_unlock(&admit_mu);
        job_free(j);
        free(j);
        char msg[128];
        snprintf(msg, sizeof(msg), "too many generations in flight (limit %d); retry shortly",
                 srv.cfg.max_concurrent);
        return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, msg, NULL);
    }
    char err[ERR_LEN];
    if (job_start(j, conn, rq, err)) {
        atomic_fetch_sub(&srv.in_flight, 1);
        pthread_mutex_unlock(&admit_mu);
        job_free(j);
        free(j);
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, err, NULL);
    }
    sched_submit(&j->task, &j->gen, j->req.stream, &job_waker, j);
    j->submitted = 1;
    pthread_mutex_unlock(&admit_mu);

    if (!j->req.stream) {
        rq->ctx = j;
        rq->finish = json_finish;
        rq->resume = reply_json;
        return reply_json(conn, rq);
    }

    // A chat stream's first chunk names the speaker before any text is generated.
    if (j->req.chat && out_event(j, chat_object(j, 1, "assistant", "", NULL, 1))) {
        job_end(j);
        return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j, stream_free);
    if (!resp) {
        job_end(j);
        return MHD_NO;
    }
    rq->status = 200;
    MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); // nginx: pass events through
    response_add_common(resp, conn);
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp); // the connection holds it; stream_free runs when it lets go
    return r;
}

enum MHD_Result gen_handle_native(struct MHD_Connection *conn, Request *rq) {
    return handle(conn, rq, API_NATIVE);
}

enum MHD_Result gen_handle_openai(struct MHD_Connection *conn, Request *rq) {
    return handle(conn, rq, API_COMPLETIONS);
}

enum MHD_Result gen_handle_chat(struct MHD_Connection *conn, Request *rq) {
    return handle(conn, rq, API_CHAT);
}
