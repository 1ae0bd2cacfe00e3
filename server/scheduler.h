/*
 * scheduler.h — sched.c, the batching scheduler: worker threads that step many
 * generations at once. (Not sched.h: that is the C library's, which pthread.h includes.)
 */
#ifndef CHARLM_SCHEDULER_H
#define CHARLM_SCHEDULER_H

#include <pthread.h>
#include <stddef.h>

#include "generate.h"

#include <stdatomic.h>

/* How a task's owner waits without blocking a thread: sched_poll calls park(arg) when
 * there is nothing for it yet, and the worker then calls wake(arg) once, when there is
 * (new text for a stream, or the release). A stream is woken for new text at most every
 * SCHED_STREAM_WAKE_MS, so that under load a chunk carries several chars and the events,
 * writes and client wake-ups per char shrink, while a reader still sees text at least
 * that often; its first text and its release wake it at once. Both run with the worker's lock held,
 * so a wake never comes before its park. The server parks by suspending the libmicrohttpd
 * connection and wakes by resuming it. */
#define SCHED_STREAM_WAKE_MS 20.0

typedef struct {
    void (*park)(void *arg);
    void (*wake)(void *arg);
    /* Called once, by the worker with its lock held, when the group's last task is
     * released (before the wake): the generations are done whether or not the owner is
     * there to look. May be NULL. */
    void (*released)(void *arg);
} Waker;

/* A generation handed to the workers. Between sched_submit and its release the
 * Generation belongs to a worker and is read only through sched_poll. A request's
 * several generations (n choices, several prompts) are one group: submitted together to
 * one worker, so that they step in the same batch and one lock covers them all. */
typedef struct Task {
    Generation *gen;
    pthread_cond_t cv;   // signalled on release, for sched_cancel
    int wants_text;      // a stream: wake the owner for every new chunk
    atomic_int cancel;   // asked by the owner; may be set without the lock
    int released;        // finished or cancelled; the worker no longer touches it
    int parked;          // the owner waits for wake (kept on the group's first task)
    struct Task *group;  // the group's first task
    int group_left;      // tasks of the group not yet released (kept on its first task)
    double last_wake_ms; // when new text last woke the owner (CLOCK_MONOTONIC)
    size_t woken_text;   // gen->emitted then
    const Waker *waker;
    void *waker_arg;
    struct Worker *worker;
    struct Task *next;
} Task;

int sched_start(int nworkers, char *err);
void sched_stop(void);
/* Submits the k generations gens[0 .. k) as the group tasks[0 .. k). */
void sched_submit(Task *tasks, Generation *const *gens, int k, int wants_text, const Waker *waker,
                  void *arg);
/* Never blocks. With the worker's lock held, so that the generations stand still, calls
 * take(ctx) (when given), which reads what is new in them and returns 1 if it took
 * anything. Returns 1 once every task of the group is released (take has then seen the
 * final state), 0 when take took something, -1 otherwise: then the owner is parked until
 * its wake, which comes with the next new text or release. */
int sched_poll(Task *tasks, int k, int (*take)(void *ctx), void *ctx);
/* Asks for the cancellation without waiting: the release (and the wake) follow within one
 * step. Safe from any thread while the task is alive. */
void sched_cancel_async(Task *t);
/* Cancels and waits for the release (at most one step). */
void sched_cancel(Task *t);
void sched_task_destroy(Task *t);
/* Tasks submitted and not yet released, over every worker. */
int sched_pending(void);

#endif
