/* charlm-server over real HTTP: endpoints, the error table, flags and environment,
 * startup failures, draining on SIGTERM. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "server_harness.h"
#include "testutil.h"
#include "version.h"

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 1, 3);
}

static void suite_teardown(void) {
    suite_model_remove();
}

START_TEST(test_health_models_card) {
    Resp r = http_get(S.port, "/health");
    ck_assert_int_eq(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    ck_assert_str_eq(ct, "application/json");
    free(ct);
    cJSON *j = resp_json(&r);
    ck_assert_str_eq(json_str(j, "status"), "ok");
    ck_assert_str_eq(json_str(j, "version"), charlm_version);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    ModelConfig c = {
        .vocab_size = (int)json_num(m, "vocab_size"), .embed = 16, .hidden = 48, .layers = 1};
    ck_assert_int_eq((int)json_num(m, "hidden"), 48);
    ck_assert_int_eq((int)json_num(m, "embed"), 16);
    ck_assert_int_eq((int)json_num(m, "layers"), 1);
    ck_assert_int_eq((long)json_num(m, "parameters"), (long)model_param_count(&c));
    cJSON_Delete(j);
    resp_free(&r);

    r = http_get(S.port, "/v1/models");
    ck_assert_int_eq(r.status, 200);
    j = resp_json(&r);
    ck_assert_str_eq(json_str(j, "object"), "list");
    const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "data"), 0);
    ck_assert_str_eq(json_str(d0, "id"), "charlm");
    ck_assert_str_eq(json_str(d0, "object"), "model");
    cJSON_Delete(j);
    resp_free(&r);

    r = http_get(S.port, "/model");
    ck_assert_int_eq(r.status, 200);
    j = resp_json(&r);
    ck_assert_int_eq((int)json_num(j, "vocab_size"), c.vocab_size);
    ck_assert_int_eq((long)json_num(j, "parameters"), (long)model_param_count(&c));
    ck_assert_double_gt(json_num(j, "best_val_loss"), 0);
    const cJSON *curve = cJSON_GetObjectItemCaseSensitive(j, "training_curve");
    ck_assert_int_eq(cJSON_GetArraySize(curve), 2);
    ck_assert_int_eq((int)json_num(cJSON_GetArrayItem(curve, 0), "step"), 0);
    ck_assert_int_eq((int)json_num(cJSON_GetArrayItem(curve, 1), "step"), 10);
    ck_assert_double_eq_tol(json_num(cJSON_GetArrayItem(curve, 1), "val_loss"),
                            log((double)c.vocab_size), 1e-5);
    ck_assert_double_eq_tol(json_num(cJSON_GetArrayItem(curve, 1), "tokens_per_s"), 1000, 1e-9);
    cJSON_Delete(j);
    resp_free(&r);

    // Without a training log the card is still served, with an empty curve.
    char *dir = malloc(strlen(root) + 16);
    sprintf(dir, "%s/nolog", root);
    char *text = tu_sample_text(500);
    ck_assert_int_eq(tu_make_model_dir(dir, text, 8, 8, 1, 1), 0);
    free(text);
    char *logp = malloc(strlen(dir) + 32);
    sprintf(logp, "%s/train_log.jsonl", dir);
    unlink(logp);
    Srv s2;
    ck_assert_int_eq(srv_start(&s2, dir, NULL), 0);
    r = http_get(s2.port, "/model");
    j = resp_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "training_curve")), 0);
    cJSON_Delete(j);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s2), 0);
    tu_rmtree(dir);
    free(dir);
    free(logp);
}
END_TEST

START_TEST(test_page_and_static_files) {
    char *dir = tu_tmpdir();
    const char *html = "<!doctype html><title>t</title><script src=\"/static/app.js\"></script>";
    free(tu_write_file(dir, "index.html", html, strlen(html)));
    free(tu_write_file(dir, "app.js", "let x = 1;\n", 11));
    free(tu_write_file(dir, "style.css", "p{}\n", 4));
    free(tu_write_file(dir, ".hidden", "secret", 6));
    char *sub = malloc(strlen(dir) + 8);
    sprintf(sub, "%s/img", dir);
    mkdir(sub, 0755);
    free(tu_write_file(sub, "x.svg", "<svg/>", 6));
    char *outside = tu_write_file(root, "outside.txt", "outside", 7);
    char *link = malloc(strlen(dir) + 16);
    sprintf(link, "%s/out.txt", dir);
    ck_assert_int_eq(symlink(outside, link), 0);
    char *env = malloc(strlen(dir) + 32);
    sprintf(env, "CHARLM_STATIC_DIR=%s", dir);
    const char *envs[] = {env, NULL};
    Srv s;
    ck_assert_int_eq(srv_start_env(&s, model_dir, NULL, envs), 0);

    Resp r = http_get(s.port, "/");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, html);
    char *ct = resp_header(&r, "Content-Type"), *csp = resp_header(&r, "Content-Security-Policy");
    ck_assert_str_eq(ct, "text/html; charset=utf-8");
    ck_assert_ptr_nonnull(csp);
    ck_assert_ptr_nonnull(strstr(csp, "default-src 'self'"));
    free(ct);
    free(csp);
    resp_free(&r);

    const struct {
        const char *path, *type, *body;
    } ok[] = {{"/static/app.js", "text/javascript; charset=utf-8", "let x = 1;\n"},
              {"/static/style.css", "text/css; charset=utf-8", "p{}\n"},
              {"/static/img/x.svg", "image/svg+xml", "<svg/>"},
              {"/static/index.html", "text/html; charset=utf-8", html}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        r = http_get(s.port, ok[i].path);
        ck_assert_msg(r.status == 200, "%s: %ld", ok[i].path, r.status);
        ct = resp_header(&r, "Content-Type");
        ck_assert_str_eq(ct, ok[i].type);
        ck_assert_str_eq(r.body, ok[i].body);
        free(ct);
        resp_free(&r);
    }
    // A symlink out of the folder, hidden files, missing files: 404 with a JSON body.
    const char *missing[] = {"/static/out.txt", "/static/.hidden", "/static/nope.js",
                             "/static/img",     "/static/",        "/static/img/"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(*missing); i++) {
        r = http_get(s.port, missing[i]);
        assert_error(&r, 404, NULL);
        ck_assert_ptr_null(strstr(r.body, "outside"));
        resp_free(&r);
    }
    r = http_req(s.port, "HEAD", "/", NULL, NULL, 0, 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = http_req(s.port, "POST", "/", "application/json", "{}", 2, 0);
    assert_error(&r, 405, NULL);
    char *allow = resp_header(&r, "Allow");
    ck_assert_str_eq(allow, "GET, HEAD");
    free(allow);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
    free(sub);
    free(outside);
    free(link);
    free(env);
}
END_TEST

START_TEST(test_status_table) {
    Resp r = http_get(S.port, "/nope");
    assert_error(&r, 404, NULL);
    resp_free(&r);
    r = http_get(S.port, "/v1/embeddings");
    assert_error(&r, 404, NULL);
    resp_free(&r);

    r = http_get(S.port, "/generate");
    assert_error(&r, 405, NULL);
    char *allow = resp_header(&r, "Allow");
    ck_assert_str_eq(allow, "POST");
    free(allow);
    resp_free(&r);
    r = http_req(S.port, "DELETE", "/health", NULL, NULL, 0, 0);
    assert_error(&r, 405, NULL);
    allow = resp_header(&r, "Allow");
    ck_assert_str_eq(allow, "GET, HEAD");
    free(allow);
    resp_free(&r);
    r = http_req(S.port, "PUT", "/v1/completions", "application/json", "{}", 2, 0);
    assert_error(&r, 405, NULL);
    resp_free(&r);

    const char *body = "{\"prompt\": \"the\", \"max_tokens\": 3}";
    r = http_req(S.port, "POST", "/generate", "text/plain", body, strlen(body), 0);
    assert_error(&r, 415, NULL);
    resp_free(&r);
    r = http_req(S.port, "POST", "/generate", NULL, body, strlen(body), 0);
    assert_error(&r, 415, NULL);
    resp_free(&r);
    r = http_req(S.port, "POST", "/v1/completions", "application/jsonx", body, strlen(body), 0);
    assert_error(&r, 415, NULL);
    resp_free(&r);
    const char *json_types[] = {"application/json", "application/json; charset=utf-8",
                                "Application/JSON;charset=UTF-8", "application/json ; q=1"};
    for (size_t i = 0; i < 4; i++) {
        r = http_req(S.port, "POST", "/generate", json_types[i], body, strlen(body), 0);
        ck_assert_msg(r.status == 200, "%s: %ld %s", json_types[i], r.status, r.body);
        resp_free(&r);
    }
}
END_TEST

START_TEST(test_body_limit) {
    const char *args[] = {"--max-body", "512", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    char big[2048];
    int n = snprintf(big, sizeof(big), "{\"prompt\": \"");
    while (n < 1500) big[n++] = 'a';
    n += snprintf(big + n, sizeof(big) - (size_t)n, "\", \"max_tokens\": 2}");
    Resp r = http_req(s.port, "POST", "/generate", "application/json", big, (size_t)n, 0);
    assert_error(&r, 413, NULL);
    resp_free(&r);
    // Chunked: no length up front, counted as it arrives.
    r = http_req(s.port, "POST", "/generate", "application/json", big, (size_t)n, 1);
    assert_error(&r, 413, NULL);
    resp_free(&r);
    const char *small = "{\"prompt\": \"the cat\", \"max_tokens\": 2}";
    r = http_req(s.port, "POST", "/generate", "application/json", small, strlen(small), 1);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    // Exactly at the limit is fine.
    char edge[512];
    memset(edge, ' ', sizeof(edge));
    memcpy(edge, small, strlen(small));
    r = http_req(s.port, "POST", "/generate", "application/json", edge, sizeof(edge), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_bad_fields) {
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"max_tokens\": 5}", "prompt"},
        {"{\"prompt\": 5}", "prompt"},
        {"{\"prompt\": null}", "prompt"},
        {"{\"prompt\": [\"a\"]}", "prompt"},
        {"{\"prompt\": \"a\", \"bogus\": 1}", "bogus"},
        {"{\"prompt\": \"a\", \"max_tokens\": 0}", "max_tokens"},
        {"{\"prompt\": \"a\", \"max_tokens\": 2001}", "max_tokens"},
        {"{\"prompt\": \"a\", \"max_tokens\": 1.5}", "max_tokens"},
        {"{\"prompt\": \"a\", \"max_tokens\": \"5\"}", "max_tokens"},
        {"{\"prompt\": \"a\", \"max_tokens\": 1e400}", "max_tokens"},
        {"{\"prompt\": \"a\", \"temperature\": -0.1}", "temperature"},
        {"{\"prompt\": \"a\", \"temperature\": true}", "temperature"},
        {"{\"prompt\": \"a\", \"temperature\": NaN}", "temperature"},
        {"{\"prompt\": \"a\", \"temperature\": -Infinity}", "temperature"},
        {"{\"prompt\": \"a\", \"top_k\": -1}", "top_k"},
        {"{\"prompt\": \"a\", \"top_k\": 2.5}", "top_k"},
        {"{\"prompt\": \"a\", \"top_p\": 0}", "top_p"},
        {"{\"prompt\": \"a\", \"top_p\": 1.01}", "top_p"},
        {"{\"prompt\": \"a\", \"repetition_penalty\": 0}", "repetition_penalty"},
        {"{\"prompt\": \"a\", \"repetition_penalty\": -1}", "repetition_penalty"},
        {"{\"prompt\": \"a\", \"repetition_window\": -1}", "repetition_window"},
        {"{\"prompt\": \"a\", \"seed\": -1}", "seed"},
        {"{\"prompt\": \"a\", \"seed\": 9007199254740994}", "seed"},
        {"{\"prompt\": \"a\", \"seed\": 0.5}", "seed"},
        {"{\"prompt\": \"a\", \"seed\": \"1\"}", "seed"},
        {"{\"prompt\": \"a\", \"stop\": 5}", "stop"},
        {"{\"prompt\": \"a\", \"stop\": \"\"}", "stop"},
        {"{\"prompt\": \"a\", \"stop\": [\"a\", 1]}", "stop"},
        {"{\"prompt\": \"a\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", "stop"},
        {"{\"prompt\": \"a\", \"stream\": 1}", "stream"},
        {"{\"prompt\": \"a\", \"stream\": \"true\"}", "stream"},
        {"{\"prompt\": \"a\", \"n\": 17}", "n"},
        {"{\"prompt\": \"a\", \"user\": \"u\"}", "user"}, // an OpenAI field, unknown here
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        Resp r = http_post(S.port, "/generate", cases[i].body);
        ck_assert_msg(r.status == 400, "%s -> %ld %s", cases[i].body, r.status, r.body);
        assert_error(&r, 400, cases[i].param);
        resp_free(&r);
    }
    // Whole numbers written as floats are integers.
    Resp r = http_post(S.port, "/generate",
                       "{\"prompt\": \"a\", \"max_tokens\": 3.0, \"top_k\": 2e1, \"seed\": 7.0}");
    ck_assert_msg(r.status == 200, "%s", r.body);
    cJSON *j = resp_json(&r);
    ck_assert_int_eq((int)json_num(j, "tokens"), 3);
    ck_assert_int_eq((int)json_num(j, "seed"), 7);
    cJSON_Delete(j);
    resp_free(&r);
    // The largest seed, 2^53.
    r = http_post(S.port, "/generate",
                  "{\"prompt\": \"a\", \"max_tokens\": 2, \"seed\": "
                  "9007199254740992}");
    ck_assert_msg(r.status == 200, "%s", r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "\"seed\":9007199254740992"));
    resp_free(&r);

    // /v1/completions: its own table.
    static const struct {
        const char *body, *param;
    } oa[] = {
        {"{\"model\": \"charlm\"}", "prompt"},
        {"{\"prompt\": \"a\", \"n\": 0}", "n"},
        {"{\"prompt\": \"a\", \"best_of\": 3}", "best_of"},
        {"{\"prompt\": \"a\", \"max_tokens\": 0}", "max_tokens"},
        {"{\"prompt\": \"a\", \"suffix\": \"x\"}", "suffix"},
        {"{\"prompt\": \"a\", \"model\": 3}", "model"},
        {"{\"prompt\": \"a\", \"logprobs\": 9}", "logprobs"},
        {"{\"prompt\": \"a\", \"wat\": null}", "wat"},
        {"{\"prompt\": \"a\", \"temperature\": \"hot\"}", "temperature"},
        {"{\"prompt\": \"a\", \"stream_options\": {\"include_usage\": true}}", "stream_options"},
        {"{\"prompt\": [\"a\", 1]}", "prompt"},
    };
    for (size_t i = 0; i < sizeof(oa) / sizeof(*oa); i++) {
        r = http_post(S.port, "/v1/completions", oa[i].body);
        ck_assert_msg(r.status == 400, "%s -> %ld %s", oa[i].body, r.status, r.body);
        assert_error(&r, 400, oa[i].param);
        resp_free(&r);
    }
    // OpenAI's inapplicable fields are accepted when they ask for nothing, nulls included.
    r = http_post(S.port, "/v1/completions",
                  "{\"model\": \"anything\", \"prompt\": [\"the\"], \"n\": 1, \"echo\": false, "
                  "\"logprobs\": null, \"user\": \"u\", \"presence_penalty\": 0, "
                  "\"frequency_penalty\": 0.5, \"logit_bias\": {}, \"suffix\": null, "
                  "\"best_of\": 1, \"max_tokens\": null, \"temperature\": null, \"stop\": null, "
                  "\"seed\": 3}");
    ck_assert_msg(r.status == 200, "%s", r.body);
    j = resp_json(&r);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    ck_assert_int_eq((int)json_num(usage, "completion_tokens"), 16); // OpenAI's default
    ck_assert_int_eq((int)json_num(usage, "prompt_tokens"), 3);
    ck_assert_int_eq((int)json_num(usage, "total_tokens"), 19);
    cJSON_Delete(j);
    resp_free(&r);
}
END_TEST

typedef struct {
    int port;
    const char *body;
    Resp r;
} Async;

static void *async_post(void *arg) {
    Async *a = arg;
    a->r = http_post(a->port, "/generate", a->body);
    return NULL;
}

START_TEST(test_overload_and_disconnect) {
    const char *args[] = {"--max-concurrent", "1", "--max-tokens", "1000000", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    // A stream that would run for a long while, from a client that never reads it.
    const char *json = "{\"prompt\": \"the\", \"max_tokens\": 1000000, \"stream\": true}";
    int fd = raw_generate(s.port, json);
    ck_assert_int_eq(health_in_flight(s.port), 1);

    Resp r = http_post(s.port, "/generate", "{\"prompt\": \"a\", \"max_tokens\": 2}");
    assert_error(&r, 503, NULL);
    char *ra = resp_header(&r, "Retry-After");
    ck_assert_ptr_nonnull(ra);
    ck_assert_int_ge(atoi(ra), 1);
    free(ra);
    resp_free(&r);
    r = http_post(s.port, "/v1/completions", "{\"prompt\": \"a\", \"max_tokens\": 2}");
    assert_error(&r, 503, NULL);
    resp_free(&r);
    // Other endpoints still answer.
    r = http_get(s.port, "/model");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);

    // The client goes away: its generation stops and the slot frees up.
    close(fd);
    int waited = 0;
    while (health_in_flight(s.port) != 0 && waited < 10000) sleep_ms(10), waited += 10;
    ck_assert_int_eq(health_in_flight(s.port), 0);
    r = http_post(s.port, "/generate", "{\"prompt\": \"a\", \"max_tokens\": 2}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = http_get(s.port, "/metrics");
    ck_assert_ptr_nonnull(
        strstr(r.body, "charlm_requests_total{route=\"/generate\",status=\"503\"} 1"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "charlm_requests_total{route=\"/generate\",status=\"499\"} 1"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "charlm_generations_total{model=\"charlm\",finish_reason=\"cancelled\"} 1"));
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_sigterm_drains) {
    const char *args[] = {"--max-tokens", "1000000", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    // One stream nobody reads (cancelled when the drain time is up) and one normal request
    // that must complete.
    const char *json = "{\"prompt\": \"the\", \"max_tokens\": 1000000, \"stream\": true}";
    int fd = raw_generate(s.port, json);
    Async a = {.port = s.port,
               .body = "{\"prompt\": \"the\", \"max_tokens\": 200000, \"stream\": true, "
                       "\"seed\": 1}"};
    pthread_t t;
    pthread_create(&t, NULL, async_post, &a);
    int waited = 0;
    while (health_in_flight(s.port) != 2 && waited < 10000) sleep_ms(5), waited += 5;
    ck_assert_int_eq(health_in_flight(s.port), 2);
    kill(s.pid, SIGTERM);
    // New connections are refused at once.
    int refused = 0;
    for (waited = 0; waited < 3000 && !refused; waited += 20) {
        Resp r = http_get(s.port, "/health");
        refused = r.status == -(long)CURLE_COULDNT_CONNECT;
        resp_free(&r);
        if (!refused) sleep_ms(20);
    }
    ck_assert(refused);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.r.status, 200);
    // It ended with the summary event (finished, or cancelled when the drain ran out).
    const char *last = strstr(a.r.body, "\"done\":true");
    ck_assert_ptr_nonnull(last);
    resp_free(&a.r);
    ck_assert_int_eq(srv_stop(&s), 0);
    close(fd);
}
END_TEST

START_TEST(test_flags_and_env) {
    Srv s;
    const char *env5[] = {"CHARLM_MAX_TOKENS=5", "CHARLM_MAX_PROMPT=3", NULL};
    ck_assert_int_eq(srv_start_env(&s, model_dir, NULL, env5), 0);
    Resp r = http_post(s.port, "/generate", "{\"prompt\": \"a\", \"max_tokens\": 6}");
    assert_error(&r, 400, "max_tokens");
    resp_free(&r);
    r = http_post(s.port, "/generate", "{\"prompt\": \"abcd\", \"max_tokens\": 5}");
    assert_error(&r, 400, "prompt");
    resp_free(&r);
    // The default max_tokens (200) is capped by --max-tokens rather than refused.
    r = http_post(s.port, "/generate", "{\"prompt\": \"abc\"}");
    ck_assert_int_eq(r.status, 200);
    cJSON *j = resp_json(&r);
    ck_assert_int_eq((int)json_num(j, "tokens"), 5);
    cJSON_Delete(j);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);

    // Flags win over the environment.
    const char *args[] = {"--max-tokens", "10", NULL};
    ck_assert_int_eq(srv_start_env(&s, model_dir, args, env5), 0);
    r = http_post(s.port, "/generate", "{\"prompt\": \"a\", \"max_tokens\": 6}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);

    // CORS: the header on every response, and preflights answered.
    const char *cors[] = {"--cors-origin=http://example.test", NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, cors), 0);
    r = http_get(s.port, "/health");
    char *h = resp_header(&r, "Access-Control-Allow-Origin");
    ck_assert_str_eq(h, "http://example.test");
    free(h);
    resp_free(&r);
    r = http_req(s.port, "OPTIONS", "/generate", NULL, NULL, 0, 0);
    ck_assert_int_eq(r.status, 204);
    h = resp_header(&r, "Access-Control-Allow-Methods");
    ck_assert_ptr_nonnull(strstr(h, "POST"));
    free(h);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

static int run_server(const char *args, char **out, char **err) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s %s", tu_bin("charlm-server"), args);
    return tu_run(cmd, out, err);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

START_TEST(test_startup_failures) {
    char *out, *err, args[4096];
    // Missing artefacts.
    snprintf(args, sizeof(args), "--model %s/missing --port 0", root);
    ck_assert_int_ne(run_server(args, &out, &err), 0);
    ck_assert_int_eq(count_lines(err), 1);
    ck_assert_ptr_nonnull(strstr(err, "missing"));
    free(out);
    free(err);

    // Corrupt model file.
    char *bad = malloc(strlen(root) + 16);
    sprintf(bad, "%s/corrupt", root);
    char *text = tu_sample_text(500);
    ck_assert_int_eq(tu_make_model_dir(bad, text, 8, 8, 1, 1), 0);
    free(text);
    free(tu_write_file(bad, "model.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":", 13));
    snprintf(args, sizeof(args), "--model %s --port 0", bad);
    ck_assert_int_ne(run_server(args, &out, &err), 0);
    ck_assert_int_eq(count_lines(err), 1);
    ck_assert_ptr_nonnull(strstr(err, "model.safetensors"));
    free(out);
    free(err);
    free(bad);

    // Port taken (by our default server).
    snprintf(args, sizeof(args), "--model %s --port %d", model_dir, S.port);
    ck_assert_int_ne(run_server(args, &out, &err), 0);
    ck_assert_int_eq(count_lines(err), 1);
    ck_assert_ptr_nonnull(strstr(err, "cannot listen"));
    free(out);
    free(err);

    // Bad flags and environment values: exit 2.
    const char *bad_args[] = {"--port 70000", "--port abc", "--threads 0",         "--max-body -5",
                              "--bogus",      "--model",    "--max-concurrent 1x", "--host"};
    for (size_t i = 0; i < sizeof(bad_args) / sizeof(*bad_args); i++) {
        ck_assert_msg(run_server(bad_args[i], &out, &err) == 2, "%s", bad_args[i]);
        ck_assert_int_ge(count_lines(err), 1);
        free(out);
        free(err);
    }
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "CHARLM_PORT=http %s", tu_bin("charlm-server"));
    ck_assert_int_eq(tu_run(cmd, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "CHARLM_PORT"));
    free(out);
    free(err);

    ck_assert_int_eq(run_server("--help", &out, &err), 0);
    const char *flags[] = {"--model",       "--host",       "--port",     "--threads",
                           "--max-tokens",  "--max-prompt", "--max-body", "--max-concurrent",
                           "--cors-origin", "CHARLM_PORT"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(*flags); i++)
        ck_assert_msg(strstr(out, flags[i]) != NULL, "--help lacks %s", flags[i]);
    free(out);
    free(err);

    // The server that was running is untouched.
    ck_assert_int_eq(health_in_flight(S.port), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_api");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_default, stop_default);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_health_models_card);
    tcase_add_test(tc, test_page_and_static_files);
    tcase_add_test(tc, test_status_table);
    tcase_add_test(tc, test_body_limit);
    tcase_add_test(tc, test_bad_fields);
    tcase_add_test(tc, test_overload_and_disconnect);
    tcase_add_test(tc, test_sigterm_drains);
    tcase_add_test(tc, test_flags_and_env);
    tcase_add_test(tc, test_startup_failures);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
