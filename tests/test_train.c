/*
 * charlm-train end to end: learning, determinism, interrupt + resume, eval, sample, and
 * bad input (exit 2, a clear message, nothing written).
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "safetensors.h"
#include "testutil.h"
#include "utf8.h"

/* The suite runs the tests that hold for every architecture once for each (loop tests,
 * _i the index), with a small model of it. */
typedef struct {
    const char *name;
    const char *small;    // a small model: tests add "--batch 16 --eval-every 25 --seed 7"
    const char *memorise; // a model that memorises a 2,000-char text within a few hundred steps
} ArchCase;

static const ArchCase ARCHS[] = {
    {"lstm", "--embed 16 --hidden 48 --seq 32", "--embed 16 --hidden 64 --seq 32"},
    {"gpt", "--arch gpt --layers 2 --heads 2 --embed 16 --block 32 --lr 1e-2",
     "--arch gpt --layers 2 --heads 2 --embed 32 --block 32 --weight-decay 0"},
};
#define NARCHS    ((int)(sizeof ARCHS / sizeof ARCHS[0]))
#define RUN_FLAGS "--batch 16 --eval-every 25 --seed 7"

static const ArchCase *arch = &ARCHS[0];

static char *corpus_dir;
static char *corpus_path;

static void setup(void) {
    arch = &ARCHS[0];
    corpus_dir = tu_tmpdir();
    char *text = tu_sample_text(30000);
    corpus_path = tu_write_file(corpus_dir, "corpus.txt", text, strlen(text));
    free(text);
}

static void teardown(void) {
    tu_rmtree(corpus_dir);
    free(corpus_dir);
    free(corpus_path);
}

static double json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    const char *p = strstr(json, pat);
    ck_assert_msg(p != NULL, "no %s in %s", key, json);
    return strtod(p + strlen(pat), NULL);
}

static int files_equal(const char *a, const char *b) {
    size_t la, lb;
    char *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
    int eq = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return eq;
}

static int train(const char *out, const char *extra, char **stdout_text, char **stderr_text) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s train --corpus '%s' --out '%s' %s " RUN_FLAGS " %s",
             tu_bin("charlm-train"), corpus_path, out, arch->small, extra);
    return tu_run(cmd, stdout_text, stderr_text);
}

/* A checkpoint's metadata value as a number (the test fails without it). */
static double checkpoint_meta(const char *out, const char *key) {
    char path[4200], err[512];
    snprintf(path, sizeof(path), "%s/checkpoint.safetensors", out);
    StFile f;
    ck_assert_msg(st_open(&f, path, err) == 0, "%s", err);
    const char *v = st_meta(&f, key);
    ck_assert_msg(v != NULL, "the checkpoint has no %s", key);
    double x = strtod(v, NULL);
    st_close(&f);
    return x;
}

/* Runs charlm-train train on corpus into out, starting from the model folder init. */
static int train_from(const char *init, const char *corpus, const char *out, const char *flags,
                      char **so, char **se) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s train --corpus '%s' --out '%s' --init '%s' %s",
             tu_bin("charlm-train"), corpus, out, init, flags);
    return tu_run(cmd, so, se);
}

