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
#include "info.h"
#include "models.h"
#include "http.h"
#include "metrics.h"
#include "reply.h"
#include "scheduler.h"
#include "server.h"

// How often the watcher looks at the sockets of parked connections.
#define WATCH_MS 100
// A JSON reply up to this size goes out whole, with a Content-Length; a larger one is
// encoded as libmicrohttpd sends it, REPLY_BLOCK bytes a call, chunked (reply.h).
#define REPLY_WHOLE_MAX (64 * 1024)
#define REPLY_BLOCK     (32 * 1024)
// An SSE event carries at most this many generated chars with log probabilities, or bytes
// of generated text without, and one take of a stream's news stops once this many bytes are queued:
// a stream whose reader fell behind its generations catches up in bounded events, none of which the
// HTTP thread (or the worker, whose lock a take holds) spends long on.
#define STREAM_EVENT_ENTRIES 64
#define STREAM_EVENT_TEXT    4096
#define STREAM_TAKE_BYTES    (64 * 1024)

/* One admitted request: its choices (prompts x n generations), stepped as one group by
 * the scheduler. A JSON reply's job belongs to its Request until its reply is queued,
 * then (a reply written as it is encoded) to the libmicrohttpd response; a stream's
 * belongs to the response. It ends in job_end. Its generations count in srv.in_flight,
 * the --max-concurrent slots, until they are all released (job_released), however slowly
 * the client reads; the reply then waits for the client in the job, counted in
 * srv.replies_waiting. The job counts in srv.undelivered until it ends, that is until
 * the last byte went to the socket (or the client left): the drain on SIGTERM waits for
 * that. */
typedef struct {
    Generation gen;
    int prompt;     // index into req.prompts
    int index;      // OpenAI's choice index: prompt * n + j
    uint64_t seed;  // rng_child_seed(request seed, j)
    size_t sent;    // gen.text[0 .. sent) has gone out in events
    int lp_sent;    // gen.lp[0 .. lp_sent) has gone out
    int echo_sent;  // the echoed prompt has gone out
    int final_sent; // its closing event is queued (OpenAI streams)
    int complete;   // released and every event of it queued
} Choice;

