#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "fileio.h"
#include "filestore.h"
#include "models.h"
#include "textcheck.h"
#include "trainproc.h"
#include "tunejob.h"
#include "tunereq.h"
#include "tunerun.h"
#include "tunestream.h"
#include "utf8.h"

// How often the runner looks at a running child's log, and wakes idle event streams with
// a comment line (which also finds streams whose client has left).
#define POLL_NS          (250 * 1000 * 1000L)
#define KEEPALIVE_S      15
#define SAMPLE_CHARS     160
#define EVALS_PER_RUN    50  // a run with a known length validates about this often
#define EVAL_SECONDS_MIN 0.5 // the most often a run sized by max_time alone validates

static struct {
    const char *dir, *trainer;
    int threads;
} cfg;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_t runner;
static int runner_started, stopping;
static TuneJob *running; // the job whose child runs
static pid_t child;

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

/* validating_files: writes train.txt and sizes the run. Without tunejob_mu (the job's files are
 * the runner's alone in this state); returns 0 or -1 with err. */
static int validate(TuneJob *j, char *err) {
    Buf text = {0};
    if (upload_text(tunejob_str(j, "training_file"), &text, err)) return -1;
    size_t train_chars = utf8_count(text.s, text.len), val_chars = 0;
    const char *val_file = tunejob_str(j, "validation_file");
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
    char *path = tunejob_path(j, "train.txt");
    const void *parts[] = {text.s ? text.s : ""};
    size_t lens[] = {text.len};
    int rc = path ? file_write_atomic(path, parts, lens, 1, err) : err_set(err, "out of memory");
    free(path);
    buf_free(&text);
    if (rc) return -1;

    // Steps: given, from epochs of the training part, or the trainer's default; a budget
    // alone lets time end the run.
    double batch = tunejob_num(j, "batch_size"), seq = tunejob_num(j, "seq");
    double n_train = val_chars ? (double)train_chars : (double)train_chars * (1 - val_frac);
    double per_step = batch * seq, steps = tunejob_num(j, "steps"),
           epochs = tunejob_num(j, "n_epochs");
    double max_time = tunejob_num(j, "max_time"), eval_every, eval_seconds = 0;
    if (steps == 0 && epochs > 0) steps = ceil(epochs * n_train / per_step);
    if (steps == 0 && max_time > 0) {
        // Its speed unknown, a run sized by time alone validates by time.
        steps = eval_every = TUNEREQ_STEPS_MAX;
        eval_seconds = fmax(EVAL_SECONDS_MIN, max_time / EVALS_PER_RUN);
    } else {
        if (steps == 0) steps = tunejob_num(j, "default_steps");
        eval_every = fmax(1, floor(steps / EVALS_PER_RUN));
    }
    pthread_mutex_lock(&tunejob_mu);
    tunejob_set_num(j->run, "steps", steps);
    tunejob_set_num(j->run, "eval_every", eval_every);
    tunejob_set_num(j->run, "eval_seconds", eval_seconds);
    tunejob_set_num(j->run, "val_frac", val_frac);
    cJSON *h = cJSON_GetObjectItemCaseSensitive(j->obj, "hyperparameters");
    tunejob_set_num(j->run, "n_train", n_train);
    // A run sized by time: its passes over the text are counted as it goes (follow).
    if (steps < TUNEREQ_STEPS_MAX)
        tunejob_set_num(h, "n_epochs", round(steps * per_step / fmax(n_train, 1) * 100) / 100);
    if (steps < TUNEREQ_STEPS_MAX) tunejob_set_num(h, "steps", steps);
    tunejob_set_num(j->obj, "total_steps", steps < TUNEREQ_STEPS_MAX ? steps : 0);
    pthread_mutex_unlock(&tunejob_mu);
    return 0;
}

/* ---- the child ---- */

#define ARGV_MAX 40

