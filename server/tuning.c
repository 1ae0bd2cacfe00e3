#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "error.h"
#include "fileio.h"
#include "models.h"
#include "train.h"
#include "tunejob.h"
#include "tunerun.h"
#include "tunestream.h"
#include "tuning.h"

int tuning_start(const TuningConfig *c, char *err) {
    if (tunejob_open(c->dir, err)) return -1;
    tunejob_on_event = tunestream_on_event;
    return tunerun_start(c->dir, c->trainer, c->threads, err);
}

const char *tuning_models_dir(void) {
    return tunejob_models_dir();
}

void tuning_begin_stop(void) {
    pthread_mutex_lock(&tunejob_mu);
    tunerun_begin_stop();
    tunestream_close_all();
    pthread_mutex_unlock(&tunejob_mu);
}

void tuning_stop(double seconds) {
    tuning_begin_stop();
    tunerun_stop(seconds);
}

struct MHD_Response *tuning_event_stream(const char *id, struct MHD_Connection *conn, int *status) {
    return tunestream_open(id, conn, status);
}

static int unfinished(void) {
    int n = 0;
    for (int i = 0; i < tunejob_count; i++) n += !tunejob_is_final(tunejob_status(tunejob_list[i]));
    return n;
}

cJSON *tuning_create(const TuneRequest *r, const char *arch, const char *init_dir, const char *base,
                     int init_seq, char *err, int *status) {
    *status = 400;
    int gpt = strcmp(arch, "gpt") == 0;
    pthread_mutex_lock(&tunejob_mu);
    int stopping = tunerun_stopping();
    if (tunejob_count >= TUNEJOB_MAX || stopping) {
        pthread_mutex_unlock(&tunejob_mu);
        *status = 503;
        return stopping ? (err_set(err, "the server is stopping"), NULL)
                        : (err_set(err, "the training dir holds %d jobs, the most it keeps",
                                   TUNEJOB_MAX),
                           NULL);
    }
    // Every job's model is served once it has one: the registry's room bounds the jobs.
    if (models_count() + unfinished() >= MODELS_MAX) {
        pthread_mutex_unlock(&tunejob_mu);
        err_set(err,
                "%d models are served or being trained, the most one server holds (%d); "
                "wait for a job to finish",
                models_count() + unfinished(), MODELS_MAX);
        *status = 429;
        return NULL;
    }
    TuneJob *j = calloc(1, sizeof(*j));
    if (!j) goto oom;
    strcpy(j->id, "ftjob-");
    tunejob_hex(j->id + 6, 24);
    j->best_val = INFINITY;
    char hex[9], name[MODEL_ID_MAX];
    tunejob_hex(hex, 8);
    // OpenAI's shape, ft:<base>:<org>:<suffix>:<id>; base and suffix are folder-safe.
    snprintf(name, sizeof(name), "ft:%s:charlm:%s:%s", base, r->suffix, hex);
    time_t now = time(NULL);
    uint64_t seed = r->has_seed ? r->seed : (uint64_t)(now & 0x7fffffff);
    int batch = r->batch_size ? r->batch_size : gpt ? TRAIN_GPT_BATCH : TRAIN_LSTM_BATCH;
    double mult = r->lr_mult > 0 ? r->lr_mult : 1;

    cJSON *o = j->obj = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "fine_tuning.job");
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddNumberToObject(o, "created_at", (double)now);
    cJSON_AddNullToObject(o, "finished_at");
    cJSON_AddNullToObject(o, "fine_tuned_model");
    cJSON_AddStringToObject(o, "organization_id", "charlm");
    cJSON_AddArrayToObject(o, "result_files");
    cJSON_AddStringToObject(o, "status", "validating_files");
    cJSON_AddStringToObject(o, "training_file", r->training_file);
    tunejob_set_str(o, "validation_file", r->validation_file[0] ? r->validation_file : NULL);
    cJSON *h = cJSON_AddObjectToObject(o, "hyperparameters");
    if (r->n_epochs > 0)
        cJSON_AddNumberToObject(h, "n_epochs", r->n_epochs);
    else
        cJSON_AddStringToObject(h, "n_epochs", "auto"); // worked out once the files are read
    cJSON_AddNumberToObject(h, "batch_size", batch);
    cJSON_AddNumberToObject(h, "learning_rate_multiplier", mult);
    if (r->steps)
        cJSON_AddNumberToObject(h, "steps", (double)r->steps);
    else
        cJSON_AddNullToObject(h, "steps");
    if (r->max_time > 0)
        cJSON_AddNumberToObject(h, "max_time", r->max_time);
    else
        cJSON_AddNullToObject(h, "max_time");
    cJSON_AddNullToObject(o, "trained_tokens");
    cJSON_AddNullToObject(o, "estimated_finish");
    cJSON_AddNullToObject(o, "error");
    cJSON_AddNumberToObject(o, "seed", (double)seed);
    tunejob_set_str(o, "suffix", r->suffix[0] ? r->suffix : NULL);
    tunejob_set_str(o, "user_provided_suffix", r->suffix[0] ? r->suffix : NULL);
    cJSON_AddArrayToObject(o, "integrations");
    cJSON_AddNullToObject(o, "metadata");
    cJSON *method = cJSON_AddObjectToObject(o, "method");
    cJSON_AddStringToObject(method, "type", "supervised");
    cJSON_AddStringToObject(o, "arch", arch);
    cJSON_AddNumberToObject(o, "step", 0);
    cJSON_AddNumberToObject(o, "total_steps", 0);
    cJSON_AddNullToObject(o, "tokens_per_s");
    cJSON_AddNullToObject(o, "best_val_loss");
    cJSON_AddNumberToObject(o, "skipped_chars", 0);

    cJSON *run = j->run = cJSON_CreateObject();
    cJSON_AddStringToObject(run, "arch", arch);
    if (init_dir) cJSON_AddStringToObject(run, "init", init_dir);
    cJSON_AddStringToObject(run, "model_name", name);
    cJSON_AddStringToObject(run, "training_file", r->training_file);
    if (r->validation_file[0]) cJSON_AddStringToObject(run, "validation_file", r->validation_file);
    cJSON_AddNumberToObject(run, "seed", (double)seed);
    cJSON_AddNumberToObject(run, "batch_size", batch);
    cJSON_AddNumberToObject(run, "seq",
                            init_seq ? init_seq
                            : gpt    ? TRAIN_GPT_BLOCK
                                     : TRAIN_LSTM_SEQ);
    cJSON_AddNumberToObject(run, "lr", mult * (gpt ? TRAIN_GPT_LR : TRAIN_LSTM_LR));
    cJSON_AddNumberToObject(run, "steps", (double)r->steps);
    cJSON_AddNumberToObject(run, "n_epochs", r->n_epochs);
    cJSON_AddNumberToObject(run, "max_time", r->max_time);
    cJSON_AddNumberToObject(run, "default_steps", gpt ? TRAIN_GPT_STEPS : TRAIN_LSTM_STEPS);
    j->checkpoints = cJSON_CreateArray();
    if (!j->checkpoints || tunejob_add(j, err) != 0) {
        tunejob_free(j);
        pthread_mutex_unlock(&tunejob_mu);
        *status = 507;
        return NULL;
    }
    tunejob_status_set(j, "validating_files", "Created fine-tuning job; validating its files");
    tunejob_log("%s: created, training %s from %s", j->id, name, r->training_file);
    cJSON *copy = cJSON_Duplicate(j->obj, 1);
    tunerun_wake();
    pthread_mutex_unlock(&tunejob_mu);
    return copy;
