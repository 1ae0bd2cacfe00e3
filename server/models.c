#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "error.h"
#include "fileio.h"
#include "models.h"
#include "utf8.h"

// A folder to serve and the id it is served under, as named: err says why that name is
// no id (empty when it is one).
typedef struct {
    char *dir;
    char *id;
    char err[ERR_LEN];
} Source;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;        // guards the list
static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER; // one reload at a time
static ServedModel *list[MODELS_MAX];
static int nlist;
static ModelsConfig cfg; // models_start's, for every reload

static const char *const files[2] = {"model.safetensors", "vocab.json"};

// One line on stderr. It is made of ids and paths, which a folder's name can fill with any
// bytes, newlines included: the whole line is escaped, so none can pass for a line of its own.
static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...) {
    char raw[2 * ERR_LEN], line[4 * ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    utf8_escape(raw, strlen(raw), line, sizeof(line));
    fprintf(stderr, "%s: %s\n", cfg.log_name, line);
}

// The reload report is JSON: text in it must be UTF-8, whatever a folder's name holds.
static void add_text(cJSON *o, const char *name, const char *s) {
    char clean[3 * ERR_LEN];
    utf8_sanitize(s, strlen(s), clean, sizeof(clean));
    cJSON_AddStringToObject(o, name, clean);
}

static int stamp_read(const char *dir, FileStamp stamp[2]) {
    for (int i = 0; i < 2; i++) {
        char *p = path_join(dir, files[i]);
        struct stat st;
        int rc = p ? stat(p, &st) : -1;
        free(p);
        if (rc != 0) return -1;
        stamp[i] = (FileStamp){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    }
    return 0;
}

static int stamp_same(const FileStamp *a, const FileStamp *b) {
    for (int i = 0; i < 2; i++)
        if (a[i].dev != b[i].dev || a[i].ino != b[i].ino || a[i].size != b[i].size ||
            a[i].mtime.tv_sec != b[i].mtime.tv_sec || a[i].mtime.tv_nsec != b[i].mtime.tv_nsec)
            return 0;
    return 1;
}

// hooked: the loaded hook accepted m, so the dropped one releases what it attached.
static void served_free(ServedModel *m, int hooked) {
    if (hooked && cfg.hooks.dropped) cfg.hooks.dropped(m);
    arch_free(&m->model);
    vocab_free(&m->vocab);
    free(m->dir);
    free(m);
}

// Loads and checks a folder completely; NULL with err set when anything is wrong.
static ServedModel *served_load(const Source *s, char *err) {
    ServedModel *m = calloc(1, sizeof(*m));
    if (!m || !(m->dir = strdup(s->dir))) {
        free(m);
        err_set(err, "out of memory");
        return NULL;
    }
    snprintf(m->id, sizeof(m->id), "%s", s->id); // fits: sources_list checked it
    // The stamp first: a file replaced while it is read then only looks changed at the
    // next reload, never the other way round.
    if (stamp_read(m->dir, m->stamp) != 0) {
        err_set(err, "%s: no model.safetensors and vocab.json", m->dir);
        served_free(m, 0);
        return NULL;
    }
    if (artefacts_load(m->dir, &m->model, &m->vocab, &m->info, err) != 0) {
        served_free(m, 0);
        return NULL;
    }
    // The server only infers: the copy infer_prepare made is all a step reads.
    m->model.arch->drop_weights(&m->model);
    m->created = m->stamp[0].mtime.tv_sec;
    // Last: a model the hook accepts is then a model served.
    if (cfg.hooks.loaded && cfg.hooks.loaded(m, err) != 0) {
        served_free(m, 0);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    return m;
}

// A --model folder's name: the last part of its path once resolved, so that
// "./artefacts/" and "." give "artefacts" (a symlink given as --model, its target's).
static char *folder_name(const char *dir) {
    char *real = realpath(dir, NULL);
    const char *path = real ? real : dir;
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    char *name = end > start ? strndup(path + start, end - start) : strdup("charlm");
    free(real);
    return name;
}

// Whether a name can be an id (a client sends it back in `model`, replies and metrics show
// it): at most MODEL_ID_MAX - 1 bytes of UTF-8. A longer one is refused, not cut.
static void id_check(Source *s) {
    size_t len = strlen(s->id);
    if (len > MODEL_ID_MAX - 1)
        err_set(s->err, "%s: the model id '%s' is %zu bytes, more than %d", s->dir, s->id, len,
                MODEL_ID_MAX - 1);
    else if (utf8_find_invalid(s->id, len) >= 0)
        err_set(s->err, "%s: the model id '%s' is not UTF-8", s->dir, s->id);
    else
        s->err[0] = '\0';
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sources_free(Source *s, int n) {
    for (int i = 0; i < n; i++) free(s[i].dir), free(s[i].id);
}

// Adds dir's subfolders that hold a model, by name, after the n sources in out. A dir
// that may_lack may be missing (no model yet).
static int subfolders(const char *dir, int may_lack, Source *out, int *nout, char *err) {
    int n = *nout;
    DIR *d = opendir(dir);
    if (!d) {
        if (may_lack && errno == ENOENT) return 0;
        return err_set(err, "%s %s: %s", may_lack ? "--training-dir" : "--models", dir,
                       strerror(errno));
    }
    char *names[MODELS_MAX + 1];
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n + k <= MODELS_MAX) {
        if (e->d_name[0] == '.') continue;
        char *sub = path_join(dir, e->d_name);
        char *file = sub ? path_join(sub, files[0]) : NULL;
        int ok = file && path_is_dir(sub) && access(file, F_OK) == 0;
        free(file);
        if (ok)
            names[k++] = sub;
        else
            free(sub);
    }
    closedir(d);
    qsort(names, (size_t)k, sizeof(*names), by_name);
    // The entry's own name: a symlinked subfolder is served under the link's name.
    for (int i = 0; i < k; i++) {
        out[n].dir = names[i];
        out[n].id = strdup(strrchr(names[i], '/') + 1);
        if (!out[n++].id) {
            for (int j = i + 1; j < k; j++) free(names[j]);
            *nout = n;
            return err_set(err, "out of memory");
        }
    }
    *nout = n;
    if (n > MODELS_MAX) return err_set(err, "more than %d models to serve", MODELS_MAX);
    return 0;
}

// What the configuration names now: each --model folder, then --models' subfolders that
// hold a model, by name. Ids must be unique; a name that is no id has its err set.
static int sources_list(Source *out, int *nout, char *err) {
    const ModelsConfig *c = &cfg;
    int n = 0;
    for (int i = 0; i < c->dirs->n; i++) {
        out[n].dir = strdup(c->dirs->value[i]);
        out[n].id = i < c->ids->n ? strdup(c->ids->value[i]) : folder_name(out[n].dir);
        if (!out[n++].dir || !out[n - 1].id) goto oom;
    }
    for (int k = 0; k < 2; k++) {
        const char *dir = k ? c->jobs_dir : c->models_dir;
        if (dir && subfolders(dir, k, out, &n, err) != 0) {
            sources_free(out, n);
            return -1;
        }
    }
    for (int i = 0; i < n; i++) id_check(&out[i]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (!out[i].err[0] && strcmp(out[i].id, out[j].id) == 0) {
                err_set(err, "two models with the id '%s' (%s and %s): name them with --model-id",
                        out[i].id, out[j].dir, out[i].dir);
                sources_free(out, n);
                return -1;
            }
    *nout = n;
    return 0;
oom:
    sources_free(out, n);
    return err_set(err, "out of memory");
}

static int start_all(char *err) {
    if (cfg.ids->n > cfg.dirs->n)
        return err_set(err, "%d --model-id for %d --model", cfg.ids->n, cfg.dirs->n);
    Source src[MODELS_MAX + 1];
    int n;
    if (sources_list(src, &n, err) != 0) return -1;
    if (n == 0) {
        sources_free(src, n);
        return err_set(err, "--models %s: no subfolder holds a model.safetensors",
                       cfg.models_dir ? cfg.models_dir : "");
    }
    for (int i = 0; i < n; i++)
        if (src[i].err[0]) {
            memcpy(err, src[i].err, ERR_LEN);
            sources_free(src, n);
            return -2;
        }
    for (int i = 0; i < n; i++) {
        char why[ERR_LEN];
        ServedModel *m = served_load(&src[i], why);
        if (!m) {
            err_set(err, "cannot load the model from %s: %s", src[i].dir, why);
            sources_free(src, n);
            models_stop();
            return -1;
        }
        list[nlist++] = m;
    }
    sources_free(src, n);
    return 0;
}

int models_start(const ModelsConfig *config, char *err) {
    cfg = *config;
    char raw[ERR_LEN];
    int rc = start_all(raw);
    if (rc) utf8_escape(raw, strlen(raw), err, ERR_LEN);
    return rc;
}

void models_log(void) {
    ServedModel *all[MODELS_MAX];
    int n = models_all(all, MODELS_MAX);
    for (int i = 0; i < n; i++) {
        const Model *m = &all[i]->model;
        ArchField f[ARCH_MAX_FIELDS];
        int nf = m->arch->fields(m, f);
        char desc[ARCH_MAX_FIELDS * 48] = "";
        for (int j = 0, at = 0; j < nf && at < (int)sizeof desc; j++)
            at += f[j].text
                      ? snprintf(desc + at, sizeof desc - at, ", %s %s", f[j].name, f[j].text)
                      : snprintf(desc + at, sizeof desc - at, ", %s %ld", f[j].name, f[j].number);
        log_line("model %s: vocab %d, arch %s%s, %zu parameters, %zu bytes per stream, id %s",
                 all[i]->dir, m->vocab_size, m->arch->name, desc, m->num_params,
                 m->arch->state_bytes(m), all[i]->id);
        models_put(all[i]);
    }
}

void models_stop(void) {
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nlist; i++) models_put(list[i]);
    nlist = 0;
    pthread_mutex_unlock(&mu);
}

int models_count(void) {
    pthread_mutex_lock(&mu);
    int n = nlist;
    pthread_mutex_unlock(&mu);
    return n;
}

ServedModel *models_get(const char *id) {
    ServedModel *m = NULL;
    pthread_mutex_lock(&mu);
    if (nlist == 1 || (nlist > 0 && (!id || !id[0])))
        m = list[0];
    else
        for (int i = 0; i < nlist && !m; i++)
            if (strcmp(list[i]->id, id) == 0) m = list[i];
    if (m) atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&mu);
    return m;
}

void models_put(ServedModel *m) {
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) served_free(m, 1);
}

int models_all(ServedModel **out, int cap) {
    pthread_mutex_lock(&mu);
    int n = nlist < cap ? nlist : cap;
    for (int i = 0; i < n; i++) {
        out[i] = list[i];
        atomic_fetch_add(&out[i]->refs, 1);
    }
    pthread_mutex_unlock(&mu);
    return n;
}

void models_ids_text(char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nlist; i++) {
        // Whole ids only, and room kept for the ", ..." that says some are left out.
        size_t need = strlen(list[i]->id) + 4, rest = i + 1 < nlist ? 6 : 1;
        if (len + need + rest > cap) {
            if (len + 6 <= cap) strcpy(buf + len, ", ...");
            break;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s'%s'", i ? ", " : "", list[i]->id);
    }
    pthread_mutex_unlock(&mu);
}

char *models_reload(void) {
    pthread_mutex_lock(&reload_mu);
    cJSON *report = cJSON_CreateObject();
    cJSON *reloaded = cJSON_AddArrayToObject(report, "reloaded");
    cJSON *unchanged = cJSON_AddArrayToObject(report, "unchanged");
    cJSON *failed = cJSON_AddArrayToObject(report, "failed");
    Source src[MODELS_MAX + 1];
    int n;
    char err[ERR_LEN];
    if (sources_list(src, &n, err) != 0) {
        log_line("reload: %s; still serving the previous models", err);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNullToObject(f, "id");
        add_text(f, "error", err);
        cJSON_AddItemToArray(failed, f);
        n = 0;
        goto out;
    }
    ServedModel *next[MODELS_MAX];
    int nnext = 0;
    for (int i = 0; i < n; i++) {
        if (src[i].err[0]) {
            log_line("reload: %s; not served", src[i].err);
            cJSON *f = cJSON_CreateObject();
            add_text(f, "id", src[i].id);
            add_text(f, "error", src[i].err);
            cJSON_AddItemToArray(failed, f);
            continue;
        }
        // What serves this folder now (a reference of our own while we decide).
        ServedModel *old = NULL;
        pthread_mutex_lock(&mu);
        for (int k = 0; k < nlist && !old; k++)
            if (strcmp(list[k]->id, src[i].id) == 0 && strcmp(list[k]->dir, src[i].dir) == 0)
                old = list[k];
        if (old) atomic_fetch_add(&old->refs, 1);
        pthread_mutex_unlock(&mu);

        FileStamp now[2];
        if (old && stamp_read(src[i].dir, now) == 0 && stamp_same(now, old->stamp)) {
            cJSON_AddItemToArray(unchanged, cJSON_CreateString(src[i].id));
            next[nnext++] = old;
            continue;
        }
        ServedModel *m = served_load(&src[i], err);
        if (!m) {
            log_line("reload: %s: %s; %s", src[i].id, err,
                     old ? "still serving the previous model" : "not served");
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "id", src[i].id);
            add_text(f, "error", err);
            cJSON_AddItemToArray(failed, f);
            if (old) next[nnext++] = old;
            continue;
        }
        log_line("reload: %s: now step %ld, best_val_loss %.6f", m->id, m->info.steps,
                 m->info.best_val_loss);
        cJSON_AddItemToArray(reloaded, cJSON_CreateString(m->id));
        models_put(old);
        next[nnext++] = m;
    }
    // The swap: every reference next holds becomes the list's own; the list's old ones go.
    ServedModel *gone[MODELS_MAX];
    int ngone;
    pthread_mutex_lock(&mu);
    ngone = nlist;
    memcpy(gone, list, sizeof(*list) * (size_t)nlist);
    if (nnext > 0) {
        memcpy(list, next, sizeof(*next) * (size_t)nnext);
        nlist = nnext;
    } else {
        // Nothing left to serve (every folder gone or broken): keep what was there.
        ngone = 0;
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < ngone; i++) models_put(gone[i]);
out:
    sources_free(src, n);
    char *json = cJSON_PrintUnformatted(report);
    cJSON_Delete(report);
    pthread_mutex_unlock(&reload_mu);
    return json;
}
