#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "fileio.h"
#include "filestore.h"
#include "models.h"
#include "server.h"
#include "textcheck.h"
#include "train.h"
#include "trainproc.h"
#include "tuning.h"
#include "utf8.h"

// Jobs one training dir keeps: each is a few small files and, finished, a served model.
#define JOBS_MAX 256
// How often the runner looks at a running child's log, and wakes idle event streams with
// a comment line (which also finds streams whose client has left).
#define POLL_NS          (250 * 1000 * 1000L)
#define KEEPALIVE_S      15
#define SAMPLE_CHARS     160
#define EVALS_PER_RUN    50  // a run with a known length validates about this often
#define EVAL_SECONDS_MIN 0.5 // the most often a run sized by max_time alone validates

typedef struct Stream Stream;

typedef struct {
    char id[40];
    cJSON *obj;           // the job object clients see
    cJSON *run;           // what the runner needs: paths, sizes, the trainer's flags
    cJSON *checkpoints;   // [checkpoint objects], oldest first
    char **events;        // [nevents] printed event objects, oldest first
    int nevents, cap;     // of events
    int ended;            // its last event (a final state) is appended
    int cancel;           // cancel asked while its child runs
    long last_step;       // the last log row turned into an event
    double best_val;      // the best validation loss among those rows
    struct timespec seen; // model.safetensors' mtime when last reloaded
} TuneJob;

struct Stream {
    TuneJob *job;
    struct MHD_Connection *conn;
    int next;       // the next event to send
    int done_sent;  // "data: [DONE]" is queued
    int parked;     // suspended, on the waiting list
    int ping;       // send a keepalive comment
    Buf out;        // bytes queued and not yet read by libmicrohttpd
    size_t out_at;  // of out, already read
    Stream *next_s; // the list of open streams
};

