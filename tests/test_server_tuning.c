/* The fine-tuning jobs over real HTTP, with the real charlm-train as the child
 * (server/tuning.c): a job's life from upload to a served model, its events (JSON and
 * SSE), checkpoints and fields; cancel with the child reaped; SIGTERM mid-job leaving a
 * checkpoint the next server resumes from, and the same after SIGKILL; going on from a
 * served model's weights; refusals; the routes absent without --training-dir. */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"
#include "utf8.h"

#define CT "multipart/form-data; boundary=XyZ"
// A job's trainer on a small text: seconds in a Release build, more under the sanitizers.
#define JOB_SECONDS 240

static char *tdir; // the --training-dir of the test's servers

static void suite_setup(void) {
    suite_model_make(2000, 8, 16, 1, 5);
}

static void suite_teardown(void) {
    suite_model_remove();
}

static void tdir_make(void) {
    char *t = tu_tmpdir();
    tdir = malloc(strlen(t) + 8);
    sprintf(tdir, "%s/train", t);
    free(t);
}

static void tdir_remove(void) {
    char *parent = strdup(tdir);
    *strrchr(parent, '/') = '\0';
    tu_rmtree(parent);
    free(parent);
    free(tdir);
}

static void start_tuning(void) {
    tdir_make();
    const char *args[] = {"--training-dir", tdir, "--drain-timeout", "20", NULL};
    ck_assert_int_eq(srv_start(&S, model_dir, args), 0);
}

static void stop_tuning(void) {
    if (S.pid) ck_assert_int_eq(srv_stop(&S), 0);
    tdir_remove();
}

static Srv restart(void) {
    Srv s;
    const char *args[] = {"--training-dir", tdir, "--drain-timeout", "20", NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    return s;
}

// Uploads text as name; returns its file id (malloc'd).
static char *upload(int port, const char *name, const char *text) {
    size_t dlen = strlen(text), cap = dlen + 1024, n = 0;
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n,
                          "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                          "fine-tune\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                          "filename=\"%s\"\r\n\r\n",
                          name);
    memcpy(b + n, text, dlen);
    n += dlen;
    n += (size_t)snprintf(b + n, cap - n, "\r\n--XyZ--\r\n");
    Resp r = http_req(port, "POST", "/v1/files", CT, b, n, 0);
    free(b);
    ck_assert_msg(r.status == 200, "upload: %ld %s", r.status, r.body);
    cJSON *o = resp_json(&r);
    char *id = strdup(json_str(o, "id"));
    cJSON_Delete(o);
    resp_free(&r);
    return id;
}

// A text of lines the tiny trainer learns from, `n` bytes or so.
static char *lines_text(size_t n) {
    const char *line = "the cat sat on the mat and the dog sat on the log.\n";
    size_t l = strlen(line), k = n / l + 1;
    char *t = malloc(k * l + 1);
    for (size_t i = 0; i < k; i++) memcpy(t + i * l, line, l);
    t[k * l] = '\0';
    return t;
}

// POSTs a job; returns the job object (a 200 asserted).
static cJSON *create(int port, const char *file, const char *rest) {
    char body[1024];
    snprintf(body, sizeof(body), "{\"training_file\": \"%s\", %s}", file, rest);
    return http_post_ok(port, "/v1/fine_tuning/jobs", body);
}

static cJSON *get_job(int port, const char *id) {
    char path[128];
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s", id);
    Resp r = http_get(port, path);
    ck_assert_msg(r.status == 200, "%s: %ld %s", path, r.status, r.body);
    cJSON *o = resp_json(&r);
    resp_free(&r);
    return o;
}

// Polls the job until its status is `status` (failing on a final one that is not it).
static cJSON *wait_status(int port, const char *id, const char *status) {
    for (int waited = 0; waited < JOB_SECONDS * 20; waited++) {
        cJSON *o = get_job(port, id);
        const char *st = json_str(o, "status");
        if (strcmp(st, status) == 0) return o;
        int final = !strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled");
        ck_assert_msg(!final, "job %s is %s, waiting for %s: %s", id, st, status,
                      cJSON_PrintUnformatted(o));
        cJSON_Delete(o);
        sleep_ms(50);
    }
    ck_abort_msg("job %s never became %s", id, status);
    return NULL;
}

