/* Reloading a served model over real HTTP. A model folder's files are replaced the way
 * charlm-train writes them (aside, then renamed) and SIGHUP sent, ten times under wrk
 * load: no request fails, and after each reload the card and the text for a fixed seed
 * are the new model's. A stream started before a reload finishes with the old model's
 * text. Corrupt replacements are refused with one log line while the old model answers;
 * POST /admin/reload reports what it did and needs the API key when keys are set. Under
 * --models, a reload adds new subfolders and drops removed ones. A model file rewritten in
 * place 200 times under a storm of reloads is refused while half-written, never a crash.
 *
 * The models are trained by charlm-train (a fraction of a second each) with different
 * steps and sizes, so that their cards differ; each model's card and text come from a
 * server started on it alone. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

#define NMODELS 3
#define RELOADS 10
#define KEY     "reload-test-key"
// The fixed request whose text tells the models apart.
#define SEEDED "{\"prompt\": \"the \", \"max_tokens\": 60, \"seed\": 42}"

// gcc defines __SANITIZE_ADDRESS__ for -fsanitize=address; the load is lighter there.
#ifdef __SANITIZE_ADDRESS__
#define WRK_THREADS "-t1"
#define WRK_CONNS   "-c4"
#else
#define WRK_THREADS "-t2"
#define WRK_CONNS   "-c16"
#endif

typedef struct {
    char dir[4096];
    int steps;
    double loss;
    int curve_rows;
    char *text; // SEEDED's text
} Ref;

static Ref ref[NMODELS];
static char served[4096]; // root/charlm: the folder the servers under test serve

// Model 2 has another vocabulary (its text adds chars) and another size, so a reload
// also changes the shapes of the weights. Steps 20, 40 and 30: this early each model still
// improves at every evaluation, so the one it keeps is its last.
static const char *train_flags[NMODELS] = {"--hidden 32 --steps 20 --eval-every 10",
                                           "--hidden 32 --steps 40 --eval-every 10",
                                           "--hidden 48 --steps 30 --eval-every 10"};

// The command that trains model m into out.
static void train_cmd(char *cmd, size_t cap, int m, const char *out) {
    snprintf(cmd, cap,
             "%s train --corpus '%s/corpus%s.txt' --out '%s' --embed 16 --layers 1 --seq 32 "
             "--batch 16 --seed 1 --threads 1 %s",
             tu_bin("charlm-train"), root, m == 2 ? "2" : "", out, train_flags[m]);
}

static void train(int m, const char *out) {
    char cmd[16384], *err;
    train_cmd(cmd, sizeof(cmd), m, out);
    int rc = tu_run(cmd, NULL, &err);
    ck_assert_msg(rc == 0, "charlm-train exited %d: %s", rc, err);
    free(err);
}

/* The card and SEEDED's text of the model in r->dir, from a server of its own. */
static void ref_read(Ref *r) {
    Srv s;
    ck_assert_int_eq(srv_start(&s, r->dir, NULL), 0);
    Resp m = http_get(s.port, "/model");
    ck_assert_int_eq(m.status, 200);
    cJSON *card = resp_json(&m);
    r->steps = (int)json_num(card, "steps");
    r->loss = json_num(card, "best_val_loss");
    r->curve_rows = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(card, "training_curve"));
    cJSON_Delete(card);
    resp_free(&m);
    Resp g = http_post(s.port, "/generate", SEEDED);
    ck_assert_msg(g.status == 200, "%ld: %s", g.status, g.body);
    cJSON *j = resp_json(&g);
    r->text = strdup(json_str(j, "text"));
    cJSON_Delete(j);
    resp_free(&g);
    ck_assert_int_eq(srv_stop(&s), 0);
}

static void suite_setup(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    root = tu_tmpdir();
    char *text = tu_sample_text(20000);
    free(tu_write_file(root, "corpus.txt", text, strlen(text)));
    // The second text: the first with a line of new chars every 400.
    const char *extra = "\nwhy? yes! ok, fine: wide jump, quick fox\n";
    size_t len = 0, tl = strlen(text), xl = strlen(extra);
    char *more = malloc(tl + (tl / 400 + 1) * xl);
    for (size_t at = 0; at < tl; at += 400) {
        size_t n = tl - at < 400 ? tl - at : 400;
        memcpy(more + len, text + at, n);
        memcpy(more + len + n, extra, xl);
        len += n + xl;
    }
    free(tu_write_file(root, "corpus2.txt", more, len));
    free(more);
    free(text);
    for (int i = 0; i < NMODELS; i++) {
        snprintf(ref[i].dir, sizeof(ref[i].dir), "%s/m%d", root, i);
        train(i, ref[i].dir);
        ref_read(&ref[i]);
    }
    // The test means nothing unless every two models differ in card and text.
    for (int i = 0; i < NMODELS; i++)
        for (int k = i + 1; k < NMODELS; k++) {
            ck_assert_msg(ref[i].steps != ref[k].steps, "models %d and %d: both step %d", i, k,
                          ref[i].steps);
            ck_assert_msg(ref[i].loss != ref[k].loss, "models %d and %d: one loss", i, k);
            ck_assert_msg(strcmp(ref[i].text, ref[k].text) != 0, "models %d and %d: one text", i,
                          k);
        }
    snprintf(served, sizeof(served), "%s/charlm", root);
}