oom:
    pthread_mutex_unlock(&tunejob_mu);
    *status = 503;
    err_set(err, "out of memory");
    return NULL;
}

cJSON *tuning_get(const char *id) {
    pthread_mutex_lock(&tunejob_mu);
    TuneJob *j = tunejob_find(id);
    cJSON *o = j ? cJSON_Duplicate(j->obj, 1) : NULL;
    pthread_mutex_unlock(&tunejob_mu);
    return o;
}

/* A page of items newest first: `limit` of them after the one whose "id" is `after`. */
static cJSON *page(cJSON **items, int n, const char *after, int limit) {
    int start = n - 1;
    if (after)
        for (int i = n - 1; i >= 0; i--) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(items[i], "id");
            if (cJSON_IsString(id) && strcmp(id->valuestring, after) == 0) {
                start = i - 1;
                break;
            }
        }
    cJSON *list = cJSON_CreateObject();
    cJSON_AddStringToObject(list, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(list, "data");
    int k = 0;
    for (int i = start; i >= 0 && k < limit; i--, k++)
        cJSON_AddItemToArray(data, cJSON_Duplicate(items[i], 1));
    cJSON_AddBoolToObject(list, "has_more", start - k >= 0);
    return list;
}

cJSON *tuning_list(const char *after, int limit) {
    pthread_mutex_lock(&tunejob_mu);
    cJSON *objs[TUNEJOB_MAX];
    for (int i = 0; i < tunejob_count; i++) objs[i] = tunejob_list[i]->obj;
    cJSON *list = page(objs, tunejob_count, after, limit);
    pthread_mutex_unlock(&tunejob_mu);
    return list;
}