// The trainer's command line; strings in store (each up to 64 bytes). With tunejob_mu held.
static int build_argv(const TuneJob *j, int resume, char **argv, char store[][64], char **paths) {
    int n = 0, k = 0;
#define ARG(s)      (argv[n++] = (char *)(s))
#define NUM(fmt, v) (snprintf(store[k], 64, fmt, v), argv[n++] = store[k++])
    ARG(cfg.trainer);
    ARG("train");
    paths[0] = tunejob_path(j, "train.txt");
    paths[1] = tunejob_out_path(j, NULL);
    ARG("--corpus");
    ARG(paths[0]);
    ARG("--out");
    ARG(paths[1]);
    if (tunejob_str(j, "init")) {
        ARG("--init");
        ARG(tunejob_str(j, "init"));
    } else {
        ARG("--arch");
        ARG(tunejob_str(j, "arch"));
    }
    ARG("--threads");
    NUM("%d", cfg.threads);
    ARG("--seed");
    NUM("%.0f", tunejob_num(j, "seed"));
    ARG("--steps");
    NUM("%.0f", tunejob_num(j, "steps"));
    ARG("--batch");
    NUM("%.0f", tunejob_num(j, "batch_size"));
    ARG("--lr");
    NUM("%.9g", tunejob_num(j, "lr"));
    ARG("--val-frac");
    NUM("%.17g", tunejob_num(j, "val_frac"));
    ARG("--eval-every");
    NUM("%.0f", tunejob_num(j, "eval_every"));
    ARG("--sample-chars");
    NUM("%d", SAMPLE_CHARS);
    if (tunejob_num(j, "max_time") > 0) {
        ARG("--max-time");
        NUM("%.3f", tunejob_num(j, "max_time"));
    }
    if (tunejob_num(j, "eval_seconds") > 0) {
        ARG("--eval-seconds");
        NUM("%.3f", tunejob_num(j, "eval_seconds"));
    }
    if (resume) ARG("--resume");
    argv[n] = NULL;
#undef ARG
#undef NUM
    return paths[0] && paths[1] ? 0 : -1;
}

static int checkpoint_exists(const TuneJob *j) {
    char *p = tunejob_out_path(j, "checkpoint.safetensors");
    int ok = p && access(p, F_OK) == 0;
    free(p);
    return ok;
}

