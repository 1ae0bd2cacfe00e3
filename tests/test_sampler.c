#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sampler.h"

static SamplerParams plain(void) {
    return (SamplerParams){.temperature = 1.0f,
                           .top_k = 0,
                           .top_p = 1.0f,
                           .repetition_penalty = 1.0f,
                           .repetition_window = 0};
}

// Draws n times and counts how often each id comes out.
static void histogram(Sampler *s, const float *logits, const SamplerParams *p, const int *recent,
                      int nrecent, uint64_t seed, int n, int *counts) {
    Rng rng;
    rng_seed(&rng, seed);
    memset(counts, 0, (size_t)s->V * sizeof(int));
    for (int i = 0; i < n; i++) {
        int id = sampler_draw(s, logits, p, recent, nrecent, &rng);
        ck_assert_int_ge(id, 0);
        ck_assert_int_lt(id, s->V);
        counts[id]++;
    }
}

START_TEST(test_greedy) {
    Sampler s;
    char err[ERR_LEN];
    ck_assert_int_eq(sampler_init(&s, 5, err), 0);
    float logits[5] = {0.1f, 2.0f, -3.0f, 1.9f, 2.0f};
    SamplerParams p = plain();
    p.temperature = 0;
    Rng rng;
    rng_seed(&rng, 1);
    Rng before = rng;
    // Ties go to the lower id; greedy draws nothing from the generator.
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 1);
    ck_assert_uint_eq(rng.s[0], before.s[0]);
    // top_k = 1 is greedy whatever the temperature.
    p.temperature = 5.0f;
    p.top_k = 1;
    for (int i = 0; i < 100; i++) ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 1);
    sampler_free(&s);
}
END_TEST

START_TEST(test_distribution_and_temperature) {
    Sampler s;
    ck_assert_int_eq(sampler_init(&s, 4, NULL), 0);
    const double prob[4] = {0.5, 0.3, 0.15, 0.05};
    float logits[4];
    for (int i = 0; i < 4; i++) logits[i] = (float)log(prob[i]) + 3.0f; // any offset
    float copy[4];
    memcpy(copy, logits, sizeof(copy));
    SamplerParams p = plain();
    int counts[4], n = 40000;
    histogram(&s, logits, &p, NULL, 0, 7, n, counts);
    ck_assert(memcmp(copy, logits, sizeof(copy)) == 0); // logits are not modified
    for (int i = 0; i < 4; i++) {
        double f = (double)counts[i] / n, sd = sqrt(prob[i] * (1 - prob[i]) / n);
        ck_assert_msg(fabs(f - prob[i]) < 5 * sd, "id %d: %f vs %f", i, f, prob[i]);
    }
    // T = 0.5 squares the probabilities (then renormalises).
    p.temperature = 0.5f;
    histogram(&s, logits, &p, NULL, 0, 8, n, counts);
    double z = 0;
    for (int i = 0; i < 4; i++) z += prob[i] * prob[i];
    for (int i = 0; i < 4; i++) {
        double q = prob[i] * prob[i] / z, f = (double)counts[i] / n;
        ck_assert_msg(fabs(f - q) < 5 * sqrt(q * (1 - q) / n) + 1e-3, "T=0.5 id %d", i);
    }
    // A tiny temperature is greedy in effect and never NaN.
    p.temperature = 1e-30f;
    histogram(&s, logits, &p, NULL, 0, 9, 1000, counts);
    ck_assert_int_eq(counts[0], 1000);
    sampler_free(&s);
}
END_TEST

START_TEST(test_top_k) {
    Sampler s;
    ck_assert_int_eq(sampler_init(&s, 6, NULL), 0);
    float logits[6] = {0.0f, 1.0f, 0.5f, 0.9f, -1.0f, 0.2f};
    SamplerParams p = plain();
    p.top_k = 2;
    int counts[6];
    histogram(&s, logits, &p, NULL, 0, 3, 5000, counts);
    ck_assert_int_gt(counts[1], 0);
    ck_assert_int_gt(counts[3], 0);
    ck_assert_int_eq(counts[1] + counts[3], 5000);
    // The two kept ids share their renormalised mass: e^1 / (e^1 + e^0.9) = 0.525.
    ck_assert_double_lt(fabs(counts[1] / 5000.0 - 0.525), 0.04);
    // top_k larger than the vocabulary keeps everything.
    p.top_k = 100;
    histogram(&s, logits, &p, NULL, 0, 4, 20000, counts);
    for (int i = 0; i < 6; i++) ck_assert_int_gt(counts[i], 0);
    sampler_free(&s);
}
END_TEST

