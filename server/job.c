#include "job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "error.h"
#include "metrics.h"
#include "server.h"

// The watcher saw the client leave (its lock held, the job parked so alive).
static void job_left(Watched *w) {
    Job *j = (Job *)((char *)w - offsetof(Job, watch));
    for (int c = 0; c < j->nchoices; c++) sched_cancel_async(&j->tasks[c]);
}

// The Waker of every job: nothing to send yet suspends the connection (from its
// libmicrohttpd thread, inside sched_poll), and the worker resumes it. Both with the
// worker's lock held, which keeps the job alive for the watcher.
static void job_park(void *arg) {
    Job *j = arg;
    watch_add(&j->watch);
    MHD_suspend_connection(j->conn);
}

static void job_wake(void *arg) {
    Job *j = arg;
    watch_remove(&j->watch);
    MHD_resume_connection(j->conn);
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

void job_track(Job *j) {
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

static const Waker job_waker = {job_park, job_wake, job_released};

Job *job_new(struct MHD_Connection *conn, Request *rq) {
    Job *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->conn = conn;
    j->rq = rq;
    j->watch = (Watched){.fd = -1, .left = job_left};
    return j;
}

int job_start(Job *j, char *err) {
    clock_gettime(CLOCK_MONOTONIC, &j->t0);
    j->created = time(NULL);
    unsigned char rnd[12] = {0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) memset(rnd, 0, sizeof(rnd));
    int n = snprintf(j->id, sizeof(j->id), j->req.chat ? "chatcmpl-" : "cmpl-");
    for (size_t i = 0; i < sizeof(rnd); i++) n += snprintf(j->id + n, 3, "%02x", rnd[i]);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(j->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->watch.fd = ci ? ci->connect_fd : -1;
    j->choices = calloc((size_t)j->nchoices, sizeof(*j->choices));
    j->tasks = calloc((size_t)j->nchoices, sizeof(*j->tasks));
    if (!j->choices || !j->tasks) {
        err_set(err, "out of memory");
        return GEN_OUT_OF_MEMORY;
    }
    for (int i = 0; i < j->nchoices; i++) {
        Choice *c = &j->choices[i];
        c->index = i;
        c->prompt = i / j->req.n;
        c->seed = rng_child_seed(j->req.gen.seed, (uint64_t)(i % j->req.n));
        GenerateParams p = j->req.gen;
        p.seed = c->seed;
        int rc = generation_init(&c->gen, &j->model->model, &j->model->vocab,
                                 j->req.prompts[c->prompt], j->req.prompt_lens[c->prompt], &p, err);
        if (rc) return rc;
    }
    Generation *gens[API_MAX_CHOICES];
    for (int i = 0; i < j->nchoices; i++) gens[i] = &j->choices[i].gen;
    sched_submit(j->tasks, gens, j->nchoices, j->req.stream, &job_waker, j);
    j->submitted = 1;
    return 0;
}

void job_free(Job *j) {
    for (int i = 0; j->choices && i < j->nchoices; i++) {
        if (j->submitted) sched_task_destroy(&j->tasks[i]);
        generation_free(&j->choices[i].gen);
    }
    free(j->choices);
    free(j->tasks);
    gen_request_free(&j->req);
    reply_free(&j->reply);
    models_put(j->model);
    free(j);
}

void job_end(Job *j) {
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
}
