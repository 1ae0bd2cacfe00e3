/*
 * deliver.h — a job's reply on its connection: one JSON reply, or an SSE stream of events.
 *
 * A JSON reply waits, parked, for the job's release; then it is encoded (reply.h): up to
 * REPLY_WHOLE_MAX bytes it goes out whole with a Content-Length, beyond that it is encoded
 * as libmicrohttpd sends it, a block a call, chunked, so a reply of tens of MB never sits
 * whole in memory. A generation cancelled by the drain is answered like any other, with
 * its finish_reason and the text so far; a client that left gets nothing and its
 * connection is closed.
 *
 * A stream's response is queued at once; each time libmicrohttpd wants bytes, what is new
 * in the generations is taken as events (reply_event_next) under the worker's lock, a
 * bounded amount a take, and the connection is parked until the next news when there is
 * none. The stream ends once every choice is complete and the closing events have gone.
 */
#ifndef CHARLM_DELIVER_H
#define CHARLM_DELIVER_H

#include "http.h"
#include "job.h"

/* Answers rq with job j's reply, just after its submission; the job then belongs to the
 * request or its response, which end it (job_end) when the reply is delivered or the
 * client leaves. */
enum MHD_Result deliver_reply(struct MHD_Connection *conn, Request *rq, Job *j);

#endif