cJSON *tuning_events(const char *id, const char *after, int limit) {
    pthread_mutex_lock(&tunejob_mu);
    TuneJob *j = tunejob_find(id);
    cJSON *list = NULL;
    if (j) {
        cJSON **parsed = calloc((size_t)j->nevents + 1, sizeof(*parsed));
        for (int i = 0; parsed && i < j->nevents; i++) parsed[i] = cJSON_Parse(j->events[i]);
        list = parsed ? page(parsed, j->nevents, after, limit) : NULL;
        for (int i = 0; parsed && i < j->nevents; i++) cJSON_Delete(parsed[i]);
        free(parsed);
    }
    pthread_mutex_unlock(&tunejob_mu);
    return list;
}

cJSON *tuning_checkpoints(const char *id) {
    pthread_mutex_lock(&tunejob_mu);
    TuneJob *j = tunejob_find(id);
    cJSON *list = NULL;
    if (j) {
        int n = cJSON_GetArraySize(j->checkpoints);
        cJSON *items[1];
        items[0] = n ? cJSON_GetArrayItem(j->checkpoints, n - 1) : NULL;
        list = page(items, n ? 1 : 0, NULL, 1);
    }
    pthread_mutex_unlock(&tunejob_mu);
    return list;
}

cJSON *tuning_cancel(const char *id, int *status, char *err) {
    pthread_mutex_lock(&tunejob_mu);
    TuneJob *j = tunejob_find(id);
    cJSON *o = NULL;
    if (!j) {
        *status = 404;
        err_set(err, "no such fine-tuning job");
    } else if (tunejob_is_final(tunejob_status(j))) {
        *status = 400;
        err_set(err, "the job has already %s", tunejob_status(j));
    } else {
        if (tunerun_cancel(j)) {
            tunejob_set_str(j->obj, "status", "cancelled");
            tunejob_save(j);
        } else {
            tunejob_status_set(j, "cancelled", "Fine-tuning job cancelled");
        }
        o = cJSON_Duplicate(j->obj, 1);
    }
    pthread_mutex_unlock(&tunejob_mu);
    return o;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int tuning_delete_model(const char *id, int *status, char *err) {
    *status = 404;
    if (!id[0] || id[0] == '.' || strchr(id, '/') || strlen(id) >= MODEL_ID_MAX)
        return err_set(err, "no fine-tuned model with that id in the training dir");
    const char *models_dir = tunejob_models_dir();
    char *dir = path_join(models_dir, id), hex[9], aside[MODEL_ID_MAX + 32];
    tunejob_hex(hex, 8);
    snprintf(aside, sizeof(aside), ".deleted-%s", hex);
    char *gone = path_join(models_dir, aside);
    int rc = -1;
    pthread_mutex_lock(&tunejob_mu);
    if (!dir || !gone) {
        *status = 503;
        err_set(err, "out of memory");
    } else if (!path_is_dir(dir)) {
        err_set(err, "no fine-tuned model with that id in the training dir");
    } else {
        const char *busy = NULL;
        for (int i = 0; i < tunejob_count && !busy; i++)
            if (!tunejob_is_final(tunejob_status(tunejob_list[i])) &&
                strcmp(tunejob_str(tunejob_list[i], "model_name"), id) == 0)
                busy = tunejob_list[i]->id;
        if (busy) {
            *status = 400;
            err_set(err, "the job %s is still training this model: cancel it first", busy);
        } else if (rename(dir, gone) != 0) {
            *status = 500;
            err_set(err, "cannot remove the model's folder: %s", strerror(errno));
        } else {
            rc = 0;
        }
    }
    pthread_mutex_unlock(&tunejob_mu);
    if (rc == 0) {
        // Out of the listing at once (a dot name is never served); requests that hold the
        // model finish on it, and the registry frees it when the last lets go.
        free(models_reload());
        if (nftw(gone, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            tunejob_log("%s: not all of it could be removed", gone);
        tunejob_log("model %s deleted", id);
    }
    free(dir);
    free(gone);
    return rc;
}