// The job's events, oldest first (the list is newest first).
static cJSON *events(int port, const char *id) {
    char path[160];
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/events?limit=100", id);
    Resp r = http_get(port, path);
    ck_assert_int_eq(r.status, 200);
    cJSON *list = resp_json(&r);
    resp_free(&r);
    cJSON *data = cJSON_DetachItemFromObject(list, "data"), *out = cJSON_CreateArray();
    ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(list, "has_more")));
    for (int i = cJSON_GetArraySize(data) - 1; i >= 0; i--)
        cJSON_AddItemToArray(out, cJSON_DetachItemFromArray(data, i));
    cJSON_Delete(data);
    cJSON_Delete(list);
    return out;
}

// Waits until some metrics event exists (the trainer is in its loop, a checkpoint made).
static void wait_metrics(int port, const char *id) {
    for (int waited = 0; waited < JOB_SECONDS * 20; waited++) {
        cJSON *ev = events(port, id);
        cJSON *e;
        int found = 0;
        cJSON_ArrayForEach(e, ev) found |= strcmp(json_str(e, "type"), "metrics") == 0;
        cJSON_Delete(ev);
        if (found) return;
        sleep_ms(50);
    }
    ck_abort_msg("no evaluation of job %s", id);
}

// Children of pid still in the process table (running or zombies), and zombies among
// them; *last the last one listed.
static int children_pid(pid_t pid, int *zombies, long *last) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    *zombies = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char file[128];
        snprintf(file, sizeof(file), "/proc/%d/task/%s/children", (int)pid, e->d_name);
        char *list = tu_read_file(file, NULL);
        for (char *p = list; p && *p;) {
            long c = strtol(p, &p, 10);
            if (c <= 0) break;
            n++;
            *last = c;
            char stat[64];
            snprintf(stat, sizeof(stat), "/proc/%ld/stat", c);
            char *s = tu_read_file(stat, NULL);
            char *close = s ? strrchr(s, ')') : NULL;
            if (close && close[2] == 'Z') (*zombies)++;
            free(s);
        }
        free(list);
    }
    if (d) closedir(d);
    return n;
}

static int children(pid_t pid, int *zombies) {
    long last;
    return children_pid(pid, zombies, &last);
}

static char *model_file(const char *model, const char *name) {
    char *p = malloc(strlen(tdir) + strlen(model) + strlen(name) + 16);
    sprintf(p, "%s/models/%s/%s", tdir, model, name);
    return p;
}

static int exists(const char *path) {
    return access(path, F_OK) == 0;
}