static TuningConfig cfg;
static char *jobs_dir, *models_dir;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static TuneJob *jobs[JOBS_MAX]; // oldest first
static int njobs;
static Stream *streams;
static pthread_t runner;
static int runner_started, stopping, closing;
static TuneJob *running; // the job whose child runs
static pid_t child;

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_msg(const char *fmt, ...) {
    char raw[2 * ERR_LEN], line[4 * ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    utf8_escape(raw, strlen(raw), line, sizeof(line));
    fprintf(stderr, SERVER_NAME ": fine-tuning: %s\n", line);
}

static void random_hex(char *out, int n) {
    unsigned char b[32];
    if (getrandom(b, (size_t)(n + 1) / 2, 0) != (ssize_t)((n + 1) / 2))
        for (int i = 0; i < (n + 1) / 2; i++) b[i] = (unsigned char)rand();
    for (int i = 0; i < n; i++) out[i] = "0123456789abcdef"[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[n] = '\0';
}

static const char *status_of(const TuneJob *j) {
    return cJSON_GetObjectItemCaseSensitive(j->obj, "status")->valuestring;
}

static int is_final(const char *status) {
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "cancelled") == 0;
}

static const char *run_str(const TuneJob *j, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->run, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double run_num(const TuneJob *j, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->run, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void set_item(cJSON *o, const char *name, cJSON *v) {
    if (!v) return;
    if (cJSON_GetObjectItemCaseSensitive(o, name))
        cJSON_ReplaceItemInObjectCaseSensitive(o, name, v);
    else
        cJSON_AddItemToObject(o, name, v);
}

static void set_num(cJSON *o, const char *name, double v) {
    set_item(o, name, cJSON_CreateNumber(v));
}

static void set_str(cJSON *o, const char *name, const char *v) {
    set_item(o, name, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

static char *job_path(const TuneJob *j, const char *name) {
    char *dir = path_join(jobs_dir, j->id);
    char *p = dir ? path_join(dir, name) : NULL;
    free(dir);
    return p;
}

static char *out_path(const TuneJob *j, const char *name) {
    char *dir = path_join(models_dir, run_str(j, "model_name"));
    char *p = dir && name ? path_join(dir, name) : NULL;
    if (!name) return dir;
    free(dir);
    return p;
}

// job.json: the object and the run, written aside and renamed.
static void job_save(const TuneJob *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(o, "job", j->obj);
    cJSON_AddItemReferenceToObject(o, "run", j->run);
    cJSON_AddItemReferenceToObject(o, "checkpoints", j->checkpoints);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    char *path = job_path(j, "job.json"), err[ERR_LEN];
    if (text && path) {
        const void *parts[] = {text};
        size_t lens[] = {strlen(text)};
        if (file_write_atomic(path, parts, lens, 1, err) != 0) log_msg("%s", err);
    } else {
        log_msg("%s: out of memory saving the job", j->id);
    }
    free(text);
    free(path);
}

// Wakes every parked stream of j (all of them when j is NULL). With mu held.
static void streams_wake(const TuneJob *j, int ping) {
    for (Stream *s = streams; s; s = s->next_s) {
        if (j && s->job != j) continue;
        s->ping |= ping;
        if (s->parked) {
            s->parked = 0;
            MHD_resume_connection(s->conn);
        }
    }
}

/* Appends an event to j (memory, events.jsonl) and wakes its streams. With mu held. */
static void event_add(TuneJob *j, const char *level, const char *type, const char *message,
                      cJSON *data) {
    char id[40] = "ftevent-";
    random_hex(id + 8, 24);
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
    char *path = job_path(j, "events.jsonl");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (!f || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0)
        log_msg("%s: cannot log an event", j->id);
    free(path);
    streams_wake(j, 0);
}

/* Moves j to status, with its event; a final state also sets finished_at and ends the
 * job's streams. With mu held. */
static void status_set(TuneJob *j, const char *status, const char *message) {
    set_str(j->obj, "status", status);
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "status", status);
    if (is_final(status)) {
        set_num(j->obj, "finished_at", (double)time(NULL));
        set_item(j->obj, "estimated_finish", cJSON_CreateNull());
    }
    event_add(j, strcmp(status, "failed") == 0 ? "error" : "info", "message", message, data);
    j->ended = is_final(status);
    job_save(j);
}

static void fail(TuneJob *j, const char *code, const char *message) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddNullToObject(e, "param");
    set_item(j->obj, "error", e);
    char msg[ERR_LEN + 32];
    snprintf(msg, sizeof(msg), "Fine-tuning job failed: %s", message);
    status_set(j, "failed", msg);
}

static TuneJob *find(const char *id) {
    for (int i = 0; i < njobs; i++)
        if (strcmp(jobs[i]->id, id) == 0) return jobs[i];
    return NULL;
}

/* ---- the training text ---- */

// The text of an upload: a plain text as it is, JSON lines as their "text" members, one
// after the other, each ending in a newline. The upload was checked when it was stored.
static int upload_text(const char *file_id, Buf *out, char *err) {
    char *files = path_join(cfg.dir, "files");
    char *path = files ? path_join(files, file_id) : NULL;
    free(files);
    char *data = NULL;
    size_t len = 0;
    int rc = path ? file_read_all(path, 0, &data, &len, err) : err_set(err, "out of memory");
    free(path);
    if (rc) return err_set(err, "%s is gone: it was deleted after the job was made", file_id);
    cJSON *meta = filestore_get(file_id);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "filename");
    // Read as it was checked when it came: the same rule says whether it is JSON lines.
    TextCheck check;
    textcheck_begin(&check, cJSON_IsString(name) ? name->valuestring : NULL);
    textcheck_feed(&check, data, len);
    int jsonl = textcheck_is_jsonl(&check);
    textcheck_free(&check);
    cJSON_Delete(meta);
    if (!jsonl) {
        buf_add(out, data, len);
    } else {
        for (size_t at = 0; at < len;) {
            const char *nl = memchr(data + at, '\n', len - at);
            size_t n = nl ? (size_t)(nl - (data + at)) : len - at;
            cJSON *o = cJSON_ParseWithLength(data + at, n);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
            if (cJSON_IsString(t)) {
                buf_adds(out, t->valuestring);
                buf_adds(out, "\n");
            }
            cJSON_Delete(o);
            at += n + 1;
        }
    }
    free(data);
    return out->failed ? err_set(err, "out of memory") : 0;
}

/* validating_files: writes train.txt and sizes the run. Without mu (the job's files are
 * the runner's alone in this state); returns 0 or -1 with err. */
static int validate(TuneJob *j, char *err) {
    Buf text = {0};
    if (upload_text(run_str(j, "training_file"), &text, err)) return -1;
    size_t train_chars = utf8_count(text.s, text.len), val_chars = 0;
    const char *val_file = run_str(j, "validation_file");
    if (val_file) {
        size_t before = text.len;
        if (upload_text(val_file, &text, err)) {
            buf_free(&text);
            return -1;
        }
        val_chars = utf8_count(text.s + before, text.len - before);
    }
    double val_frac = 0.1;
    if (val_chars) {
        // The trainer holds out the last floor(n * F) chars: exactly the validation file's.
        double n = (double)(train_chars + val_chars);
        val_frac = ((double)val_chars + 0.5) / n;
        if (val_frac >= 1) val_frac = (double)val_chars / n;
    }
    char *path = job_path(j, "train.txt");
    const void *parts[] = {text.s ? text.s : ""};
    size_t lens[] = {text.len};
    int rc = path ? file_write_atomic(path, parts, lens, 1, err) : err_set(err, "out of memory");
    free(path);
    buf_free(&text);
    if (rc) return -1;

    // Steps: given, from epochs of the training part, or the trainer's default; a budget
    // alone lets time end the run.
    double batch = run_num(j, "batch_size"), seq = run_num(j, "seq");
    double n_train = val_chars ? (double)train_chars : (double)train_chars * (1 - val_frac);
    double per_step = batch * seq, steps = run_num(j, "steps"), epochs = run_num(j, "n_epochs");
    double max_time = run_num(j, "max_time"), eval_every, eval_seconds = 0;
    if (steps == 0 && epochs > 0) steps = ceil(epochs * n_train / per_step);
    if (steps == 0 && max_time > 0) {
        // Its speed unknown, a run sized by time alone validates by time.
        steps = eval_every = TUNEREQ_STEPS_MAX;
        eval_seconds = fmax(EVAL_SECONDS_MIN, max_time / EVALS_PER_RUN);
    } else {
        if (steps == 0) steps = run_num(j, "default_steps");
        eval_every = fmax(1, floor(steps / EVALS_PER_RUN));
    }
    pthread_mutex_lock(&mu);
    set_num(j->run, "steps", steps);
    set_num(j->run, "eval_every", eval_every);
    set_num(j->run, "eval_seconds", eval_seconds);
    set_num(j->run, "val_frac", val_frac);
    cJSON *h = cJSON_GetObjectItemCaseSensitive(j->obj, "hyperparameters");
    set_num(j->run, "n_train", n_train);
    // A run sized by time: its passes over the text are counted as it goes (follow).
    if (steps < TUNEREQ_STEPS_MAX)
        set_num(h, "n_epochs", round(steps * per_step / fmax(n_train, 1) * 100) / 100);
    if (steps < TUNEREQ_STEPS_MAX) set_num(h, "steps", steps);
    set_num(j->obj, "total_steps", steps < TUNEREQ_STEPS_MAX ? steps : 0);
    pthread_mutex_unlock(&mu);
    return 0;
}

/* ---- the child ---- */

#define ARGV_MAX 40

// The trainer's command line; strings in store (each up to 64 bytes). With mu held.
static int build_argv(const TuneJob *j, int resume, char **argv, char store[][64], char **paths) {
    int n = 0, k = 0;
#define ARG(s)      (argv[n++] = (char *)(s))
#define NUM(fmt, v) (snprintf(store[k], 64, fmt, v), argv[n++] = store[k++])
    ARG(cfg.trainer);
    ARG("train");
    paths[0] = job_path(j, "train.txt");
    paths[1] = out_path(j, NULL);
    ARG("--corpus");
    ARG(paths[0]);
    ARG("--out");
    ARG(paths[1]);
    if (run_str(j, "init")) {
        ARG("--init");
        ARG(run_str(j, "init"));
    } else {
        ARG("--arch");
        ARG(run_str(j, "arch"));
    }
    ARG("--threads");
    NUM("%d", cfg.threads);
    ARG("--seed");
    NUM("%.0f", run_num(j, "seed"));
    ARG("--steps");
    NUM("%.0f", run_num(j, "steps"));
    ARG("--batch");
    NUM("%.0f", run_num(j, "batch_size"));
    ARG("--lr");
    NUM("%.9g", run_num(j, "lr"));
    ARG("--val-frac");
    NUM("%.17g", run_num(j, "val_frac"));
    ARG("--eval-every");
    NUM("%.0f", run_num(j, "eval_every"));
    ARG("--sample-chars");
    NUM("%d", SAMPLE_CHARS);
    if (run_num(j, "max_time") > 0) {
        ARG("--max-time");
        NUM("%.3f", run_num(j, "max_time"));
    }
    if (run_num(j, "eval_seconds") > 0) {
        ARG("--eval-seconds");
        NUM("%.3f", run_num(j, "eval_seconds"));
    }
    if (resume) ARG("--resume");
    argv[n] = NULL;
#undef ARG
#undef NUM
    return paths[0] && paths[1] ? 0 : -1;
}

static int checkpoint_exists(const TuneJob *j) {
    char *p = out_path(j, "checkpoint.safetensors");
    int ok = p && access(p, F_OK) == 0;
    free(p);
    return ok;
}

// Starts j's child, resuming from its checkpoint when it has one. With mu held.
static void start(TuneJob *j) {
    int resume = checkpoint_exists(j);
    char *argv[ARGV_MAX], store[16][64], *paths[2] = {NULL, NULL};
    char *lock = job_path(j, "lock"), *out = job_path(j, "trainer.out");
    char *log = job_path(j, "trainer.log"), err[ERR_LEN];
    if (build_argv(j, resume, argv, store, paths) == 0 && lock && out && log) {
        pid_t pid = trainproc_spawn(argv, out, log, lock, err);
        if (pid > 0) {
            child = pid;
            running = j;
            const char *was = status_of(j);
            int again = strcmp(was, "running") == 0;
            char msg[128];
            snprintf(msg, sizeof(msg), "%s (charlm-train, pid %d%s)",
                     again ? "Fine-tuning job resumed" : "Fine-tuning job started", (int)pid,
                     resume ? ", from its checkpoint" : "");
            log_msg("%s: %s", j->id, msg);
            if (again) {
                event_add(j, "info", "message", msg, NULL);
                job_save(j);
            } else {
                status_set(j, "running", msg);
            }
        } else {
            fail(j, "server_error", err);
        }
    } else {
        fail(j, "server_error", "out of memory");
    }
    free(paths[0]);
    free(paths[1]);
    free(lock);
    free(out);
    free(log);
}

static int stamp_of(const char *path, struct timespec *t) {
    struct stat st;
    if (!path || stat(path, &st) != 0) return -1;
    *t = st.st_mtim;
    return 0;
}

/* New log rows of the running job, as events; returns 1 when its model file changed (so
 * the registry must reload). With mu held: the files are read under it, and are small. */
static int follow(TuneJob *j) {
    char *names[] = {"train_log.jsonl.new", "train_log.jsonl"};
    char *text = NULL;
    size_t len = 0;
    for (int i = 0; i < 2 && !text; i++) {
        char *p = out_path(j, names[i]), err[ERR_LEN];
        if (p && access(p, F_OK) == 0 && file_read_all(p, 0, &text, &len, err) != 0) text = NULL;
        free(p);
    }
    double batch = run_num(j, "batch_size"), seq = run_num(j, "seq");
    double total = run_num(j, "steps"), max_time = run_num(j, "max_time");
    for (size_t at = 0; text && at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break; // a row still being written
        cJSON *row = cJSON_ParseWithLength(text + at, (size_t)(nl - (text + at)));
        at = (size_t)(nl - text) + 1;
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(row, "step");
        if (!cJSON_IsNumber(step) || step->valuedouble <= j->last_step) {
            cJSON_Delete(row);
            continue;
        }
        long s = (long)step->valuedouble;
        j->last_step = s;
        double tl = cJSON_GetObjectItemCaseSensitive(row, "train_loss")->valuedouble;
        double vl = cJSON_GetObjectItemCaseSensitive(row, "val_loss")->valuedouble;
        const cJSON *tps = cJSON_GetObjectItemCaseSensitive(row, "tokens_per_s");
        const cJSON *el = cJSON_GetObjectItemCaseSensitive(row, "elapsed_s");
        const cJSON *sample = cJSON_GetObjectItemCaseSensitive(row, "sample");
        int best = vl < j->best_val;
        if (best) j->best_val = vl;
        cJSON *data = cJSON_CreateObject();
        cJSON_AddNumberToObject(data, "step", (double)s);
        cJSON_AddNumberToObject(data, "total_steps", total < TUNEREQ_STEPS_MAX ? total : 0);
        cJSON_AddNumberToObject(data, "train_loss", tl);
        cJSON_AddNumberToObject(data, "valid_loss", vl);
        cJSON_AddNumberToObject(data, "tokens_per_s", cJSON_IsNumber(tps) ? tps->valuedouble : 0);
        cJSON_AddNumberToObject(data, "elapsed_s", cJSON_IsNumber(el) ? el->valuedouble : 0);
        cJSON_AddNumberToObject(data, "trained_tokens", (double)s * batch * seq);
        cJSON_AddBoolToObject(data, "best", best);
        if (cJSON_IsString(sample)) cJSON_AddStringToObject(data, "sample", sample->valuestring);
        char msg[160];
        if (total < TUNEREQ_STEPS_MAX)
            snprintf(msg, sizeof(msg), "Step %ld/%.0f: training loss=%.4f, validation loss=%.4f", s,
                     total, tl, vl);
        else
            snprintf(msg, sizeof(msg), "Step %ld: training loss=%.4f, validation loss=%.4f", s, tl,
                     vl);
        event_add(j, "info", "metrics", msg, data);

        set_num(j->obj, "trained_tokens", (double)s * batch * seq);
        if (total >= TUNEREQ_STEPS_MAX)
            set_num(cJSON_GetObjectItemCaseSensitive(j->obj, "hyperparameters"), "n_epochs",
                    round((double)s * batch * seq / fmax(run_num(j, "n_train"), 1) * 100) / 100);
        set_num(j->obj, "step", (double)s);
        if (cJSON_IsNumber(tps)) set_num(j->obj, "tokens_per_s", tps->valuedouble);
        set_num(j->obj, "best_val_loss", j->best_val);
        // When it will end: the budget's end, or the steps left at this run's pace.
        double elapsed = cJSON_IsNumber(el) ? el->valuedouble : 0, left = -1;
        if (max_time > 0) left = fmax(0, max_time - elapsed);
        if (total < TUNEREQ_STEPS_MAX && elapsed > 0 && s > 0) {
            double by_steps = (total - s) * elapsed / s;
            left = left < 0 ? by_steps : fmin(left, by_steps);
        }
        if (left >= 0) set_num(j->obj, "estimated_finish", (double)time(NULL) + ceil(left));
        if (best) {
            cJSON *c = cJSON_CreateObject();
            char id[40] = "ftckpt-";
            random_hex(id + 7, 24);
            cJSON_AddStringToObject(c, "object", "fine_tuning.job.checkpoint");
            cJSON_AddStringToObject(c, "id", id);
            cJSON_AddNumberToObject(c, "created_at", (double)time(NULL));
            cJSON_AddStringToObject(c, "fine_tuned_model_checkpoint", run_str(j, "model_name"));
            cJSON_AddNumberToObject(c, "step_number", (double)s);
            cJSON *m = cJSON_AddObjectToObject(c, "metrics");
            cJSON_AddNumberToObject(m, "step", (double)s);
            cJSON_AddNumberToObject(m, "train_loss", tl);
            cJSON_AddNumberToObject(m, "valid_loss", vl);
            cJSON_AddStringToObject(c, "fine_tuning_job_id", j->id);
            // Only the best model is kept: the earlier ones were replaced by it.
            cJSON_DeleteItemFromArray(j->checkpoints, 0);
            cJSON_AddItemToArray(j->checkpoints, c);
        }
        cJSON_Delete(row);
        job_save(j);
    }
    free(text);
    struct timespec t;
    char *model = out_path(j, "model.safetensors");
    int changed =
        stamp_of(model, &t) == 0 && (t.tv_sec != j->seen.tv_sec || t.tv_nsec != j->seen.tv_nsec);
    if (changed) j->seen = t;
    free(model);
    return changed;
}

// The last line the trainer wrote on stderr, without its program name: why it failed.
static void last_line(const TuneJob *j, char *out, size_t cap) {
    char *p = job_path(j, "trainer.log"), *text = NULL, err[ERR_LEN];
    size_t len = 0;
    snprintf(out, cap, "the trainer stopped without saying why");
    if (p && file_read_all(p, 0, &text, &len, err) == 0) {
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
        size_t start = len;
        while (start && text[start - 1] != '\n') start--;
        const char *line = text + start;
        size_t n = len - start;
        if (n > 14 && strncmp(line, "charlm-train: ", 14) == 0) line += 14, n -= 14;
        if (n) snprintf(out, cap, "%.*s", (int)n, line);
    }
    free(text);
    free(p);
}

/* The trainer's summary line (trainer.out): the chars of the text the model's vocabulary
 * lacks, which a job going on from a served model skipped. With mu held. */
static void summary_read(TuneJob *j) {
    char *p = job_path(j, "trainer.out"), *text = NULL, err[ERR_LEN];
    size_t len;
    cJSON *sum = NULL;
    if (p && file_read_all(p, 1 << 16, &text, &len, err) == 0)
        sum = cJSON_ParseWithLength(text, len);
    const cJSON *skipped = cJSON_GetObjectItemCaseSensitive(sum, "skipped");
    if (cJSON_IsNumber(skipped)) {
        set_num(j->obj, "skipped_chars", skipped->valuedouble);
        if (skipped->valuedouble > 0) {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "%.0f chars of the text are not in the vocabulary of %s and were skipped",
                     skipped->valuedouble,
                     cJSON_GetObjectItemCaseSensitive(j->obj, "model")->valuestring);
            event_add(j, "warn", "message", msg, NULL);
        }
    }
    cJSON_Delete(sum);
    free(text);
    free(p);
}

/* 1 when trainer.out holds the summary line of a run that ended by itself (it is
 * truncated at each start). */
static int trainer_finished(const TuneJob *j) {
    char *p = job_path(j, "trainer.out"), *text = NULL, err[ERR_LEN];
    size_t len;
    cJSON *sum = NULL;
    if (p && file_read_all(p, 1 << 16, &text, &len, err) == 0)
        sum = cJSON_ParseWithLength(text, len);
    int done = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sum, "stopped"));
    cJSON_Delete(sum);
    free(text);
    free(p);
    return done;
}

