/* charlm-server over real HTTP: prompts prefilled as sequences. However a prompt is cut
 * into chunks (--prefill-chunk 1, 7, the default 64), with one worker or two, alone or
 * while other streams run and other long prompts arrive, the same seed gives the same
 * text and the same log probabilities. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_harness.h"
#include "testutil.h"

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 2, 17);
}

static void suite_teardown(void) {
    suite_model_remove();
}

// A request whose prompt is 2,500 chars of the suite's text: text, logprobs of the
// echoed prompt and of the generated chars, as one string to compare.
static char *long_request(int seed) {
    char *prompt = tu_sample_text(2500);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddNumberToObject(o, "max_tokens", 80);
    cJSON_AddNumberToObject(o, "seed", seed);
    cJSON_AddTrueToObject(o, "echo");
    cJSON_AddNumberToObject(o, "logprobs", 2);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    free(prompt);
    return body;
}

static char *answer(int port, const char *path, const char *body) {
    Resp r = http_post(port, path, body);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *j = resp_json(&r);
    resp_free(&r);
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    cJSON_DeleteItemFromObject(c, "index");
    char *s = cJSON_PrintUnformatted(c);
    cJSON_Delete(j);
    return s;
}

typedef struct {
    int port;
    const char *path;
    char *body;
    char *got;
} Job;

static void *run_job(void *arg) {
    Job *j = arg;
    Resp r = http_post(j->port, j->path, j->body);
    j->got = r.status == 200 ? strdup(r.body) : NULL;
    resp_free(&r);
    return NULL;
}

START_TEST(test_same_text_however_prefilled) {
    char *body = long_request(5), *want = NULL;
    static const char *const configs[][5] = {
        {"--prefill-chunk", "1", NULL},
        {"--prefill-chunk", "7", "--threads", "1", NULL},
        {NULL},
        {"--prefill-chunk", "4096", "--threads", "2", NULL},
    };
    for (size_t k = 0; k < sizeof(configs) / sizeof(*configs); k++) {
        Srv s;
        ck_assert_int_eq(srv_start(&s, model_dir, configs[k][0] ? configs[k] : NULL), 0);
        char *got = answer(s.port, "/v1/completions", body);
        if (!want)
            want = got;
        else {
            ck_assert_msg(strcmp(got, want) == 0, "config %zu differs", k);
            free(got);
        }
        ck_assert_int_eq(srv_stop(&s), 0);
    }
    ck_assert_ptr_nonnull(strstr(want, "\"token_logprobs\":[null,"));
    free(want);
    free(body);
}
END_TEST

// While streams run on every worker and other long prompts arrive, a long prompt's answer
// is the one it gets alone; so are theirs.
START_TEST(test_same_text_under_load) {
    const char *args[] = {"--threads", "2", "--prefill-chunk", "16", "--max-tokens", "4000", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    enum { STREAMS = 6, LONG = 3 };
    char *alone[LONG];
    for (int i = 0; i < LONG; i++) {
        char *b = long_request(100 + i);
        alone[i] = answer(s.port, "/v1/completions", b);
        free(b);
    }
    Job streams[STREAMS], longs[LONG];
    pthread_t ts[STREAMS], tl[LONG];
    for (int i = 0; i < STREAMS; i++) {
        streams[i] = (Job){s.port, "/generate", malloc(128), NULL};
        snprintf(streams[i].body, 128,
                 "{\"prompt\": \"the \", \"max_tokens\": 4000, \"seed\": %d, \"stream\": true}", i);
        pthread_create(&ts[i], NULL, run_job, &streams[i]);
    }
    int waited = 0;
    while (health_in_flight(s.port) < STREAMS && waited < 10000) sleep_ms(5), waited += 5;
    for (int i = 0; i < LONG; i++) {
        longs[i] = (Job){s.port, "/v1/completions", long_request(100 + i), NULL};
        pthread_create(&tl[i], NULL, run_job, &longs[i]);
    }
    for (int i = 0; i < LONG; i++) {
        pthread_join(tl[i], NULL);
        ck_assert_ptr_nonnull(longs[i].got);
        cJSON *j = cJSON_Parse(longs[i].got);
        cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        cJSON_DeleteItemFromObject(c, "index");
        char *got = cJSON_PrintUnformatted(c);
        ck_assert_msg(strcmp(got, alone[i]) == 0, "long prompt %d differs under load", i);
        free(got);
        cJSON_Delete(j);
        free(longs[i].got);
        free(longs[i].body);
        free(alone[i]);
    }
    // The streams ran through it, and give what they give alone.
    for (int i = 0; i < STREAMS; i++) {
        pthread_join(ts[i], NULL);
        ck_assert_ptr_nonnull(streams[i].got);
        char *one = strstr(streams[i].body, "\"stream\": true");
        memcpy(one, "\"stream\":false", 14);
        Resp r = http_post(s.port, "/generate", streams[i].body);
        cJSON *j = resp_json(&r);
        enum { MAX_EVENTS = 25000 };
        char **events = malloc(MAX_EVENTS * sizeof(*events));
        int n = sse_events(streams[i].got, events, MAX_EVENTS);
        size_t cap = 100000, len = 0;
        char *joined = calloc(cap, 1);
        for (int e = 0; e < n; e++) {
            cJSON *ev = cJSON_Parse(events[e]);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev, "text");
            if (cJSON_IsString(t)) {
                size_t l = strlen(t->valuestring);
                ck_assert_uint_lt(len + l, cap);
                memcpy(joined + len, t->valuestring, l + 1);
                len += l;
            }
            cJSON_Delete(ev);
            free(events[e]);
        }
        ck_assert_str_eq(joined, json_str(j, "text"));
        free(joined);
        free(events);
        cJSON_Delete(j);
        resp_free(&r);
        free(streams[i].got);
        free(streams[i].body);
    }
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_prefill");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_same_text_however_prefilled);
    tcase_add_test(tc, test_same_text_under_load);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
