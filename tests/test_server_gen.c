/* charlm-server over real HTTP: what it generates. Greedy against an argmax computed
 * here, seeds, concurrency, streaming, the OpenAI endpoint, stops, unknown chars, the
 * repetition penalty. */
#include <check.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artefacts.h"
#include "error.h"
#include "infer.h"
#include "server_harness.h"
#include "testutil.h"
#include "utf8.h"

static Model model; // the suite's model, loaded here too for reference computations
static Vocab vocab;

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 2, 11);
    suite_model_load(&model, &vocab);
}

static void suite_teardown(void) {
    suite_model_unload(&model, &vocab);
}

// The greedy continuation of an ASCII prompt, from infer_step and argmax alone.
static char *greedy_reference(const char *prompt, int max_tokens) {
    char err[ERR_LEN];
    InferScratch sc;
    StreamState st;
    ck_assert_int_eq(infer_scratch_alloc(&sc, &model.config, 1, err), 0);
    ck_assert_int_eq(stream_state_alloc(&st, &model.config, err), 0);
    StreamState *sp = &st;
    int V = model.config.vocab_size;
    float *logits = malloc((size_t)V * sizeof(float));
    char *out = malloc((size_t)max_tokens * 4 + 1);
    size_t len = 0, n = strlen(prompt);
    int id = -1;
    for (size_t i = 0; i < n; i++) {
        id = vocab_id(&vocab, (unsigned char)prompt[i]);
        ck_assert_int_ge(id, 0);
        if (i + 1 < n) infer_step(&model, &sc, 1, &id, &sp, logits);
    }
    for (int t = 0; t < max_tokens; t++) {
        infer_step(&model, &sc, 1, &id, &sp, logits);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        len += (size_t)utf8_encode(vocab.chars[best], out + len);
        id = best;
    }
    out[len] = '\0';
    free(logits);
    stream_state_free(&st);
    infer_scratch_free(&sc);
    return out;
}

static char *generate_text(int port, const char *body) {
    cJSON *j = http_post_ok(port, "/generate", body);
    char *t = strdup(json_str(j, "text"));
    cJSON_Delete(j);
    return t;
}

START_TEST(test_greedy_is_argmax) {
    char *ref = greedy_reference("the cat", 80);
    char *t0 = generate_text(S.port, "{\"prompt\": \"the cat\", \"max_tokens\": 80, "
                                     "\"temperature\": 0, \"seed\": 1}");
    ck_assert_str_eq(t0, ref);
    // Top-k 1 is greedy at any temperature and seed.
    char *k1 = generate_text(S.port, "{\"prompt\": \"the cat\", \"max_tokens\": 80, "
                                     "\"temperature\": 1.7, \"top_k\": 1, \"seed\": 99}");
    ck_assert_str_eq(k1, ref);
    // And the OpenAI endpoint gives the same.
    cJSON *j = http_post_ok(S.port, "/v1/completions",
                            "{\"model\": \"charlm\", \"prompt\": \"the cat\", \"max_tokens\": 80, "
                            "\"temperature\": 0}");
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    ck_assert_str_eq(json_str(c0, "text"), ref);
    ck_assert_str_eq(json_str(c0, "finish_reason"), "length");
    cJSON_Delete(j);
    free(ref);
    free(t0);
    free(k1);
}
END_TEST

START_TEST(test_seeds) {
    const char *body = "{\"prompt\": \"the dog \", \"max_tokens\": 120, \"seed\": 1234}";
    cJSON *a = http_post_ok(S.port, "/generate", body);
    cJSON *b = http_post_ok(S.port, "/generate", body);
    ck_assert_str_eq(json_str(a, "text"), json_str(b, "text"));
    ck_assert_int_eq((long)json_num(a, "seed"), 1234);
    ck_assert_str_eq(json_str(a, "finish_reason"), "length");
    ck_assert_int_eq((int)json_num(a, "tokens"), 120);
    ck_assert_int_eq((int)json_num(a, "prompt_tokens"), 8);
    ck_assert_str_eq(json_str(a, "unknown_chars"), "");
    ck_assert_double_ge(json_num(a, "elapsed_ms"), 0);
    cJSON *c = http_post_ok(S.port, "/generate",
                            "{\"prompt\": \"the dog \", \"max_tokens\": 120, \"seed\": 1235}");
    ck_assert_str_ne(json_str(a, "text"), json_str(c, "text"));

    // Without a seed one is drawn, echoed, and reproduces the text.
    cJSON *d = http_post_ok(S.port, "/generate", "{\"prompt\": \"the dog \", \"max_tokens\": 120}");
    double seed = json_num(d, "seed");
    ck_assert(seed >= 0 && seed <= 9007199254740992.0 && seed == floor(seed));
    char again[256];
    snprintf(again, sizeof(again),
             "{\"prompt\": \"the dog \", \"max_tokens\": 120, \"seed\": %.0f}", seed);
    cJSON *e = http_post_ok(S.port, "/generate", again);
    ck_assert_str_eq(json_str(d, "text"), json_str(e, "text"));
    cJSON *f = http_post_ok(S.port, "/generate", "{\"prompt\": \"the dog \", \"max_tokens\": 120}");
    ck_assert(json_num(f, "seed") != seed);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
    cJSON_Delete(d);
    cJSON_Delete(e);
    cJSON_Delete(f);
}
END_TEST

