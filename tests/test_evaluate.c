/*
 * Scoring a text: evaluate_ids against the same loss computed here one character at a
 * time with infer_step, for one stream (chunks carried over the 128-step boundary) and
 * for several (contiguous pieces, each from the zero state, the remainder dropped); a
 * model with all-zero weights scores ln V; texts too short to score are refused.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "evaluate.h"
#include "infer.h"
#include "model.h"
#include "rng.h"
#include "testutil.h"

#define REL_TOL                                                                                    \
    1e-6 // float rounding: training's sgemm forward pass vs the inference step (seen: 1e-8)

static const ModelConfig config = {.vocab_size = 11, .embed = 6, .hidden = 16, .layers = 2};

static int *random_ids(size_t n, uint64_t seed) {
    int *ids = malloc(n * sizeof(int));
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) ids[i] = (int)rng_below(&rng, (uint64_t)config.vocab_size);
    return ids;
}

// Summed -log softmax(next id) over ids[1 .. n), stepping one stream from the zero state.
static double stream_nll(const Model *m, const int *ids, size_t n) {
    char err[ERR_LEN];
    InferScratch sc;
    StreamState st;
    ck_assert_int_eq(infer_scratch_alloc(&sc, &m->config, 1, err), 0);
    ck_assert_int_eq(stream_state_alloc(&st, &m->config, err), 0);
    StreamState *sp = &st;
    int V = m->config.vocab_size;
    float *logits = malloc((size_t)V * sizeof(float)); // [V]
    double nll = 0.0;
    for (size_t i = 0; i + 1 < n; i++) {
        infer_step(m, &sc, 1, &ids[i], &sp, logits);
        double max = logits[0], sum = 0.0;
        for (int v = 1; v < V; v++) max = fmax(max, logits[v]);
        for (int v = 0; v < V; v++) sum += exp(logits[v] - max);
        nll += log(sum) + max - logits[ids[i + 1]];
    }
    free(logits);
    stream_state_free(&st);
    infer_scratch_free(&sc);
    return nll;
}

START_TEST(test_matches_stepwise_reference) {
    // per = (n - 1) / streams predictions per stream; the last (n - 1) % streams are dropped.
    const struct {
        size_t n;
        int streams;
        size_t count;
    } cases[] = {
        {300, 1, 299}, // three chunks: 128 + 128 + 43, the state carried between them
        {2, 1, 1},     {453, 3, 450}, // 150 per stream (two chunks), 2 dropped
        {100, 7, 98},                 // 14 per stream, 1 dropped
        {41, 4, 40},                  // 10 per stream, none dropped
    };
    Model m;
    char err[ERR_LEN];
    ck_assert_int_eq(model_init(&m, &config, 17, err), 0);
    ck_assert_int_eq(infer_prepare(&m, err), 0);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = cases[k].n;
        int streams = cases[k].streams;
        int *ids = random_ids(n, 100 + k);
        EvalResult r;
        ck_assert_msg(evaluate_ids(&m, ids, n, streams, &r, err) == 0, "%s", err);
        ck_assert_uint_eq(r.count, cases[k].count);

        size_t per = cases[k].count / (size_t)streams;
        double nll = 0.0;
        for (int s = 0; s < streams; s++) nll += stream_nll(&m, ids + (size_t)s * per, per + 1);
        double want = nll / (double)cases[k].count;
        ck_assert_msg(fabs(r.loss - want) <= REL_TOL * want,
                      "n %zu, %d streams: loss %.9f, stepwise %.9f", n, streams, r.loss, want);
        free(ids);
    }
    model_free(&m);
}
END_TEST

START_TEST(test_zero_model_scores_ln_v) {
    // All-zero weights: every gate at its midpoint, the state stays zero, the logits are the
    // zero bias, so each prediction is a uniform guess over V.
    Model m;
    char err[ERR_LEN];
    ck_assert_int_eq(model_alloc(&m, &config, err), 0);
    const int streams[] = {1, 5};
    for (int k = 0; k < 2; k++) {
        int *ids = random_ids(400, 3);
        EvalResult r;
        ck_assert_int_eq(evaluate_ids(&m, ids, 400, streams[k], &r, err), 0);
        ck_assert_uint_eq(r.count, streams[k] == 1 ? 399 : 395);
        // Only float rounding of logf(1/V) away from it.
        ck_assert_double_eq_tol(r.loss, log(config.vocab_size), 1e-6);
        free(ids);
    }
    model_free(&m);
}
END_TEST

START_TEST(test_too_short) {
    const struct {
        size_t n;
        int streams;
    } cases[] = {{0, 1}, {1, 1}, {2, 2}, {8, 8}}; // fewer than two chars per stream
    Model m;
    char err[ERR_LEN], want[ERR_LEN];
    ck_assert_int_eq(model_init(&m, &config, 1, err), 0);
    int ids[16] = {0};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        EvalResult r = {.loss = -1, .count = 12345};
        ck_assert_int_eq(evaluate_ids(&m, ids, cases[k].n, cases[k].streams, &r, err), -1);
        snprintf(want, sizeof want, "text too short to score (%zu chars)", cases[k].n);
        ck_assert_str_eq(err, want);
        ck_assert_uint_eq(r.count, 12345); // untouched
    }
    // One char more than streams is the shortest text: one prediction per stream.
    EvalResult r;
    ck_assert_int_eq(evaluate_ids(&m, ids, 9, 8, &r, err), 0);
    ck_assert_uint_eq(r.count, 8);
    model_free(&m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("evaluate");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_matches_stepwise_reference);
    tcase_add_test(tc, test_zero_model_scores_ln_v);
    tcase_add_test(tc, test_too_short);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