START_TEST(test_validation_loss_falls_well_below_uniform) {
    arch = &ARCHS[_i];
    char *dir = tu_tmpdir(), out[4096], *so, *se;
    snprintf(out, sizeof(out), "%s/m", dir);
    ck_assert_msg(train(out, "--steps 150 --threads 1", &so, &se) == 0, "%s", se);
    double best = json_number(so, "best_val_loss");
    // 16 words + space, '.', '\n': about 20 symbols, ln(20) ~ 3.0 nats for a uniform guess.
    ck_assert_msg(best < 0.5 * log(20.0), "best validation loss %.3f after 150 steps", best);
    char path[4200];
    snprintf(path, sizeof(path), "%s/train_log.jsonl", out);
    char *rows_text = tu_read_file(path, NULL);
    ck_assert_ptr_nonnull(rows_text);
    int rows = 0;
    for (char *p = rows_text; (p = strchr(p, '\n')); p++) rows++;
    ck_assert_int_eq(rows, 6); // steps 25, 50, ..., 150
    ck_assert_ptr_nonnull(strstr(rows_text, "\"val_streams\": 16"));
    free(rows_text);
    // eval prints the continuous-stream measure on the same split.
    char cmd[8192], *eo, *ee;
    snprintf(cmd, sizeof(cmd), "%s eval --model '%s' --corpus '%s' --val-frac 0.1",
             tu_bin("charlm-train"), out, corpus_path);
    ck_assert_msg(tu_run(cmd, &eo, &ee) == 0, "%s", ee);
    double loss = json_number(eo, "loss"), bpc = json_number(eo, "bpc");
    ck_assert_msg(fabs(loss - best) < 0.1, "eval %.4f vs training's validation %.4f", loss, best);
    ck_assert_double_eq_tol(bpc, loss / log(2.0), 1e-5);
    ck_assert_int_eq((int)json_number(eo, "chars"), 3000 - 1);
    ck_assert_int_eq((int)json_number(eo, "skipped"), 0);
    free(eo);
    free(ee);
    free(so);
    free(se);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_same_seed_and_threads_give_identical_weights) {
    arch = &ARCHS[_i];
    char *dir = tu_tmpdir(), a[4096], b[4096], ma[4200], mb[4200], *se;
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    ck_assert_msg(train(a, "--steps 50 --threads 2 --layers 2 --dropout 0.2", NULL, &se) == 0, "%s",
                  se);
    free(se);
    ck_assert_msg(train(b, "--steps 50 --threads 2 --layers 2 --dropout 0.2", NULL, &se) == 0, "%s",
                  se);
    free(se);
    snprintf(ma, sizeof(ma), "%s/model.safetensors", a);
    snprintf(mb, sizeof(mb), "%s/model.safetensors", b);
    ck_assert_msg(files_equal(ma, mb), "two runs with one seed differ");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_regularised_runs_are_reproducible_and_change_the_model) {
    char *dir = tu_tmpdir(), a[4096], b[4096], p[4096], ma[4200], mb[4200], mp[4200], *se;
    const char *reg = "--steps 50 --threads 2 --layers 2 --var-dropout 0.2 --embed-dropout 0.1 "
                      "--weight-decay 0.1";
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(p, sizeof(p), "%s/plain", dir);
    ck_assert_msg(train(a, reg, NULL, &se) == 0, "%s", se);
    free(se);
    ck_assert_msg(train(b, reg, NULL, &se) == 0, "%s", se);
    free(se);
    ck_assert_msg(train(p, "--steps 50 --threads 2 --layers 2", NULL, &se) == 0, "%s", se);
    free(se);
    snprintf(ma, sizeof(ma), "%s/model.safetensors", a);
    snprintf(mb, sizeof(mb), "%s/model.safetensors", b);
    snprintf(mp, sizeof(mp), "%s/model.safetensors", p);
    ck_assert_msg(files_equal(ma, mb), "two regularised runs with one seed differ");
    ck_assert_msg(!files_equal(ma, mp), "the regularisation flags changed nothing");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_patience_stops_at_the_right_step_and_keeps_the_best_model) {
    arch = &ARCHS[_i];
    // A 2,000-char text and a model that memorises it quickly: validation stops improving
    // within a few hundred steps. Batch 1 makes training's validation measure one stream,
    // the same as eval's, so eval of the saved model must give the best logged loss.
    char *dir = tu_tmpdir(), out[4096], cmd[8192], path[4200], *so, *se;
    char *text = tu_sample_text(2000);
    char *tiny = tu_write_file(dir, "tiny.txt", text, strlen(text));
    snprintf(out, sizeof(out), "%s/m", dir);
    const long every = 10, patience = 3, steps = 600;
    snprintf(cmd, sizeof(cmd),
             "%s train --corpus '%s' --out '%s' %s --batch 1 "
             "--lr 1e-2 --seed 7 --threads 1 --steps %ld --eval-every %ld --patience %ld",
             tu_bin("charlm-train"), tiny, out, arch->memorise, steps, every, patience);
    ck_assert_msg(tu_run(cmd, &so, &se) == 0, "%s", se);
    ck_assert_msg(strstr(so, "\"stopped_early\": true") != NULL, "did not stop early: %s", so);
    ck_assert_ptr_nonnull(strstr(se, "stopped early at step"));

    // Replay the rule on the log: the run must end at the first evaluation that is
    // `patience` evaluations past the best so far.
    snprintf(path, sizeof(path), "%s/train_log.jsonl", out);
    char *log = tu_read_file(path, NULL);
    ck_assert_ptr_nonnull(log);
    double best = INFINITY, last_val = 0;
    long best_step = 0, expect_stop = 0, last_step = 0;
    for (char *line = log; *line; line = strchr(line, '\n') + 1) {
        long step = (long)json_number(line, "step");
        double val = json_number(line, "val_loss");
        ck_assert_msg(expect_stop == 0, "a row after the stopping step: step %ld", step);
        if (val < best) {
            best = val;
            best_step = step;
        }
        if ((step - best_step) / every >= patience) expect_stop = step;
        last_step = step;
        last_val = val;
    }
    ck_assert_msg(expect_stop > 0 && expect_stop < steps, "no stop expected from the log");
    ck_assert_int_eq(last_step, expect_stop);
    ck_assert_int_eq((long)json_number(so, "steps"), expect_stop);
    ck_assert_int_eq((long)json_number(so, "best_step"), best_step);
    ck_assert_double_eq_tol(json_number(so, "best_val_loss"), best, 1e-6);
    ck_assert_msg(last_val > best, "the last evaluation should be worse than the best");

    snprintf(cmd, sizeof(cmd), "%s eval --model '%s' --corpus '%s' --val-frac 0.1",
             tu_bin("charlm-train"), out, tiny);
    char *eo, *ee;
    ck_assert_msg(tu_run(cmd, &eo, &ee) == 0, "%s", ee);
    ck_assert_double_eq_tol(json_number(eo, "loss"), best, 2e-6);
    free(eo);
    free(ee);
    free(log);
    free(so);
    free(se);
    free(tiny);
    free(text);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Starts a shell command in the background. */
static pid_t spawn(const char *cmd) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Starts charlm-train in the background with stdout/stderr to files in dir. */
static pid_t spawn_train(const char *out, const char *extra) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "exec %s train --corpus '%s' --out '%s' %s " RUN_FLAGS " %s >/dev/null 2>&1",
             tu_bin("charlm-train"), corpus_path, out, arch->small, extra);
    return spawn(cmd);
}