typedef struct Job {
    ServedModel *model; // held from admission to the job's end: its generations' weights
    GenRequest req;
    int nchoices;
    Choice *choices; // [nchoices]
    Task *tasks;     // [nchoices] the scheduler's handles while generating
    int submitted;
    struct MHD_Connection *conn;
    Request *rq; // a stream's, for its byte count; valid while libmicrohttpd reads the stream
    int fd;      // the client's socket, watched while the connection is parked
    struct timespec t0;
    char id[40]; // OpenAI completion id
    time_t created;

    int finished;      // a stream's last event is queued
    int counted;       // released: slots freed and generations counted (job_released)
    int released_seen; // the owner has seen the release (so may read what job_released set)
    double elapsed_ms; // at the release
    size_t data_bytes; // what the generations hold, from the release
    size_t held;       // counted in srv.reply_bytes_waiting
    Reply reply;       // the JSON reply's encoder, or the stream's events
    int gone;          // the client closed the connection (set by the watcher)
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
            for (int c = 0; c < jobs[i]->nchoices; c++) sched_cancel_async(&jobs[i]->tasks[c]);
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

static void job_released(void *arg);
static const Waker job_waker = {job_park, job_wake, job_released};

static void job_free(Job *j) {
    for (int i = 0; j->choices && i < j->nchoices; i++) {
        if (j->submitted) sched_task_destroy(&j->tasks[i]);
        generation_free(&j->choices[i].gen);
    }
    free(j->choices);
    free(j->tasks);
    gen_request_free(&j->req);
    reply_free(&j->reply);
    models_put(j->model);
}

static double job_ms(const Job *j) {
    return round(elapsed_ms(&j->t0) * 1000.0) / 1000.0;
}

// What a done generation keeps until its reply is delivered.
static size_t generation_bytes(const Generation *g) {
    size_t K = (size_t)g->params.top_logprobs;
    return g->cap + (size_t)g->cap_lp * (sizeof(TokenLogprob) + K * (sizeof(int) + sizeof(float))) +
           (size_t)g->n_prompt * (sizeof(int) + (g->prompt_offset ? sizeof(size_t) : 0));
}

// Sets what the job counts in srv.reply_bytes_waiting.
static void job_hold(Job *j, size_t bytes) {
    atomic_fetch_add(&srv.reply_bytes_waiting, (long)bytes - (long)j->held);
    j->held = bytes;
}

// Keeps the count up with the encoder's buffer, once the owner has seen the release.
static void job_track(Job *j) {
    if (j->released_seen) job_hold(j, j->data_bytes + reply_buffer_bytes(&j->reply));
}

/* The Waker's release callback, on the worker with its lock held: the generations are
 * done, so their slots are free for other requests now, not once the reply has reached a
 * client that may read it slowly; the reply waits in the job. */
static void job_released(void *arg) {
    Job *j = arg;
    j->elapsed_ms = job_ms(j);
    j->data_bytes = 0;
    for (int i = 0; i < j->nchoices; i++) {
        const Generation *g = &j->choices[i].gen;
        metrics_generation(j->model->metrics_slot, g->prompt_tokens, g->tokens, g->finish);
        j->data_bytes += generation_bytes(g);
    }
    j->counted = 1;
    job_hold(j, j->data_bytes);
    atomic_fetch_add(&srv.replies_waiting, 1);
    atomic_fetch_sub(&srv.in_flight, j->nchoices);
}

// The end of a job, delivered or not: its generations are stopped if still running.
static void job_end(Job *j) {
    if (j->submitted)
        for (int i = 0; i < j->nchoices; i++)
            sched_cancel(&j->tasks[i]); // returns at once when it is already over
    // Every task is released now, so job_released has run.
    if (j->counted) {
        job_hold(j, 0);
        atomic_fetch_sub(&srv.replies_waiting, 1);
    }
    atomic_fetch_sub(&srv.undelivered, 1);
    job_free(j);
    free(j);
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
    j->choices = calloc((size_t)j->nchoices, sizeof(*j->choices));
    j->tasks = calloc((size_t)j->nchoices, sizeof(*j->tasks));
    if (!j->choices || !j->tasks) return err_set(err, "out of memory");
    for (int i = 0; i < j->nchoices; i++) {
        Choice *c = &j->choices[i];
        c->index = i;
        c->prompt = i / j->req.n;
        c->seed = rng_child_seed(j->req.gen.seed, (uint64_t)(i % j->req.n));
        GenerateParams p = j->req.gen;
        p.seed = c->seed;
        if (generation_init(&c->gen, &j->model->model, &j->model->vocab, j->req.prompts[c->prompt],
                            j->req.prompt_lens[c->prompt], &p, err))
            return -1;
    }
    return 0;
}

// The JSON reply's encoder (at the release), or a stream's events (at its start).
static void job_reply_init(Job *j, int events) {
    ReplyChoice rc[API_MAX_CHOICES];
    for (int i = 0; i < j->nchoices; i++) {
        const Choice *c = &j->choices[i];
        rc[i] = (ReplyChoice){&c->gen, c->prompt, c->index, c->seed};
    }
    ReplySpec spec = {&j->req,      rc,           j->nchoices, j->id, (long long)j->created,
                      j->model->id, j->elapsed_ms};
    if (events)
        reply_init_events(&j->reply, &spec);
    else
        reply_init(&j->reply, &spec);
}

// libmicrohttpd's content reader of a large JSON reply: the next bytes, encoded now.
static ssize_t json_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    Job *j = cls;
    long n = reply_read(&j->reply, buf, max);
    job_track(j);
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    j->rq->bytes += (size_t)n;
    return (ssize_t)n;
}

// Called by libmicrohttpd when a large reply's response is released: after its last byte
// went to the socket, or when the client went away.
static void json_free(void *cls) {
    job_end(cls);
}

// Called for the request until the reply is queued: first by the handler, then each time
// the connection is resumed. A generation cancelled by the drain is answered like any other,
// with finish_reason "cancelled" and the text so far.
static enum MHD_Result reply_json(struct MHD_Connection *conn, Request *rq) {
    Job *j = rq->ctx;
    if (sched_poll(j->tasks, j->nchoices, NULL, NULL) < 0) return MHD_YES; // parked
    if (j->gone) return MHD_NO; // nobody to answer; closes the connection
    j->released_seen = 1;
    job_reply_init(j, 0);
    int failed = reply_fill(&j->reply, REPLY_WHOLE_MAX + 1);
    job_track(j);
    if (failed) return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    if (reply_complete(&j->reply)) {
        size_t len;
        char *body = reply_take(&j->reply, &len);
        if (!body)
            return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
        return respond(conn, rq, MHD_HTTP_OK, "application/json", body, len);
    }
    // Too large to hold whole: no Content-Length, written as it is encoded, chunked.
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, REPLY_BLOCK, json_read, j, json_free);
    if (!resp) return MHD_NO; // json_finish ends the job
    rq->finish = NULL;        // the response holds the job now; json_free ends it
    rq->status = MHD_HTTP_OK;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    response_add_common(resp, conn);
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}

