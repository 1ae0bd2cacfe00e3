/* charlm-server over real HTTP: n choices, several prompts, echo and log probabilities on
 * the three generation routes. Choices are seeded by index (the same request gives the
 * same choices, choice j alone gives what it gave in the batch); logprobs are the model's
 * log-softmax, checked against infer_step run here on the same weights; streamed choices
 * and logprobs concatenate to the JSON reply's. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artefacts.h"
#include "error.h"
#include "infer.h"
#include "server_harness.h"
#include "testutil.h"
#include "utf8.h"

static Model model;
static Vocab vocab;

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 2, 13);
    suite_model_load(&model, &vocab);
}

static void suite_teardown(void) {
    suite_model_unload(&model, &vocab);
}

static cJSON *post_json(const char *path, const char *body) {
    Resp r = http_post(S.port, path, body);
    ck_assert_msg(r.status == 200, "%s -> %ld %s", body, r.status, r.body);
    cJSON *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static const cJSON *choice(const cJSON *reply, int i) {
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(reply, "choices"), i);
    ck_assert_ptr_nonnull(c);
    return c;
}

static int nchoices(const cJSON *reply) {
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reply, "choices"));
}

// The text of choice i of a completion or chat reply.
static const char *choice_text(const cJSON *reply, int i) {
    const cJSON *c = choice(reply, i);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "message");
    return json_str(m ? m : c, m ? "content" : "text");
}

START_TEST(test_n_choices) {
    const char *body = "{\"prompt\": \"the \", \"max_tokens\": 40, \"n\": 3, \"seed\": 5}";
    cJSON *a = post_json("/v1/completions", body), *b = post_json("/v1/completions", body);
    ck_assert_int_eq(nchoices(a), 3);
    int completion = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq((int)json_num(choice(a, i), "index"), i);
        ck_assert_str_eq(choice_text(a, i), choice_text(b, i)); // the same on repeat
        completion += (int)utf8_count(choice_text(a, i), strlen(choice_text(a, i)));
        for (int k = 0; k < i; k++) ck_assert_str_ne(choice_text(a, i), choice_text(a, k));
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(a, "usage");
    ck_assert_int_eq((int)json_num(usage, "completion_tokens"), completion);
    ck_assert_int_eq((int)json_num(usage, "prompt_tokens"), 4);
    // Choice 0 draws with the request's seed: it is the n = 1 answer.
    cJSON *one =
        post_json("/v1/completions", "{\"prompt\": \"the \", \"max_tokens\": 40, \"seed\": 5}");
    ck_assert_str_eq(choice_text(one, 0), choice_text(a, 0));
    cJSON_Delete(one);

    // /generate lists each choice's seed, which alone gives that choice again.
    cJSON *g = post_json("/generate", "{\"prompt\": \"the \", \"max_tokens\": 40, \"n\": 3, "
                                      "\"seed\": 5, \"temperature\": 1, \"top_k\": 0}");
    ck_assert_int_eq(nchoices(g), 3);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(g, "text"));
    for (int i = 0; i < 3; i++) {
        const cJSON *c = choice(g, i);
        char req[256];
        snprintf(req, sizeof(req),
                 "{\"prompt\": \"the \", \"max_tokens\": 40, \"seed\": %.0f, \"temperature\": 1, "
                 "\"top_k\": 0}",
                 json_num(c, "seed"));
        cJSON *alone = post_json("/generate", req);
        ck_assert_str_eq(json_str(alone, "text"), json_str(c, "text"));
        ck_assert_str_eq(json_str(c, "text"), choice_text(a, i)); // OpenAI's defaults match
        ck_assert_str_eq(json_str(c, "finish_reason"), "length");
        cJSON_Delete(alone);
    }
    cJSON_Delete(g);

    cJSON *chat = post_json("/v1/chat/completions",
                            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                            "\"max_tokens\": 30, \"n\": 2, \"seed\": 9, \"stop\": []}");
    ck_assert_int_eq(nchoices(chat), 2);
    ck_assert_str_ne(choice_text(chat, 0), choice_text(chat, 1));
    cJSON_Delete(chat);
    cJSON_Delete(a);
    cJSON_Delete(b);
}
END_TEST

START_TEST(test_several_prompts) {
    cJSON *a = post_json("/v1/completions", "{\"prompt\": [\"the \", \"a cat\"], \"n\": 2, "
                                            "\"max_tokens\": 20, \"seed\": 3}");
    ck_assert_int_eq(nchoices(a), 4);
    for (int p = 0; p < 2; p++) {
        char req[256];
        snprintf(req, sizeof(req),
                 "{\"prompt\": \"%s\", \"n\": 2, \"max_tokens\": 20, \"seed\": 3}",
                 p ? "a cat" : "the ");
        cJSON *alone = post_json("/v1/completions", req);
        for (int j = 0; j < 2; j++) {
            ck_assert_int_eq((int)json_num(choice(a, p * 2 + j), "index"), p * 2 + j);
            ck_assert_str_eq(choice_text(a, p * 2 + j), choice_text(alone, j));
        }
        cJSON_Delete(alone);
    }
    // prompt_tokens counts each prompt once.
    ck_assert_int_eq((int)json_num(cJSON_GetObjectItemCaseSensitive(a, "usage"), "prompt_tokens"),
                     9);
    cJSON_Delete(a);
    // Token ids are vocabulary indices.
    char req[256];
    snprintf(req, sizeof(req), "{\"prompt\": [%d, %d, %d], \"max_tokens\": 20, \"seed\": 3}",
             vocab_id(&vocab, 't'), vocab_id(&vocab, 'h'), vocab_id(&vocab, 'e'));
    cJSON *ids = post_json("/v1/completions", req);
    cJSON *text = post_json("/v1/completions", "{\"prompt\": \"the\", \"max_tokens\": 20, "
                                               "\"seed\": 3}");
    ck_assert_str_eq(choice_text(ids, 0), choice_text(text, 0));
    cJSON_Delete(ids);
    cJSON_Delete(text);
}
END_TEST

// log-softmax of logits at id, in double.
static double log_softmax(const float *logits, int V, int id) {
    double m = logits[0], sum = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > m) m = logits[v];
    for (int v = 0; v < V; v++) sum += exp(logits[v] - m);
    return logits[id] - m - log(sum);
}

// Steps text (ASCII) through the suite's model from the zero state; row i of the
// returned [n, V] logits predicts text[i + 1].
static float *logits_of(const char *text) {
    char err[ERR_LEN];
    InferScratch sc;
    StreamState st;
    ck_assert_int_eq(infer_scratch_alloc(&sc, &model.config, 1, err), 0);
    ck_assert_int_eq(stream_state_alloc(&st, &model.config, err), 0);
    StreamState *sp = &st;
    int V = model.config.vocab_size, n = (int)strlen(text);
    float *logits = malloc((size_t)n * V * sizeof(float));
    for (int i = 0; i < n; i++) {
        int id = vocab_id(&vocab, (unsigned char)text[i]);
        ck_assert_int_ge(id, 0);
        infer_step(&model, &sc, 1, &id, &sp, logits + (size_t)i * V);
    }
    stream_state_free(&st);
    infer_scratch_free(&sc);
    return logits;
}

// Echo and generated chars alike: each token_logprob is the log-softmax of the logits
// that predicted it, the alternatives are the most likely chars (plus the chosen one), and
// text_offset counts code points into the choice's text.
START_TEST(test_logprobs_are_the_models) {
    cJSON *a = post_json("/v1/completions", "{\"prompt\": \"the c\xe2\x98\x83"
                                            "at\", \"echo\": true, \"logprobs\": 3, "
                                            "\"max_tokens\": 25, \"seed\": 8}");
    const cJSON *c = choice(a, 0);
    const char *text = json_str(c, "text");
    ck_assert_int_eq(strncmp(text,
                             "the c\xe2\x98\x83"
                             "at",
                             10),
                     0);
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(c, "logprobs");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(lp, "tokens");
    const cJSON *lps = cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs");
    const cJSON *tops = cJSON_GetObjectItemCaseSensitive(lp, "top_logprobs");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(lp, "text_offset");
    int n = cJSON_GetArraySize(tokens);
    ck_assert_int_eq(n, 7 + 25); // the snowman is not in the vocabulary: no token
    // The text without the snowman, as the model saw it.
    char seen[64] = "the cat";
    strcat(seen, text + 10);
    float *logits = logits_of(seen);
    int V = model.config.vocab_size;
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(lps, 0)));
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(tops, 0)));
    for (int i = 0; i < n; i++) {
        const char *tok = cJSON_GetArrayItem(tokens, i)->valuestring;
        ck_assert_int_eq(tok[0], seen[i]);
        int off = (int)cJSON_GetArrayItem(offs, i)->valuedouble;
        ck_assert_int_eq(off, i < 5 ? i : i + 1); // after the snowman, one code point more
        if (i == 0) continue;
        const float *row = logits + (size_t)(i - 1) * V;
        double want = log_softmax(row, V, vocab_id(&vocab, (unsigned char)seen[i]));
        ck_assert_double_eq_tol(cJSON_GetArrayItem(lps, i)->valuedouble, want, 1e-5);
        const cJSON *top = cJSON_GetArrayItem(tops, i);
        int ntop = cJSON_GetArraySize(top);
        ck_assert(ntop == 3 || ntop == 4);
        double least = 0;
        for (const cJSON *t = top->child; t; t = t->next) {
            int id = vocab_id(&vocab, (unsigned char)t->string[0]);
            ck_assert_double_eq_tol(t->valuedouble, log_softmax(row, V, id), 1e-5);
            if (t->valuedouble < least && t->string[0] != seen[i]) least = t->valuedouble;
        }
        for (int v = 0; v < V; v++) { // nothing outside the dict beats what is in it
            const cJSON *in = NULL;
            char key[5];
            key[utf8_encode(vocab.chars[v], key)] = '\0';
            in = cJSON_GetObjectItemCaseSensitive(top, key);
            if (!in) ck_assert(log_softmax(row, V, v) <= least + 1e-6);
        }
    }
    free(logits);
    cJSON_Delete(a);

    // max_tokens 0 scores the text: its mean -logprob is the text's loss.
    cJSON *s = post_json("/v1/completions", "{\"prompt\": \"the cat sat\", \"echo\": true, "
                                            "\"logprobs\": 0, \"max_tokens\": 0}");
    c = choice(s, 0);
    ck_assert_str_eq(json_str(c, "text"), "the cat sat");
    ck_assert_str_eq(json_str(c, "finish_reason"), "length");
    lps = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "logprobs"),
                                           "token_logprobs");
    ck_assert_int_eq(cJSON_GetArraySize(lps), 11);
    ck_assert_int_eq(
        (int)json_num(cJSON_GetObjectItemCaseSensitive(s, "usage"), "completion_tokens"), 0);
    cJSON_Delete(s);

    // Chat: exactly top_logprobs alternatives, most likely first, with the bytes.
    cJSON *ch = post_json("/v1/chat/completions",
                          "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                          "\"max_tokens\": 10, \"logprobs\": true, \"top_logprobs\": 4, "
                          "\"stop\": [], \"seed\": 2}");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(choice(ch, 0), "logprobs"), "content");
    ck_assert_int_eq(cJSON_GetArraySize(content), 10);
    for (const cJSON *e = content->child; e; e = e->next) {
        const cJSON *top = cJSON_GetObjectItemCaseSensitive(e, "top_logprobs");
        ck_assert_int_eq(cJSON_GetArraySize(top), 4);
        for (int k = 1; k < 4; k++)
            ck_assert(json_num(cJSON_GetArrayItem(top, k), "logprob") <=
                      json_num(cJSON_GetArrayItem(top, k - 1), "logprob"));
        const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(e, "bytes");
        ck_assert_int_eq((int)cJSON_GetArrayItem(bytes, 0)->valuedouble,
                         (unsigned char)json_str(e, "token")[0]);
    }
    cJSON_Delete(ch);
}
END_TEST

/* Streams the request, and gathers per choice index the concatenated text and logprobs
 * entries (as printed JSON of each entry, joined), for the three shapes. */