// Starts j's child, resuming from its checkpoint when it has one. With tunejob_mu held.
static void start(TuneJob *j) {
    int resume = checkpoint_exists(j);
    char *argv[ARGV_MAX], store[16][64], *paths[2] = {NULL, NULL};
    char *lock = tunejob_path(j, "lock"), *out = tunejob_path(j, "trainer.out");
    char *log = tunejob_path(j, "trainer.log"), err[ERR_LEN];
    if (build_argv(j, resume, argv, store, paths) == 0 && lock && out && log) {
        pid_t pid = trainproc_spawn(argv, out, log, lock, err);
        if (pid > 0) {
            child = pid;
            running = j;
            const char *was = tunejob_status(j);
            int again = strcmp(was, "running") == 0;
            char msg[128];
            snprintf(msg, sizeof(msg), "%s (charlm-train, pid %d%s)",
                     again ? "Fine-tuning job resumed" : "Fine-tuning job started", (int)pid,
                     resume ? ", from its checkpoint" : "");
            tunejob_log("%s: %s", j->id, msg);
            if (again) {
                tunejob_event(j, "info", "message", msg, NULL);
                tunejob_save(j);
            } else {
                tunejob_status_set(j, "running", msg);
            }
        } else {
            tunejob_fail(j, "server_error", err);
        }
    } else {
        tunejob_fail(j, "server_error", "out of memory");
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
 * the registry must reload). With tunejob_mu held: the files are read under it, and are small. */
static int follow(TuneJob *j) {
    // The log grows by rows: only what came since the last look is read. It is renamed
    // from .new once (the same file), and rewritten (a new file) when a run resumes.
    char *names[] = {"train_log.jsonl.new", "train_log.jsonl"};
    char *text = NULL;
    size_t len = 0;
    for (int i = 0; i < 2 && !text; i++) {
        char *p = tunejob_out_path(j, names[i]);
        struct stat st;
        FILE *f = p && stat(p, &st) == 0 ? fopen(p, "rb") : NULL;
        free(p);
        if (!f) continue;
        if (st.st_ino != j->log_ino || (size_t)st.st_size < j->log_at) j->log_at = 0;
        j->log_ino = st.st_ino;
        size_t want = (size_t)st.st_size - j->log_at;
        text = malloc(want + 1);
        if (text && fseek(f, (long)j->log_at, SEEK_SET) == 0) len = fread(text, 1, want, f);
        fclose(f);
    }
    double batch = tunejob_num(j, "batch_size"), seq = tunejob_num(j, "seq");
    double total = tunejob_num(j, "steps"), max_time = tunejob_num(j, "max_time");
    size_t at = 0;
    while (text && at < len) {
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
        const cJSON *tlv = cJSON_GetObjectItemCaseSensitive(row, "train_loss");
        const cJSON *vlv = cJSON_GetObjectItemCaseSensitive(row, "val_loss");
        double tl = cJSON_IsNumber(tlv) ? tlv->valuedouble : NAN;
        double vl = cJSON_IsNumber(vlv) ? vlv->valuedouble : NAN;
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
        tunejob_event(j, "info", "metrics", msg, data);

        tunejob_set_num(j->obj, "trained_tokens", (double)s * batch * seq);
        if (total >= TUNEREQ_STEPS_MAX)
            tunejob_set_num(
                cJSON_GetObjectItemCaseSensitive(j->obj, "hyperparameters"), "n_epochs",
                round((double)s * batch * seq / fmax(tunejob_num(j, "n_train"), 1) * 100) / 100);
        tunejob_set_num(j->obj, "step", (double)s);
        if (cJSON_IsNumber(tps)) tunejob_set_num(j->obj, "tokens_per_s", tps->valuedouble);
        tunejob_set_num(j->obj, "best_val_loss", j->best_val);
        // When it will end: the budget's end, or the steps left at this run's pace.
        double elapsed = cJSON_IsNumber(el) ? el->valuedouble : 0, left = -1;
        if (max_time > 0) left = fmax(0, max_time - elapsed);
        if (total < TUNEREQ_STEPS_MAX && elapsed > 0 && s > 0) {
            double by_steps = (total - s) * elapsed / s;
            left = left < 0 ? by_steps : fmin(left, by_steps);
        }
        if (left >= 0) tunejob_set_num(j->obj, "estimated_finish", (double)time(NULL) + ceil(left));
        if (best) {
            cJSON *c = cJSON_CreateObject();
            char id[40] = "ftckpt-";
            tunejob_hex(id + 7, 24);
            cJSON_AddStringToObject(c, "object", "fine_tuning.job.checkpoint");
            cJSON_AddStringToObject(c, "id", id);
            cJSON_AddNumberToObject(c, "created_at", (double)time(NULL));
            cJSON_AddStringToObject(c, "fine_tuned_model_checkpoint", tunejob_str(j, "model_name"));
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
        tunejob_save(j);
    }
    j->log_at += at; // a row still being written is read again next time
    free(text);
    struct timespec t;
    char *model = tunejob_out_path(j, "model.safetensors");
    int changed =
        stamp_of(model, &t) == 0 && (t.tv_sec != j->seen.tv_sec || t.tv_nsec != j->seen.tv_nsec);
    if (changed) j->seen = t;
    free(model);
    return changed;
}

// The last line the trainer wrote on stderr, without its program name: why it failed.
static void last_line(const TuneJob *j, char *out, size_t cap) {
    char *p = tunejob_path(j, "trainer.log"), *text = NULL, err[ERR_LEN];
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

/* The trainer's summary line (trainer.out, truncated at each start), or NULL before a run
 * has ended by itself. */
static cJSON *summary_load(const TuneJob *j) {
    char *p = tunejob_path(j, "trainer.out"), *text = NULL, err[ERR_LEN];
    size_t len;
    cJSON *sum = NULL;
    if (p && file_read_all(p, 1 << 16, &text, &len, err) == 0)
        sum = cJSON_ParseWithLength(text, len);
    free(text);
    free(p);
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sum, "stopped"))) return sum;
    cJSON_Delete(sum);
    return NULL;
}