static void wait_for_file(const char *path) {
    struct stat st;
    for (int i = 0; i < 60000 && stat(path, &st) != 0; i++) usleep(1000);
}

static void check_resume_matches(int sig, int which) {
    arch = &ARCHS[which];
    char *dir = tu_tmpdir(), full[4096], cut[4096], ckpt[4200], ma[4200], mb[4200], la[4200],
         lb[4200], *se;
    const char *flags = "--steps 1000 --threads 2 --checkpoint-every 10";
    snprintf(full, sizeof(full), "%s/full", dir);
    snprintf(cut, sizeof(cut), "%s/cut", dir);
    ck_assert_msg(train(full, flags, NULL, &se) == 0, "%s", se);
    free(se);

    pid_t pid = spawn_train(cut, flags);
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.safetensors", cut);
    wait_for_file(ckpt);
    usleep(20000);
    kill(pid, sig);
    int status;
    waitpid(pid, &status, 0);
    if (sig == SIGINT)
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130,
                      "interrupted run should exit 130 (status %d)", status);
    else
        ck_assert_msg(WIFSIGNALED(status), "the run finished before it could be killed");

    ck_assert_msg(
        train(cut, "--steps 1000 --threads 2 --checkpoint-every 10 --resume", NULL, &se) == 0, "%s",
        se);
    free(se);
    snprintf(ma, sizeof(ma), "%s/model.safetensors", full);
    snprintf(mb, sizeof(mb), "%s/model.safetensors", cut);
    ck_assert_msg(files_equal(ma, mb), "resumed run's weights differ from an uninterrupted run");
    snprintf(la, sizeof(la), "%s/train_log.jsonl", full);
    snprintf(lb, sizeof(lb), "%s/train_log.jsonl", cut);
    char *x = tu_read_file(la, NULL), *y = tu_read_file(lb, NULL);
    int rows_x = 0, rows_y = 0;
    for (char *p = x; (p = strchr(p, '\n')); p++) rows_x++;
    for (char *p = y; (p = strchr(p, '\n')); p++) rows_y++;
    ck_assert_int_eq(rows_x, rows_y);
    free(x);
    free(y);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(test_sigint_then_resume_gives_the_same_bytes) {
    check_resume_matches(SIGINT, _i);
}
END_TEST

START_TEST(test_kill_then_resume_from_last_checkpoint_gives_the_same_bytes) {
    check_resume_matches(SIGKILL, _i);
}
END_TEST

/* --resume with --init goes on from the checkpoint: interrupted and resumed, a run
 * from a model ends with the bytes of the uninterrupted one. A model of other sizes does
 * not match the checkpoint. */
START_TEST(test_init_resumes_from_a_matching_checkpoint_only) {
    char *dir = tu_tmpdir(), init[4096], other[4096], full[4096], cut[4096], ckpt[4200], ma[4200],
         mb[4200], cmd[8192], *se;
    snprintf(init, sizeof(init), "%s/init", dir);
    snprintf(other, sizeof(other), "%s/other", dir);
    snprintf(full, sizeof(full), "%s/full", dir);
    snprintf(cut, sizeof(cut), "%s/cut", dir);
    char *text = tu_sample_text(30000);
    ck_assert_int_eq(tu_make_model_dir(init, text, 16, 48, 1, 5), 0);
    ck_assert_int_eq(tu_make_model_dir(other, text, 16, 40, 1, 5), 0);
    free(text);
    const char *flags = "--seq 32 --batch 16 --steps 1000 --eval-every 25 --checkpoint-every 10 "
                        "--threads 2 --seed 9";
    ck_assert_msg(train_from(init, corpus_path, full, flags, NULL, &se) == 0, "%s", se);
    free(se);
    snprintf(cmd, sizeof(cmd),
             "exec %s train --corpus '%s' --out '%s' --init '%s' %s >/dev/null 2>&1",
             tu_bin("charlm-train"), corpus_path, cut, init, flags);
    pid_t pid = spawn(cmd);
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.safetensors", cut);
    wait_for_file(ckpt);
    usleep(20000);
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);

    char resume[1024];
    snprintf(resume, sizeof(resume), "%s --resume", flags);
    ck_assert_int_eq(train_from(other, corpus_path, cut, resume, NULL, &se), 2);
    ck_assert_msg(strstr(se, "checkpoint has hidden 48") != NULL, "%s", se);
    free(se);
    ck_assert_msg(train_from(init, corpus_path, cut, resume, NULL, &se) == 0, "%s", se);
    ck_assert_ptr_nonnull(strstr(se, "resumed"));
    free(se);
    snprintf(ma, sizeof(ma), "%s/model.safetensors", full);
    snprintf(mb, sizeof(mb), "%s/model.safetensors", cut);
    ck_assert_msg(files_equal(ma, mb), "the resumed run's weights differ from the uninterrupted");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* --eval-seconds: a run validates (and checkpoints) by its training time too, so one sized
 * by a budget gets its evaluations whatever its speed. */