/* What is new in choice i since the last event, as one event: text (the echoed prompt
 * first, once the prompt has been read) and the log probabilities of its chars, at most
 * STREAM_EVENT_ENTRIES generated chars with them (else STREAM_EVENT_TEXT bytes); once it
 * is released and all sent, its closing event. With the worker's lock held (sched_poll's take).
 * Returns 1 when it queued an event. */
static int stream_choice(Job *j, int i, int released) {
    Choice *c = &j->choices[i];
    const Generation *g = &c->gen;
    int echo = j->req.echo && !c->echo_sent && (g->prompt_pos >= g->n_prompt || g->done);
    size_t pl = echo ? j->req.prompt_lens[c->prompt] : 0;
    size_t fresh = g->emitted - c->sent;
    int lp_ready = j->req.gen.logprobs ? generation_logprobs_ready(g) : 0;
    if (lp_ready < c->lp_sent) lp_ready = c->lp_sent;
    int lp_to = lp_ready;
    if (j->req.gen.logprobs) {
        // An event's generated text has one entry per char (the page relies on it): the
        // prompt's entries go with the echoed prompt, then at most STREAM_EVENT_ENTRIES
        // chars with theirs.
        int from = c->lp_sent;
        while (from < lp_ready && g->lp[from].prompt) from++;
        if (lp_ready - from > STREAM_EVENT_ENTRIES) {
            lp_to = from + STREAM_EVENT_ENTRIES;
            fresh = g->lp[lp_to].offset > c->sent ? g->lp[lp_to].offset - c->sent : 0;
        }
    } else if (fresh > STREAM_EVENT_TEXT) {
        fresh = STREAM_EVENT_TEXT;
        while ((g->text[c->sent + fresh] & 0xC0) == 0x80) fresh--; // not inside a char
    }
    int queued = 0;
    if (pl + fresh > 0 || lp_to > c->lp_sent) {
        if (reply_event_delta(&j->reply, i, echo, c->sent, c->sent + fresh, c->lp_sent, lp_to))
            return 0; // the stream is lost; its reader sees that
        c->echo_sent |= echo;
        c->sent += fresh;
        c->lp_sent = lp_to;
        queued = 1;
    }
    if (!released || c->sent < g->emitted || c->lp_sent < lp_ready ||
        (j->req.echo && !c->echo_sent))
        return queued;
    if (j->req.openai && !c->final_sent) {
        reply_event_final(&j->reply, i);
        c->final_sent = 1;
        queued = 1;
    }
    c->complete = 1;
    return queued;
}

static int stream_take(void *ctx) {
    Job *j = ctx;
    int took = 0;
    for (int i = 0; i < j->nchoices && reply_pending(&j->reply) < STREAM_TAKE_BYTES; i++)
        if (!j->choices[i].complete) took |= stream_choice(j, i, j->tasks[i].released);
    return took;
}

static int stream_complete(const Job *j) {
    for (int i = 0; i < j->nchoices; i++)
        if (!j->choices[i].complete) return 0;
    return 1;
}

// libmicrohttpd's content reader: 0 bytes when the connection has just been parked until
// the next chunk; the chunked body ends once the last event has gone.
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    Job *j = cls;
    long n;
    while ((n = reply_read(&j->reply, buf, max)) == 0) {
        if (j->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = sched_poll(j->tasks, j->nchoices, stream_take, j);
        if (rc < 0) return 0;
        if (j->gone) return MHD_CONTENT_READER_END_WITH_ERROR;
        j->released_seen |= rc == 1;
        if (rc == 1 && stream_complete(j)) {
            reply_event_end(&j->reply, j->elapsed_ms); // a failure shows in the next read
            j->finished = 1;
        }
    }
    job_track(j);
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR; // out of memory
    j->rq->bytes += (size_t)n;
    return (ssize_t)n;
}

