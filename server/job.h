/*
 * job.h — the life of one admitted generation request: its generations, made and handed
 * to the scheduler, parked while there is nothing to send, released, and freed once its
 * reply has been delivered or abandoned.
 *
 * A job holds a request's choices (prompts x n generations), stepped as one group by the
 * scheduler. A JSON reply's job belongs to its Request until the reply is queued, then
 * (a reply written as it is encoded) to the libmicrohttpd response; a stream's belongs to
 * the response. It ends in job_end.
 *
 * Its generations count in srv.in_flight, the --max-concurrent slots (admit.h), until they
 * are all released (the Waker's release callback, on the worker): however slowly the
 * client reads, a done generation frees its slot at once and its reply waits in the job,
 * counted in srv.replies_waiting, with the memory it holds (the generations' text and
 * log probabilities, and the encoder's buffer: job_track) in srv.reply_bytes_waiting. The
 * job counts in srv.undelivered until it ends, that is until the last byte went to the
 * socket (or the client left): the drain on SIGTERM waits for that.
 *
 * While its connection is parked the job is on the socket watcher's list (watch.h): a
 * client that leaves then cancels its generations, and the owner, woken by their release,
 * finds watch.gone set.
 */
#ifndef CHARLM_JOB_H
#define CHARLM_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api.h"
#include "generate.h"
#include "http.h"
#include "models.h"
#include "reply.h"
#include "scheduler.h"
#include "watch.h"

typedef struct {
    Generation gen;
    int prompt;    // index into req.prompts
    int index;     // OpenAI's choice index: prompt * n + j
    uint64_t seed; // rng_child_seed(request seed, j)
} Choice;

typedef struct Job {
    ServedModel *model; // held from admission to the job's end: its generations' weights
    GenRequest req;
    int nchoices;
    Choice *choices; // [nchoices]
    Task *tasks;     // [nchoices] the scheduler's handles while generating
    int submitted;
    struct MHD_Connection *conn;
    Request *rq;   // a stream's, for its byte count; valid while libmicrohttpd reads the stream
    Watched watch; // the client's socket, watched while the connection is parked
    struct timespec t0;
    char id[40]; // OpenAI completion id
    time_t created;

    int finished;      // a stream's last event is queued
    int counted;       // released: slots freed and generations counted
    int released_seen; // the owner has seen the release (so may read what it set)
    double elapsed_ms; // at the release
    size_t data_bytes; // what the generations hold, from the release
    size_t held;       // counted in srv.reply_bytes_waiting
    Reply reply;       // the JSON reply's encoder, or the stream's events
} Job;

/* An empty job for the request rq on connection conn; the caller then sets its model
 * (a reference the job holds), req and nchoices. NULL when out of memory. */
Job *job_new(struct MHD_Connection *conn, Request *rq);
/* Makes the job's nchoices generations from req and submits them to the scheduler: inside
 * the admission (admit.h), which has counted them. When it cannot, nothing was submitted
 * and the job is for job_free: -1 with err for what the request asked, GEN_OUT_OF_MEMORY
 * (generate.h) with err when memory ran out. */
int job_start(Job *j, char *err);
/* Frees a job that was never submitted, however far it was made. */
void job_free(Job *j);
/* The end of a submitted job, delivered or not: its generations are stopped if still
 * running, its counts given back, and it is freed. */
void job_end(Job *j);
/* Keeps srv.reply_bytes_waiting up with the reply encoder's buffer, once the owner has
 * seen the release (released_seen). */
void job_track(Job *j);

#endif
