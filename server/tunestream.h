/*
 * tunestream.h — a fine-tuning job's events as Server-Sent Events: every event so far,
 * oldest first, then each new one as it is appended, `data: <event>` and a blank line
 * each; `data: [DONE]` once the job has ended (or the server drains), and the stream ends.
 * A stream with nothing to send parks its connection (suspended) until the next event or
 * the runner's keepalive (a comment line, which also finds clients that left).
 */
#ifndef CHARLM_TUNESTREAM_H
#define CHARLM_TUNESTREAM_H

#include <microhttpd.h>

#include "tunejob.h"

/* The response to queue for job id's stream, or NULL with *status 404 (no such job) or
 * 503 (out of memory). Takes tunejob_mu itself. */
struct MHD_Response *tunestream_open(const char *id, struct MHD_Connection *conn, int *status);
/* Resumes the parked streams of j (every job's when NULL), with a keepalive if ping. With
 * tunejob_mu held. */
void tunestream_wake(const TuneJob *j, int ping);
/* tunejob_on_event's hook: wakes j's streams. */
void tunestream_on_event(const TuneJob *j);
/* The drain: every stream sends [DONE] and ends; none parks again. With tunejob_mu held. */
void tunestream_close_all(void);

#endif