typedef struct {
    int port;
    const char *path;
    char body[512];
    pthread_barrier_t *go;
    Resp r;
} Job;

static void *job_run(void *arg) {
    Job *j = arg;
    pthread_barrier_wait(j->go);
    j->r = http_post(j->port, j->path, j->body);
    return NULL;
}

START_TEST(test_same_seed_alone_and_concurrent) {
    const char *target = "{\"prompt\": \"a red hat \", \"max_tokens\": 400, \"seed\": 77, "
                         "\"temperature\": 0.9, \"top_k\": 10, \"top_p\": 0.95, "
                         "\"repetition_penalty\": 1.2}";
    char *alone = generate_text(S.port, target);
    for (int round = 0; round < 2; round++) {
        enum { N = 17 };
        Job jobs[N];
        pthread_t t[N];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, N);
        for (int i = 0; i < N; i++) {
            jobs[i] = (Job){.port = S.port, .path = "/generate", .go = &go};
            if (i == 8) {
                snprintf(jobs[i].body, sizeof(jobs[i].body), "%s", target);
            } else if (i % 3 == 0) {
                jobs[i].path = "/v1/completions";
                snprintf(jobs[i].body, sizeof(jobs[i].body),
                         "{\"prompt\": \"the sun\", \"max_tokens\": %d, \"stream\": true}",
                         1500 + 10 * i);
            } else {
                snprintf(jobs[i].body, sizeof(jobs[i].body),
                         "{\"prompt\": \"%.*s\", \"max_tokens\": %d, \"seed\": %d, "
                         "\"stream\": %s}",
                         i, "the big dog ran to", 1200 + 20 * i, i, i % 2 ? "true" : "false");
            }
            pthread_create(&t[i], NULL, job_run, &jobs[i]);
        }
        for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < N; i++) {
            ck_assert_msg(jobs[i].r.status == 200, "job %d: %ld %s", i, jobs[i].r.status,
                          jobs[i].r.body);
            if (i == 8) {
                cJSON *j = resp_json(&jobs[i].r);
                ck_assert_str_eq(json_str(j, "text"), alone);
                cJSON_Delete(j);
            }
            resp_free(&jobs[i].r);
        }
    }
    free(alone);
}
END_TEST

START_TEST(test_streaming_matches) {
    const char *plain = "{\"prompt\": \"the hat\", \"max_tokens\": 150, \"seed\": 5, "
                        "\"stop\": [\"xyz\", \"ran \"]}";
    const char *streamed = "{\"prompt\": \"the hat\", \"max_tokens\": 150, \"seed\": 5, "
                           "\"stop\": [\"xyz\", \"ran \"], \"stream\": true}";
    cJSON *j = http_post_ok(S.port, "/generate", plain);
    Resp r = http_post(S.port, "/generate", streamed);
    ck_assert_int_eq(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    ck_assert_ptr_nonnull(strstr(ct, "text/event-stream"));
    free(ct);
    cJSON *final;
    char *text = sse_generate_text(r.body, &final);
    ck_assert_str_eq(text, json_str(j, "text"));
    const char *fields[] = {"finish_reason", "tokens", "prompt_tokens", "seed", "unknown_chars"};
    for (int i = 0; i < 5; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, fields[i]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(final, fields[i]);
        ck_assert_msg(a && b && cJSON_Compare(a, b, 1), "field %s differs", fields[i]);
    }
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(final, "elapsed_ms")));
    cJSON_Delete(final);
    cJSON_Delete(j);
    free(text);
    resp_free(&r);
}
END_TEST