/* The summary's count of the text's chars the model's vocabulary lacks, which a job going
 * on from a served model skipped. With tunejob_mu held. */
static void summary_read(TuneJob *j) {
    cJSON *sum = summary_load(j);
    const cJSON *skipped = cJSON_GetObjectItemCaseSensitive(sum, "skipped");
    if (cJSON_IsNumber(skipped)) {
        tunejob_set_num(j->obj, "skipped_chars", skipped->valuedouble);
        if (skipped->valuedouble > 0) {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "%.0f chars of the text are not in the vocabulary of %s and were skipped",
                     skipped->valuedouble,
                     cJSON_GetObjectItemCaseSensitive(j->obj, "model")->valuestring);
            tunejob_event(j, "warn", "message", msg, NULL);
        }
    }
    cJSON_Delete(sum);
}

/* The child ended with code. With tunejob_mu held. */
static void finish(TuneJob *j, int code) {
    running = NULL;
    child = 0;
    if (j->cancel || strcmp(tunejob_status(j), "cancelled") == 0) {
        char *ck = tunejob_out_path(j, "checkpoint.safetensors");
        if (ck) unlink(ck); // a cancelled job is not resumed
        free(ck);
        tunejob_set_num(j->obj, "finished_at", (double)time(NULL));
        tunejob_event(j, "info", "message", "Fine-tuning job cancelled; its trainer has stopped",
                      NULL);
        j->ended = 1;
        tunejob_save(j);
        return;
    }
    char why[ERR_LEN];
    if (code == 0) {
        char *ck = tunejob_out_path(j, "checkpoint.safetensors");
        if (ck) unlink(ck); // a finished run is not resumed; its best model stays
        free(ck);
        char *model = tunejob_out_path(j, "model.safetensors");
        int published = model && access(model, F_OK) == 0;
        free(model);
        if (!published) {
            tunejob_fail(j, "server_error", "the trainer ended without a model");
            return;
        }
        // Served from the registry's next reload when the drain stopped the runner first.
        if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j->obj, "fine_tuned_model")))
            tunejob_set_str(j->obj, "fine_tuned_model", tunejob_str(j, "model_name"));
        summary_read(j);
        tunejob_status_set(j, "succeeded", "The job has successfully completed");
        return;
    }
    last_line(j, why, sizeof(why));
    // Exit 2 is bad input: the text's fault when the trainer names the text (train.txt),
    // else a flag this server gave, which is its own.
    if (code == 2 && strstr(why, "train.txt"))
        tunejob_fail(j, "invalid_training_file", why);
    else {
        char msg[ERR_LEN + 64];
        snprintf(msg, sizeof(msg), "charlm-train exited with status %d: %s", code, why);
        tunejob_fail(j, "server_error", msg);
    }
}