START_TEST(test_job_to_served_model) {
    char *text = lines_text(6000), *file = upload(S.port, "cats.txt", text);
    cJSON *job = create(S.port, file,
                        "\"model\": \"lstm\", \"hyperparameters\": {\"steps\": 40, \"batch_size\": "
                        "2}, \"suffix\": \"cats\", \"seed\": 3");
    ck_assert_str_eq(json_str(job, "object"), "fine_tuning.job");
    ck_assert_str_eq(json_str(job, "status"), "validating_files");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(job, "fine_tuned_model")));
    ck_assert_str_eq(json_str(job, "training_file"), file);
    ck_assert_int_eq((int)json_num(job, "seed"), 3);
    char *id = strdup(json_str(job, "id"));
    ck_assert(strncmp(id, "ftjob-", 6) == 0 && strlen(id) == 30);
    cJSON_Delete(job);

    job = wait_status(S.port, id, "succeeded");
    const char *model = json_str(job, "fine_tuned_model");
    ck_assert_msg(strncmp(model, "ft:lstm:charlm:cats:", 20) == 0, "%s", model);
    cJSON *h = cJSON_GetObjectItem(job, "hyperparameters");
    ck_assert_int_eq((int)json_num(h, "steps"), 40);
    ck_assert_int_eq((int)json_num(h, "batch_size"), 2);
    ck_assert_int_eq((int)json_num(job, "step"), 40);
    // Windows of the LSTM's default 128 chars, 2 a step, 40 steps.
    ck_assert_int_eq((long)json_num(job, "trained_tokens"), 40L * 2 * 128);
    ck_assert(json_num(job, "finished_at") >= json_num(job, "created_at"));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(job, "error")));

    // Its events: the states in order, an evaluation every 40/50 -> 1 step, each with a
    // sample of 160 chars; the last evaluation is at the last step.
    cJSON *ev = events(S.port, id), *e;
    const char *want[] = {"validating_files", "queued", "running", "succeeded"};
    int nstate = 0, nmetrics = 0;
    double best = 1e9, last_step = 0;
    cJSON_ArrayForEach(e, ev) {
        ck_assert_str_eq(json_str(e, "object"), "fine_tuning.job.event");
        cJSON *d = cJSON_GetObjectItem(e, "data");
        if (strcmp(json_str(e, "type"), "metrics") == 0) {
            nmetrics++;
            ck_assert(json_num(d, "step") > last_step);
            last_step = json_num(d, "step");
            ck_assert_int_eq((int)json_num(d, "total_steps"), 40);
            const char *sample = json_str(d, "sample");
            ck_assert_int_eq(utf8_count(sample, strlen(sample)), 160);
            if (json_num(d, "valid_loss") < best) best = json_num(d, "valid_loss");
        } else if (cJSON_GetObjectItem(d, "status")) {
            ck_assert_int_lt(nstate, 4);
            ck_assert_str_eq(json_str(d, "status"), want[nstate++]);
        }
    }
    ck_assert_int_eq(nstate, 4);
    ck_assert_int_eq(nmetrics, 40);
    ck_assert_int_eq((int)last_step, 40);
    ck_assert_double_eq_tol(json_num(job, "best_val_loss"), best, 1e-9);
    cJSON_Delete(ev);

    // The same as Server-Sent Events: every event oldest first, then [DONE].
    char path[200];
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/events?stream=true", id);
    Resp r = http_get(S.port, path);
    ck_assert_int_eq(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    ck_assert(strncmp(ct, "text/event-stream", 17) == 0);
    free(ct);
    char *sse[128];
    int n = sse_events(r.body, sse, 128);
    ck_assert_int_eq(n, 4 + 40 + 1 + 1); // states, evaluations, "served", [DONE]
    ck_assert_str_eq(sse[n - 1], "[DONE]");
    cJSON *first = cJSON_Parse(sse[0]);
    ck_assert_str_eq(json_str(cJSON_GetObjectItem(first, "data"), "status"), "validating_files");
    cJSON_Delete(first);
    for (int i = 0; i < n; i++) free(sse[i]);
    resp_free(&r);

    // Its best model: listed as the checkpoint, served, and generating.
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/checkpoints", id);
    r = http_get(S.port, path);
    ck_assert_int_eq(r.status, 200);
    cJSON *ck = resp_json(&r), *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(ck, "data"), 0);
    ck_assert_str_eq(json_str(c0, "fine_tuned_model_checkpoint"), model);
    ck_assert_double_eq_tol(json_num(cJSON_GetObjectItem(c0, "metrics"), "valid_loss"), best, 1e-9);
    cJSON_Delete(ck);
    resp_free(&r);
    char req[300];
    snprintf(req, sizeof(req),
             "{\"model\": \"%s\", \"prompt\": \"the cat\", \"max_tokens\": 20, \"seed\": 1}",
             model);
    cJSON *out = http_post_ok(S.port, "/v1/completions", req);
    ck_assert_str_eq(json_str(out, "model"), model);
    const char *gen = json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(out, "choices"), 0), "text");
    ck_assert_int_eq(utf8_count(gen, strlen(gen)), 20);
    cJSON_Delete(out);
    r = http_get(S.port, "/v1/models");
    ck_assert(strstr(r.body, model));
    resp_free(&r);
    // A finished job keeps its model and log, not its checkpoint.
    char *f = model_file(model, "model.safetensors"),
         *k = model_file(model, "checkpoint.safetensors");
    ck_assert(exists(f));
    ck_assert(!exists(k));
    free(f);
    free(k);
    cJSON_Delete(job);

    // Lists: newest first, paged.
    cJSON *job2 = create(S.port, file, "\"model\": \"lstm\", \"hyperparameters\": {\"steps\": 2}");
    char *id2 = strdup(json_str(job2, "id"));
    cJSON_Delete(job2);
    r = http_get(S.port, "/v1/fine_tuning/jobs?limit=1");
    cJSON *list = resp_json(&r);
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "data"), 0), "id"), id2);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(list, "has_more")));
    cJSON_Delete(list);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs?after=%s", id2);
    r = http_get(S.port, path);
    list = resp_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(list, "data")), 1);
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "data"), 0), "id"), id);
    ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(list, "has_more")));
    cJSON_Delete(list);
    resp_free(&r);
    cJSON_Delete(wait_status(S.port, id2, "succeeded"));
    free(id2);

    // DELETE /v1/models/{id}: the fine-tuned model goes (folder and listing); a model of
    // --model is no fine-tuned one.
    job = get_job(S.port, id);
    model = json_str(job, "fine_tuned_model");
    snprintf(path, sizeof(path), "/v1/models/%s", model);
    r = http_req(S.port, "DELETE", path, NULL, NULL, 0, 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *del = resp_json(&r);
    ck_assert_str_eq(json_str(del, "id"), model);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(del, "deleted")));
    cJSON_Delete(del);
    resp_free(&r);
    r = http_get(S.port, path);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    f = model_file(model, "");
    ck_assert(!exists(f));
    free(f);
    r = http_req(S.port, "DELETE", path, NULL, NULL, 0, 0);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    r = http_req(S.port, "DELETE", "/v1/models/charlm", NULL, NULL, 0, 0);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    r = http_get(S.port, "/v1/models/charlm");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    cJSON_Delete(job);
    free(id);
    free(file);
    free(text);
}
END_TEST