START_TEST(test_openai_completions) {
    cJSON *j = http_post_ok(S.port, "/v1/completions",
                            "{\"model\": \"charlm\", \"prompt\": \"the cat\", \"max_tokens\": 60, "
                            "\"seed\": 9}");
    ck_assert_str_eq(json_str(j, "object"), "text_completion");
    ck_assert(strncmp(json_str(j, "id"), "cmpl-", 5) == 0);
    ck_assert_str_eq(json_str(j, "model"), "charlm");
    ck_assert_double_gt(json_num(j, "created"), 1.6e9);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    ck_assert_int_eq((int)json_num(c0, "index"), 0);
    ck_assert_str_eq(json_str(c0, "finish_reason"), "length");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    ck_assert_int_eq((int)json_num(u, "prompt_tokens"), 7);
    ck_assert_int_eq((int)json_num(u, "completion_tokens"), 60);
    ck_assert_int_eq((int)json_num(u, "total_tokens"), 67);
    const char *text = json_str(c0, "text");

    // OpenAI's defaults are temperature 1, top_p 1 and no top-k: /generate with those
    // gives the same text.
    cJSON *g = http_post_ok(S.port, "/generate",
                            "{\"prompt\": \"the cat\", \"max_tokens\": 60, \"seed\": 9, "
                            "\"temperature\": 1, \"top_k\": 0}");
    ck_assert_str_eq(json_str(g, "text"), text);
    cJSON_Delete(g);

    Resp r = http_post(S.port, "/v1/completions",
                       "{\"model\": \"charlm\", \"prompt\": \"the cat\", \"max_tokens\": 60, "
                       "\"seed\": 9, \"stream\": true, "
                       "\"stream_options\": {\"include_usage\": true}}");
    ck_assert_int_eq(r.status, 200);
    const char *finish;
    cJSON *usage;
    char *streamed = sse_completion_text(r.body, &finish, &usage);
    ck_assert_str_eq(streamed, text);
    ck_assert_str_eq(finish, "length");
    ck_assert_ptr_nonnull(usage);
    ck_assert_int_eq((int)json_num(usage, "completion_tokens"), 60);
    cJSON_Delete(usage);
    free(streamed);
    resp_free(&r);

    // A stop sequence: finish_reason "stop" on the last chunk.
    char body[256];
    char stop[3] = {text[20], text[21], 0};
    snprintf(body, sizeof(body),
             "{\"prompt\": \"the cat\", \"max_tokens\": 60, \"seed\": 9, \"stream\": true, "
             "\"stop\": \"%s\"}",
             stop[0] == '\n' || stop[1] == '\n' ? "zz" : stop);
    r = http_post(S.port, "/v1/completions", body);
    streamed = sse_completion_text(r.body, &finish, &usage);
    if (stop[0] != '\n' && stop[1] != '\n') {
        ck_assert_str_eq(finish, "stop");
        ck_assert_uint_eq(strlen(streamed), (size_t)(strstr(text, stop) - text));
    }
    ck_assert_ptr_null(usage);
    free(streamed);
    resp_free(&r);
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_stop_sequences) {
    char *ref = greedy_reference("the ", 100);
    // A two-char piece from the middle of the greedy text (the vocabulary is ASCII).
    int at = 30;
    while (ref[at] == '\n' || ref[at + 1] == '\n' || ref[at] == '"' || ref[at + 1] == '"') at++;
    char stop[3] = {ref[at], ref[at + 1], 0};
    size_t cut = (size_t)(strstr(ref, stop) - ref);
    char body[256];
    snprintf(body, sizeof(body),
             "{\"prompt\": \"the \", \"max_tokens\": 100, \"temperature\": 0, "
             "\"stop\": [\"\\u2603\", \"%s\", \"qq\", \"zzz\"]}",
             stop);
    cJSON *j = http_post_ok(S.port, "/generate", body);
    ck_assert_str_eq(json_str(j, "finish_reason"), "stop");
    const char *text = json_str(j, "text");
    ck_assert_uint_eq(strlen(text), cut);
    ck_assert(strncmp(text, ref, cut) == 0);
    ck_assert_ptr_null(strstr(text, stop));
    ck_assert_int_eq((int)json_num(j, "tokens"), (int)cut + 2);
    cJSON_Delete(j);
    // A single string works too.
    snprintf(body, sizeof(body),
             "{\"prompt\": \"the \", \"max_tokens\": 100, \"temperature\": 0, \"stop\": \"%s\"}",
             stop);
    j = http_post_ok(S.port, "/generate", body);
    ck_assert_uint_eq(strlen(json_str(j, "text")), cut);
    cJSON_Delete(j);
    free(ref);
}
END_TEST

