#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card.h"
#include "error.h"
#include "http.h"
#include "info.h"
#include "jsonscan.h"
#include "models.h"
#include "server.h"
#include "utf8.h"
#include "version.h"

int info_card_attach(ServedModel *m, char *err) {
    m->card = card_build(m->id, m->dir, &m->model, &m->vocab, &m->info, err);
    return m->card ? 0 : -1;
}

void info_card_detach(ServedModel *m) {
    free(m->card);
    m->card = NULL;
}

enum MHD_Result info_model_not_found(struct MHD_Connection *conn, Request *rq, const char *id) {
    // The name as asked, which a URL can make any bytes: at most 64 of them, as UTF-8.
    char ids[512], shown[72], msg[800];
    size_t len = id ? strlen(id) : 0;
    size_t used = utf8_sanitize(id ? id : "", len, shown, 65);
    if (used < len) strcat(shown, "...");
    models_ids_text(ids, sizeof(ids));
    snprintf(msg, sizeof(msg), "no model '%s' here; this server has %s", shown, ids);
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", "not_found_error");
    cJSON_AddStringToObject(e, "param", "model");
    cJSON_AddStringToObject(e, "code", "model_not_found");
    return respond_object(conn, rq, MHD_HTTP_NOT_FOUND, o);
}

enum MHD_Result info_model_card(struct MHD_Connection *conn, Request *rq) {
    const char *id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "model");
    ServedModel *m = models_get(id);
    if (!m) return info_model_not_found(conn, rq, id);
    char *card = strdup(m->card);
    models_put(m);
    return respond_json(conn, rq, MHD_HTTP_OK, card);
}

enum MHD_Result info_health(struct MHD_Connection *conn, Request *rq) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", atomic_load(&srv.shutting_down) ? "draining" : "ok");
    cJSON_AddStringToObject(o, "version", charlm_version);
    ServedModel *all[MODELS_MAX];
    int n = models_all(all, MODELS_MAX);
    cJSON *m = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(m, "id", all[0]->id);
    card_add_config(m, &all[0]->model);
    card_add_number(m, "best_val_loss", all[0]->info.best_val_loss);
    cJSON *ids = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(ids, cJSON_CreateString(all[i]->id));
        models_put(all[i]);
    }
    cJSON_AddNumberToObject(o, "generations_in_flight", atomic_load(&srv.in_flight));
    cJSON_AddNumberToObject(o, "max_concurrent", srv.cfg.max_concurrent);
    cJSON_AddNumberToObject(o, "uptime_s", (double)(time(NULL) - srv.started));
    if (atomic_load(&srv.shutting_down)) {
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "message", "the server is shutting down");
        cJSON_AddStringToObject(e, "type", "overloaded_error");
    }
    // While draining, load balancers should stop sending traffic here.
    return respond_object(conn, rq, atomic_load(&srv.shutting_down) ? 503 : MHD_HTTP_OK, o);
}

// OpenAI's model object, with the model's size and training summary beside it.
static cJSON *model_object(const ServedModel *sm) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", sm->id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)sm->created);
    cJSON_AddStringToObject(m, "owned_by", "charlm");
    cJSON_AddNumberToObject(m, "steps", (double)sm->info.steps);
    card_add_number(m, "best_val_loss", sm->info.best_val_loss);
    card_add_config(m, &sm->model);
    return m;
}

enum MHD_Result info_models(struct MHD_Connection *conn, Request *rq) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    ServedModel *all[MODELS_MAX];
    int n = models_all(all, MODELS_MAX);
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(data, model_object(all[i]));
        models_put(all[i]);
    }
    return respond_object(conn, rq, MHD_HTTP_OK, o);
}

// Requests may name any model while one is loaded (it serves them all), but asking about
// one by name is a question about that name: OpenAI's 404 for another.
enum MHD_Result info_model(struct MHD_Connection *conn, Request *rq) {
    ServedModel *all[MODELS_MAX], *found = NULL;
    int n = models_all(all, MODELS_MAX);
    for (int i = 0; i < n; i++) {
        if (!found && strcmp(all[i]->id, rq->tail) == 0)
            found = all[i];
        else
            models_put(all[i]);
    }
    if (!found) return info_model_not_found(conn, rq, rq->tail);
    cJSON *o = model_object(found);
    models_put(found);
    return respond_object(conn, rq, MHD_HTTP_OK, o);
}

enum MHD_Result info_reload(struct MHD_Connection *conn, Request *rq) {
    char *json = models_reload();
    if (!json) return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    return respond_json(conn, rq, MHD_HTTP_OK, json);
}

// ---- POST /tokenize and /detokenize (llama.cpp's shapes): ids are vocabulary indices.

// cJSON ends a string at a \u0000, so a body holding one would be read short.
/* The request's JSON object and a reference to the model its `model` member names (*m),
 * or NULL once *r holds the 400, 404 or 503 answered. Members other than names
 * (NULL-terminated) are refused. */
