#include "gen.h"

#include <stdio.h>

#include "admit.h"
#include "api.h"
#include "deliver.h"
#include "error.h"
#include "info.h"
#include "job.h"
#include "models.h"
#include "server.h"
#include "watch.h"

int gen_start(char *err) {
    return watch_start(err);
}

void gen_stop(void) {
    watch_stop();
}

void gen_stop_admitting(void) {
    admit_stop();
}

// admit_run's start: the job's generations made and submitted, or why not: a 400 for what
// the request asked, a 503 when memory ran out.
static int start(void *ctx, AdmitRefusal *why) {
    char err[ERR_LEN];
    int rc = job_start(ctx, err);
    if (rc == 0) return 0;
    why->status = rc == GEN_OUT_OF_MEMORY ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_BAD_REQUEST;
    snprintf(why->message, sizeof(why->message), "%s", err);
    why->param = NULL;
    return -1;
}

// kind: api.h's API_NATIVE, API_COMPLETIONS or API_CHAT.
static enum MHD_Result handle(struct MHD_Connection *conn, Request *rq, int kind) {
    Job *j = job_new(conn, rq);
    if (!j) return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    // The model first: its vocabulary is what the request's chars and ids are checked
    // against, and OpenAI answers an unknown model before anything else.
    char id[MODEL_ID_MAX + 1];
    int named = api_model_field(rq->body.s ? rq->body.s : "", rq->body.len, id, sizeof(id));
    if (!(j->model = models_get(named ? id : NULL))) {
        job_free(j);
        return info_model_not_found(conn, rq, id);
    }
    ApiError e;
    if (api_parse(rq->body.s ? rq->body.s : "", rq->body.len, kind, &srv.cfg, &j->model->vocab,
                  &j->req, &e)) {
        job_free(j);
        return respond_error(conn, rq, e.status, e.message, e.param);
    }
    j->nchoices = j->req.nprompts * j->req.n;
    AdmitRefusal why;
    if (admit_run(j->nchoices, start, j, &why)) {
        job_free(j);
        return respond_error(conn, rq, why.status, why.message, why.param);
    }
    return deliver_reply(conn, rq, j);
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