START_TEST(test_unknown_chars_and_empty_prompt) {
    // "Zthe\u2603 €cat" — Z, the snowman and the euro sign are not in the vocabulary.
    cJSON *j = http_post_ok(S.port, "/generate",
                            "{\"prompt\": \"Zthe\\u2603 \xe2\x82\xac"
                            "cat\", \"max_tokens\": 40, "
                            "\"temperature\": 0}");
    ck_assert_str_eq(json_str(j, "unknown_chars"), "Z\xe2\x98\x83\xe2\x82\xac");
    ck_assert_int_eq((int)json_num(j, "prompt_tokens"), 7);
    char *ref = greedy_reference("the cat", 40);
    ck_assert_str_eq(json_str(j, "text"), ref);
    free(ref);
    cJSON_Delete(j);

    j = http_post_ok(S.port, "/generate",
                     "{\"prompt\": \"\", \"max_tokens\": 40, \"temperature\": 0}");
    ck_assert_int_eq((int)json_num(j, "prompt_tokens"), 0);
    ref = greedy_reference("\n", 40);
    ck_assert_str_eq(json_str(j, "text"), ref);
    free(ref);
    cJSON_Delete(j);
}
END_TEST

// How many generated chars already occur among the 4 before them.
static int repeats(const char *t) {
    int n = 0;
    for (size_t i = 1; t[i]; i++)
        for (size_t k = 1; k <= 4 && k <= i; k++)
            if (t[i - k] == t[i]) {
                n++;
                break;
            }
    return n;
}

START_TEST(test_repetition_penalty) {
    int off = 0, on = 0;
    const char *prompts[] = {"the ", "a dog", "sun was"};
    for (int p = 0; p < 3; p++) {
        for (int pen = 0; pen < 2; pen++) {
            char body[256];
            snprintf(body, sizeof(body),
                     "{\"prompt\": \"%s\", \"max_tokens\": 200, \"temperature\": 0.5, "
                     "\"seed\": %d, \"repetition_penalty\": %s, \"repetition_window\": 4}",
                     prompts[p], p, pen ? "3.0" : "1.0");
            char *t = generate_text(S.port, body);
            if (pen)
                on += repeats(t);
            else
                off += repeats(t);
            free(t);
        }
    }
    ck_assert_msg(on < off, "repeats with the penalty %d, without %d", on, off);
}
END_TEST

// The text does not depend on how many workers share the batches.
START_TEST(test_worker_count) {
    const char *body = "{\"prompt\": \"the sun\", \"max_tokens\": 300, \"seed\": 21, "
                       "\"top_p\": 0.9}";
    char *ref = generate_text(S.port, body);
    const char *counts[] = {"1", "3"};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {"--threads", counts[i], NULL};
        Srv s;
        ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
        char *t = generate_text(s.port, body);
        ck_assert_str_eq(t, ref);
        free(t);
        ck_assert_int_eq(srv_stop(&s), 0);
    }
    free(ref);
}
END_TEST

typedef struct {
    int port;
    Resp r;
} StreamReq;

static void *stream_req(void *arg) {
    StreamReq *q = arg;
    q->r = http_post(q->port, "/generate",
                     "{\"prompt\": \"the\", \"max_tokens\": 100000, \"stream\": true, "
                     "\"logprobs\": 20}");
    return NULL;
}

// The address space pid has mapped, in kB.
static long vm_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof(line), f)) sscanf(line, "VmSize: %ld", &kb);
    fclose(f);
    ck_assert_int_gt(kb, 0);
    return kb;
}

/* Out of memory mid-generation, for real: the server's address space is capped at what it
 * has mapped and 2 MB, so a stream's log probabilities with 20 alternatives a char soon
 * cannot grow (small allocations still come from the heaps it has). The stream ends properly, its
 * summary saying "error" with the chars so far, and /metrics counts it as an error, not as a client
 * that left. */