START_TEST(test_cancel_reaps_the_child) {
    char *text = lines_text(6000), *file = upload(S.port, "cats.txt", text);
    cJSON *job = create(S.port, file,
                        "\"model\": \"gpt\", \"hyperparameters\": {\"steps\": 1000000, "
                        "\"batch_size\": 2}");
    char *id = strdup(json_str(job, "id"));
    cJSON_Delete(job);
    cJSON_Delete(wait_status(S.port, id, "running"));
    int zombies;
    long trainer = 0;
    ck_assert_int_eq(children_pid(S.pid, &zombies, &trainer), 1);
    // One job at a time: a second one waits, queued, with no trainer of its own.
    cJSON *next = create(S.port, file, "\"model\": \"lstm\", \"hyperparameters\": {\"steps\": 3}");
    char *id2 = strdup(json_str(next, "id"));
    cJSON_Delete(next);
    cJSON_Delete(wait_status(S.port, id2, "queued"));
    sleep_ms(500);
    next = get_job(S.port, id2);
    ck_assert_str_eq(json_str(next, "status"), "queued");
    cJSON_Delete(next);
    ck_assert_int_eq(children(S.pid, &zombies), 1);
    char path[160];
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/cancel", id);
    Resp r = http_req(S.port, "POST", path, NULL, NULL, 0, 0); // no body, as clients send it
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    job = resp_json(&r);
    ck_assert_str_eq(json_str(job, "status"), "cancelled");
    cJSON_Delete(job);
    resp_free(&r);
    // The child is stopped and reaped: no process left, not even a zombie (a reaped child
    // leaves the process table; the queued job's trainer is another).
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/%ld", trainer);
    for (int i = 0; i < 400 && exists(proc); i++) sleep_ms(25);
    ck_assert_msg(!exists(proc), "trainer %ld still there", trainer);
    // The queued job runs once the cancelled one's trainer has gone.
    cJSON_Delete(wait_status(S.port, id2, "succeeded"));
    free(id2);
    cJSON *ev = events(S.port, id);
    cJSON *last = cJSON_GetArrayItem(ev, cJSON_GetArraySize(ev) - 1);
    ck_assert(strstr(json_str(last, "message"), "cancelled"));
    cJSON_Delete(ev);
    job = get_job(S.port, id);
    ck_assert_str_eq(json_str(job, "status"), "cancelled");
    ck_assert(json_num(job, "finished_at") > 0);
    cJSON_Delete(job);
    // Once ended it stays so: a second cancel is refused, and the stream ends at once.
    r = http_req(S.port, "POST", path, NULL, NULL, 0, 0);
    assert_error(&r, 400, NULL);
    resp_free(&r);
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/events?stream=true", id);
    r = http_get(S.port, path);
    ck_assert(strstr(r.body, "data: [DONE]"));
    resp_free(&r);
    free(id);
    free(file);
    free(text);
}
END_TEST

/* The server stopped mid-job by sig: SIGTERM stops the trainer with its checkpoint
 * within the drain; SIGKILL leaves that to the trainer (it gets SIGTERM as its parent
 * dies). Either way the next server resumes the job from the checkpoint and finishes it. */