/* The child ended with code. With mu held. */
static void finish(TuneJob *j, int code) {
    running = NULL;
    child = 0;
    if (j->cancel || strcmp(status_of(j), "cancelled") == 0) {
        char *ck = out_path(j, "checkpoint.safetensors");
        if (ck) unlink(ck); // a cancelled job is not resumed
        free(ck);
        set_num(j->obj, "finished_at", (double)time(NULL));
        event_add(j, "info", "message", "Fine-tuning job cancelled; its trainer has stopped", NULL);
        j->ended = 1;
        job_save(j);
        return;
    }
    char why[ERR_LEN];
    if (code == 0) {
        char *ck = out_path(j, "checkpoint.safetensors");
        if (ck) unlink(ck); // a finished run is not resumed; its best model stays
        free(ck);
        char *model = out_path(j, "model.safetensors");
        int published = model && access(model, F_OK) == 0;
        free(model);
        if (!published) {
            fail(j, "server_error", "the trainer ended without a model");
            return;
        }
        // Served from the registry's next reload when the drain stopped the runner first.
        if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j->obj, "fine_tuned_model")))
            set_str(j->obj, "fine_tuned_model", run_str(j, "model_name"));
        summary_read(j);
        status_set(j, "succeeded", "The job has successfully completed");
        return;
    }
    last_line(j, why, sizeof(why));
    // Exit 2 is bad input: the text's fault when the trainer names the text (train.txt),
    // else a flag this server gave, which is its own.
    if (code == 2 && strstr(why, "train.txt"))
        fail(j, "invalid_training_file", why);
    else {
        char msg[ERR_LEN + 64];
        snprintf(msg, sizeof(msg), "charlm-train exited with status %d: %s", code, why);
        fail(j, "server_error", msg);
    }
}