START_TEST(test_out_of_memory_mid_generation) {
    // Under AddressSanitizer a failed allocation returns NULL as it does without.
    const char *asan = getenv("ASAN_OPTIONS");
    char opt[512];
    snprintf(opt, sizeof(opt), "ASAN_OPTIONS=%s%sallocator_may_return_null=1", asan ? asan : "",
             asan && *asan ? ":" : "");
    const char *env[] = {opt, NULL};
    const char *args[] = {"--max-tokens", "100000", NULL};
    Srv s;
    ck_assert_int_eq(srv_start_env(&s, model_dir, args, env), 0);
    sleep_ms(200); // started and idle: its mappings as they stay
    struct rlimit cap = {(rlim_t)(vm_kb(s.pid) + 2048) * 1024, RLIM_INFINITY};
    ck_assert_int_eq(prlimit(s.pid, RLIMIT_AS, &cap, NULL), 0);
    StreamReq q = {.port = s.port};
    stream_req(&q);
    cap.rlim_cur = RLIM_INFINITY;
    ck_assert_int_eq(prlimit(s.pid, RLIMIT_AS, &cap, NULL), 0);

    ck_assert_int_eq(q.r.status, 200);
    const char *last = NULL;
    for (const char *p = strstr(q.r.body, "data: "); p; p = strstr(p + 1, "data: ")) last = p;
    ck_assert_ptr_nonnull(last);
    cJSON *end = cJSON_Parse(last + 6);
    ck_assert_ptr_nonnull(end);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(end, "done")));
    ck_assert_str_eq(cJSON_GetObjectItem(end, "finish_reason")->valuestring, "error");
    int tokens = cJSON_GetObjectItem(end, "tokens")->valueint;
    ck_assert_int_gt(tokens, 0);
    ck_assert_int_lt(tokens, 100000);
    cJSON_Delete(end);
    resp_free(&q.r);

    Resp r = http_get(s.port, "/metrics");
    ck_assert_ptr_nonnull(
        strstr(r.body, "charlm_generations_total{model=\"charlm\",finish_reason=\"error\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        r.body, "charlm_generations_total{model=\"charlm\",finish_reason=\"cancelled\"} 0\n"));
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

/* Out of memory while admitting: with the address space capped at what the server maps
 * and 8 MB, a request of 16 choices of a 500,000-char prompt, echoed and scored, is
 * parsed (a few copies of its text) but its generations' prompt ids and offsets (13 bytes
 * a char each, some 100 MB) cannot all be made: 503, not a bad request; with room again,
 * the server answers as before. */
START_TEST(test_out_of_memory_admitting) {
    const char *asan = getenv("ASAN_OPTIONS");
    char opt[512];
    snprintf(opt, sizeof(opt), "ASAN_OPTIONS=%s%sallocator_may_return_null=1", asan ? asan : "",
             asan && *asan ? ":" : "");
    const char *env[] = {opt, NULL};
    const char *args[] = {"--max-prompt", "600000", "--max-body", "1000000", NULL};
    Srv s;
    ck_assert_int_eq(srv_start_env(&s, model_dir, args, env), 0);
    size_t n = 500000;
    char *json = malloc(n + 100);
    int at = snprintf(json, n + 100,
                      "{\"n\": 16, \"max_tokens\": 1, \"echo\": true, \"logprobs\": 1, "
                      "\"prompt\": \"");
    for (size_t i = 0; i < n; i++) json[at++] = "the "[i % 4];
    snprintf(json + at, 100, "\"}");
    sleep_ms(200); // started and idle: its mappings as they stay
    struct rlimit cap = {(rlim_t)(vm_kb(s.pid) + 8192) * 1024, RLIM_INFINITY};
    ck_assert_int_eq(prlimit(s.pid, RLIMIT_AS, &cap, NULL), 0);
    Resp r = http_post(s.port, "/generate", json);
    cap.rlim_cur = RLIM_INFINITY;
    ck_assert_int_eq(prlimit(s.pid, RLIMIT_AS, &cap, NULL), 0);
    ck_assert_msg(r.status == 503, "%ld %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "out of memory for a generation"));
    resp_free(&r);
    ck_assert_int_eq(health_in_flight(s.port), 0); // the slots were given back
    r = http_post(s.port, "/generate", "{\"prompt\": \"the\", \"max_tokens\": 5, \"n\": 16}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    free(json);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_gen");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_default, stop_default);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_greedy_is_argmax);
    tcase_add_test(tc, test_seeds);
    tcase_add_test(tc, test_same_seed_alone_and_concurrent);
    tcase_add_test(tc, test_streaming_matches);
    tcase_add_test(tc, test_openai_completions);
    tcase_add_test(tc, test_stop_sequences);
    tcase_add_test(tc, test_unknown_chars_and_empty_prompt);
    tcase_add_test(tc, test_repetition_penalty);
    tcase_add_test(tc, test_worker_count);
    tcase_add_test(tc, test_out_of_memory_mid_generation);
    tcase_add_test(tc, test_out_of_memory_admitting);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