START_TEST(test_eval_seconds_validates_by_time) {
    char *dir = tu_tmpdir(), out[4096], path[4200], *so, *se;
    snprintf(out, sizeof(out), "%s/m", dir);
    const char *flags = "--steps 100000000 --eval-every 100000000 --eval-seconds 0.25 --threads 1 "
                        "--max-time 1";
    ck_assert_msg(train(out, flags, &so, &se) == 0, "%s", se);
    snprintf(path, sizeof(path), "%s/train_log.jsonl", out);
    char *log = tu_read_file(path, NULL);
    ck_assert_ptr_nonnull(log);
    int rows = 0;
    for (char *p = log; (p = strchr(p, '\n')); p++) rows++;
    // At 0.25, 0.5, 0.75 and 1 s of training (the last the budget's own evaluation); one
    // more or less when a step straddles a mark.
    ck_assert_msg(rows >= 3 && rows <= 5, "%d rows:\n%s", rows, log);
    ck_assert_int_eq((long)checkpoint_meta(out, "step"), (long)json_number(so, "steps"));
    free(log);
    free(so);
    free(se);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* --max-time: a run whose --steps would take far longer ends once its training time
 * reaches the budget, with an evaluation, a checkpoint and the schedule at its end; a
 * resumed run counts the time its checkpoint had spent. */
START_TEST(test_max_time_stops_on_the_budget_and_counts_resumed_time) {
    char *dir = tu_tmpdir(), out[4096], path[4200], *so, *se;
    snprintf(out, sizeof(out), "%s/m", dir);
    const char *flags = "--steps 100000000 --eval-every 200 --threads 1 --max-time 1";
    ck_assert_msg(train(out, flags, &so, &se) == 0, "%s", se);
    ck_assert_msg(strstr(so, "\"stopped\": \"time\"") != NULL, "%s", so);
    ck_assert_ptr_nonnull(strstr(se, "stopped at step"));
    long steps = (long)json_number(so, "steps");
    double spent = json_number(so, "train_time_s");
    ck_assert_msg(steps > 0 && steps < 100000000, "steps %ld", steps);
    ck_assert_msg(spent >= 1.0 && spent < 1.5, "trained for %.3f s on a budget of 1", spent);
    // The progress lines' ETA is the budget's, not the 1e8 steps': a second at most.
    int lines = 0;
    for (const char *e = se; (e = strstr(e, " eta ")); e += 5, lines++)
        ck_assert_msg(strncmp(e + 5, "0m00s", 5) == 0 || strncmp(e + 5, "0m01s", 5) == 0, "%.40s",
                      e);
    ck_assert_int_gt(lines, 0);
    ck_assert_msg(json_number(so, "elapsed_s") < 10, "%s", so);
    ck_assert_double_eq_tol(checkpoint_meta(out, "train_time_s"), spent, 1e-3);
    ck_assert_int_eq((long)checkpoint_meta(out, "step"), steps);
    // The last row is the stopping step's, at the schedule's floor, lr / 10.
    snprintf(path, sizeof(path), "%s/train_log.jsonl", out);
    char *log = tu_read_file(path, NULL), *last = log;
    ck_assert_ptr_nonnull(log);
    for (char *p = log; (p = strchr(p, '\n')) && p[1]; p++) last = p + 1;
    ck_assert_int_eq((long)json_number(last, "step"), steps);
    ck_assert_msg(json_number(last, "lr") < 1.05 * 2e-4, "lr at the end %g",
                  json_number(last, "lr"));
    free(log);
    free(so);
    free(se);

    // Resumed with a budget of 2: one more second of training, not two.
    ck_assert_msg(train(out, "--steps 100000000 --eval-every 200 --threads 1 --max-time 2 --resume",
                        &so, &se) == 0,
                  "%s", se);
    ck_assert_msg(strstr(so, "\"stopped\": \"time\"") != NULL, "%s", so);
    double total = json_number(so, "train_time_s");
    ck_assert_msg(total >= 2.0 && total < 2.5, "trained for %.3f s in all on a budget of 2", total);
    ck_assert_msg(json_number(so, "elapsed_s") < 1.8, "the resumed run took %.3f s",
                  json_number(so, "elapsed_s"));
    ck_assert((long)json_number(so, "steps") > steps);
    ck_assert_double_eq_tol(checkpoint_meta(out, "train_time_s"), total, 1e-3);
    free(so);
    free(se);
    // Its budget spent, the checkpoint has nothing left to resume.
    ck_assert_int_eq(train(out, "--steps 100000000 --threads 1 --max-time 2 --resume", NULL, &se),
                     2);
    ck_assert_msg(strstr(se, "--max-time is 2") != NULL, "%s", se);
    free(se);
    // A checkpoint from before budgets, without the key (renamed in place, same length),
    // resumes with the time counted from 0.
    snprintf(path, sizeof(path), "%s/checkpoint.safetensors", out);
    size_t len;
    char *ckpt = tu_read_file(path, &len), *key = memmem(ckpt, len, "\"train_time_s\"", 14);
    ck_assert_ptr_nonnull(key);
    key[1] = 'x';
    FILE *f = fopen(path, "wb");
    ck_assert_int_eq(fwrite(ckpt, 1, len, f), len);
    fclose(f);
    free(ckpt);
    ck_assert_msg(train(out,
                        "--steps 100000000 --eval-every 200 --threads 1 --max-time 0.5 --resume",
                        &so, &se) == 0,
                  "%s", se);
    total = json_number(so, "train_time_s");
    ck_assert_msg(total >= 0.5 && total < 0.9, "trained for %.3f s from an old checkpoint", total);
    free(so);
    free(se);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* The log rows of out, each parsed; the caller frees them with cJSON_Delete. */
static int log_rows(const char *out, cJSON **rows, int max) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/train_log.jsonl", out);
    char *log = tu_read_file(path, NULL);
    ck_assert_ptr_nonnull(log);
    int n = 0;
    for (char *line = log; *line && n < max;) {
        char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        rows[n] = cJSON_ParseWithLength(line, (size_t)(nl - line));
        ck_assert_msg(rows[n] != NULL, "row %d is not JSON: %.*s", n, (int)(nl - line), line);
        n++;
        line = nl + 1;
    }
    free(log);
    return n;
}

/* --sample-chars: every row holds what the model writes then, N chars, the same in two
 * runs, JSON-escaped; and sampling draws nothing from training's generator: the weights
 * and every other field of the rows are a run's without it. */
START_TEST(test_sample_chars_logs_n_chars_and_changes_no_weight) {
    arch = &ARCHS[_i];
    // A text with quotes, backslashes and two-byte chars for the samples to escape.
    char *text = tu_sample_text(30000), *odd = malloc(60001), *dir = tu_tmpdir();
    size_t len = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '.')
            odd[len++] = '"';
        else if (*p == 'o')
            odd[len++] = '\\';
        else if (*p == 'e')
            len += (size_t)snprintf(odd + len, 3, "\xc3\xa9");
        else
            odd[len++] = *p;
    }
    char *keep = corpus_path;
    corpus_path = tu_write_file(dir, "odd.txt", odd, len);
    char outs[3][4096], ma[4200], mb[4200], *se;
    const char *extra[3] = {"--sample-chars 37", "", "--sample-chars 37"};
    for (int r = 0; r < 3; r++) {
        snprintf(outs[r], sizeof outs[r], "%s/m%d", dir, r);
        char flags[256];
        snprintf(flags, sizeof flags, "--steps 50 --threads 2 %s", extra[r]);
        ck_assert_msg(train(outs[r], flags, NULL, &se) == 0, "%s", se);
        free(se);
    }
    snprintf(ma, sizeof(ma), "%s/model.safetensors", outs[0]);
    snprintf(mb, sizeof(mb), "%s/model.safetensors", outs[1]);
    ck_assert_msg(files_equal(ma, mb), "sampling changed the weights");
    cJSON *rows[3][8];
    int n[3];
    for (int r = 0; r < 3; r++) n[r] = log_rows(outs[r], rows[r], 8);
    ck_assert_int_eq(n[0], 2); // steps 25 and 50
    ck_assert_int_eq(n[1], n[0]);
    ck_assert_int_eq(n[2], n[0]);
    for (int i = 0; i < n[0]; i++) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(rows[0][i], "sample");
        ck_assert_msg(cJSON_IsString(s), "row %d has no sample", i);
        ck_assert_int_eq((int)utf8_count(s->valuestring, strlen(s->valuestring)), 37);
        ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(rows[1][i], "sample"));
        const cJSON *again = cJSON_GetObjectItemCaseSensitive(rows[2][i], "sample");
        ck_assert_msg(cJSON_IsString(again) && strcmp(again->valuestring, s->valuestring) == 0,
                      "the samples of two runs differ");
        const char *same[] = {"step", "train_loss", "val_loss", "lr", "val_chars"};
        for (size_t k = 0; k < sizeof same / sizeof *same; k++)
            ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(rows[0][i], same[k])->valuedouble,
                                cJSON_GetObjectItemCaseSensitive(rows[1][i], same[k])->valuedouble);
    }
    // Different steps write different text.
    ck_assert_str_ne(cJSON_GetObjectItemCaseSensitive(rows[0][0], "sample")->valuestring,
                     cJSON_GetObjectItemCaseSensitive(rows[0][1], "sample")->valuestring);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < n[r]; i++) cJSON_Delete(rows[r][i]);
    free(corpus_path);
    corpus_path = keep;
    free(odd);
    free(text);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Training into a folder that holds a model (a served one): the previous model's log
 * stays until the new run publishes its first model, through an interruption and
 * --resume; then it is the new run's log alone. */
