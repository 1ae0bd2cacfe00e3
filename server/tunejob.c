#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "server.h"
#include "tunejob.h"
#include "utf8.h"

pthread_mutex_t tunejob_mu = PTHREAD_MUTEX_INITIALIZER;
TuneJob *tunejob_list[TUNEJOB_MAX];
int tunejob_count;
void (*tunejob_on_event)(const TuneJob *j);
static char *jobs_dir, *models_dir;

void tunejob_log(const char *fmt, ...) {
    char raw[2 * ERR_LEN], line[4 * ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    utf8_escape(raw, strlen(raw), line, sizeof(line));
    fprintf(stderr, SERVER_NAME ": fine-tuning: %s\n", line);
}

void tunejob_hex(char *out, int n) {
    unsigned char b[32];
    if (getrandom(b, (size_t)(n + 1) / 2, 0) != (ssize_t)((n + 1) / 2))
        for (int i = 0; i < (n + 1) / 2; i++) b[i] = (unsigned char)rand();
    for (int i = 0; i < n; i++) out[i] = "0123456789abcdef"[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[n] = '\0';
}

const char *tunejob_status(const TuneJob *j) {
    return cJSON_GetObjectItemCaseSensitive(j->obj, "status")->valuestring;
}

int tunejob_is_final(const char *status) {
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "cancelled") == 0;
}

const char *tunejob_str(const TuneJob *j, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->run, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double tunejob_num(const TuneJob *j, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->run, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

void tunejob_set(cJSON *o, const char *name, cJSON *v) {
    if (!v) return;
    if (cJSON_GetObjectItemCaseSensitive(o, name))
        cJSON_ReplaceItemInObjectCaseSensitive(o, name, v);
    else
        cJSON_AddItemToObject(o, name, v);
}

void tunejob_set_num(cJSON *o, const char *name, double v) {
    tunejob_set(o, name, cJSON_CreateNumber(v));
}

void tunejob_set_str(cJSON *o, const char *name, const char *v) {
    tunejob_set(o, name, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

char *tunejob_path(const TuneJob *j, const char *name) {
    char *dir = path_join(jobs_dir, j->id);
    char *p = dir ? path_join(dir, name) : NULL;
    free(dir);
    return p;
}

char *tunejob_out_path(const TuneJob *j, const char *name) {
    char *dir = path_join(models_dir, tunejob_str(j, "model_name"));
    char *p = dir && name ? path_join(dir, name) : NULL;
    if (!name) return dir;
    free(dir);
    return p;
}

// job.json: the object and the run, written aside and renamed.
void tunejob_save(const TuneJob *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(o, "job", j->obj);
    cJSON_AddItemReferenceToObject(o, "run", j->run);
    cJSON_AddItemReferenceToObject(o, "checkpoints", j->checkpoints);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    char *path = tunejob_path(j, "job.json"), err[ERR_LEN];
    if (text && path) {
        const void *parts[] = {text};
        size_t lens[] = {strlen(text)};
        if (file_write_atomic(path, parts, lens, 1, err) != 0) tunejob_log("%s", err);
    } else {
        tunejob_log("%s: out of memory saving the job", j->id);
    }
    free(text);
    free(path);
}

/* Appends an event to j (memory, events.jsonl) and wakes its streams. With tunejob_mu held. */
void tunejob_event(TuneJob *j, const char *level, const char *type, const char *message,
                   cJSON *data) {
    char id[40] = "ftevent-";
    tunejob_hex(id + 8, 24);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "object", "fine_tuning.job.event");
    cJSON_AddStringToObject(e, "id", id);
    cJSON_AddNumberToObject(e, "created_at", (double)time(NULL));
    cJSON_AddStringToObject(e, "level", level);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddItemToObject(e, "data", data ? data : cJSON_CreateObject());
    cJSON_AddStringToObject(e, "type", type);
    char *text = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    if (!text) return;
    if (j->nevents == j->cap) {
        int cap = j->cap ? 2 * j->cap : 16;
        char **grown = realloc(j->events, sizeof(*grown) * (size_t)cap);
        if (!grown) {
            free(text);
            return;
        }
        j->events = grown;
        j->cap = cap;
    }
    j->events[j->nevents++] = text;
    char *path = tunejob_path(j, "events.jsonl");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (!f || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0)
        tunejob_log("%s: cannot log an event", j->id);
    free(path);
    if (tunejob_on_event) tunejob_on_event(j);
}

/* Moves j to status, with its event; a final state also sets finished_at and ends the
 * job's streams. With tunejob_mu held. */
void tunejob_status_set(TuneJob *j, const char *status, const char *message) {
    tunejob_set_str(j->obj, "status", status);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "status", status);
    if (tunejob_is_final(status)) {
        tunejob_set_num(j->obj, "finished_at", (double)time(NULL));
        tunejob_set(j->obj, "estimated_finish", cJSON_CreateNull());
    }
    tunejob_event(j, strcmp(status, "failed") == 0 ? "error" : "info", "message", message, data);
    j->ended = tunejob_is_final(status);
    tunejob_save(j);
}

void tunejob_fail(TuneJob *j, const char *code, const char *message) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddNullToObject(e, "param");
    tunejob_set(j->obj, "error", e);
    char msg[ERR_LEN + 32];
    snprintf(msg, sizeof(msg), "Fine-tuning job failed: %s", message);
    tunejob_status_set(j, "failed", msg);
}

TuneJob *tunejob_find(const char *id) {
    for (int i = 0; i < tunejob_count; i++)
        if (strcmp(tunejob_list[i]->id, id) == 0) return tunejob_list[i];
    return NULL;
}

void tunejob_free(TuneJob *j) {
    if (!j) return;
    cJSON_Delete(j->obj);
    cJSON_Delete(j->run);
    cJSON_Delete(j->checkpoints);
    for (int i = 0; i < j->nevents; i++) free(j->events[i]);
    free(j->events);
    free(j);
}

static int by_created(const void *a, const void *b) {
    const TuneJob *x = *(TuneJob *const *)a, *y = *(TuneJob *const *)b;
    double cx = cJSON_GetObjectItemCaseSensitive(x->obj, "created_at")->valuedouble;
    double cy = cJSON_GetObjectItemCaseSensitive(y->obj, "created_at")->valuedouble;
    return cx < cy ? -1 : cx > cy ? 1 : strcmp(x->id, y->id);
}

// A job folder as the previous server left it; NULL (and a log line) when unreadable.
static TuneJob *tunejob_load(const char *id) {
    TuneJob *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    snprintf(j->id, sizeof(j->id), "%s", id);
    j->best_val = INFINITY;
    char *p = tunejob_path(j, "job.json"), *text = NULL, err[ERR_LEN];
    size_t len;
    cJSON *root = NULL;
    if (p && file_read_all(p, 1 << 24, &text, &len, err) == 0)
        root = cJSON_ParseWithLength(text, len);
    free(text);
    free(p);
    cJSON *obj = cJSON_DetachItemFromObjectCaseSensitive(root, "job");
    cJSON *run = cJSON_DetachItemFromObjectCaseSensitive(root, "run");
    cJSON *ck = cJSON_DetachItemFromObjectCaseSensitive(root, "checkpoints");
    cJSON_Delete(root);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(obj, "status");
    if (!cJSON_IsObject(obj) || !cJSON_IsObject(run) || !cJSON_IsString(st) ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(obj, "created_at"))) {
        tunejob_log("jobs/%s/job.json is missing or broken; the job is left out", id);
        cJSON_Delete(obj), cJSON_Delete(run), cJSON_Delete(ck), free(j);
        return NULL;
    }
    j->obj = obj;
    j->run = run;
    j->checkpoints = cJSON_IsArray(ck) ? ck : (cJSON_Delete(ck), cJSON_CreateArray());
    j->ended = tunejob_is_final(st->valuestring);
    p = tunejob_path(j, "events.jsonl");
    if (p && file_read_all(p, 0, &text, &len, err) == 0) {
        for (size_t at = 0; at < len;) {
            const char *nl = memchr(text + at, '\n', len - at);
            size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
            cJSON *e = cJSON_ParseWithLength(text + at, n);
            if (e && j->nevents < (1 << 20)) {
                const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "data");
                const cJSON *s = cJSON_GetObjectItemCaseSensitive(d, "step");
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, "valid_loss");
                if (cJSON_IsNumber(s) && s->valuedouble > j->last_step)
                    j->last_step = (long)s->valuedouble;
                if (cJSON_IsNumber(v) && v->valuedouble < j->best_val) j->best_val = v->valuedouble;
                int cap = j->cap ? 2 * j->cap : 16;
                char **g =
                    j->nevents < j->cap ? j->events : realloc(j->events, sizeof(*g) * (size_t)cap);
                char *printed = g ? cJSON_PrintUnformatted(e) : NULL;
                if (g && g != j->events) j->events = g, j->cap = cap;
                if (printed) j->events[j->nevents++] = printed;
            }
            cJSON_Delete(e);
            at += n + 1;
        }
        free(text);
    }
    free(p);
    char *model = tunejob_out_path(j, "model.safetensors");
    struct stat file;
    if (model && stat(model, &file) == 0) j->seen = file.st_mtim;
    free(model);
    return j;
}

int tunejob_open(const char *dir, char *err) {
    jobs_dir = path_join(dir, "jobs");
    models_dir = path_join(dir, "models");
    if (!jobs_dir || !models_dir) return err_set(err, "out of memory");
    if (dir_ensure(jobs_dir, err) || dir_ensure(models_dir, err)) return -1;
    DIR *d = opendir(jobs_dir);
    if (!d) return err_set(err, "%s: %s", jobs_dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) && tunejob_count < TUNEJOB_MAX) {
        if (strncmp(e->d_name, "ftjob-", 6) != 0) continue;
        TuneJob *j = tunejob_load(e->d_name);
        if (j) tunejob_list[tunejob_count++] = j;
    }
    closedir(d);
    qsort(tunejob_list, (size_t)tunejob_count, sizeof(*tunejob_list), by_created);
    return 0;
}

const char *tunejob_models_dir(void) {
    return models_dir;
}

int tunejob_add(TuneJob *j, char *err) {
    char *dir = path_join(jobs_dir, j->id);
    int rc = dir ? dir_ensure(dir, err) : err_set(err, "out of memory");
    free(dir);
    if (rc) return -1;
    tunejob_list[tunejob_count++] = j;
    return 0;
}