static void *runner_main(void *arg) {
    (void)arg;
    time_t last_ping = time(NULL);
    pthread_mutex_lock(&mu);
    while (!stopping) {
        // Files are validated as jobs come, whether or not another job trains.
        TuneJob *fresh = NULL;
        for (int i = 0; i < njobs && !fresh; i++)
            if (strcmp(status_of(jobs[i]), "validating_files") == 0) fresh = jobs[i];
        if (fresh) {
            char err[ERR_LEN];
            pthread_mutex_unlock(&mu);
            int rc = validate(fresh, err);
            pthread_mutex_lock(&mu);
            if (strcmp(status_of(fresh), "validating_files") == 0) { // not cancelled meanwhile
                if (rc)
                    fail(fresh, "invalid_training_file", err);
                else
                    status_set(fresh, "queued", "Files validated; the job is queued");
            }
            continue;
        }
        if (running) {
            // Polled first: once the child has ended, follow reads all it wrote.
            int code, ended = trainproc_poll(child, &code);
            TuneJob *j = running;
            if (follow(j)) {
                pthread_mutex_unlock(&mu);
                free(models_reload());
                ServedModel *m = models_get(run_str(j, "model_name"));
                int served = m && strcmp(m->id, run_str(j, "model_name")) == 0;
                models_put(m);
                pthread_mutex_lock(&mu);
                if (served &&
                    cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j->obj, "fine_tuned_model"))) {
                    set_str(j->obj, "fine_tuned_model", run_str(j, "model_name"));
                    char msg[200];
                    snprintf(msg, sizeof(msg), "New fine-tuned model served: %s",
                             run_str(j, "model_name"));
                    event_add(j, "info", "message", msg, NULL);
                    job_save(j);
                }
            }
            if (ended) finish(j, code);
        } else {
            TuneJob *next = NULL;
            for (int i = 0; i < njobs && !next; i++) {
                const char *st = status_of(jobs[i]);
                if (strcmp(st, "running") == 0 || strcmp(st, "queued") == 0) next = jobs[i];
            }
            char *lock = next ? job_path(next, "lock") : NULL;
            // A trainer of the previous server may still be writing its checkpoint, or
            // have finished after that server died: then the job is done, not resumed.
            if (next && !trainproc_locked(lock)) {
                if (strcmp(status_of(next), "running") == 0 && trainer_finished(next)) {
                    follow(next);
                    finish(next, 0);
                } else {
                    start(next);
                }
            }
            free(lock);
        }
        if (time(NULL) - last_ping >= KEEPALIVE_S) {
            streams_wake(NULL, 1);
            last_ping = time(NULL);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += POLL_NS;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&cv, &mu, &until);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* ---- jobs on disk ---- */