static void stopped_mid_job(int sig) {
    char *text = lines_text(6000), *file = upload(S.port, "cats.txt", text);
    cJSON *job =
        create(S.port, file,
               "\"model\": \"lstm\", \"hyperparameters\": {\"steps\": 600, \"batch_size\": "
               "2}");
    char *id = strdup(json_str(job, "id"));
    cJSON_Delete(job);
    wait_metrics(S.port, id);
    char *model = NULL;
    for (int i = 0; i < JOB_SECONDS * 20 && !model; i++) {
        job = get_job(S.port, id);
        const cJSON *m = cJSON_GetObjectItem(job, "fine_tuned_model");
        if (cJSON_IsString(m)) model = strdup(m->valuestring);
        cJSON_Delete(job);
        if (!model) sleep_ms(50);
    }
    ck_assert_ptr_nonnull(model);
    // A model cannot be deleted while its job trains it.
    char path[200];
    snprintf(path, sizeof(path), "/v1/models/%s", model);
    Resp r = http_req(S.port, "DELETE", path, NULL, NULL, 0, 0);
    assert_error(&r, 400, NULL);
    ck_assert(strstr(r.body, "cancel it first"));
    resp_free(&r);
    char *ck = model_file(model, "checkpoint.safetensors");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int status;
    ck_assert(proc_signal_wait(S.pid, sig, 25000, &status));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (sig == SIGTERM) {
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
        ck_assert(t1.tv_sec - t0.tv_sec < 20); // within --drain-timeout
    }
    S.pid = 0;
    // The trainer is gone (after SIGKILL it may still be writing for a moment: the next
    // server waits for its lock), and the checkpoint is there.
    for (int i = 0; i < 200 && !exists(ck); i++) sleep_ms(25);
    ck_assert_msg(exists(ck), "no %s", ck);
    Srv s = restart();
    job = wait_status(s.port, id, "succeeded");
    ck_assert_int_eq((int)json_num(job, "step"), 600);
    ck_assert_str_eq(json_str(job, "fine_tuned_model"), model);
    cJSON_Delete(job);
    cJSON *ev = events(s.port, id), *e;
    int resumed = 0, running = 0;
    cJSON_ArrayForEach(e, ev) {
        resumed += strstr(json_str(e, "message"), "resumed") &&
                   strstr(json_str(e, "message"), "from its checkpoint");
        cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "data"), "status");
        running += st && strcmp(st->valuestring, "running") == 0;
    }
    ck_assert_int_eq(resumed, 1);
    ck_assert_int_eq(running, 1);
    cJSON_Delete(ev);
    ck_assert_int_eq(srv_stop(&s), 0);
    free(ck);
    free(model);
    free(id);
    free(file);
    free(text);
}

START_TEST(test_sigterm_mid_job_resumes) {
    stopped_mid_job(SIGTERM);
}
END_TEST

START_TEST(test_sigkill_mid_job_resumes) {
    stopped_mid_job(SIGKILL);
}
END_TEST

// model: a served model's id goes on from its weights and vocabulary.
START_TEST(test_from_a_served_model) {
    // '\x01' is in no vocabulary made from text: these 8 (and any other char the model
    // never saw) are skipped, and counted.
    char *text = lines_text(4000);
    for (size_t i = 100, k = 0; k < 8; i += 450, k++) text[i] = '\x01';
    char *file = upload(S.port, "more.txt", text);
    cJSON *job =
        create(S.port, file,
               "\"model\": \"charlm\", \"hyperparameters\": {\"steps\": 10, \"batch_size\": "
               "2}, \"suffix\": \"more\"");
    char *id = strdup(json_str(job, "id"));
    cJSON_Delete(job);
    job = wait_status(S.port, id, "succeeded");
    const char *model = json_str(job, "fine_tuned_model");
    ck_assert_msg(strncmp(model, "ft:charlm:charlm:more:", 22) == 0, "%s", model);
    ck_assert_str_eq(json_str(job, "arch"), "lstm");
    // Skipped: every char of the text that is not one of the vocabulary's.
    char *vpath = malloc(strlen(model_dir) + 16);
    sprintf(vpath, "%s/vocab.json", model_dir);
    char *vtext = tu_read_file(vpath, NULL);
    cJSON *vocab = cJSON_Parse(vtext), *ch;
    int expect = 0;
    for (const char *c = text; *c; c++) {
        int known = 0;
        cJSON_ArrayForEach(ch, cJSON_GetObjectItem(vocab, "chars")) known |=
            strlen(ch->valuestring) == 1 && ch->valuestring[0] == *c;
        expect += !known;
    }
    cJSON_Delete(vocab);
    free(vtext);
    free(vpath);
    ck_assert_int_ge(expect, 8);
    ck_assert_int_eq((int)json_num(job, "skipped_chars"), expect);
    char warning[64];
    snprintf(warning, sizeof(warning), "%d chars of the text", expect);
    cJSON *ev = events(S.port, id), *e;
    int warned = 0;
    cJSON_ArrayForEach(e, ev) warned += strstr(json_str(e, "message"), warning) != NULL;
    ck_assert_int_eq(warned, 1);
    cJSON_Delete(ev);
    char *v = model_file(model, "vocab.json"), *base = malloc(strlen(model_dir) + 16);
    sprintf(base, "%s/vocab.json", model_dir);
    char *a = tu_read_file(v, NULL), *b = tu_read_file(base, NULL);
    ck_assert_str_eq(a, b); // the base model's vocabulary, byte for byte
    free(a), free(b), free(v), free(base);
    cJSON_Delete(job);
    free(id);
    free(file);
    free(text);
}
END_TEST