static void suite_teardown(void) {
    for (int i = 0; i < NMODELS; i++) free(ref[i].text);
    tu_rmtree(root);
    free(root);
    curl_global_cleanup();
}

/* Writes data as dir/name the way charlm-train does: aside, then renamed over it. */
static void publish_bytes(const char *dir, const char *name, const char *data, size_t len) {
    char aside[64], from[8192], to[8192];
    snprintf(aside, sizeof(aside), ".%s.tmp", name);
    free(tu_write_file(dir, aside, data, len));
    snprintf(from, sizeof(from), "%s/%s", dir, aside);
    snprintf(to, sizeof(to), "%s/%s", dir, name);
    ck_assert_msg(rename(from, to) == 0, "rename %s: %s", from, strerror(errno));
}

static char *read_model_file(int model, const char *name, size_t *len) {
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", ref[model].dir, name);
    char *data = tu_read_file(path, len);
    ck_assert_msg(data != NULL, "cannot read %s", path);
    return data;
}

static void publish_file(int model, const char *name) {
    size_t len;
    char *data = read_model_file(model, name, &len);
    publish_bytes(served, name, data, len);
    free(data);
}

/* Makes the served folder hold model m: the weights first, as training publishes them. */
static void publish_model(int m) {
    publish_file(m, "model.safetensors");
    publish_file(m, "vocab.json");
    publish_file(m, "train_log.jsonl");
}

/* A fresh served folder holding model m. */
static void served_make(int m) {
    tu_rmtree(served);
    ck_assert_int_eq(mkdir(served, 0755), 0);
    publish_model(m);
}

static cJSON *card_get(int port) {
    Resp r = http_get(port, "/model");
    ck_assert_msg(r.status == 200, "GET /model: %ld: %s", r.status, r.body);
    cJSON *card = resp_json(&r);
    resp_free(&r);
    return card;
}

/* Asserts that the server answers as model m: its card's steps, loss and curve, and the
 * text of the seeded request. */
static void assert_serves(int port, int m, const char *when) {
    cJSON *card = card_get(port);
    ck_assert_msg((int)json_num(card, "steps") == ref[m].steps, "%s: steps %d, model %d has %d",
                  when, (int)json_num(card, "steps"), m, ref[m].steps);
    ck_assert_msg(json_num(card, "best_val_loss") == ref[m].loss,
                  "%s: loss %.9g, model %d has %.9g", when, json_num(card, "best_val_loss"), m,
                  ref[m].loss);
    int rows = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(card, "training_curve"));
    ck_assert_msg(rows == ref[m].curve_rows, "%s: %d training_curve rows, model %d has %d", when,
                  rows, m, ref[m].curve_rows);
    cJSON_Delete(card);
    Resp g = http_post(port, "/generate", SEEDED);
    ck_assert_msg(g.status == 200, "%s: %ld: %s", when, g.status, g.body);
    cJSON *j = resp_json(&g);
    ck_assert_msg(strcmp(json_str(j, "text"), ref[m].text) == 0,
                  "%s: the seeded text is not model %d's:\n%s\nwanted:\n%s", when, m,
                  json_str(j, "text"), ref[m].text);
    cJSON_Delete(j);
    resp_free(&g);
}

/* Polls GET /model until its steps are model m's (up to 60 s); returns whether they came. */
static int wait_steps(int port, int m) {
    for (int waited = 0; waited < 60000; waited += 10) {
        cJSON *card = card_get(port);
        int steps = (int)json_num(card, "steps");
        cJSON_Delete(card);
        if (steps == ref[m].steps) return 1;
        sleep_ms(10);
    }
    return 0;
}

/* The server's log lines about reloads (not the access log's lines for /admin/reload). */
static int reload_lines(const Srv *s, char *last, size_t cap) {
    char *log = tu_read_file(s->log, NULL);
    int n = 0;
    if (last && cap) last[0] = '\0';
    for (char *line = log; line && *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (strncmp(line, "charlm-server: reload:", 22) == 0) {
            n++;
            if (last) snprintf(last, cap, "%.*s", (int)len, line);
        }
        line = end ? end + 1 : line + len;
    }
    free(log);
    return n;
}