static void job_free(TuneJob *j) {
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
static TuneJob *job_load(const char *id) {
    TuneJob *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    snprintf(j->id, sizeof(j->id), "%s", id);
    j->best_val = INFINITY;
    char *p = job_path(j, "job.json"), *text = NULL, err[ERR_LEN];
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
        log_msg("jobs/%s/job.json is missing or broken; the job is left out", id);
        cJSON_Delete(obj), cJSON_Delete(run), cJSON_Delete(ck), free(j);
        return NULL;
    }
    j->obj = obj;
    j->run = run;
    j->checkpoints = cJSON_IsArray(ck) ? ck : (cJSON_Delete(ck), cJSON_CreateArray());
    j->ended = is_final(st->valuestring);
    p = job_path(j, "events.jsonl");
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
    char *model = out_path(j, "model.safetensors");
    stamp_of(model, &j->seen);
    free(model);
    return j;
}

int tuning_start(const TuningConfig *c, char *err) {
    cfg = *c;
    jobs_dir = path_join(cfg.dir, "jobs");
    models_dir = path_join(cfg.dir, "models");
    if (!jobs_dir || !models_dir) return err_set(err, "out of memory");
    if (dir_ensure(jobs_dir, err) || dir_ensure(models_dir, err)) return -1;
    if (access(cfg.trainer, X_OK) != 0)
        return err_set(err, "the trainer %s cannot be run: %s", cfg.trainer, strerror(errno));
    DIR *d = opendir(jobs_dir);
    if (!d) return err_set(err, "%s: %s", jobs_dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) && njobs < JOBS_MAX) {
        if (strncmp(e->d_name, "ftjob-", 6) != 0) continue;
        TuneJob *j = job_load(e->d_name);
        if (j) jobs[njobs++] = j;
    }
    closedir(d);
    qsort(jobs, (size_t)njobs, sizeof(*jobs), by_created);
    if (pthread_create(&runner, NULL, runner_main, NULL) != 0)
        return err_set(err, "cannot start the fine-tuning runner");
    runner_started = 1;
    return 0;
}