START_TEST(test_previous_log_kept_until_the_first_model) {
    char *dir = tu_tmpdir(), out[4096], log[4200], next[4200], ckpt[4200], cmd[8192], *se;
    snprintf(out, sizeof(out), "%s/served", dir);
    ck_assert_int_eq(mkdir(out, 0755), 0);
    const char *old = "{\"step\": 100, \"train_loss\": 2.5, \"val_loss\": 2.6}\n"
                      "{\"step\": 200, \"train_loss\": 2.1, \"val_loss\": 2.3}\n";
    free(tu_write_file(out, "train_log.jsonl", old, strlen(old)));
    snprintf(log, sizeof(log), "%s/train_log.jsonl", out);
    snprintf(next, sizeof(next), "%s/train_log.jsonl.new", out);
    snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.safetensors", out);
    // The first evaluation, and so the first model, comes at the last step.
    const char *flags = "--embed 16 --hidden 48 --seq 32 --batch 16 --seed 7 --steps 400 "
                        "--eval-every 400 --checkpoint-every 10 --threads 1";
    snprintf(cmd, sizeof(cmd), "exec %s train --corpus '%s' --out '%s' %s >/dev/null 2>&1",
             tu_bin("charlm-train"), corpus_path, out, flags);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    wait_for_file(ckpt); // training is under way
    char *now = tu_read_file(log, NULL);
    ck_assert_msg(now && strcmp(now, old) == 0, "while training, train_log.jsonl is '%s'",
                  now ? now : "(gone)");
    free(now);
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);
    now = tu_read_file(log, NULL);
    ck_assert_msg(now && strcmp(now, old) == 0, "after the interruption, train_log.jsonl is '%s'",
                  now ? now : "(gone)");
    free(now);
    ck_assert_int_eq(access(next, F_OK), 0);

    snprintf(cmd, sizeof(cmd), "%s train --corpus '%s' --out '%s' %s --resume",
             tu_bin("charlm-train"), corpus_path, out, flags);
    ck_assert_msg(tu_run(cmd, NULL, &se) == 0, "%s", se);
    free(se);
    now = tu_read_file(log, NULL);
    ck_assert_ptr_nonnull(now);
    ck_assert_msg(strncmp(now, "{\"step\": 400, ", 14) == 0 && strchr(now, '\n') &&
                      strchr(now, '\n')[1] == '\0',
                  "the published log is not the new run's one row: '%s'", now);
    free(now);
    ck_assert_msg(access(next, F_OK) != 0, "train_log.jsonl.new is left behind");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* --init: the run's weights at step 0 are the model's (one step at a tiny rate scores the
 * validation split as eval scores it with the model), the chars its vocabulary lacks are
 * left out and counted, and the vocab.json published is the model's, byte for byte. */