/* Waits (up to 60 s) for reload line number n, then a while longer to see that no other
 * line follows it; returns that line. */
static void wait_reload_line(const Srv *s, int n, char *line, size_t cap) {
    int got = 0;
    for (int waited = 0; waited < 60000 && (got = reload_lines(s, NULL, 0)) < n; waited += 10)
        sleep_ms(10);
    ck_assert_msg(got >= n, "no reload line %d in the log after 60 s", n);
    sleep_ms(300);
    got = reload_lines(s, line, cap);
    ck_assert_msg(got == n, "%d reload lines, expected %d; the last: %s", got, n, line);
}

/* POST /admin/reload of {} with the Authorization header auth (NULL: none). */
static Resp admin_reload(int port, const char *auth) {
    char ah[512];
    snprintf(ah, sizeof(ah), "Authorization: %s", auth ? auth : "");
    const char *headers[] = {auth ? ah : NULL, NULL};
    return http_req_headers(port, "POST", "/admin/reload", "application/json", "{}", 2, 0, headers);
}

/* Asserts a 200 from /admin/reload whose lists hold exactly the ids given ("" for none;
 * only the one model "charlm" is served here), and returns the failed entry's error. */
static char *assert_reload_reply(const Resp *r, const char *reloaded, const char *unchanged,
                                 const char *failed) {
    ck_assert_msg(r->status == 200, "POST /admin/reload: %ld: %s", r->status, r->body);
    cJSON *j = resp_json(r);
    const char *keys[] = {"reloaded", "unchanged", "failed"};
    const char *want[] = {reloaded, unchanged, failed};
    char *error = NULL;
    for (int k = 0; k < 3; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        ck_assert_msg(cJSON_IsArray(a), "no %s list: %s", keys[k], r->body);
        int n = cJSON_GetArraySize(a);
        ck_assert_msg(n == (want[k][0] ? 1 : 0), "%s: %s", keys[k], r->body);
        if (!n) continue;
        const cJSON *e = cJSON_GetArrayItem(a, 0);
        if (k == 2) {
            ck_assert_str_eq(json_str(e, "id"), want[k]);
            ck_assert_msg(json_str(e, "error")[0], "an empty error: %s", r->body);
            error = strdup(json_str(e, "error"));
        } else {
            ck_assert_msg(cJSON_IsString(e) && strcmp(e->valuestring, want[k]) == 0, "%s: %s",
                          keys[k], r->body);
        }
    }
    cJSON_Delete(j);
    return error;
}

/* The sum of charlm_requests_total over the series of route /generate, status 200. */
static long generate_ok(int port) {
    Resp r = http_get(port, "/metrics");
    ck_assert_int_eq(r.status, 200);
    long total = 0;
    for (char *line = r.body; line && *line;) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        char *close = strchr(line, '}');
        if (strncmp(line, "charlm_requests_total{", 22) == 0 && close &&
            strstr(line, "route=\"/generate\"") && strstr(line, "status=\"200\""))
            total += atol(close + 1);
        line = end ? end + 1 : NULL;
    }
    resp_free(&r);
    return total;
}

// wrk POSTs /generate (a random seed each) and counts replies that are not a whole
// generation; done() prints one line for the test to parse.
static const char wrk_script[] =
    "wrk.method = 'POST'\n"
    "wrk.headers['Content-Type'] = 'application/json'\n"
    "wrk.body = '{\"prompt\": \"the \", \"max_tokens\": 50}'\n"
    "local threads = {}\n"
    "function setup(thread) table.insert(threads, thread) end\n"
    "function init(args) bad = 0 end\n"
    "function response(status, headers, body)\n"
    "  if status ~= 200 or not string.find(body, '\"finish_reason\"', 1, true) then\n"
    "    bad = bad + 1\n"
    "  end\n"
    "end\n"
    "function done(summary, latency, requests)\n"
    "  local bad = 0\n"
    "  for _, t in ipairs(threads) do bad = bad + t:get('bad') end\n"
    "  local e = summary.errors\n"
    "  io.write(string.format('WRKRESULT requests %d non2xx %d socket %d bad %d\\n',\n"
    "    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, bad))\n"
    "end\n";

typedef struct {
    pid_t pid;
    char *dir, out[4200];
} Wrk;

