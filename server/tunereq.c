#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tunereq.h"

typedef struct {
    char *err;
    size_t cap;
    const char **param;
} Why;

static int refuse(Why *w, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, w->cap, fmt, ap);
    va_end(ap);
    *w->param = param;
    return -1;
}

// A file id as a string that fits; its existence is the caller's to check.
static int file_field(const cJSON *o, const char *name, int required, char *out, Why *w) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) {
        out[0] = '\0';
        return required ? refuse(w, name, "%s is required: the id POST /v1/files gave", name) : 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= TUNEREQ_FILE_ID_MAX)
        return refuse(w, name, "%s must be a file id (\"file-...\")", name);
    strcpy(out, v->valuestring);
    return 0;
}

/* A hyperparameter: absent or "auto" leaves *out 0; else a number in [lo, hi], a whole
 * one when whole. */
static int hyper_number(const cJSON *h, const char *name, double lo, double hi, int whole,
                        int auto_ok, double *out, Why *w) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, name);
    *out = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (auto_ok && cJSON_IsString(v) && strcmp(v->valuestring, "auto") == 0) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi || (whole && v->valuedouble != floor(v->valuedouble)))
        return refuse(w, name, "hyperparameters.%s must be %s%s from %.10g to %.10g", name,
                      auto_ok ? "\"auto\" or " : "", whole ? "a whole number" : "a number", lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int suffix_ok(const char *s) {
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *s))
            return 0;
    return 1;
}

static int parse(const cJSON *o, TuneRequest *r, Why *w) {
    if (!cJSON_IsObject(o)) return refuse(w, NULL, "the body must be a JSON object");
    if (file_field(o, "training_file", 1, r->training_file, w)) return -1;
    if (file_field(o, "validation_file", 0, r->validation_file, w)) return -1;

    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (!cJSON_IsString(m) || !m->valuestring[0] || strlen(m->valuestring) >= TUNEREQ_MODEL_MAX)
        return refuse(w, "model",
                      "model is required: \"lstm\" or \"gpt\" to train from scratch, or a "
                      "served model's id to go on from its weights");
    strcpy(r->model, m->valuestring);

    const cJSON *method = cJSON_GetObjectItemCaseSensitive(o, "method");
    if (method && !cJSON_IsNull(method)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(method, "type");
        if (!cJSON_IsObject(method) ||
            (t && (!cJSON_IsString(t) || strcmp(t->valuestring, "supervised") != 0)))
            return refuse(w, "method",
                          "method.type must be \"supervised\": a character "
                          "model learns its text, nothing else");
        // OpenAI may send the hyperparameters inside the method instead.
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(method, "supervised");
        const cJSON *mh = s ? cJSON_GetObjectItemCaseSensitive(s, "hyperparameters") : NULL;
        if (mh && !cJSON_GetObjectItemCaseSensitive(o, "hyperparameters"))
            o = s; // only read below for them
    }

    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hyperparameters");
    if (h && !cJSON_IsNull(h) && !cJSON_IsObject(h))
        return refuse(w, "hyperparameters", "hyperparameters must be an object");
    double v;
    if (hyper_number(h, "n_epochs", 1e-3, TUNEREQ_EPOCHS_MAX, 0, 1, &r->n_epochs, w)) return -1;
    if (hyper_number(h, "steps", 1, TUNEREQ_STEPS_MAX, 1, 0, &v, w)) return -1;
    r->steps = (long)v;
    if (hyper_number(h, "batch_size", 1, TUNEREQ_BATCH_MAX, 1, 1, &v, w)) return -1;
    r->batch_size = (int)v;
    if (hyper_number(h, "learning_rate_multiplier", 1e-4, TUNEREQ_LR_MULT_MAX, 0, 1, &r->lr_mult,
                     w))
        return -1;
    if (hyper_number(h, "max_time", 1, TUNEREQ_TIME_MAX, 0, 0, &r->max_time, w)) return -1;
    if (r->steps && r->n_epochs)
        return refuse(w, "steps", "give hyperparameters.steps or n_epochs, not both");

    return 0;
}

int tunereq_parse(const char *body, size_t len, TuneRequest *r, char *err, size_t cap,
                  const char **param) {
    Why w = {err, cap, param};
    memset(r, 0, sizeof(*r));
    *param = NULL;
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return refuse(&w, NULL, "the body is not valid JSON");
    int rc = parse(root, r, &w);
    if (rc == 0) {
        const cJSON *sfx = cJSON_GetObjectItemCaseSensitive(root, "suffix");
        if (sfx && !cJSON_IsNull(sfx)) {
            if (!cJSON_IsString(sfx) || strlen(sfx->valuestring) > TUNEREQ_SUFFIX_MAX ||
                !suffix_ok(sfx->valuestring))
                rc = refuse(&w, "suffix", "suffix must be at most %d of A-Z a-z 0-9 . _ -",
                            TUNEREQ_SUFFIX_MAX);
            else
                strcpy(r->suffix, sfx->valuestring);
        }
    }
    if (rc == 0) {
        const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
        if (seed && !cJSON_IsNull(seed)) {
            if (!cJSON_IsNumber(seed) || seed->valuedouble < 0 ||
                seed->valuedouble > 2147483647.0 || seed->valuedouble != floor(seed->valuedouble))
                rc = refuse(&w, "seed", "seed must be a whole number from 0 to 2147483647");
            else {
                r->has_seed = 1;
                r->seed = (uint64_t)seed->valuedouble;
            }
        }
    }
    cJSON_Delete(root);
    return rc;
}
