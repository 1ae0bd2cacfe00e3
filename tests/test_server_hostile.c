/* charlm-server over real HTTP: hostile input gets a clean 4xx and leaves the server
 * healthy; path traversal never escapes the page folder; /metrics is valid Prometheus
 * text. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

static void suite_setup(void) {
    suite_model_make(2000, 8, 32, 1, 5);
}

static void suite_teardown(void) {
    suite_model_remove();
}

static void assert_healthy(int port) {
    Resp r = http_get(port, "/health");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = http_post(port, "/generate", "{\"prompt\": \"the\", \"max_tokens\": 5}");
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
}

// Sends body to both POST endpoints; expects status with the given param (NULL: none).
static void expect(const char *body, size_t len, long status, const char *param) {
    const char *paths[] = {"/generate", "/v1/completions"};
    for (int i = 0; i < 2; i++) {
        Resp r = http_req(S.port, "POST", paths[i], "application/json", body, len, 0);
        ck_assert_msg(r.status == status, "%s %.60s -> %ld %s", paths[i], body, r.status, r.body);
        assert_error(&r, status, param);
        resp_free(&r);
    }
}

static char *nested(const char *open, const char *mid, const char *close, int depth) {
    size_t lo = strlen(open), lc = strlen(close);
    char *s = malloc((lo + lc) * (size_t)depth + strlen(mid) + 1), *p = s;
    for (int i = 0; i < depth; i++) memcpy(p, open, lo), p += lo;
    memcpy(p, mid, strlen(mid));
    p += strlen(mid);
    for (int i = 0; i < depth; i++) memcpy(p, close, lc), p += lc;
    *p = '\0';
    return s;
}

START_TEST(test_malformed_json) {
    const char *bodies[] = {"",
                            "{",
                            "}",
                            "{\"prompt\": \"a\"",
                            "{\"prompt\": \"a\",}",
                            "{\"prompt\": \"a\"} x",
                            "{\"prompt\": \"a\"}{}",
                            "{prompt: \"a\"}",
                            "{'prompt': 'a'}",
                            "{\"prompt\": \"\\ud800\"}", // lone surrogate escape
                            "{\"prompt\": \"\\x41\"}",
                            "nul",
                            "[1, 2]",
                            "\"prompt\"",
                            "42",
                            "null",
                            "{\"prompt\": \"a\", \"max_tokens\": 1e}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++)
        expect(bodies[i], strlen(bodies[i]), 400, NULL);
    // A NUL byte inside the body.
    expect("{\"prompt\": \"a\"}\0{}", 17, 400, NULL);
    expect("{\"prompt\": \"a\0b\"}", 17, 400, NULL);
    assert_healthy(S.port);
}
END_TEST

START_TEST(test_deep_nesting) {
    // Deeper than cJSON's nesting limit, and under it but inside a field.
    int depths[] = {20000, 1500, 900};
    for (int i = 0; i < 3; i++) {
        char *arr = nested("[", "", "]", depths[i]);
        expect(arr, strlen(arr), 400, NULL);
        size_t n = strlen(arr) + 64;
        char *body = malloc(n);
        snprintf(body, n, "{\"prompt\": \"a\", \"stop\": %s}", arr);
        expect(body, strlen(body), 400, depths[i] > 1000 ? NULL : "stop");
        free(body);
        free(arr);
        // Nested objects: too deep is malformed, otherwise "a" is an unknown field.
        char *obj = nested("{\"a\":", "1", "}", depths[i] / 2);
        expect(obj, strlen(obj), 400, depths[i] / 2 > 1000 ? NULL : "a");
        free(obj);
    }
    assert_healthy(S.port);
}
END_TEST

START_TEST(test_numbers) {
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"prompt\": \"a\", \"max_tokens\": 1e400}", "max_tokens"},
        {"{\"prompt\": \"a\", \"max_tokens\": -1e400}", "max_tokens"},
        {"{\"prompt\": \"a\", \"temperature\": 1e400}", "temperature"},
        {"{\"prompt\": \"a\", \"seed\": 1e400}", "seed"},
        {"{\"prompt\": \"a\", \"seed\": 1e20}", "seed"},
        {"{\"prompt\": \"a\", \"top_k\": 99999999999999999999}", "top_k"},
        {"{\"prompt\": \"a\", \"top_p\": 1e-400}", "top_p"}, // underflows to 0
        {"{\"prompt\": \"a\", \"temperature\": NaN}", "temperature"},
        {"{\"prompt\": \"a\", \"top_p\": nan}", "top_p"},
        {"{\"prompt\": \"a\", \"repetition_penalty\": Infinity}", "repetition_penalty"},
        {"{\"prompt\": \"a\", \"seed\": -Infinity}", "seed"},
        {"{\"prompt\": \"a\", \"max_tokens\": -0.5}", "max_tokens"},
        {"{\"prompt\": \"a\", \"repetition_window\": 1e10}", "repetition_window"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
        expect(cases[i].body, strlen(cases[i].body), 400, cases[i].param);
    // Extreme but valid values are served.
    const char *ok[] = {
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"temperature\": 1e300}",
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"temperature\": 1e-300}",
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"top_p\": 1e-300}",
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"repetition_penalty\": 1e-300}",
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"repetition_penalty\": 1e300}",
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"top_k\": 2147483647}",
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"repetition_window\": 2147483647}",
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"seed\": 0}",
        "{\"prompt\": \"a\", \"max_tokens\": 3, \"temperature\": -0}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        Resp r = http_post(S.port, "/generate", ok[i]);
        ck_assert_msg(r.status == 200, "%s -> %ld %s", ok[i], r.status, r.body);
        cJSON *j = resp_json(&r);
        ck_assert_int_eq((int)json_num(j, "tokens"), 3);
        cJSON_Delete(j);
        resp_free(&r);
    }
    assert_healthy(S.port);
}
END_TEST

START_TEST(test_invalid_utf8) {
    const char *bodies[] = {
        "{\"prompt\": \"a\xff\"}",
        "{\"prompt\": \"\xc0\xaf\"}",         // overlong '/'
        "{\"prompt\": \"\xed\xa0\x80\"}",     // a surrogate, encoded
        "{\"prompt\": \"\xf4\x90\x80\x80\"}", // above U+10FFFF
        "{\"prompt\": \"\xe2\x82\"}",         // truncated
        "{\"prompt\": \"a\", \"stop\": \"\x80\"}",
        "{\"pr\xfempt\": \"a\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++)
        expect(bodies[i], strlen(bodies[i]), 400, NULL);
    assert_healthy(S.port);
}
END_TEST

START_TEST(test_content_type_and_size) {
    const char *body = "{\"prompt\": \"a\", \"max_tokens\": 2}";
    const char *bad_types[] = {"text/plain",
                               "application/x-www-form-urlencoded",
                               "multipart/form-data; boundary=x",
                               "application/jsonp",
                               "json",
                               ""};
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(*bad_types); i++) {
        Resp r = http_req(S.port, "POST", "/generate", bad_types[i], body, strlen(body), 0);
        assert_error(&r, 415, NULL);
        resp_free(&r);
    }
    // Over the default --max-body of 65536, with a length and chunked.
    size_t n = 200000;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    memcpy(big, "{\"prompt\": \"", 12);
    memcpy(big + n - 2, "\"}", 2);
    big[n] = '\0';
    Resp r = http_req(S.port, "POST", "/generate", "application/json", big, n, 0);
    assert_error(&r, 413, NULL);
    resp_free(&r);
    r = http_req(S.port, "POST", "/v1/completions", "application/json", big, n, 1);
    assert_error(&r, 413, NULL);
    resp_free(&r);
    free(big);
    // A prompt over --max-prompt (8192 chars) inside the body limit: 400 naming it.
    n = 9000;
    big = malloc(n + 64);
    int len = sprintf(big, "{\"prompt\": \"");
    for (size_t i = 0; i < 8200; i++) big[len++] = 'a';
    len += sprintf(big + len, "\"}");
    r = http_req(S.port, "POST", "/generate", "application/json", big, (size_t)len, 0);
    assert_error(&r, 400, "prompt");
    resp_free(&r);
    free(big);
    assert_healthy(S.port);
}
END_TEST

START_TEST(test_path_traversal) {
    // A page folder of our own, inside a folder holding a secret next to it.
    char *dir = tu_tmpdir();
    char *page = malloc(strlen(dir) + 16);
    sprintf(page, "%s/static", dir);
    mkdir(page, 0755);
    free(tu_write_file(page, "index.html", "<p>page</p>", 11));
    free(tu_write_file(dir, "CMakeLists.txt", "SECRET", 6));
    char *env = malloc(strlen(page) + 32);
    sprintf(env, "CHARLM_STATIC_DIR=%s", page);
    const char *envs[] = {env, NULL};
    Srv s;
    ck_assert_int_eq(srv_start_env(&s, model_dir, NULL, envs), 0);
    const char *paths[] = {"/static/../CMakeLists.txt",
                           "/static/%2e%2e/CMakeLists.txt",
                           "/static/%2E%2E/CMakeLists.txt",
                           "/static/..%2fCMakeLists.txt",
                           "/static/%2e%2e%2fCMakeLists.txt",
                           "/static/.%2e/CMakeLists.txt",
                           "/static/%252e%252e/CMakeLists.txt",
                           "/static/..\\CMakeLists.txt",
                           "/static/..%5cCMakeLists.txt",
                           "/static//etc/passwd",
                           "/static/%2fetc%2fpasswd",
                           "/static/./index.html/../../CMakeLists.txt",
                           "/static/index.html%00.js",
                           "/../CMakeLists.txt",
                           "/%2e%2e/CMakeLists.txt",
                           "/static/"
                           "%c0%ae%c0%ae/CMakeLists.txt"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
        Resp r = http_get(s.port, paths[i]);
        ck_assert_msg(r.status >= 400 && r.status < 500, "%s -> %ld", paths[i], r.status);
        ck_assert_msg(strstr(r.body, "SECRET") == NULL, "%s leaked", paths[i]);
        ck_assert_msg(strstr(r.body, "root:") == NULL, "%s leaked", paths[i]);
        cJSON_Delete(resp_json(&r));
        resp_free(&r);
    }
    Resp r = http_get(s.port, "/");
    ck_assert_str_eq(r.body, "<p>page</p>");
    resp_free(&r);
    assert_healthy(s.port);
    ck_assert_int_eq(srv_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
    free(page);
    free(env);
}
END_TEST

START_TEST(test_metrics) {
    Resp r = http_post(S.port, "/generate", "{\"prompt\": \"the\", \"max_tokens\": 7}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = http_post(S.port, "/generate", "{\"prompt\": 1}");
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    r = http_get(S.port, "/nowhere");
    resp_free(&r);
    r = http_post(S.port, "/v1/completions",
                  "{\"prompt\": \"the\", \"max_tokens\": 4, \"stream\": true}");
    resp_free(&r);

    const char *want[] = {
        "charlm_requests_total{route=\"/generate\",status=\"200\"} 1\n",
        "charlm_requests_total{route=\"/generate\",status=\"400\"} 1\n",
        "charlm_requests_total{route=\"/v1/completions\",status=\"200\"} 1\n",
        "charlm_requests_total{route=\"other\",status=\"404\"} 1\n",
        "charlm_generated_chars_total{model=\"charlm\"} 11\n",
        "charlm_prompt_chars_total{model=\"charlm\"} 6\n",
        "charlm_generations_in_flight 0\n",
        "charlm_generations_total{model=\"charlm\",finish_reason=\"length\"} 2\n",
        "# TYPE charlm_request_duration_seconds histogram\n",
        "charlm_request_duration_seconds_bucket{route=\"/generate\",le=\"+Inf\"} 2\n",
        "charlm_request_duration_seconds_count{route=\"/generate\"} 2\n",
    };
    // A request is counted when libmicrohttpd reports it complete, which can be a moment
    // after the client has its reply.
    size_t missing = 0;
    for (int tries = 0; tries < 100; tries++) {
        if (tries) resp_free(&r), sleep_ms(20);
        r = http_get(S.port, "/metrics");
        ck_assert_int_eq(r.status, 200);
        for (missing = 0; missing < sizeof(want) / sizeof(*want); missing++)
            if (!strstr(r.body, want[missing])) break;
        if (missing == sizeof(want) / sizeof(*want)) break;
    }
    ck_assert_msg(missing == sizeof(want) / sizeof(*want), "missing %s in:\n%s", want[missing],
                  r.body);
    char *ct = resp_header(&r, "Content-Type");
    ck_assert(strncmp(ct, "text/plain", 10) == 0);
    free(ct);

    if (access("/usr/bin/promtool", X_OK) == 0) {
        char *dir = tu_tmpdir();
        char *path = tu_write_file(dir, "metrics.txt", r.body, r.len);
        char cmd[4096], *out, *err;
        snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < '%s'", path);
        int rc = tu_run(cmd, &out, &err);
        ck_assert_msg(rc == 0, "promtool: %s %s", out, err);
        free(out);
        free(err);
        free(path);
        tu_rmtree(dir);
        free(dir);
    } else {
        fprintf(stderr, "test_metrics: /usr/bin/promtool not installed; format check skipped\n");
    }
    resp_free(&r);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_hostile");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_default, stop_default);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_malformed_json);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_content_type_and_size);
    tcase_add_test(tc, test_path_traversal);
    tcase_add_test(tc, test_metrics);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