/* Starts wrk on POST /generate until wrk_stop (or for at most the test's time). */
static void wrk_start(Wrk *w, int port) {
    ck_assert_msg(tu_run("command -v wrk", NULL, NULL) == 0,
                  "wrk is not installed (scripts/install-deps.sh test installs it)");
    w->dir = tu_tmpdir();
    char *script = tu_write_file(w->dir, "load.lua", wrk_script, strlen(wrk_script));
    snprintf(w->out, sizeof(w->out), "%s/out", w->dir);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/generate", port);
    fflush(NULL);
    w->pid = fork();
    if (w->pid == 0) {
        // A failing test must not leave wrk loading the machine.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(w->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("wrk", "wrk", WRK_THREADS, WRK_CONNS, "-d300s", "--timeout", "60s", "-s", script,
               url, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(w->pid, 0);
    free(script);
}

/* Stops wrk (SIGINT: it prints its summary), and asserts it ran requests and that none
 * failed: no non-2xx status, no socket error, no reply without a whole generation. */
static void wrk_stop(Wrk *w) {
    int status = 0, done = proc_signal_wait(w->pid, SIGINT, 60000, &status);
    char *out = tu_read_file(w->out, NULL);
    if (!out) out = strdup("");
    tu_rmtree(w->dir);
    free(w->dir);
    ck_assert_msg(done && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "wrk did not end well after SIGINT:\n%s", out);
    // wrk prints these two lines only when their counts are not zero.
    ck_assert_msg(!strstr(out, "Non-2xx or 3xx responses"), "failed requests:\n%s", out);
    ck_assert_msg(!strstr(out, "Socket errors"), "failed requests:\n%s", out);
    long requests = -1, non2xx = -1, socket = -1, bad = -1;
    const char *line = strstr(out, "WRKRESULT ");
    ck_assert_msg(line && sscanf(line, "WRKRESULT requests %ld non2xx %ld socket %ld bad %ld",
                                 &requests, &non2xx, &socket, &bad) == 4,
                  "no result line from wrk:\n%s", out);
    ck_assert_msg(requests > 0 && non2xx == 0 && socket == 0 && bad == 0, "wrk:\n%s", out);
    fprintf(stderr, "reload under load: %ld requests by wrk, none failed\n", requests);
    free(out);
}

START_TEST(test_reloads_under_load) {
    served_make(0);
    Srv s;
    ck_assert_int_eq(srv_start(&s, served, NULL), 0);
    assert_serves(s.port, 0, "at startup");
    Wrk w;
    wrk_start(&w, s.port);
    // Load has begun before the first reload.
    long ok = generate_ok(s.port);
    for (int waited = 0; waited < 60000 && generate_ok(s.port) < ok + 20; waited += 10)
        sleep_ms(10);
    ck_assert_msg(generate_ok(s.port) >= ok + 20, "wrk's requests do not come");
    int m = 0;
    for (int round = 1; round <= RELOADS; round++) {
        m = round % NMODELS;
        publish_model(m);
        ok = generate_ok(s.port);
        ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
        char when[64];
        snprintf(when, sizeof(when), "after reload %d (model %d)", round, m);
        ck_assert_msg(wait_steps(s.port, m), "%s: the card's steps did not change in 60 s", when);
        assert_serves(s.port, m, when);
        // wrk's requests went on across the reload (one of the 200s is assert_serves'), and
        // go on a while before the next.
        for (int waited = 0; waited < 60000 && generate_ok(s.port) < ok + 5; waited += 10)
            sleep_ms(10);
        ck_assert_msg(generate_ok(s.port) >= ok + 5, "%s: the load stopped", when);
        sleep_ms(200);
    }
    wrk_stop(&w);
    char line[1024];
    ck_assert_int_eq(reload_lines(&s, line, sizeof(line)), RELOADS);
    char want[128];
    snprintf(want, sizeof(want), "charlm-server: reload: charlm: now step %d, ", ref[m].steps);
    ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "the last reload line: %s", line);
    assert_serves(s.port, m, "after the load");
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

typedef struct {
    int port;
    char body[160];
    Resp r;
} Async;

static void *async_post(void *arg) {
    Async *a = arg;
    a->r = http_post(a->port, "/generate", a->body);
    return NULL;
}

static char *text_of(const Resp *r) {
    ck_assert_msg(r->status == 200, "%ld: %.300s", r->status, r->body);
    cJSON *j = resp_json(r);
    char *text = strdup(json_str(j, "text"));
    cJSON_Delete(j);
    return text;
}

START_TEST(test_stream_finishes_on_its_weights) {
    served_make(0);
    const char *args[] = {"--max-tokens", "1000000", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, served, args), 0);
    // A stream long enough to outlast a reload by far: about 3 s of this machine's time.
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    Resp r = http_post(s.port, "/generate", "{\"prompt\": \"the \", \"max_tokens\": 20000}");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    double n = 3.0 * 20000 / (secs > 1e-3 ? secs : 1e-3);
    int tokens = n < 20000 ? 20000 : n > 1000000 ? 1000000 : (int)n;

    // What model 0 says for this request: the same request, not streamed, before the reload.
    Async a = {.port = s.port};
    snprintf(a.body, sizeof(a.body), "{\"prompt\": \"the \", \"max_tokens\": %d, \"seed\": 5}",
             tokens);
    r = http_post(s.port, "/generate", a.body);
    char *old_text = text_of(&r);
    resp_free(&r);
    ck_assert_msg(strlen(old_text) >= (size_t)tokens, "%zu chars for %d tokens", strlen(old_text),
                  tokens);

    snprintf(a.body, sizeof(a.body),
             "{\"prompt\": \"the \", \"max_tokens\": %d, \"seed\": 5, \"stream\": true}", tokens);
    pthread_t t;
    pthread_create(&t, NULL, async_post, &a);
    for (int waited = 0; waited < 30000 && health_in_flight(s.port) < 1; waited += 5) sleep_ms(5);
    ck_assert_int_eq(health_in_flight(s.port), 1);
    publish_model(1);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(wait_steps(s.port, 1), "the card's steps did not change in 60 s");
    ck_assert_msg(health_in_flight(s.port) == 1,
                  "the stream (%d tokens) ended before the reload was done", tokens);
    // New requests get the new weights while the old stream is still running.
    assert_serves(s.port, 1, "during the old stream");
    ck_assert_msg(health_in_flight(s.port) == 1,
                  "the stream (%d tokens) ended before the new model answered", tokens);
    pthread_join(t, NULL);

    ck_assert_msg(a.r.status == 200, "%ld: %.300s", a.r.status, a.r.body);
    static char *events[100000];
    int ne = sse_events(a.r.body, events, 100000);
    ck_assert_int_ge(ne, 2);
    size_t len = 0;
    char *text = calloc(1, strlen(old_text) + 1);
    for (int i = 0; i < ne; i++) {
        cJSON *e = cJSON_Parse(events[i]);
        ck_assert_msg(e != NULL, "not JSON: %.200s", events[i]);
        if (i == ne - 1) {
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "done")));
            ck_assert_str_eq(json_str(e, "finish_reason"), "length");
        } else {
            const char *piece = json_str(e, "text");
            size_t pl = strlen(piece);
            ck_assert_msg(len + pl <= strlen(old_text), "the stream is longer than model 0's text");
            memcpy(text + len, piece, pl);
            len += pl;
        }
        cJSON_Delete(e);
        free(events[i]);
    }
    ck_assert_msg(strcmp(text, old_text) == 0,
                  "the stream's text (%zu chars) is not the old model's (%zu chars)", len,
                  strlen(old_text));
    free(text);
    free(old_text);
    resp_free(&a.r);
    assert_serves(s.port, 1, "after the stream");
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_corrupt_replacements_are_refused) {
    served_make(0);
    Srv s;
    ck_assert_int_eq(srv_start(&s, served, NULL), 0);
    char line[1024];
    const char *refused = "charlm-server: reload: charlm: ";
    const char *still = "; still serving the previous model";

    // A half-written model file (as a crash in the middle of a copy leaves it), by SIGHUP.
    size_t len;
    char *weights = read_model_file(1, "model.safetensors", &len);
    publish_bytes(served, "model.safetensors", weights, len / 2);
    free(weights);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    wait_reload_line(&s, 1, line, sizeof(line));
    ck_assert_msg(strncmp(line, refused, strlen(refused)) == 0 && strstr(line, still),
                  "the refusal: %s", line);
    assert_serves(s.port, 0, "after a truncated model file");

    // Whole weights with another model's vocabulary (of another size), by POST /admin/reload.
    publish_file(1, "model.safetensors");
    publish_file(2, "vocab.json");
    Resp r = admin_reload(s.port, NULL);
    char *error = assert_reload_reply(&r, "", "", "charlm");
    resp_free(&r);
    wait_reload_line(&s, 2, line, sizeof(line));
    ck_assert_msg(strncmp(line, refused, strlen(refused)) == 0 && strstr(line, still),
                  "the refusal: %s", line);
    ck_assert_msg(strstr(line, error) != NULL, "the reply's error '%s' is not the log's: %s", error,
                  line);
    free(error);
    assert_serves(s.port, 0, "after a mismatched vocabulary");

    // Not JSON where vocab.json should be.
    publish_bytes(served, "vocab.json", "{\"chars\": [", 11);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    wait_reload_line(&s, 3, line, sizeof(line));
    ck_assert_msg(strncmp(line, refused, strlen(refused)) == 0 && strstr(line, still),
                  "the refusal: %s", line);
    assert_serves(s.port, 0, "after a broken vocab.json");

    // The right files: the reload takes them.
    publish_model(1);
    r = admin_reload(s.port, NULL);
    assert_reload_reply(&r, "charlm", "", "");
    resp_free(&r);
    assert_serves(s.port, 1, "after a good replacement");
    wait_reload_line(&s, 4, line, sizeof(line));
    char want[128];
    snprintf(want, sizeof(want), "charlm-server: reload: charlm: now step %d, best_val_loss ",
             ref[1].steps);
    ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "the reload line: %s", line);

    // Nothing changed: nothing reloaded, nothing logged.
    r = admin_reload(s.port, NULL);
    assert_reload_reply(&r, "", "charlm", "");
    resp_free(&r);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    sleep_ms(300);
    ck_assert_int_eq(reload_lines(&s, NULL, 0), 4);
    assert_serves(s.port, 1, "after a reload with nothing new");
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_admin_reload_needs_the_key) {
    served_make(0);
    const char *args[] = {"--api-key", KEY, NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, served, args), 0);
    publish_model(2);
    Resp r = admin_reload(s.port, NULL);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    r = admin_reload(s.port, "Bearer not-" KEY);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    ck_assert_int_eq(reload_lines(&s, NULL, 0), 0);
    r = admin_reload(s.port, "Bearer " KEY);
    assert_reload_reply(&r, "charlm", "", "");
    resp_free(&r);
    char line[1024], want[128];
    wait_reload_line(&s, 1, line, sizeof(line));
    snprintf(want, sizeof(want), "charlm-server: reload: charlm: now step %d, ", ref[2].steps);
    ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "the reload line: %s", line);
    // SIGHUP needs no key: it comes from whoever may signal the process.
    publish_model(0);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    wait_reload_line(&s, 2, line, sizeof(line));
    snprintf(want, sizeof(want), "charlm-server: reload: charlm: now step %d, ", ref[0].steps);
    ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "the reload line: %s", line);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