START_TEST(test_refusals) {
    char *text = lines_text(2000), *file = upload(S.port, "cats.txt", text);
    char body[512];
    Resp r =
        http_post(S.port, "/v1/fine_tuning/jobs",
                  "{\"training_file\": \"file-0123456789abcdef01234567\", \"model\": \"lstm\"}");
    assert_error(&r, 400, "training_file");
    resp_free(&r);
    snprintf(body, sizeof(body), "{\"training_file\": \"%s\", \"model\": \"nope\"}", file);
    r = http_post(S.port, "/v1/fine_tuning/jobs", body);
    assert_error(&r, 400, "model");
    ck_assert(strstr(r.body, "'charlm'")); // names the served ids
    resp_free(&r);
    snprintf(body, sizeof(body),
             "{\"training_file\": \"%s\", \"validation_file\": \"file-ffffffffffffffffffffffff\", "
             "\"model\": \"lstm\"}",
             file);
    r = http_post(S.port, "/v1/fine_tuning/jobs", body);
    assert_error(&r, 400, "validation_file");
    resp_free(&r);
    r = http_post(S.port, "/v1/fine_tuning/jobs", "{\"model\": \"lstm\"");
    assert_error(&r, 400, NULL);
    resp_free(&r);
    const char *missing[] = {"/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567",
                             "/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567/events",
                             "/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567/checkpoints",
                             "/v1/fine_tuning/jobs/../../files"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(*missing); i++) {
        r = http_get(S.port, missing[i]);
        ck_assert_msg(r.status == 404, "%s: %ld", missing[i], r.status);
        resp_free(&r);
    }
    r = http_req(S.port, "POST", "/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567/cancel", NULL,
                 NULL, 0, 0);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    r = http_get(S.port, "/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567/cancel");
    assert_error(&r, 405, NULL);
    char *allow = resp_header(&r, "Allow");
    ck_assert_str_eq(allow, "POST");
    free(allow);
    resp_free(&r);
    r = http_get(S.port, "/v1/fine_tuning/jobs?limit=0");
    assert_error(&r, 400, "limit");
    resp_free(&r);
    // A text too short for the trainer's windows fails the job with the trainer's reason.
    char *tiny = upload(S.port, "tiny.txt", "abc abc\n");
    cJSON *job = create(S.port, tiny, "\"model\": \"lstm\"");
    char *id = strdup(json_str(job, "id"));
    cJSON_Delete(job);
    job = wait_status(S.port, id, "failed");
    cJSON *err = cJSON_GetObjectItem(job, "error");
    ck_assert_str_eq(json_str(err, "code"), "invalid_training_file");
    ck_assert_msg(strstr(json_str(err, "message"), "too short"), "%s", json_str(err, "message"));
    cJSON_Delete(job);
    free(id);
    free(tiny);
    // Nothing of the jobs is written outside the training dir: its parent holds it alone.
    char *parent = strdup(tdir);
    *strrchr(parent, '/') = '\0';
    DIR *d = opendir(parent);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') ck_assert_str_eq(e->d_name, "train");
    closedir(d);
    free(parent);
    free(file);
    free(text);
}
END_TEST

/* --trainer: the program jobs run. One that refuses a flag the server gave (exit 2 without
 * naming the text) fails the job as the server's error, with the trainer's last line. */