static void *runner_main(void *arg) {
    (void)arg;
    time_t last_ping = time(NULL);
    pthread_mutex_lock(&tunejob_mu);
    while (!stopping) {
        // Files are validated as jobs come, whether or not another job trains.
        TuneJob *fresh = NULL;
        for (int i = 0; i < tunejob_count && !fresh; i++)
            if (strcmp(tunejob_status(tunejob_list[i]), "validating_files") == 0)
                fresh = tunejob_list[i];
        if (fresh) {
            char err[ERR_LEN];
            pthread_mutex_unlock(&tunejob_mu);
            int rc = validate(fresh, err);
            pthread_mutex_lock(&tunejob_mu);
            if (strcmp(tunejob_status(fresh), "validating_files") == 0) { // not cancelled meanwhile
                if (rc)
                    tunejob_fail(fresh, "invalid_training_file", err);
                else
                    tunejob_status_set(fresh, "queued", "Files validated; the job is queued");
            }
            continue;
        }
        if (running) {
            // Polled first: once the child has ended, follow reads all it wrote.
            int code, ended = trainproc_poll(child, &code);
            TuneJob *j = running;
            if (follow(j)) {
                pthread_mutex_unlock(&tunejob_mu);
                free(models_reload());
                ServedModel *m = models_get(tunejob_str(j, "model_name"));
                int served = m && strcmp(m->id, tunejob_str(j, "model_name")) == 0;
                models_put(m);
                pthread_mutex_lock(&tunejob_mu);
                if (served &&
                    cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j->obj, "fine_tuned_model"))) {
                    tunejob_set_str(j->obj, "fine_tuned_model", tunejob_str(j, "model_name"));
                    char msg[200];
                    snprintf(msg, sizeof(msg), "New fine-tuned model served: %s",
                             tunejob_str(j, "model_name"));
                    tunejob_event(j, "info", "message", msg, NULL);
                    tunejob_save(j);
                }
            }
            if (ended) finish(j, code);
        } else {
            TuneJob *next = NULL;
            for (int i = 0; i < tunejob_count && !next; i++) {
                const char *st = tunejob_status(tunejob_list[i]);
                if (strcmp(st, "running") == 0 || strcmp(st, "queued") == 0) next = tunejob_list[i];
            }
            char *lock = next ? tunejob_path(next, "lock") : NULL;
            // A trainer of the previous server may still be writing its checkpoint, or
            // have finished after that server died: then the job is done, not resumed.
            if (next && !trainproc_locked(lock)) {
                cJSON *done =
                    strcmp(tunejob_status(next), "running") == 0 ? summary_load(next) : NULL;
                if (done) {
                    cJSON_Delete(done);
                    follow(next);
                    finish(next, 0);
                } else {
                    start(next);
                }
            }
            free(lock);
        }
        if (time(NULL) - last_ping >= KEEPALIVE_S) {
            tunestream_wake(NULL, 1);
            last_ping = time(NULL);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += POLL_NS;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&cv, &tunejob_mu, &until);
    }
    pthread_mutex_unlock(&tunejob_mu);
    return NULL;
}

int tunerun_start(const char *dir, const char *trainer, int threads, char *err) {
    cfg.dir = dir;
    cfg.trainer = trainer;
    cfg.threads = threads;
    if (access(cfg.trainer, X_OK) != 0)
        return err_set(err, "the trainer %s cannot be run: %s", cfg.trainer, strerror(errno));
    if (pthread_create(&runner, NULL, runner_main, NULL) != 0)
        return err_set(err, "cannot start the fine-tuning runner");
    runner_started = 1;
    return 0;
}

void tunerun_wake(void) {
    pthread_cond_broadcast(&cv);
}

int tunerun_stopping(void) {
    return stopping;
}

int tunerun_cancel(TuneJob *j) {
    if (j != running) return 0;
    // The runner reaps the child and ends the job's events once it is gone.
    j->cancel = 1;
    trainproc_stop(child);
    return 1;
}

void tunerun_begin_stop(void) {
    stopping = 1;
    if (child) trainproc_stop(child);
    pthread_cond_broadcast(&cv);
}

void tunerun_stop(double seconds) {
    if (!runner_started) return;
    pthread_mutex_lock(&tunejob_mu);
    tunerun_begin_stop();
    pthread_mutex_unlock(&tunejob_mu);
    pthread_join(runner, NULL);
    runner_started = 0;
    pthread_mutex_lock(&tunejob_mu);
    if (child) {
        TuneJob *j = running;
        pid_t pid = child;
        pthread_mutex_unlock(&tunejob_mu);
        int code = trainproc_wait(pid, seconds);
        pthread_mutex_lock(&tunejob_mu);
        follow(j);
        if (code < 128 && code != 130) {
            finish(j, code); // it ended on its own meanwhile
        } else if (!j->cancel) {
            tunejob_log("%s: trainer stopped (status %d); the job resumes when the server starts "
                        "again",
                        j->id, code);
            tunejob_event(j, "info", "message",
                          "The server stopped; the job resumes from its checkpoint when it starts "
                          "again",
                          NULL);
        } else {
            finish(j, code);
        }
        running = NULL;
        child = 0;
    }
    pthread_mutex_unlock(&tunejob_mu);
}