/* A model folder with model m's files under dir (the files first, then the folder renamed
 * in, so that a reload sees all of it or nothing). */
static void zoo_add(const char *dir, const char *id, int m) {
    char aside[8192], to[8192];
    snprintf(aside, sizeof(aside), "%s/.%s.new", dir, id);
    snprintf(to, sizeof(to), "%s/%s", dir, id);
    ck_assert_int_eq(mkdir(aside, 0755), 0);
    const char *names[] = {"model.safetensors", "vocab.json", "train_log.jsonl"};
    for (int i = 0; i < 3; i++) {
        size_t len;
        char *data = read_model_file(m, names[i], &len);
        free(tu_write_file(aside, names[i], data, len));
        free(data);
    }
    ck_assert_msg(rename(aside, to) == 0, "rename %s: %s", aside, strerror(errno));
}

/* The ids of /v1/models, in order, joined by spaces. */
static void model_ids(int port, char *ids, size_t cap) {
    Resp r = http_get(port, "/v1/models");
    ck_assert_msg(r.status == 200, "%ld: %s", r.status, r.body);
    cJSON *j = resp_json(&r);
    ids[0] = '\0';
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(j, "data")) {
        size_t at = strlen(ids);
        snprintf(ids + at, cap - at, "%s%s", at ? " " : "", json_str(m, "id"));
    }
    cJSON_Delete(j);
    resp_free(&r);
}