static cJSON *body_object(struct MHD_Connection *conn, Request *rq, const char *const *names,
                          ServedModel **m, enum MHD_Result *r) {
    const char *body = rq->body.s ? rq->body.s : "";
    const char *msg = NULL;
    cJSON *o = NULL;
    int nomem = 0;
    if (memchr(body, '\0', rq->body.len) || utf8_find_invalid(body, rq->body.len) >= 0 ||
        jsonscan_has_nul(body, body + rq->body.len))
        msg = "request body must be UTF-8 JSON without NUL characters";
    else if (!(o = jsonscan_parse(body, rq->body.len, NULL, &nomem)) || !cJSON_IsObject(o))
        msg = nomem ? "out of memory" : "request body must be a JSON object";
    for (const cJSON *it = o && !msg ? o->child : NULL; it; it = it->next) {
        int known = 0;
        for (const char *const *n = names; *n; n++) known |= strcmp(*n, it->string) == 0;
        if (known) continue;
        char m[128];
        snprintf(m, sizeof(m), "unknown field '%.*s'",
                 (int)utf8_cut(it->string, strlen(it->string), 48), it->string);
        *r = respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, m, it->string);
        cJSON_Delete(o);
        return NULL;
    }
    const cJSON *id = o && !msg ? jsonscan_member(o, "model") : NULL;
    if (id && !cJSON_IsString(id)) {
        cJSON_Delete(o);
        *r = respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, "model must be a string", "model");
        return NULL;
    }
    if (!msg && !(*m = models_get(id ? id->valuestring : NULL))) {
        *r = info_model_not_found(conn, rq, id->valuestring);
        cJSON_Delete(o);
        return NULL;
    }
    if (!msg) return o;
    cJSON_Delete(o);
    *r = respond_error(conn, rq, nomem ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_BAD_REQUEST, msg,
                       NULL);
    return NULL;
}

enum MHD_Result info_tokenize(struct MHD_Connection *conn, Request *rq) {
    // charlm has no special tokens, so llama.cpp's switches for them change nothing.
    static const char *const names[] = {"content", "add_special", "parse_special", "model", NULL};
    enum MHD_Result r = MHD_NO;
    ServedModel *m = NULL;
    cJSON *in = body_object(conn, rq, names, &m, &r);
    if (!in) return r;
    const cJSON *content = jsonscan_member(in, "content");
    if (!cJSON_IsString(content)) {
        cJSON_Delete(in), models_put(m);
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, "content must be a string", "content");
    }
    const char *s = content->valuestring;
    size_t len = strlen(s);
    char *unknown = malloc(len + 1);
    int *ids = malloc((len ? len : 1) * sizeof(int));
    if (!unknown || !ids) {
        free(unknown), free(ids);
        cJSON_Delete(in), models_put(m);
        return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    }
    size_t n = vocab_encode(&m->vocab, s, len, ids, NULL, unknown); // the body is valid UTF-8
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(tokens, cJSON_CreateNumber(ids[i]));
    free(ids);
    cJSON_AddStringToObject(o, "unknown_chars", unknown);
    free(unknown);
    cJSON_Delete(in), models_put(m);
    return respond_object(conn, rq, MHD_HTTP_OK, o);
}

enum MHD_Result info_detokenize(struct MHD_Connection *conn, Request *rq) {
    static const char *const names[] = {"tokens", "model", NULL};
    enum MHD_Result r = MHD_NO;
    ServedModel *m = NULL;
    cJSON *in = body_object(conn, rq, names, &m, &r);
    if (!in) return r;
    const cJSON *tokens = jsonscan_member(in, "tokens");
    if (!cJSON_IsArray(tokens)) {
        cJSON_Delete(in), models_put(m);
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, "tokens must be an array of token ids",
                             "tokens");
    }
    size_t n = (size_t)cJSON_GetArraySize(tokens);
    char *text = malloc(n * 4 + 1);
    int *ids = malloc((n ? n : 1) * sizeof(int));
    if (!text || !ids) {
        free(text), free(ids);
        cJSON_Delete(in), models_put(m);
        return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    }
    n = 0;
    for (const cJSON *t = tokens->child; t; t = t->next) {
        double v = cJSON_IsNumber(t) ? t->valuedouble : -1;
        if (!(v >= 0 && v < m->vocab.size && v == floor(v))) {
            char msg[96];
            snprintf(msg, sizeof(msg), "tokens must be integers from 0 to %d", m->vocab.size - 1);
            free(text), free(ids);
            cJSON_Delete(in);
            models_put(m);
            return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, msg, "tokens");
        }
        ids[n++] = (int)v;
    }
    vocab_decode(&m->vocab, ids, n, text);
    free(ids);
    cJSON_Delete(in), models_put(m);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", text);
    free(text);
    return respond_object(conn, rq, MHD_HTTP_OK, o);
}