typedef struct {
    char text[4][2048];
    char lp[4][65536];
} Gathered;

static void gather_entries(char *dst, size_t cap, const cJSON *arr) {
    for (const cJSON *e = arr ? arr->child : NULL; e; e = e->next) {
        char *s = cJSON_PrintUnformatted(e);
        ck_assert_uint_lt(strlen(dst) + strlen(s) + 2, cap);
        strcat(dst, s);
        strcat(dst, ";");
        free(s);
    }
}

// logprobs of one choice object as a list of per-token items in a shape-neutral form.
static void gather_choice(Gathered *g, int idx, const cJSON *c, const char *route) {
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(c, "logprobs");
    if (!lp || cJSON_IsNull(lp)) return;
    if (strcmp(route, "/generate") == 0) {
        gather_entries(g->lp[idx], sizeof(g->lp[idx]), lp);
    } else if (strcmp(route, "/v1/chat/completions") == 0) {
        gather_entries(g->lp[idx], sizeof(g->lp[idx]),
                       cJSON_GetObjectItemCaseSensitive(lp, "content"));
    } else {
        static const char *arrays[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
        const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(lp, "tokens");
        for (int i = 0; i < cJSON_GetArraySize(tokens); i++) {
            cJSON *item = cJSON_CreateArray();
            for (int a = 0; a < 4; a++)
                cJSON_AddItemToArray(
                    item,
                    cJSON_Duplicate(
                        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(lp, arrays[a]), i), 1));
            cJSON *wrap = cJSON_CreateArray();
            cJSON_AddItemToArray(wrap, item);
            gather_entries(g->lp[idx], sizeof(g->lp[idx]), wrap);
            cJSON_Delete(wrap);
        }
    }
}