/* POST /generate of SEEDED for model id: asserts model m's text, and the id in the reply. */
static void assert_answers(int port, const char *id, int m) {
    char json[256];
    snprintf(json, sizeof(json),
             "{\"prompt\": \"the \", \"max_tokens\": 60, \"seed\": 42, \"model\": \"%s\"}", id);
    Resp r = http_post(port, "/generate", json);
    ck_assert_msg(r.status == 200, "model %s: %ld: %s", id, r.status, r.body);
    cJSON *j = resp_json(&r);
    ck_assert_str_eq(json_str(j, "model"), id);
    ck_assert_msg(strcmp(json_str(j, "text"), ref[m].text) == 0, "model %s: not model %d's text",
                  id, m);
    cJSON_Delete(j);
    resp_free(&r);
}

START_TEST(test_models_folder_is_followed) {
    char zoo[4200], gone[4200], ids[256];
    snprintf(zoo, sizeof(zoo), "%s/zoo", root);
    tu_rmtree(zoo);
    ck_assert_int_eq(mkdir(zoo, 0755), 0);
    zoo_add(zoo, "b", 1);
    zoo_add(zoo, "a", 0);
    const char *args[] = {"--models", zoo, NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, NULL, args), 0);
    model_ids(s.port, ids, sizeof(ids));
    ck_assert_str_eq(ids, "a b");
    assert_answers(s.port, "a", 0);
    assert_answers(s.port, "b", 1);

    // A new folder is added, and one removed, by the next reload.
    zoo_add(zoo, "c", 2);
    snprintf(gone, sizeof(gone), "%s/a", zoo);
    tu_rmtree(gone);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    for (int waited = 0; waited < 60000; waited += 10) {
        model_ids(s.port, ids, sizeof(ids));
        if (strcmp(ids, "b c") == 0) break;
        sleep_ms(10);
    }
    ck_assert_str_eq(ids, "b c");
    assert_answers(s.port, "b", 1);
    assert_answers(s.port, "c", 2);
    Resp r = http_post(s.port, "/generate", "{\"prompt\": \"the \", \"model\": \"a\"}");
    assert_error(&r, 404, "model");
    cJSON *j = resp_json(&r);
    ck_assert_str_eq(json_str(cJSON_GetObjectItemCaseSensitive(j, "error"), "code"),
                     "model_not_found");
    cJSON_Delete(j);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
    tu_rmtree(zoo);
}
END_TEST

