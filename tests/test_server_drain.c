/* charlm-server's shutdown over real HTTP: SIGTERM with streams and JSON requests in
 * flight, round after round. Every client must get a complete reply (the JSON whole, a
 * stream ending with its summary event, /v1 with [DONE], the chunked body properly ended:
 * curl reports no partial transfer) and the server must exit 0, whether a generation
 * finished within --drain-timeout or was cancelled when it ran out. With nothing in
 * flight, it exits at once. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

#define ROUNDS  20
#define STREAMS 20
#define JSONS   5
#define CLIENTS (STREAMS + JSONS)

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 1, 3);
}

static void suite_teardown(void) {
    suite_model_remove();
}

typedef struct {
    int port;
    const char *path;
    char body[160];
    int stream, openai;
    Resp r;
    atomic_int started; // a stream's headers came: it was admitted
    atomic_int done;
} Client;

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
    Client *c = ctx;
    char *b = realloc(c->r.body, c->r.len + size * n + 1);
    if (!b) return 0;
    memcpy(b + c->r.len, p, size * n);
    c->r.len += size * n;
    b[c->r.len] = '\0';
    c->r.body = b;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx) {
    (void)p;
    atomic_store(&((Client *)ctx)->started, 1);
    return size * n;
}

// As http_post, telling when the response headers have come.
static void *client_main(void *arg) {
    Client *c = arg;
    CURL *h = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->port, c->path);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->r.status);
    else
        c->r.status = -(long)rc;
    if (!c->r.body) c->r.body = strdup("");
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    atomic_store(&c->done, 1);
    return NULL;
}

/* The payload of the event that ends at offset `end` of an SSE body, NULL when there is
 * none; `end` moves to its start. */
static char *last_event(const char *body, size_t *end) {
    if (*end < 2 || strncmp(body + *end - 2, "\n\n", 2) != 0) return NULL;
    size_t stop = *end - 2, start = stop;
    while (start > 0 && !(start >= 2 && body[start - 1] == '\n' && body[start - 2] == '\n'))
        start--;
    ck_assert_msg(strncmp(body + start, "data: ", 6) == 0, "not an SSE event: %.60s", body + start);
    *end = start;
    return strndup(body + start + 6, stop - start - 6);
}

static void events_well_formed(const char *body) {
    for (const char *p = body; *p;) {
        ck_assert_msg(strncmp(p, "data: ", 6) == 0, "not an SSE data line: %.60s", p);
        const char *e = strstr(p, "\n\n");
        ck_assert_msg(e != NULL, "an event is cut short: %.60s", p);
        p = e + 2;
    }
}

// Returns the finish_reason; fails the test on anything incomplete.
static const char *check_reply(const Client *c) {
    ck_assert_msg(c->r.status == 200, "%s%s: status %ld (curl error when negative): %.200s",
                  c->path, c->stream ? " (stream)" : "", c->r.status, c->r.body);
    static const char *reasons[] = {"length", "cancelled"};
    const char *fr = NULL;
    char got[32] = "";
    if (!c->stream) {
        cJSON *j = resp_json(&c->r);
        const cJSON *o = j;
        if (c->openai) {
            o = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
            ck_assert_ptr_nonnull(o);
            ck_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "usage")));
        } else {
            ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "tokens")));
        }
        json_str(o, "text");
        snprintf(got, sizeof(got), "%s", json_str(o, "finish_reason"));
        cJSON_Delete(j);
    } else {
        events_well_formed(c->r.body);
        size_t end = c->r.len;
        char *last = last_event(c->r.body, &end);
        ck_assert_msg(last != NULL, "the stream has no events: %.200s", c->r.body);
        if (c->openai) {
            ck_assert_str_eq(last, "[DONE]");
            free(last);
            last = last_event(c->r.body, &end);
            ck_assert_ptr_nonnull(last);
        }
        cJSON *e = cJSON_Parse(last);
        ck_assert_msg(e != NULL, "the last event is not JSON: %s", last);
        const cJSON *o = e;
        if (c->openai) {
            o = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "choices"), 0);
            ck_assert_ptr_nonnull(o);
        } else {
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "done")));
        }
        snprintf(got, sizeof(got), "%s", json_str(o, "finish_reason"));
        cJSON_Delete(e);
        free(last);
    }
    for (int i = 0; i < 2; i++)
        if (strcmp(got, reasons[i]) == 0) fr = reasons[i];
    ck_assert_msg(fr != NULL, "%s: finish_reason %s", c->path, got);
    return fr;
}

