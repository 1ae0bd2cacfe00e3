/* charlm-server over real HTTP: the sampling parameters of issue 10 change the text as
 * their definitions say. logit_bias -100 removes a char, a frequency penalty lowers
 * repeats, min_p keeps only chars likely enough (checked against the model's own
 * probabilities), and each bad value is a 400 naming the field. */
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

static Model model; // the suite's model, for the probabilities min_p is checked against
static Vocab vocab;

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 2, 11);
    suite_model_load(&model, &vocab);
}

static void suite_teardown(void) {
    suite_model_unload(&model, &vocab);
}

// The generated text of a 200 reply from either endpoint (malloc'd).
static char *text_of(const char *path, const char *body) {
    Resp r = http_post(S.port, path, body);
    ck_assert_msg(r.status == 200, "%s -> %ld %s", body, r.status, r.body);
    cJSON *j = resp_json(&r);
    resp_free(&r);
    const cJSON *o = j;
    if (strcmp(path, "/generate") != 0)
        o = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    char *t = strdup(json_str(o, "text"));
    cJSON_Delete(j);
    return t;
}

static int count_char(const char *t, char c) {
    int n = 0;
    for (; *t; t++) n += *t == c;
    return n;
}

// How often the text's most common char occurs.
static int most_common(const char *t) {
    int counts[256] = {0}, best = 0;
    for (; *t; t++)
        if (++counts[(unsigned char)*t] > best) best = counts[(unsigned char)*t];
    return best;
}

// Over the generated chars of an ASCII prompt + text, the least p(char) / p(top char) at
// temperature t, from infer_step alone.
static double least_ratio(const char *prompt, const char *text, double t) {
    char err[ERR_LEN];
    InferScratch sc;
    StreamState st;
    ck_assert_int_eq(infer_scratch_alloc(&sc, &model.config, 1, err), 0);
    ck_assert_int_eq(stream_state_alloc(&st, &model.config, err), 0);
    StreamState *sp = &st;
    int V = model.config.vocab_size;
    float *logits = malloc((size_t)V * sizeof(float));
    size_t np = strlen(prompt), n = np + strlen(text);
    double least = 1.0;
    for (size_t i = 0; i + 1 < n; i++) {
        char c = i < np ? prompt[i] : text[i - np],
             next = i + 1 < np ? prompt[i + 1] : text[i + 1 - np];
        int id = vocab_id(&vocab, (unsigned char)c);
        ck_assert_int_ge(id, 0);
        infer_step(&model, &sc, 1, &id, &sp, logits);
        if (i + 1 < np) continue; // still in the prompt
        float top = logits[0];
        for (int v = 1; v < V; v++)
            if (logits[v] > top) top = logits[v];
        double r = exp((logits[vocab_id(&vocab, (unsigned char)next)] - top) / t);
        if (r < least) least = r;
    }
    free(logits);
    stream_state_free(&st);
    infer_scratch_free(&sc);
    return least;
}

START_TEST(test_logit_bias_bans_and_forces) {
    const char *plain = "{\"prompt\": \"the \", \"max_tokens\": 400, \"temperature\": 0.8, "
                        "\"seed\": 7}";
    char *t = text_of("/generate", plain);
    ck_assert_int_gt(count_char(t, ' '), 10); // without the bias both are common
    ck_assert_int_gt(count_char(t, 'e'), 10);
    free(t);
    // Chars as keys on /generate.
    t = text_of("/generate", "{\"prompt\": \"the \", \"max_tokens\": 400, \"temperature\": 0.8, "
                             "\"seed\": 7, \"logit_bias\": {\" \": -100, \"e\": -100}}");
    ck_assert_int_eq((int)strlen(t), 400);
    ck_assert_msg(count_char(t, ' ') == 0 && count_char(t, 'e') == 0, "%s", t);
    free(t);
    // Ids on /v1/completions, and greedy honours them too.
    char body[256];
    snprintf(body, sizeof(body),
             "{\"prompt\": \"the \", \"max_tokens\": 400, \"temperature\": 0, "
             "\"logit_bias\": {\"%d\": -100, \"%d\": -100}}",
             vocab_id(&vocab, ' '), vocab_id(&vocab, 'e'));
    t = text_of("/v1/completions", body);
    ck_assert_int_eq((int)strlen(t), 400);
    ck_assert_msg(count_char(t, ' ') == 0 && count_char(t, 'e') == 0, "%s", t);
    free(t);
    // +100 forces a char at the usual temperatures.
    snprintf(body, sizeof(body),
             "{\"prompt\": \"the \", \"max_tokens\": 50, \"seed\": 3, \"logit_bias\": {\"%d\": "
             "100}}",
             vocab_id(&vocab, 'o'));
    t = text_of("/v1/completions", body);
    ck_assert_int_eq(count_char(t, 'o'), 50);
    free(t);
}
END_TEST

