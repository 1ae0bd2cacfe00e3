/*
 * scheduler.h — sched.c, the batching scheduler: worker threads that step many
 * generations at once. (Not sched.h: that is the C library's, which pthread.h includes.)
 */
#ifndef CHARLM_SCHEDULER_H
#define CHARLM_SCHEDULER_H

#include <pthread.h>
#include <stddef.h>

#include "generate.h"

/* A generation handed to the workers. Between sched_submit and its release the
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

#endif