START_TEST(test_sigterm_loses_nothing) {
    int cancelled = 0, finished = 0;
    for (int round = 0; round < ROUNDS; round++) {
        // Odd rounds cancel at once; even ones give the drain a second, in which the
        // shorter generations finish (if they had not yet) and the long ones are cancelled.
        const char *drain = round % 2 ? "0" : "1";
        const char *args[] = {"--max-tokens", "1000000", "--drain-timeout", drain, NULL};
        Srv s;
        ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
        Client c[CLIENTS];
        pthread_t t[CLIENTS];
        // The JSON requests first, all long: in flight until the drain ends them. Then the
        // streams, a few short enough to finish early or within the drain.
        for (int k = 0; k < CLIENTS; k++) {
            int i = (k + STREAMS) % CLIENTS;
            memset(&c[i], 0, sizeof(c[i]));
            c[i].port = s.port;
            c[i].stream = i < STREAMS;
            c[i].openai = i % 2;
            c[i].path = c[i].openai ? "/v1/completions" : "/generate";
            int tokens = c[i].stream && i % 4 == 3 ? 60 * (1 + round % 5) : 1000000;
            snprintf(c[i].body, sizeof(c[i].body),
                     "{\"prompt\": \"the \", \"max_tokens\": %d, \"seed\": %d, \"stream\": %s}",
                     tokens, round * 100 + i, c[i].stream ? "true" : "false");
            pthread_create(&t[i], NULL, client_main, &c[i]);
            int waited = 0;
            if (k == JSONS - 1)
                while (health_in_flight(s.port) < JSONS && waited < 20000) sleep_ms(5), waited += 5;
        }
        ck_assert_int_ge(health_in_flight(s.port), JSONS);
        // Every stream is in (the shorter ones may even be done).
        int waited = 0, in = 0;
        while (in < STREAMS && waited < 20000) {
            in = 0;
            for (int i = 0; i < STREAMS; i++)
                in += atomic_load(&c[i].started) || atomic_load(&c[i].done);
            if (in < STREAMS) sleep_ms(5), waited += 5;
        }
        ck_assert_int_eq(in, STREAMS);
        kill(s.pid, SIGTERM);
        for (int i = 0; i < CLIENTS; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < CLIENTS; i++) {
            const char *fr = check_reply(&c[i]);
            cancelled += strcmp(fr, "cancelled") == 0;
            finished += strcmp(fr, "length") == 0;
            resp_free(&c[i].r);
        }
        // It exits by itself, with 0.
        int status = 0, exited = 0;
        for (waited = 0; waited < 10000 && !exited; waited += 10) {
            if (waitpid(s.pid, &status, WNOHANG) == s.pid)
                exited = 1;
            else
                sleep_ms(10);
        }
        ck_assert_msg(exited, "round %d: the server did not exit after the drain", round);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: exit status %d",
                      round, status);
        s.pid = 0;
        srv_stop(&s); // checks its stderr for sanitizer reports
    }
    // Both ends of the drain happened.
    ck_assert_int_gt(cancelled, 0);
    ck_assert_int_gt(finished, 0);
}
END_TEST

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// A server that has served requests (a JSON and a streamed generation, a client that left
// mid-generation, a reload) and still holds an idle keep-alive connection, but has nothing
// in flight, exits within 0.5 s of SIGTERM and of SIGINT.
START_TEST(test_idle_exit_is_prompt) {
    const int sigs[] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        Srv s;
        const char *args[] = {"--threads", "2", NULL};
        ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
        Resp r = http_post(s.port, "/generate", "{\"prompt\": \"ab\", \"max_tokens\": 20}");
        ck_assert_int_eq(r.status, 200);
        resp_free(&r);
        r = http_post(s.port, "/generate",
                      "{\"prompt\": \"ab\", \"max_tokens\": 20, \"stream\": true}");
        ck_assert_int_eq(r.status, 200);
        resp_free(&r);
        r = http_post(s.port, "/admin/reload", "{}");
        ck_assert_int_eq(r.status, 200);
        resp_free(&r);
        int left = raw_generate(s.port, "{\"prompt\": \"ab\", \"max_tokens\": 2000}");
        ck_assert_int_ge(left, 0);
        close(left); // the client leaves mid-generation
        int idle = raw_send(s.port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        for (int waited = 0; health_in_flight(s.port) != 0 && waited < 10000; waited += 10)
            sleep_ms(10);
        ck_assert_int_eq(health_in_flight(s.port), 0);
        int status = 0;
        double t0 = now_s();
        ck_assert_msg(proc_signal_wait(s.pid, sigs[k], 5000, &status), "no exit within 5 s");
        double took = now_s() - t0;
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
        ck_assert_msg(took < 0.5, "%s with nothing in flight: exit took %.3f s",
                      sigs[k] == SIGTERM ? "SIGTERM" : "SIGINT", took);
        s.pid = 0;
        if (idle >= 0) close(idle);
        srv_stop(&s);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_drain");
    TCase *tc = tcase_create("drain");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_idle_exit_is_prompt);
    tcase_add_test(tc, test_sigterm_loses_nothing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
