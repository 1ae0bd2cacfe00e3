/*
 * tunerun.h — the fine-tuning runner: one thread that validates each new job's files
 * (writing its train.txt and sizing its run), runs the oldest waiting job's charlm-train
 * (trainproc.h), turns the trainer's log rows into events, reloads the job's model into the
 * registry each time the trainer publishes a better one, and ends the job when the
 * trainer exits. A job left running by a previous server resumes from its checkpoint.
 * Everything but tunerun_start and tunerun_stop is called with tunejob_mu held.
 */
#ifndef CHARLM_TUNERUN_H
#define CHARLM_TUNERUN_H

#include "tunejob.h"

/* Checks that trainer can be run and starts the thread: jobs read their uploads from
 * <dir>/files and run trainer with `threads` threads. The strings must outlive it. */
int tunerun_start(const char *dir, const char *trainer, int threads, char *err);
/* A job was added: look now rather than at the next poll. */
void tunerun_wake(void);
/* 1 once the drain has begun. */
int tunerun_stopping(void);
/* If j's trainer is running, asks it to stop (the runner ends the job once it is reaped)
 * and returns 1; 0 when j is not the running job. */
int tunerun_cancel(TuneJob *j);
/* The drain: no new trainer, and the running one is sent SIGTERM. */
void tunerun_begin_stop(void);
/* Stops the thread and waits up to `seconds` for the trainer (killed after); the job
 * stays running on disk, for the next server to resume. */
void tunerun_stop(double seconds);

#endif