START_TEST(test_frequency_and_presence_penalties) {
    const char *prompts[] = {"the ", "a dog", "sun was"};
    int off = 0, freq = 0, pres = 0;
    for (int p = 0; p < 3; p++) {
        char body[256];
        const char *fmt = "{\"prompt\": \"%s\", \"max_tokens\": 400, \"temperature\": 0.8, "
                          "\"seed\": %d%s}";
        snprintf(body, sizeof(body), fmt, prompts[p], p, "");
        char *t0 = text_of("/v1/completions", body);
        snprintf(body, sizeof(body), fmt, prompts[p], p, ", \"frequency_penalty\": 0");
        char *same = text_of("/v1/completions", body);
        ck_assert_str_eq(same, t0); // 0 is the default and changes nothing
        snprintf(body, sizeof(body), fmt, prompts[p], p, ", \"frequency_penalty\": 2.0");
        char *tf = text_of("/v1/completions", body);
        snprintf(body, sizeof(body), fmt, prompts[p], p, ", \"presence_penalty\": 2.0");
        char *tp = text_of("/generate", body);
        off += most_common(t0);
        freq += most_common(tf);
        pres += most_common(tp);
        free(t0);
        free(same);
        free(tf);
        free(tp);
    }
    ck_assert_msg(freq < off, "most common char: %d with frequency_penalty 2, %d without", freq,
                  off);
    ck_assert_msg(pres != off, "presence_penalty 2 changed nothing (%d)", pres);
}
END_TEST

START_TEST(test_min_p) {
    const char *fmt = "{\"prompt\": \"the \", \"max_tokens\": 300, \"temperature\": %s, "
                      "\"top_k\": 0, \"seed\": 5, \"min_p\": %s}";
    char body[256];
    snprintf(body, sizeof(body), fmt, "0", "0");
    char *greedy = text_of("/generate", body);
    snprintf(body, sizeof(body), fmt, "0.3", "1.0");
    char *one = text_of("/generate", body);
    ck_assert_str_eq(one, greedy); // only the most likely char is left
    snprintf(body, sizeof(body), fmt, "0.3", "0");
    char *none = text_of("/generate", body);
    snprintf(body, sizeof(body), fmt, "0.3", "0.5");
    char *half = text_of("/generate", body);
    ck_assert_str_ne(none, half);
    // Every char drawn with min_p 0.5 was at least half as likely as the top one, which
    // the same draws without it are not.
    double lh = least_ratio("the ", half, 0.3), ln = least_ratio("the ", none, 0.3);
    ck_assert_msg(lh >= 0.5 - 1e-4, "min_p 0.5 drew a char at %g of the top", lh);
    ck_assert_msg(ln < 0.5, "without min_p the least ratio is %g", ln);
    free(greedy);
    free(one);
    free(none);
    free(half);
}
END_TEST

START_TEST(test_bad_values) {
    static const struct {
        const char *path, *body, *param;
    } cases[] = {
        {"/generate", "{\"prompt\": \"a\", \"presence_penalty\": 2.5}", "presence_penalty"},
        {"/v1/completions", "{\"prompt\": \"a\", \"presence_penalty\": -2.01}", "presence_penalty"},
        {"/generate", "{\"prompt\": \"a\", \"frequency_penalty\": -3}", "frequency_penalty"},
        {"/v1/completions", "{\"prompt\": \"a\", \"frequency_penalty\": \"1\"}",
         "frequency_penalty"},
        {"/generate", "{\"prompt\": \"a\", \"min_p\": 1.5}", "min_p"},
        {"/v1/completions", "{\"prompt\": \"a\", \"min_p\": -0.1}", "min_p"},
        {"/generate", "{\"prompt\": \"a\", \"min_p\": null}", "min_p"},
        {"/v1/completions", "{\"prompt\": \"a\", \"logit_bias\": {\"99999\": 1}}", "logit_bias"},
        {"/v1/completions", "{\"prompt\": \"a\", \"logit_bias\": {\"1\": 101}}", "logit_bias"},
        {"/v1/completions", "{\"prompt\": \"a\", \"logit_bias\": {\"a\": 1}}", "logit_bias"},
        {"/generate", "{\"prompt\": \"a\", \"logit_bias\": {\"\xe2\x98\x83\": 1}}", "logit_bias"},
        {"/generate", "{\"prompt\": \"a\", \"logit_bias\": {\"a\": \"-100\"}}", "logit_bias"},
        {"/generate", "{\"prompt\": \"a\", \"logit_bias\": [\"a\"]}", "logit_bias"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        Resp r = http_post(S.port, cases[i].path, cases[i].body);
        assert_error(&r, 400, cases[i].param);
        resp_free(&r);
    }
    // The new parameters are in /model's defaults and limits.
    Resp r = http_get(S.port, "/model");
    cJSON *m = resp_json(&r);
    resp_free(&r);
    const char *names[] = {"presence_penalty", "frequency_penalty", "min_p"};
    const double lo[] = {-2, -2, 0}, hi[] = {2, 2, 1};
    for (int i = 0; i < 3; i++) {
        const cJSON *lim = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(m, "limits"), names[i]);
        ck_assert_double_eq(json_num(lim, "min"), lo[i]);
        ck_assert_double_eq(json_num(lim, "max"), hi[i]);
        ck_assert_double_eq(json_num(cJSON_GetObjectItemCaseSensitive(m, "defaults"), names[i]), 0);
        ck_assert_double_eq(
            json_num(cJSON_GetObjectItemCaseSensitive(m, "openai_defaults"), names[i]), 0);
    }
    cJSON_Delete(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_sampling");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_default, stop_default);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_logit_bias_bans_and_forces);
    tcase_add_test(tc, test_frequency_and_presence_penalties);
    tcase_add_test(tc, test_min_p);
    tcase_add_test(tc, test_bad_values);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