START_TEST(test_init_starts_from_the_model_and_skips_unknown_chars) {
    arch = &ARCHS[_i];
    char *dir = tu_tmpdir(), init[4096], out[4096], a[4200], b[4200], cmd[8192];
    char *so, *se, *eo, *ee;
    snprintf(init, sizeof(init), "%s/init", dir);
    snprintf(out, sizeof(out), "%s/out", dir);
    ck_assert_msg(train(init, "--steps 60 --threads 1", NULL, &se) == 0, "%s", se);
    free(se);
    // The corpus the model learnt, with 7 chars it has never seen: 4 in what becomes the
    // training split, 3 in the validation split (the last 10%).
    char *text = tu_sample_text(30000), *mixed = malloc(30100);
    snprintf(mixed, 30100, "Z\xc3\xa9%.15000s\xe2\x82\xac#%.14000sZ\xc3\xa9Q%s", text, text + 15000,
             text + 29000);
    char *mixed_path = tu_write_file(dir, "mixed.txt", mixed, strlen(mixed));
    ck_assert_msg(train_from(init, mixed_path, out,
                             "--steps 1 --lr 1e-9 --eval-every 1 --batch 1 --threads 1 --seed 3",
                             &so, &se) == 0,
                  "%s", se);
    ck_assert_int_eq((int)json_number(so, "skipped"), 7);
    ck_assert_msg(strstr(se, ", 7 skipped") != NULL, "start line: %s", se);
    snprintf(cmd, sizeof(cmd), "%s eval --model '%s' --corpus '%s' --val-frac 0.1",
             tu_bin("charlm-train"), init, mixed_path);
    ck_assert_msg(tu_run(cmd, &eo, &ee) == 0, "%s", ee);
    ck_assert_int_eq((int)json_number(eo, "skipped"), 3);
    snprintf(a, sizeof(a), "%s/train_log.jsonl", out);
    char *row = tu_read_file(a, NULL);
    ck_assert_ptr_nonnull(row);
    double at_start = json_number(row, "val_loss"), of_model = json_number(eo, "loss");
    ck_assert_msg(fabs(at_start - of_model) < 1e-5,
                  "after one step at a tiny rate, validation %.6f; the model's own %.6f", at_start,
                  of_model);
    snprintf(a, sizeof(a), "%s/vocab.json", init);
    snprintf(b, sizeof(b), "%s/vocab.json", out);
    ck_assert_msg(files_equal(a, b), "the published vocab.json is not the model's");
    // The model so published loads, and the text without foreign chars has nothing to skip.
    free(so);
    free(se);
    ck_assert_msg(train_from(out, corpus_path, out,
                             "--steps 2 --eval-every 1 --batch 2 --threads 1", &so, &se) == 0,
                  "%s", se);
    ck_assert_int_eq((int)json_number(so, "skipped"), 0);
    free(row);
    free(eo);
    free(ee);
    free(so);
    free(se);
    free(mixed_path);
    free(mixed);
    free(text);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Runs a command expected to fail with exit 2; checks the message and that out is untouched. */
static void expect_bad(const char *args, const char *out, const char *want) {
    char cmd[8192], *so, *se;
    snprintf(cmd, sizeof(cmd), "%s %s", tu_bin("charlm-train"), args);
    int rc = tu_run(cmd, &so, &se);
    ck_assert_msg(rc == 2, "'%s' exited %d, stderr: %s", args, rc, se);
    ck_assert_msg(strstr(se, want) != NULL, "'%s': stderr '%s' lacks '%s'", args, se, want);
    char sentinel[4200];
    snprintf(sentinel, sizeof(sentinel), "%s/model.safetensors", out);
    char *kept = tu_read_file(sentinel, NULL);
    ck_assert_msg(kept && strcmp(kept, "previous model") == 0, "'%s' overwrote the model", args);
    free(kept);
    char log[4200];
    snprintf(log, sizeof(log), "%s/vocab.json", out);
    ck_assert_msg(access(log, F_OK) != 0, "'%s' wrote vocab.json", args);
    free(so);
    free(se);
}

START_TEST(test_bad_input_exits_2_and_writes_nothing) {
    char *dir = tu_tmpdir(), args[8192];
    char *out = malloc(4200);
    snprintf(out, 4200, "%s/out", dir);
    mkdir(out, 0755);
    free(tu_write_file(out, "model.safetensors", "previous model", 14));
    char *bad_utf8 = tu_write_file(dir, "bad.txt", "hello w\xc3\x28rld and more text", 26);
    char *tiny = tu_write_file(dir, "tiny.txt", "too short", 9);

    snprintf(args, sizeof(args), "train --corpus '%s/missing.txt' --out '%s'", dir, out);
    expect_bad(args, out, "missing.txt");
    snprintf(args, sizeof(args), "train --corpus '%s' --out '%s'", bad_utf8, out);
    expect_bad(args, out, "invalid UTF-8 at byte offset 7");
    snprintf(args, sizeof(args), "train --corpus '%s' --out '%s' --seq 32", tiny, out);
    expect_bad(args, out, "too short");
    const char *nonsense[][2] = {
        {"--steps abc", "--steps: 'abc' is not an integer"},
        {"--steps 0", "--steps must be >= 1"},
        {"--lr -1", "--lr must be in"},
        {"--hidden 0", "hidden"},
        {"--dropout 1.5", "--dropout must be in"},
        {"--embed-dropout 1", "--embed-dropout must be in"},
        {"--var-dropout -0.1", "--var-dropout must be in"},
        {"--weight-decay -1", "--weight-decay must be"},
        {"--weight-decay 1000", "--weight-decay must be"},
        {"--patience -1", "--patience must be"},
        {"--val-frac 1", "--val-frac must be in"},
        {"--threads 0", "--threads must be an integer from 1 to 64"},
        {"--bogus 3", "unknown flag '--bogus'"},
        {"--seq", "--seq needs a value"},
        {"--max-time 0", "--max-time must be > 0"},
        {"--max-time -3", "--max-time must be > 0"},
        {"--max-time inf", "--max-time: 'inf' is not a finite number"},
        {"--sample-chars 1001", "--sample-chars must be an integer from 0 to 1000"},
        {"--sample-chars -1", "--sample-chars must be an integer from 0 to 1000"},
    };
    for (size_t i = 0; i < sizeof(nonsense) / sizeof(nonsense[0]); i++) {
        snprintf(args, sizeof(args), "train --corpus '%s' --out '%s' %s", corpus_path, out,
                 nonsense[i][0]);
        expect_bad(args, out, nonsense[i][1]);
    }
    snprintf(args, sizeof(args), "train --out '%s'", out);
    expect_bad(args, out, "--corpus is required");
    snprintf(args, sizeof(args), "train --corpus '%s' --out '%s' --resume", corpus_path, out);
    expect_bad(args, out, "checkpoint.safetensors does not exist");
    expect_bad("frobnicate", out, "unknown command 'frobnicate'");
    // --init: a folder that is not a model's, and the flags the model decides.
    char *model = malloc(4200), *text = tu_sample_text(2000);
    snprintf(model, 4200, "%s/model", dir);
    ck_assert_int_eq(tu_make_model_dir(model, text, 8, 16, 1, 3), 0);
    free(text);
    const char *init_bad[][2] = {
        {"--init '%s/nowhere'", "--init: "},
        {"--init '%s'", "--init: "}, // dir: a folder without a model
        {"--init '%s/tiny.txt'", "--init: "},
        {"--init '%s/model' --embed 8", "--embed: the model of --init decides it"},
        {"--init '%s/model' --hidden=16", "--hidden: the model of --init decides it"},
        {"--layers 1 --init '%s/model'", "--layers: the model of --init decides it"},
        {"--init '%s/model' --arch lstm", "--arch: the model of --init decides it"},
    };
    for (size_t i = 0; i < sizeof(init_bad) / sizeof(init_bad[0]); i++) {
        char flag[4400];
        snprintf(flag, sizeof(flag), init_bad[i][0], dir);
        snprintf(args, sizeof(args), "train --corpus '%s' --out '%s' %s", corpus_path, out, flag);
        expect_bad(args, out, init_bad[i][1]);
    }
    free(model);
    snprintf(args, sizeof(args), "eval --model '%s' --corpus '%s'", out, corpus_path);
    expect_bad(args, out, "vocab.json");
    free(bad_utf8);
    free(tiny);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_eval_skips_and_counts_unknown_chars) {
    char *dir = tu_tmpdir();
    char *text = tu_sample_text(2000);
    ck_assert_int_eq(tu_make_model_dir(dir, text, 8, 16, 1, 3), 0);
    // Four chars the vocabulary lacks: "Z", "é" (2 bytes), "€" (3 bytes), "#".
    const char *sentence = "the cat Z sat é on € a mat #";
    char *scored = tu_write_file(dir, "t.txt", sentence, strlen(sentence));
    char cmd[8192], *so, *se;
    snprintf(cmd, sizeof(cmd), "%s eval --model '%s' --corpus '%s'", tu_bin("charlm-train"), dir,
             scored);
    ck_assert_msg(tu_run(cmd, &so, &se) == 0, "%s", se);
    ck_assert_int_eq((int)json_number(so, "skipped"), 4);
    ck_assert_int_eq((int)json_number(so, "chars"), 28 - 4 - 1);
    ck_assert(json_number(so, "loss") > 0);
    free(so);
    free(se);
    free(scored);
    free(text);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_greedy_sample_is_reproducible_and_starts_with_prompt) {
    char *dir = tu_tmpdir();
    char *text = tu_sample_text(2000);
    ck_assert_int_eq(tu_make_model_dir(dir, text, 8, 16, 1, 3), 0);
    char cmd[8192], *a, *b, *se;
    snprintf(cmd, sizeof(cmd),
             "%s sample --model '%s' --prompt 'the cat' --max-tokens 40 --temperature 0.9 --seed 5",
             tu_bin("charlm-train"), dir);
    ck_assert_msg(tu_run(cmd, &a, &se) == 0, "%s", se);
    free(se);
    ck_assert_int_eq(tu_run(cmd, &b, NULL), 0);
    ck_assert_str_eq(a, b);
    ck_assert(strncmp(a, "the cat", 7) == 0);
    ck_assert_int_eq((int)strlen(a), 7 + 40 + 1);
    free(a);
    free(b);
    free(text);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_validation_loss_falls_well_below_uniform, 0, NARCHS);
    tcase_add_loop_test(tc, test_same_seed_and_threads_give_identical_weights, 0, NARCHS);
    tcase_add_test(tc, test_regularised_runs_are_reproducible_and_change_the_model);
    tcase_add_loop_test(tc, test_patience_stops_at_the_right_step_and_keeps_the_best_model, 0,
                        NARCHS);
    tcase_add_loop_test(tc, test_sigint_then_resume_gives_the_same_bytes, 0, NARCHS);
    tcase_add_loop_test(tc, test_kill_then_resume_from_last_checkpoint_gives_the_same_bytes, 0,
                        NARCHS);
    tcase_add_loop_test(tc, test_init_starts_from_the_model_and_skips_unknown_chars, 0, NARCHS);
    tcase_add_test(tc, test_init_resumes_from_a_matching_checkpoint_only);
    tcase_add_test(tc, test_max_time_stops_on_the_budget_and_counts_resumed_time);
    tcase_add_test(tc, test_eval_seconds_validates_by_time);
    tcase_add_loop_test(tc, test_sample_chars_logs_n_chars_and_changes_no_weight, 0, NARCHS);
    tcase_add_test(tc, test_previous_log_kept_until_the_first_model);
    tcase_add_test(tc, test_bad_input_exits_2_and_writes_nothing);
    tcase_add_test(tc, test_eval_skips_and_counts_unknown_chars);
    tcase_add_test(tc, test_greedy_sample_is_reproducible_and_starts_with_prompt);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