/* The documented way to update a model: charlm-train into the served folder. Reloads
 * asked for all through the training swap in its models as they come (or refuse the
 * instant between its two renames), every request meanwhile is answered, and at the end
 * the server serves what a training into a fresh folder gives. */
START_TEST(test_training_into_the_served_folder) {
    served_make(0);
    Srv s;
    ck_assert_int_eq(srv_start(&s, served, NULL), 0);
    char cmd[16384], err_path[4200];
    train_cmd(cmd, sizeof(cmd), 2, served);
    snprintf(err_path, sizeof(err_path), "%s/train.err", root);
    fflush(NULL);
    pid_t trainer = fork();
    if (trainer == 0) {
        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(trainer, 0);
    int status = 0, hups = 0;
    while (waitpid(trainer, &status, WNOHANG) == 0) {
        ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
        hups++;
        cJSON_Delete(card_get(s.port));
        Resp g = http_post(s.port, "/generate", SEEDED);
        ck_assert_msg(g.status == 200, "during training: %ld: %s", g.status, g.body);
        resp_free(&g);
        sleep_ms(5);
    }
    char *err = tu_read_file(err_path, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "charlm-train: %s", err);
    free(err);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(wait_steps(s.port, 2), "the trained model was not swapped in");
    assert_serves(s.port, 2, "after training into the folder");
    // Every reload line is a swap or a refusal that kept the previous model.
    char *log = tu_read_file(s.log, NULL);
    int swaps = 0;
    for (char *line = log; (line = strstr(line, "charlm-server: reload: ")); line++) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        ck_assert_msg(strstr(line, ": now step ") || strstr(line, "; still serving the previous"),
                      "%s", line);
        swaps += strstr(line, ": now step ") != NULL;
        if (!end) break;
        line = end;
    }
    free(log);
    ck_assert_int_ge(swaps, 1);
    fprintf(stderr, "training into the served folder: %d SIGHUPs, %d swaps\n", hups, swaps);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

/* Writes the bytes over path in place, the way cp does: opened with O_TRUNC (the file is
 * empty from then on until the writes refill it), then written in pieces. */
static void copy_in_place(const char *path, const char *data, size_t len) {
    int fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
    for (size_t at = 0; at < len;) {
        size_t n = len - at < 65536 ? len - at : 65536;
        ssize_t got = write(fd, data + at, n);
        ck_assert_msg(got > 0, "write %s: %s", path, strerror(errno));
        at += (size_t)got;
    }
    ck_assert_int_eq(close(fd), 0);
}

typedef struct {
    int port;
    atomic_int stop;
    int answers, bad;
    char first_bad[512];
} Reloader;

/* POST /admin/reload in a loop until stop: each answer must be a 200 that names the model
 * once, as swapped in, unchanged or refused. */
static void *reload_loop(void *arg) {
    Reloader *r = arg;
    while (!atomic_load(&r->stop)) {
        Resp a = http_req(r->port, "POST", "/admin/reload", "application/json", "{}", 2, 0);
        cJSON *j = a.status == 200 ? cJSON_Parse(a.body) : NULL;
        int named = 0;
        const char *keys[] = {"reloaded", "unchanged", "failed"};
        for (int k = 0; k < 3 && j; k++)
            named += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, keys[k]));
        if (named != 1 && !r->bad++)
            snprintf(r->first_bad, sizeof(r->first_bad), "%ld: %.400s", a.status, a.body);
        r->answers++;
        cJSON_Delete(j);
        resp_free(&a);
    }
    return NULL;
}