const char *tuning_models_dir(void) {
    return models_dir;
}

void tuning_begin_stop(void) {
    pthread_mutex_lock(&mu);
    stopping = 1;
    closing = 1;
    if (child) trainproc_stop(child);
    streams_wake(NULL, 0);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

void tuning_stop(double seconds) {
    if (!runner_started) return;
    tuning_begin_stop();
    pthread_join(runner, NULL);
    runner_started = 0;
    pthread_mutex_lock(&mu);
    if (child) {
        TuneJob *j = running;
        pid_t pid = child;
        pthread_mutex_unlock(&mu);
        int code = trainproc_wait(pid, seconds);
        pthread_mutex_lock(&mu);
        follow(j);
        if (code < 128 && code != 130) {
            finish(j, code); // it ended on its own meanwhile
        } else if (!j->cancel) {
            log_msg("%s: trainer stopped (status %d); the job resumes when the server starts "
                    "again",
                    j->id, code);
            event_add(j, "info", "message",
                      "The server stopped; the job resumes from its checkpoint when it starts "
                      "again",
                      NULL);
        } else {
            finish(j, code);
        }
        running = NULL;
        child = 0;
    }
    pthread_mutex_unlock(&mu);
}

/* ---- what the HTTP thread asks ---- */

static int unfinished(void) {
    int n = 0;
    for (int i = 0; i < njobs; i++) n += !is_final(status_of(jobs[i]));
    return n;
}

cJSON *tuning_create(const TuneRequest *r, const char *arch, const char *init_dir, const char *base,
                     int init_seq, char *err, int *status) {
    *status = 400;
    int gpt = strcmp(arch, "gpt") == 0;
    pthread_mutex_lock(&mu);
    if (njobs >= JOBS_MAX || closing) {
        pthread_mutex_unlock(&mu);
        *status = 503;
        return closing
                   ? (err_set(err, "the server is stopping"), NULL)
                   : (err_set(err, "the training dir holds %d jobs, the most it keeps", JOBS_MAX),
                      NULL);
    }
    // Every job's model is served once it has one: the registry's room bounds the jobs.
    if (models_count() + unfinished() >= MODELS_MAX) {
        pthread_mutex_unlock(&mu);
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
    random_hex(j->id + 6, 24);
    j->best_val = INFINITY;
    char hex[9], name[MODEL_ID_MAX];
    random_hex(hex, 8);
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
    set_str(o, "validation_file", r->validation_file[0] ? r->validation_file : NULL);
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
    set_str(o, "suffix", r->suffix[0] ? r->suffix : NULL);
    set_str(o, "user_provided_suffix", r->suffix[0] ? r->suffix : NULL);
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
    char *dir = path_join(jobs_dir, j->id);
    if (!dir || !j->checkpoints || dir_ensure(dir, err) != 0) {
        free(dir);
        job_free(j);
        pthread_mutex_unlock(&mu);
        *status = 507;
        return NULL;
    }
    free(dir);
    jobs[njobs++] = j;
    status_set(j, "validating_files", "Created fine-tuning job; validating its files");
    log_msg("%s: created, training %s from %s", j->id, name, r->training_file);
    cJSON *copy = cJSON_Duplicate(j->obj, 1);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return copy;
oom:
    pthread_mutex_unlock(&mu);
    *status = 503;
    err_set(err, "out of memory");
    return NULL;
}

cJSON *tuning_get(const char *id) {
    pthread_mutex_lock(&mu);
    TuneJob *j = find(id);
    cJSON *o = j ? cJSON_Duplicate(j->obj, 1) : NULL;
    pthread_mutex_unlock(&mu);
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
    pthread_mutex_lock(&mu);
    cJSON *objs[JOBS_MAX];
    for (int i = 0; i < njobs; i++) objs[i] = jobs[i]->obj;
    cJSON *list = page(objs, njobs, after, limit);
    pthread_mutex_unlock(&mu);
    return list;
}

cJSON *tuning_events(const char *id, const char *after, int limit) {
    pthread_mutex_lock(&mu);
    TuneJob *j = find(id);
    cJSON *list = NULL;
    if (j) {
        cJSON **parsed = calloc((size_t)j->nevents + 1, sizeof(*parsed));
        for (int i = 0; parsed && i < j->nevents; i++) parsed[i] = cJSON_Parse(j->events[i]);
        list = parsed ? page(parsed, j->nevents, after, limit) : NULL;
        for (int i = 0; parsed && i < j->nevents; i++) cJSON_Delete(parsed[i]);
        free(parsed);
    }
    pthread_mutex_unlock(&mu);
    return list;
}

cJSON *tuning_checkpoints(const char *id) {
    pthread_mutex_lock(&mu);
    TuneJob *j = find(id);
    cJSON *list = NULL;
    if (j) {
        int n = cJSON_GetArraySize(j->checkpoints);
        cJSON *items[1];
        items[0] = n ? cJSON_GetArrayItem(j->checkpoints, n - 1) : NULL;
        list = page(items, n ? 1 : 0, NULL, 1);
    }
    pthread_mutex_unlock(&mu);
    return list;
}

cJSON *tuning_cancel(const char *id, int *status, char *err) {
    pthread_mutex_lock(&mu);
    TuneJob *j = find(id);
    cJSON *o = NULL;
    if (!j) {
        *status = 404;
        err_set(err, "no such fine-tuning job");
    } else if (is_final(status_of(j))) {
        *status = 400;
        err_set(err, "the job has already %s", status_of(j));
    } else {
        if (j == running) {
            // The runner reaps the child and ends the job's events once it is gone.
            j->cancel = 1;
            trainproc_stop(child);
            set_str(j->obj, "status", "cancelled");
            job_save(j);
        } else {
            status_set(j, "cancelled", "Fine-tuning job cancelled");
        }
        o = cJSON_Duplicate(j->obj, 1);
    }
    pthread_mutex_unlock(&mu);
    return o;
}

/* ---- event streams ---- */

// libmicrohttpd's content reader: the next bytes of events; 0 with the connection parked
// when there are none yet.
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    Stream *s = cls;
    pthread_mutex_lock(&mu);
    if (s->out_at == s->out.len) {
        s->out.len = s->out_at = 0;
        TuneJob *j = s->job;
        if (s->next < j->nevents) {
            for (; s->next < j->nevents && s->out.len < 65536; s->next++)
                buf_printf(&s->out, "data: %s\n\n", j->events[s->next]);
        } else if (j->ended || closing) {
            if (s->done_sent) {
                pthread_mutex_unlock(&mu);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            buf_adds(&s->out, "data: [DONE]\n\n");
            s->done_sent = 1;
        } else if (s->ping) {
            buf_adds(&s->out, ": keepalive\n\n");
        } else {
            s->parked = 1;
            MHD_suspend_connection(s->conn);
            pthread_mutex_unlock(&mu);
            return 0;
        }
        s->ping = 0;
        if (s->out.failed) {
            pthread_mutex_unlock(&mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = s->out.len - s->out_at < max ? s->out.len - s->out_at : max;
    memcpy(buf, s->out.s + s->out_at, n);
    s->out_at += n;
    pthread_mutex_unlock(&mu);
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    Stream *s = cls;
    pthread_mutex_lock(&mu);
    for (Stream **p = &streams; *p; p = &(*p)->next_s)
        if (*p == s) {
            *p = s->next_s;
            break;
        }
    pthread_mutex_unlock(&mu);
    buf_free(&s->out);
    free(s);
}

struct MHD_Response *tuning_event_stream(const char *id, struct MHD_Connection *conn, int *status) {
    pthread_mutex_lock(&mu);
    TuneJob *j = find(id);
    Stream *s = j ? calloc(1, sizeof(*s)) : NULL;
    struct MHD_Response *resp =
        s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free)
          : NULL;
    if (!resp) {
        *status = j ? 503 : 404;
        free(s);
        pthread_mutex_unlock(&mu);
        return NULL;
    }
    s->job = j;
    s->conn = conn;
    s->next_s = streams;
    streams = s;
    pthread_mutex_unlock(&mu);
    return resp;
}

/* ---- deleting a fine-tuned model ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int tuning_delete_model(const char *id, int *status, char *err) {
    *status = 404;
    if (!id[0] || id[0] == '.' || strchr(id, '/') || strlen(id) >= MODEL_ID_MAX)
        return err_set(err, "no fine-tuned model with that id in the training dir");
    char *dir = path_join(models_dir, id), hex[9], aside[MODEL_ID_MAX + 32];
    random_hex(hex, 8);
    snprintf(aside, sizeof(aside), ".deleted-%s", hex);
    char *gone = path_join(models_dir, aside);
    int rc = -1;
    pthread_mutex_lock(&mu);
    if (!dir || !gone) {
        *status = 503;
        err_set(err, "out of memory");
    } else if (!path_is_dir(dir)) {
        err_set(err, "no fine-tuned model with that id in the training dir");
    } else {
        const char *busy = NULL;
        for (int i = 0; i < njobs && !busy; i++)
            if (!is_final(status_of(jobs[i])) && strcmp(run_str(jobs[i], "model_name"), id) == 0)
                busy = jobs[i]->id;
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
    pthread_mutex_unlock(&mu);
    if (rc == 0) {
        // Out of the listing at once (a dot name is never served); requests that hold the
        // model finish on it, and the registry frees it when the last lets go.
        free(models_reload());
        if (nftw(gone, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            log_msg("%s: not all of it could be removed", gone);
        log_msg("model %s deleted", id);
    }
    free(dir);
    free(gone);
    return rc;
}