// Called by libmicrohttpd when the stream's response is released: after its last byte
// went to the socket, or when the client went away (then its generations are cancelled).
static void stream_free(void *cls) {
    job_end(cls);
}

static void json_finish(Request *rq) {
    job_end(rq->ctx);
}

static enum MHD_Result refuse(struct MHD_Connection *conn, Request *rq, Job *j, int status,
                              const char *msg) {
    job_free(j);
    free(j);
    return respond_error(conn, rq, status, msg, NULL);
}

// kind: api.h's API_NATIVE, API_COMPLETIONS or API_CHAT.
static enum MHD_Result handle(struct MHD_Connection *conn, Request *rq, int kind) {
    Job *j = calloc(1, sizeof(*j));
    if (!j) return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    // The model first: its vocabulary is what the request's chars and ids are checked
    // against, and OpenAI answers an unknown model before anything else.
    char id[MODEL_ID_MAX + 1];
    int named = api_model_field(rq->body.s ? rq->body.s : "", rq->body.len, id, sizeof(id));
    if (!(j->model = models_get(named ? id : NULL))) {
        free(j);
        return info_model_not_found(conn, rq, id);
    }
    ApiError e;
    if (api_parse(rq->body.s ? rq->body.s : "", rq->body.len, kind, &srv.cfg, &j->model->vocab,
                  &j->req, &e)) {
        models_put(j->model);
        free(j);
        return respond_error(conn, rq, e.status, e.message, e.param);
    }
    j->nchoices = j->req.nprompts * j->req.n;
    char msg[160];
    if (j->nchoices > srv.cfg.max_concurrent) {
        snprintf(msg, sizeof(msg),
                 "this request asks for %d generations, more than the server runs at once (%d)",
                 j->nchoices, srv.cfg.max_concurrent);
        job_free(j);
        free(j);
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, msg, "n");
    }
    pthread_mutex_lock(&admit_mu);
    if (atomic_load(&srv.shutting_down)) {
        pthread_mutex_unlock(&admit_mu);
        return refuse(conn, rq, j, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is shutting down");
    }
    // Done replies no longer hold slots, so slow readers are bounded by their memory.
    long waiting = atomic_load(&srv.reply_bytes_waiting);
    if (waiting > srv.cfg.max_waiting_bytes) {
        pthread_mutex_unlock(&admit_mu);
        snprintf(msg, sizeof(msg),
                 "done replies waiting for their clients hold %ld bytes, more than "
                 "--max-waiting-bytes (%ld); retry shortly",
                 waiting, srv.cfg.max_waiting_bytes);
        return refuse(conn, rq, j, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    }
    if (atomic_fetch_add(&srv.in_flight, j->nchoices) + j->nchoices > srv.cfg.max_concurrent) {
        atomic_fetch_sub(&srv.in_flight, j->nchoices);
        pthread_mutex_unlock(&admit_mu);
        snprintf(msg, sizeof(msg), "too many generations in flight (limit %d); retry shortly",
                 srv.cfg.max_concurrent);
        return refuse(conn, rq, j, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    }
    atomic_fetch_add(&srv.undelivered, 1);
    char err[ERR_LEN];
    if (job_start(j, conn, rq, err)) {
        atomic_fetch_sub(&srv.in_flight, j->nchoices);
        atomic_fetch_sub(&srv.undelivered, 1);
        pthread_mutex_unlock(&admit_mu);
        return refuse(conn, rq, j, MHD_HTTP_BAD_REQUEST, err);
    }
    Generation *gens[API_MAX_CHOICES];
    for (int i = 0; i < j->nchoices; i++) gens[i] = &j->choices[i].gen;
    sched_submit(j->tasks, gens, j->nchoices, j->req.stream, &job_waker, j);
    j->submitted = 1;
    pthread_mutex_unlock(&admit_mu);

    if (!j->req.stream) {
        rq->ctx = j;
        rq->finish = json_finish;
        rq->resume = reply_json;
        return reply_json(conn, rq);
    }

    // A chat stream's first chunk of each choice names the speaker before any text.
    job_reply_init(j, 1);
    int failed = 0;
    for (int i = 0; j->req.chat && i < j->nchoices; i++) failed |= reply_event_role(&j->reply, i);
    if (failed) {
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
