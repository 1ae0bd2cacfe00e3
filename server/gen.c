#include <cjson/cJSON.h>
#include <math.h>
#include <poll.h>
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

// How often a waiting connection thread checks that its client is still there.
#define POLL_MS 100

/* One admitted generation. A JSON reply frees it before the handler returns; a stream's
 * belongs to the libmicrohttpd response and ends in stream_free. */
typedef struct {
    GenRequest req;
    Generation gen;
    Task task; // the scheduler's handle while gen is being generated
    int submitted;
    int fd; // the client's socket, polled while waiting to notice it has gone
    struct timespec t0;
    char id[40]; // OpenAI completion id
    time_t created;

    // streaming
    char *out; // pending SSE bytes out[pos .. len)
    size_t out_len, out_pos, out_cap;
    size_t sent;  // gen.text[0 .. sent) has gone out in events
    int finished; // the last event is queued
    int counted;  // in-flight count and generation metrics done
    int logged;   // access log and request metrics done
    int gone;     // the client closed the connection

    // access log and metrics, written when the stream ends
    int route;
    char method[16];
    char path[256];
    size_t bytes;
} Job;

static void job_free(Job *j) {
    gen_request_free(&j->req);
    if (j->submitted) sched_task_destroy(&j->task);
    generation_free(&j->gen);
    free(j->out);
}

static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

// The end of a generation that was cancelled while its client was still there.
static int shut_down(const Job *j) {
    return j->gen.finish == FINISH_CANCELLED && !j->gone;
}

// Frees the generation's slot as soon as it is done, not when libmicrohttpd gets round to
// releasing the response, so a client can follow up at once without a spurious 503.
static void job_finish_metrics(Job *j) {
    if (j->counted) return;
    j->counted = 1;
    metrics_generation(j->gen.prompt_tokens, j->gen.tokens, j->gen.finish);
    atomic_fetch_sub(&srv.in_flight, 1);
}

static void stream_log(Job *j, int status) {
    if (j->logged) return;
    j->logged = 1;
    double ms = elapsed_ms(&j->t0);
    request_log(j->method, j->path, status, j->bytes, ms);
    metrics_request(j->route, status, ms / 1e3);
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

static cJSON *openai_object(const Job *j, const char *text, const char *finish) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", MODEL_ID);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    if (text) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "text", text);
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddNullToObject(c, "logprobs");
        if (finish)
            cJSON_AddStringToObject(c, "finish_reason", finish);
        else
            cJSON_AddNullToObject(c, "finish_reason");
        cJSON_AddItemToArray(choices, c);
    }
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
    int n = snprintf(j->id, sizeof(j->id), "cmpl-");
    for (size_t i = 0; i < sizeof(rnd); i++) n += snprintf(j->id + n, 3, "%02x", rnd[i]);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    j->route = rq->route;
    memcpy(j->method, rq->method, sizeof(j->method));
    memcpy(j->path, rq->path, sizeof(j->path));
    if (generation_init(&j->gen, &srv.model, &srv.vocab, j->req.prompt, j->req.prompt_len,
                        &j->req.gen, err))
        return -1;
    return 0;
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, Request *rq, Job *j) {
    sched_submit(&j->task, &j->gen, 0);
    j->submitted = 1;
    while (sched_wait(&j->task, 0, POLL_MS, NULL, NULL) != 1) {
        if (client_gone(j->fd)) {
            sched_cancel(&j->task);
            j->gone = 1;
        }
    }
    if (j->gone) return MHD_NO; // nobody to answer; closes the connection
    if (shut_down(j))
        return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is shutting down",
                             NULL);
    cJSON *o;
    if (j->req.openai) {
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
    if (j->req.openai) {
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
        cJSON *o = openai_object(j, "", finish);
        add_seed(o, j);
        if (out_event(j, o)) return -1;
        if (j->req.include_usage) {
            o = openai_object(j, NULL, NULL);
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
    job_finish_metrics(j);
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    Job *j = cls;
    while (j->out_pos == j->out_len) {
        j->out_pos = j->out_len = 0;
        if (j->finished) {
            stream_log(j, 200); // before the client sees the end of the response
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        char *chunk;
        size_t len;
        int rc = sched_wait(&j->task, j->sent, POLL_MS, &chunk, &len);
        if (rc < 0) {
            if (client_gone(j->fd)) {
                sched_cancel(&j->task);
                j->gone = 1;
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            continue;
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
    j->bytes += n;
    return (ssize_t)n;
}

// Called by libmicrohttpd when the stream's response is released: delivered, or the
// client went away (then its generation is cancelled).
static void stream_free(void *cls) {
    Job *j = cls;
    sched_cancel(&j->task); // returns at once when it is already over
    stream_log(j, 499);     // unless it was delivered: the client went away
    job_finish_metrics(j);
    job_free(j);
    free(j);
}

static enum MHD_Result handle(struct MHD_Connection *conn, Request *rq, int openai) {
    Job *j = calloc(1, sizeof(*j));
    if (!j) return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    ApiError e;
    if (api_parse(rq->body ? rq->body : "", rq->len, openai, &srv.cfg, &j->req, &e)) {
        free(j);
        return respond_error(conn, rq, e.status, e.message, e.param);
    }
    if (atomic_load(&srv.shutting_down)) {
        job_free(j);
        free(j);
        return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is shutting down",
                             NULL);
    }
    if (atomic_fetch_add(&srv.in_flight, 1) >= srv.cfg.max_concurrent) {
        atomic_fetch_sub(&srv.in_flight, 1);
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
        job_free(j);
        free(j);
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, err, NULL);
    }

    if (!j->req.stream) {
        enum MHD_Result r = reply_json(conn, rq, j);
        if (j->gone) rq->status = 499;
        job_finish_metrics(j);
        job_free(j);
        free(j);
        return r;
    }

    sched_submit(&j->task, &j->gen, 1);
    j->submitted = 1;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j, stream_free);
    if (!resp) {
        sched_cancel(&j->task);
        job_finish_metrics(j);
        job_free(j);
        free(j);
        return MHD_NO;
    }
    rq->logged_elsewhere = 1;
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
    return handle(conn, rq, 0);
}

enum MHD_Result gen_handle_openai(struct MHD_Connection *conn, Request *rq) {
    return handle(conn, rq, 1);
}
