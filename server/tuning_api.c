#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "filestore.h"
#include "models.h"
#include "server.h"
#include "tuning.h"
#include "tuning_api.h"

static const char *query(struct MHD_Connection *conn, const char *name) {
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

// ?limit=N: 1 ... TUNING_LIST_MAX; -1 when it is something else.
static int limit_of(struct MHD_Connection *conn) {
    const char *v = query(conn, "limit");
    if (!v) return TUNING_LIST_DEFAULT;
    char *end;
    long n = strtol(v, &end, 10);
    return *v && !*end && n >= 1 && n <= TUNING_LIST_MAX ? (int)n : -1;
}

static enum MHD_Result bad_limit(struct MHD_Connection *conn, Request *rq) {
    char msg[96];
    snprintf(msg, sizeof(msg), "limit must be a whole number from 1 to %d", TUNING_LIST_MAX);
    return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, msg, "limit");
}

static int file_exists(const char *id) {
    cJSON *o = filestore_get(id);
    cJSON_Delete(o);
    return o != NULL;
}

// The served model a job goes on from: its architecture, folder, context and id.
static int base_model(const char *id, char *arch, size_t arch_cap, char **dir, int *seq, char *base,
                      size_t base_cap) {
    ServedModel *m = models_get(id);
    if (!m || strcmp(m->id, id) != 0) {
        models_put(m);
        return -1;
    }
    snprintf(arch, arch_cap, "%s", m->model.arch->name);
    *dir = strdup(m->dir);
    ArchField f[ARCH_MAX_FIELDS];
    int nf = m->model.arch->fields(&m->model, f);
    *seq = 0;
    for (int i = 0; i < nf; i++)
        if (strcmp(f[i].name, "block") == 0) *seq = (int)f[i].number;
    // The id goes into a folder's name: only its safe characters, at most 40.
    size_t k = 0;
    for (const char *c = m->id; *c && k + 1 < base_cap && k < 40; c++)
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c))
            base[k++] = *c;
    base[k] = '\0';
    if (!k) snprintf(base, base_cap, "%s", arch);
    models_put(m);
    return *dir ? 0 : -1;
}

static enum MHD_Result create(struct MHD_Connection *conn, Request *rq) {
    TuneRequest r;
    char err[ERR_LEN];
    const char *param;
    if (tunereq_parse(rq->body.s ? rq->body.s : "", rq->body.len, &r, err, sizeof(err), &param))
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, err, param);
    if (!file_exists(r.training_file))
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST,
                             "training_file: no such file (upload it with POST /v1/files)",
                             "training_file");
    if (r.validation_file[0] && !file_exists(r.validation_file))
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST,
                             "validation_file: no such file (upload it with POST /v1/files)",
                             "validation_file");
    char arch[16], base[48], *dir = NULL;
    int seq = 0;
    if (strcmp(r.model, "lstm") == 0 || strcmp(r.model, "gpt") == 0) {
        snprintf(arch, sizeof(arch), "%.8s", r.model);
        snprintf(base, sizeof(base), "%.8s", r.model);
    } else if (base_model(r.model, arch, sizeof(arch), &dir, &seq, base, sizeof(base)) != 0) {
        char ids[256], msg[512];
        models_ids_text(ids, sizeof(ids));
        snprintf(msg, sizeof(msg),
                 "model must be \"lstm\" or \"gpt\" (from scratch) or a served model's id "
                 "(%s)",
                 ids);
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, msg, "model");
    }
    int status;
    cJSON *o = tuning_create(&r, arch, dir, base, seq, err, &status);
    free(dir);
    if (!o) return respond_error(conn, rq, (unsigned)status, err, NULL);
    return respond_object(conn, rq, MHD_HTTP_OK, o);
}

enum MHD_Result tuning_api_collection(struct MHD_Connection *conn, Request *rq) {
    if (strcmp(rq->method, "POST") == 0) return create(conn, rq);
    int limit = limit_of(conn);
    if (limit < 0) return bad_limit(conn, rq);
    return respond_object(conn, rq, MHD_HTTP_OK, tuning_list(query(conn, "after"), limit));
}

static enum MHD_Result no_job(struct MHD_Connection *conn, Request *rq) {
    return respond_error(conn, rq, MHD_HTTP_NOT_FOUND,
                         "no such fine-tuning job: ids are the ones POST /v1/fine_tuning/jobs "
                         "gave",
                         NULL);
}

static enum MHD_Result wrong_method(struct MHD_Connection *conn, Request *rq, const char *allow) {
    snprintf(rq->allow, sizeof(rq->allow), "%s", allow);
    return respond_error(conn, rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL);
}

static enum MHD_Result events(struct MHD_Connection *conn, Request *rq, const char *id) {
    const char *stream = query(conn, "stream");
    if (stream && strcmp(stream, "true") == 0) {
        int status;
        struct MHD_Response *resp = tuning_event_stream(id, conn, &status);
        if (!resp)
            return status == 404 ? no_job(conn, rq)
                                 : respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE,
                                                 "out of memory", NULL);
        rq->status = MHD_HTTP_OK;
        MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        response_add_common(resp, conn);
        enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return r;
    }
    int limit = limit_of(conn);
    if (limit < 0) return bad_limit(conn, rq);
    cJSON *o = tuning_events(id, query(conn, "after"), limit);
    return o ? respond_object(conn, rq, MHD_HTTP_OK, o) : no_job(conn, rq);
}

enum MHD_Result tuning_api_item(struct MHD_Connection *conn, Request *rq) {
    char id[64];
    const char *slash = strchr(rq->tail, '/');
    size_t n = slash ? (size_t)(slash - rq->tail) : strlen(rq->tail);
    if (n == 0 || n >= sizeof(id)) return no_job(conn, rq);
    memcpy(id, rq->tail, n);
    id[n] = '\0';
    const char *what = slash ? slash + 1 : "";
    int post = strcmp(rq->method, "POST") == 0;
    if (strcmp(what, "cancel") == 0) {
        if (!post) return wrong_method(conn, rq, "POST");
        int status;
        char err[ERR_LEN];
        cJSON *o = tuning_cancel(id, &status, err);
        if (!o) return status == 404 ? no_job(conn, rq) : respond_error(conn, rq, 400, err, NULL);
        return respond_object(conn, rq, MHD_HTTP_OK, o);
    }
    if (strcmp(what, "") != 0 && strcmp(what, "events") != 0 && strcmp(what, "checkpoints") != 0)
        return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "not found", NULL);
    if (post) return wrong_method(conn, rq, "GET, HEAD");
    if (strcmp(what, "events") == 0) return events(conn, rq, id);
    cJSON *o = what[0] ? tuning_checkpoints(id) : tuning_get(id);
    return o ? respond_object(conn, rq, MHD_HTTP_OK, o) : no_job(conn, rq);
}

enum MHD_Result tuning_api_delete_model(struct MHD_Connection *conn, Request *rq) {
    int status;
    char err[ERR_LEN];
    if (tuning_delete_model(rq->tail, &status, err) != 0)
        return respond_error(conn, rq, (unsigned)status, err, NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", rq->tail);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddBoolToObject(o, "deleted", 1);
    return respond_object(conn, rq, MHD_HTTP_OK, o);
}
