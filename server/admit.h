/*
 * admit.h — admission: whether a generation request may start now.
 *
 * A request of k generations (prompts x n) is admitted when
 *   - k is at most --max-concurrent (else 400: it could never run, param "n");
 *   - the drain has not begun (else 503: the server is shutting down);
 *   - the done replies still waiting for their clients hold at most --max-waiting-bytes
 *     (else 503): a done reply no longer holds a slot, so slow readers are bounded by the
 *     memory they keep instead;
 *   - k more generations stay within --max-concurrent (else 503, retry shortly).
 * Admitted, its k slots count in srv.in_flight until the job gives them back (job.h) and
 * the request counts in srv.undelivered until its reply is delivered or abandoned.
 *
 * Admitting and the drain's admit_stop exclude each other, and the caller's start runs
 * inside the admission: once admit_stop has returned, no generation is submitted that the
 * drain would not wait for.
 */
#ifndef CHARLM_ADMIT_H
#define CHARLM_ADMIT_H

#include "error.h"

typedef struct {
    int status;            // the HTTP status of the refusal
    char message[ERR_LEN]; // its error message
    const char *param;     // the request member to blame, or NULL
} AdmitRefusal;

/* Admits k generations and calls start(ctx, why), which submits them (or fails, filling
 * *why, and then the slots are given back). Returns 0 once started; -1 refused or failed,
 * with *why filled. */
int admit_run(int k, int (*start)(void *ctx, AdmitRefusal *why), void *ctx, AdmitRefusal *why);
/* The drain begins: from now on every request is refused with 503. */
void admit_stop(void);

#endif