static void gather(Gathered *g, const char *route, const char *body, int stream) {
    memset(g, 0, sizeof(*g));
    Resp r = http_post(S.port, route, body);
    ck_assert_msg(r.status == 200, "%s -> %ld %s", body, r.status, r.body);
    int native = strcmp(route, "/generate") == 0, chat = strstr(route, "chat") != NULL;
    if (!stream) {
        cJSON *j = resp_json(&r);
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
        for (int i = 0; i < cJSON_GetArraySize(choices); i++) {
            const cJSON *c = cJSON_GetArrayItem(choices, i);
            int idx = (int)json_num(c, "index");
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "message");
            strcat(g->text[idx], json_str(m ? m : c, m ? "content" : "text"));
            gather_choice(g, idx, c, route);
        }
        cJSON_Delete(j);
        resp_free(&r);
        return;
    }
    char *events[512];
    int n = sse_events(r.body, events, 512);
    for (int i = 0; i < n; i++) {
        if (strcmp(events[i], "[DONE]") == 0) {
            free(events[i]);
            continue;
        }
        cJSON *e = cJSON_Parse(events[i]);
        ck_assert_ptr_nonnull(e);
        if (native) {
            if (!cJSON_GetObjectItemCaseSensitive(e, "done")) {
                int idx = (int)json_num(e, "index");
                strcat(g->text[idx], json_str(e, "text"));
                gather_choice(g, idx, e, route);
            }
        } else {
            const cJSON *choices = cJSON_GetObjectItemCaseSensitive(e, "choices");
            for (int k = 0; k < cJSON_GetArraySize(choices); k++) {
                const cJSON *c = cJSON_GetArrayItem(choices, k);
                int idx = (int)json_num(c, "index");
                const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "delta");
                const cJSON *t = chat ? cJSON_GetObjectItemCaseSensitive(d, "content")
                                      : cJSON_GetObjectItemCaseSensitive(c, "text");
                if (cJSON_IsString(t)) strcat(g->text[idx], t->valuestring);
                gather_choice(g, idx, c, route);
            }
        }
        cJSON_Delete(e);
        free(events[i]);
    }
    resp_free(&r);
}