/* A model file rewritten in place (cp over it) while reloads run, by POST /admin/reload
 * in a loop and SIGHUP after every copy: a reload that reads the file as it is truncated
 * refuses it, never dies of it, and the previous model goes on answering. The weights
 * are a few MB, so that a reload's read of them often overlaps a copy. */
START_TEST(test_in_place_rewrites_under_reloads) {
    char a_dir[4200], b_dir[4200], path[4300];
    snprintf(a_dir, sizeof(a_dir), "%s/big_a", root);
    snprintf(b_dir, sizeof(b_dir), "%s/big_b", root);
    char *text = tu_sample_text(2000);
    ck_assert_int_eq(tu_make_model_dir(a_dir, text, 16, 320, 1, 1), 0);
    ck_assert_int_eq(tu_make_model_dir(b_dir, text, 16, 320, 1, 2), 0);
    free(text);
    size_t len[2];
    char *weights[2];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/model.safetensors", i ? b_dir : a_dir);
        weights[i] = tu_read_file(path, &len[i]);
        ck_assert_ptr_nonnull(weights[i]);
    }
    tu_rmtree(served);
    ck_assert_int_eq(mkdir(served, 0755), 0);
    snprintf(path, sizeof(path), "%s/vocab.json", a_dir);
    size_t vlen;
    char *vocab = tu_read_file(path, &vlen);
    publish_bytes(served, "vocab.json", vocab, vlen);
    free(vocab);
    publish_bytes(served, "model.safetensors", weights[0], len[0]);

    Srv s;
    ck_assert_int_eq(srv_start(&s, served, NULL), 0);
    Reloader r = {.port = s.port};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, reload_loop, &r), 0);
    snprintf(path, sizeof(path), "%s/model.safetensors", served);
    for (int i = 1; i <= 200; i++) {
        copy_in_place(path, weights[i % 2], len[i % 2]);
        ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    }
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    int status;
    ck_assert_msg(waitpid(s.pid, &status, WNOHANG) == 0, "the server died (%s %d)",
                  WIFSIGNALED(status) ? "signal" : "exit",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    ck_assert_msg(r.bad == 0, "%d of %d reload answers were not a swap or a refusal; the first: %s",
                  r.bad, r.answers, r.first_bad);
    ck_assert_int_gt(r.answers, 0);

    // Whatever the reloads took meanwhile, the next one takes the file as the last copy left
    // it: the text is a fresh server's on the same folder.
    Resp a = admin_reload(s.port, NULL);
    ck_assert_int_eq(a.status, 200);
    resp_free(&a);
    Resp g = http_post(s.port, "/generate", SEEDED);
    char *text_reloaded = text_of(&g);
    resp_free(&g);
    char *log = tu_read_file(s.log, NULL);
    int swaps = 0, refusals = 0;
    for (char *line = log; (line = strstr(line, "charlm-server: reload: "));) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        int swap = strstr(line, ": now step ") != NULL;
        int refusal = strstr(line, "; still serving the previous model") != NULL;
        ck_assert_msg(swap || refusal, "%s", line);
        swaps += swap;
        refusals += refusal;
        if (!end) break;
        line = end + 1;
    }
    free(log);
    ck_assert_int_eq(srv_stop(&s), 0);
    Srv fresh;
    ck_assert_int_eq(srv_start(&fresh, served, NULL), 0);
    g = http_post(fresh.port, "/generate", SEEDED);
    char *text_fresh = text_of(&g);
    resp_free(&g);
    ck_assert_int_eq(srv_stop(&fresh), 0);
    ck_assert_str_eq(text_reloaded, text_fresh);
    fprintf(stderr, "200 in-place copies: %d reload answers, %d swaps, %d refusals, server alive\n",
            r.answers, swaps, refusals);
    free(text_reloaded);
    free(text_fresh);
    free(weights[0]);
    free(weights[1]);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_reload");
    TCase *tc = tcase_create("reload");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_reloads_under_load);
    tcase_add_test(tc, test_stream_finishes_on_its_weights);
    tcase_add_test(tc, test_corrupt_replacements_are_refused);
    tcase_add_test(tc, test_admin_reload_needs_the_key);
    tcase_add_test(tc, test_models_folder_is_followed);
    tcase_add_test(tc, test_training_into_the_served_folder);
    tcase_add_test(tc, test_in_place_rewrites_under_reloads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
