#include "deliver.h"

// A JSON reply up to this size goes out whole, with a Content-Length; a larger one is
// encoded as libmicrohttpd sends it, REPLY_BLOCK bytes a call, chunked (reply.h).
#define REPLY_WHOLE_MAX (64 * 1024)
#define REPLY_BLOCK     (32 * 1024)
// One take of a stream's news stops once this many bytes of events are queued, so that
// it holds the worker's lock for a bounded time.
#define STREAM_TAKE_BYTES (64 * 1024)

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

// Called for the request until the reply is queued: first by deliver_reply, then each
// time the connection is resumed.
static enum MHD_Result json_reply(struct MHD_Connection *conn, Request *rq) {
    Job *j = rq->ctx;
    if (sched_poll(j->tasks, j->nchoices, NULL, NULL) < 0) return MHD_YES; // parked
    if (j->watch.gone) return MHD_NO; // nobody to answer; closes the connection
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

static void json_finish(Request *rq) {
    job_end(rq->ctx);
}

// sched_poll's take, with the worker's lock held: what is new in the choices, as events.
static int stream_take(void *ctx) {
    Job *j = ctx;
    int took = 0;
    for (int i = 0; i < j->nchoices && reply_pending(&j->reply) < STREAM_TAKE_BYTES; i++)
        took |= reply_event_next(&j->reply, i, j->tasks[i].released);
    return took;
}

static int stream_complete(const Job *j) {
    for (int i = 0; i < j->nchoices; i++)
        if (!reply_event_complete(&j->reply, i)) return 0;
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
        if (j->watch.gone) return MHD_CONTENT_READER_END_WITH_ERROR;
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

static enum MHD_Result stream_reply(struct MHD_Connection *conn, Request *rq, Job *j) {
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

enum MHD_Result deliver_reply(struct MHD_Connection *conn, Request *rq, Job *j) {
    if (j->req.stream) return stream_reply(conn, rq, j);
    rq->ctx = j;
    rq->finish = json_finish;
    rq->resume = json_reply;
    return json_reply(conn, rq);
}