START_TEST(test_stream_equals_reply) {
    static const struct {
        const char *route, *fields;
    } cases[] = {
        {"/v1/completions", "\"prompt\": [\"the \", \"a\"], \"n\": 2, \"logprobs\": 2, "
                            "\"echo\": true, \"stop\": [\"at\"]"},
        {"/v1/chat/completions", "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                                 "\"n\": 3, \"logprobs\": true, \"top_logprobs\": 2, "
                                 "\"stop\": [\"e \"]"},
        {"/generate", "\"prompt\": \"the \", \"n\": 3, \"logprobs\": 2, \"stop\": [\"at\"]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char body[512], sbody[560];
        snprintf(body, sizeof(body), "{%s, \"max_tokens\": 60, \"seed\": 21}", cases[i].fields);
        snprintf(sbody, sizeof(sbody), "{%s, \"max_tokens\": 60, \"seed\": 21, \"stream\": true}",
                 cases[i].fields);
        static Gathered json, sse;
        gather(&json, cases[i].route, body, 0);
        gather(&sse, cases[i].route, sbody, 1);
        for (int c = 0; c < 4; c++) {
            ck_assert_msg(strcmp(json.text[c], sse.text[c]) == 0, "%s choice %d: '%s' vs '%s'",
                          cases[i].route, c, json.text[c], sse.text[c]);
            ck_assert_msg(strcmp(json.lp[c], sse.lp[c]) == 0, "%s choice %d logprobs differ",
                          cases[i].route, c);
        }
        ck_assert(json.text[1][0] && json.lp[1][0]);
    }
}
END_TEST

// Each choice is a generation: a request cannot ask for more than --max-concurrent.
START_TEST(test_choices_count_as_generations) {
    const char *args[] = {"--max-concurrent", "4", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    Resp r = http_post(s.port, "/v1/completions", "{\"prompt\": \"a\", \"n\": 5}");
    assert_error(&r, 400, "n");
    resp_free(&r);
    r = http_post(s.port, "/v1/completions", "{\"prompt\": \"a\", \"n\": 4}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = http_get(s.port, "/metrics");
    ck_assert_ptr_nonnull(
        strstr(r.body, "charlm_generations_total{model=\"charlm\",finish_reason=\"length\"} 4"));
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_choices");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_default, stop_default);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_n_choices);
    tcase_add_test(tc, test_several_prompts);
    tcase_add_test(tc, test_logprobs_are_the_models);
    tcase_add_test(tc, test_stream_equals_reply);
    tcase_add_test(tc, test_choices_count_as_generations);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