START_TEST(test_top_p_smallest_set) {
    Sampler s;
    ck_assert_int_eq(sampler_init(&s, 4, NULL), 0);
    // Probabilities 0.5, 0.3, 0.15, 0.05, listed out of order to check sorting.
    const double prob[4] = {0.15, 0.5, 0.05, 0.3};
    float logits[4];
    for (int i = 0; i < 4; i++) logits[i] = (float)log(prob[i]);
    SamplerParams p = plain();
    int counts[4];

    p.top_p = 0.4f; // 0.5 alone reaches it
    histogram(&s, logits, &p, NULL, 0, 1, 2000, counts);
    ck_assert_int_eq(counts[1], 2000);

    p.top_p = 0.79f; // 0.5 + 0.3
    histogram(&s, logits, &p, NULL, 0, 2, 10000, counts);
    ck_assert_int_eq(counts[0] + counts[2], 0);
    ck_assert_int_gt(counts[3], 0);
    ck_assert_double_lt(fabs(counts[1] / 10000.0 - 0.5 / 0.8), 0.03);

    p.top_p = 0.81f; // needs the 0.15 too, never the 0.05
    histogram(&s, logits, &p, NULL, 0, 3, 10000, counts);
    ck_assert_int_eq(counts[2], 0);
    ck_assert_int_gt(counts[0], 0);

    p.top_p = 1.0f;
    histogram(&s, logits, &p, NULL, 0, 4, 10000, counts);
    ck_assert_int_gt(counts[2], 0);

    // Top-k applies first: with k = 3 the nucleus is computed over the renormalised
    // three (0.5/0.95 = 0.526 alone reaches 0.5).
    p.top_k = 3;
    p.top_p = 0.5f;
    histogram(&s, logits, &p, NULL, 0, 5, 1000, counts);
    ck_assert_int_eq(counts[1], 1000);
    sampler_free(&s);
}
END_TEST

START_TEST(test_repetition_penalty) {
    Sampler s;
    ck_assert_int_eq(sampler_init(&s, 4, NULL), 0);
    SamplerParams p = plain();
    p.temperature = 0;
    p.repetition_penalty = 2.0f;
    p.repetition_window = 8;
    Rng rng;
    rng_seed(&rng, 1);

    // A positive logit is divided: 2.0 / 2 = 1.0 < 1.5.
    float pos[4] = {2.0f, 1.5f, -1.0f, -1.2f};
    int recent0[1] = {0};
    ck_assert_int_eq(sampler_draw(&s, pos, &p, NULL, 0, &rng), 0);
    ck_assert_int_eq(sampler_draw(&s, pos, &p, recent0, 1, &rng), 1);
    // A negative one is multiplied: -1.0 * 2 = -2.0 < -1.5.
    float neg[4] = {-1.0f, -1.5f, -3.0f, -4.0f};
    ck_assert_int_eq(sampler_draw(&s, neg, &p, recent0, 1, &rng), 1);
    // Only the last repetition_window ids count.
    int recent[3] = {0, 3, 3};
    p.repetition_window = 2;
    ck_assert_int_eq(sampler_draw(&s, pos, &p, recent, 3, &rng), 0);
    p.repetition_window = 3;
    ck_assert_int_eq(sampler_draw(&s, pos, &p, recent, 3, &rng), 1);
    // Once per id however often it occurs: 2.0 / 1.5 = 1.33 > 1.0 (twice would be 0.89).
    float once[4] = {2.0f, 1.0f, 0.0f, 0.0f};
    int twice[2] = {0, 0};
    p.repetition_penalty = 1.5f;
    ck_assert_int_eq(sampler_draw(&s, once, &p, twice, 2, &rng), 0);
    // Window 0 or penalty 1 disable it.
    p.repetition_penalty = 2.0f;
    p.repetition_window = 0;
    ck_assert_int_eq(sampler_draw(&s, pos, &p, recent0, 1, &rng), 0);

    // Sampling, not just greedy: the penalised id becomes rarer.
    p.temperature = 1.0f;
    p.repetition_window = 4;
    float flat[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    int counts[4], counts_pen[4];
    SamplerParams off = p;
    off.repetition_penalty = 1.0f;
    histogram(&s, flat, &off, recent0, 1, 11, 20000, counts);
    histogram(&s, flat, &p, recent0, 1, 11, 20000, counts_pen);
    // Its logit drops from 1 to 0.5: p = e^-0.5 / (e^-0.5 + 3) = 0.168, from 0.25.
    ck_assert_int_lt(counts_pen[0], counts[0]);
    ck_assert_double_lt(fabs(counts_pen[0] / 20000.0 - 0.168), 0.015);
    ck_assert_double_lt(fabs(counts[0] / 20000.0 - 0.25), 0.015);

    // Extreme penalties stay finite and valid.
    p.repetition_penalty = FLT_MIN;
    float big[4] = {50.0f, 40.0f, -50.0f, 1.0f};
    int all[4] = {0, 1, 2, 3};
    histogram(&s, big, &p, all, 4, 12, 200, counts);
    ck_assert_int_eq(counts[0] + counts[1] + counts[2] + counts[3], 200);
    p.repetition_penalty = FLT_MAX;
    histogram(&s, big, &p, all, 4, 13, 200, counts);
    ck_assert_int_eq(counts[0] + counts[1] + counts[2] + counts[3], 200);
    sampler_free(&s);
}
END_TEST

START_TEST(test_seeded) {
    Sampler s;
    ck_assert_int_eq(sampler_init(&s, 50, NULL), 0);
    float logits[50];
    for (int i = 0; i < 50; i++) logits[i] = (float)sin(i * 0.7);
    SamplerParams p = plain();
    p.top_k = 20;
    p.top_p = 0.9f;
    Rng a, b, c;
    rng_seed(&a, 99);
    rng_seed(&b, 99);
    rng_seed(&c, 100);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int x = sampler_draw(&s, logits, &p, NULL, 0, &a);
        ck_assert_int_eq(x, sampler_draw(&s, logits, &p, NULL, 0, &b));
        differ += x != sampler_draw(&s, logits, &p, NULL, 0, &c);
    }
    ck_assert_int_gt(differ, 0);
    sampler_free(&s);
    ck_assert_int_eq(sampler_init(&s, 0, NULL), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_distribution_and_temperature);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p_smallest_set);
    tcase_add_test(tc, test_repetition_penalty);
    tcase_add_test(tc, test_seeded);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