START_TEST(test_trainer_refusing_a_flag_is_a_server_error) {
    tdir_make();
    char *parent = strdup(tdir), script[4200];
    *strrchr(parent, '/') = '\0';
    snprintf(script, sizeof(script), "%s/old-train", parent);
    const char *body = "#!/bin/sh\necho 'charlm-train: --sample-chars: unknown flag' >&2\nexit 2\n";
    free(tu_write_file(parent, "old-train", body, strlen(body)));
    ck_assert_int_eq(chmod(script, 0755), 0);
    const char *args[] = {"--training-dir", tdir, "--trainer", script, NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    char *text = lines_text(2000), *file = upload(s.port, "cats.txt", text);
    cJSON *job = create(s.port, file, "\"model\": \"lstm\"");
    char *id = strdup(json_str(job, "id"));
    cJSON_Delete(job);
    job = wait_status(s.port, id, "failed");
    cJSON *err = cJSON_GetObjectItem(job, "error");
    ck_assert_str_eq(json_str(err, "code"), "server_error");
    ck_assert_msg(strstr(json_str(err, "message"), "status 2: --sample-chars: unknown flag"), "%s",
                  json_str(err, "message"));
    cJSON_Delete(job);
    ck_assert_int_eq(srv_stop(&s), 0);
    free(id);
    free(file);
    free(text);
    free(parent);
    tdir_remove();
}
END_TEST

// Without --training-dir the jobs routes are unknown paths.
START_TEST(test_off_by_default) {
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, NULL), 0);
    Resp r[3] = {
        http_get(s.port, "/v1/fine_tuning/jobs"),
        http_post(s.port, "/v1/fine_tuning/jobs",
                  "{\"training_file\": \"file-0123456789abcdef01234567\", \"model\": \"lstm\"}"),
        http_req(s.port, "POST", "/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567/cancel", NULL,
                 NULL, 0, 0),
    };
    for (int i = 0; i < 3; i++) {
        assert_error(&r[i], 404, NULL);
        resp_free(&r[i]);
    }
    // DELETE /v1/models/{id} removes fine-tuned models: without a training dir, none.
    Resp del = http_req(s.port, "DELETE", "/v1/models/charlm", NULL, NULL, 0, 0);
    assert_error(&del, 405, NULL);
    char *allow = resp_header(&del, "Allow");
    ck_assert_str_eq(allow, "GET, HEAD");
    free(allow);
    resp_free(&del);
    int zombies;
    ck_assert_int_eq(children(s.pid, &zombies), 0);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

// Keys: every jobs route needs one.
START_TEST(test_keys) {
    tdir_make();
    const char *args[] = {"--training-dir", tdir, "--api-key", "tune-k3y", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    Resp r[3] = {
        http_get(s.port, "/v1/fine_tuning/jobs"),
        http_post(s.port, "/v1/fine_tuning/jobs", "{}"),
        http_get(s.port, "/v1/fine_tuning/jobs/ftjob-0123456789abcdef01234567/events?stream=true"),
    };
    for (int i = 0; i < 3; i++) {
        assert_error(&r[i], 401, NULL);
        resp_free(&r[i]);
    }
    const char *auth[] = {"Authorization: Bearer tune-k3y", NULL};
    Resp ok = http_req_headers(s.port, "GET", "/v1/fine_tuning/jobs", NULL, NULL, 0, 0, auth);
    ck_assert_int_eq(ok.status, 200);
    resp_free(&ok);
    ck_assert_int_eq(srv_stop(&s), 0);
    tdir_remove();
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_tuning");
    TCase *tc = tcase_create("jobs");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_tuning, stop_tuning);
    tcase_set_timeout(tc, 2 * JOB_SECONDS);
    tcase_add_test(tc, test_job_to_served_model);
    tcase_add_test(tc, test_cancel_reaps_the_child);
    tcase_add_test(tc, test_sigterm_mid_job_resumes);
    tcase_add_test(tc, test_sigkill_mid_job_resumes);
    tcase_add_test(tc, test_from_a_served_model);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    TCase *other = tcase_create("flags");
    tcase_add_unchecked_fixture(other, suite_setup, suite_teardown);
    tcase_add_test(other, test_off_by_default);
    tcase_add_test(other, test_keys);
    tcase_add_test(other, test_trainer_refusing_a_flag_is_a_server_error);
    suite_add_tcase(s, other);
    return tu_run_suite(s);
}
