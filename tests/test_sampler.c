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

// A bias is added to its id's logit; -100 bans the id whatever the temperature or
// penalties; +100 outweighs any gap between ordinary logits.
START_TEST(test_logit_bias) {
    Sampler s;
    ck_assert_int_eq(sampler_init(&s, 4, NULL), 0);
    float logits[4] = {2.0f, 1.0f, 0.0f, -1.0f};
    SamplerParams p = plain();
    p.temperature = 0;
    Rng rng;
    rng_seed(&rng, 1);
    SamplerBias ban0[1] = {{0, -100.0f}};
    p.bias = ban0;
    p.nbias = 1;
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 1);
    SamplerBias force3[1] = {{3, 100.0f}};
    p.bias = force3;
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 3);
    // An exact shift: 1.0 + 1.0 ties with 2.0 and the lower id wins; a little more wins.
    SamplerBias tie[1] = {{1, 1.0f}};
    p.bias = tie;
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 0);
    tie[0].bias = 1.0001f;
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 1);
    ck_assert_float_eq(logits[1], 1.0f); // logits are not modified

    // Sampling: the banned id never comes out, even at a huge temperature and with a
    // negative presence penalty (a reward) on it; the forced one always does at T = 1.
    int counts[4];
    p.temperature = 1e6f;
    p.bias = ban0;
    p.presence_penalty = -2.0f;
    sampler_accept(&s, 0);
    histogram(&s, logits, &p, NULL, 0, 5, 20000, counts);
    ck_assert_int_eq(counts[0], 0);
    for (int i = 1; i < 4; i++) ck_assert_int_gt(counts[i], 5000);
    p.presence_penalty = 0;
    p.temperature = 1.0f;
    p.bias = force3;
    histogram(&s, logits, &p, NULL, 0, 6, 20000, counts);
    ck_assert_int_eq(counts[3], 20000);

    // ln 3 on one of four equal logits: 3 / (3 + 3) = 0.5 of the draws.
    float flat[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    SamplerBias ln3[1] = {{2, (float)log(3.0)}};
    p.bias = ln3;
    histogram(&s, flat, &p, NULL, 0, 7, 40000, counts);
    ck_assert_double_lt(fabs(counts[2] / 40000.0 - 0.5), 5 * sqrt(0.25 / 40000));

    // Every id banned: still an id of the vocabulary.
    SamplerBias all[4] = {{0, -100}, {1, -100}, {2, -100}, {3, -100}};
    p.bias = all;
    p.nbias = 4;
    histogram(&s, logits, &p, NULL, 0, 8, 100, counts);
    ck_assert_int_eq(counts[0] + counts[1] + counts[2] + counts[3], 100);
    p.temperature = 0;
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 0);
    sampler_free(&s);
}
END_TEST

// logit[j] -= frequency_penalty * c[j] + presence_penalty * (c[j] > 0), c counted by
// sampler_accept. Values are binary fractions so that ties are exact.
START_TEST(test_presence_frequency) {
    Sampler s;
    ck_assert_int_eq(sampler_init(&s, 4, NULL), 0);
    float logits[4] = {2.0f, 1.0f, 0.0f, 0.0f};
    SamplerParams p = plain();
    p.temperature = 0;
    Rng rng;
    rng_seed(&rng, 1);
    sampler_accept(&s, 0);
    sampler_accept(&s, 0);
    ck_assert_int_eq(s.counts[0], 2);
    p.frequency_penalty = 0.5f; // 2 - 0.5 * 2 = 1: a tie, the lower id wins
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 0);
    p.presence_penalty = 0.25f; // 2 - 1 - 0.25 < 1
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 1);
    p.frequency_penalty = 0;
    p.presence_penalty = 1.0f; // once, however often: 2 - 1 = 1, a tie
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 0);
    sampler_accept(&s, 0);
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 0);
    p.presence_penalty = 0;
    p.frequency_penalty = 0.25f; // three times now: 2 - 0.75 > 1
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 0);
    p.frequency_penalty = 0.375f; // 2 - 1.125 < 1
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 1);
    sampler_free(&s);
    // A negative penalty rewards: id 2 once generated, presence -2 lifts it to 2, a tie
    // id 0 wins; frequency -0.5 more lifts it above.
    ck_assert_int_eq(sampler_init(&s, 4, NULL), 0);
    sampler_accept(&s, 2);
    p.presence_penalty = -2.0f;
    p.frequency_penalty = 0;
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 0);
    p.frequency_penalty = -0.5f;
    ck_assert_int_eq(sampler_draw(&s, logits, &p, NULL, 0, &rng), 2);
    sampler_free(&s);

    // The probabilities follow: four equal logits, id 0 generated twice, frequency 0.5
    // lowers its logit by 1: p = e^-1 / (e^-1 + 3) = 0.1092 instead of 0.25.
    ck_assert_int_eq(sampler_init(&s, 4, NULL), 0);
    float flat[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    SamplerParams q = plain();
    int counts[4], n = 40000;
    sampler_accept(&s, 0);
    sampler_accept(&s, 0);
    q.frequency_penalty = 0.5f;
    histogram(&s, flat, &q, NULL, 0, 3, n, counts);
    double want = exp(-1.0) / (exp(-1.0) + 3);
    ck_assert_msg(fabs(counts[0] / (double)n - want) < 5 * sqrt(want * (1 - want) / n),
                  "%d of %d, expected %f", counts[0], n, want);
    q.frequency_penalty = 0;
    q.presence_penalty = 1.0f; // the same drop, counted once
    histogram(&s, flat, &q, NULL, 0, 4, n, counts);
    ck_assert_msg(fabs(counts[0] / (double)n - want) < 5 * sqrt(want * (1 - want) / n),
                  "%d of %d, expected %f", counts[0], n, want);
    sampler_free(&s);
}
END_TEST

// min_p keeps exactly the ids at least min_p times as likely as the top one, after the
// temperature.
START_TEST(test_min_p) {
    Sampler s;
    ck_assert_int_eq(sampler_init(&s, 4, NULL), 0);
    const double prob[4] = {0.15, 0.5, 0.05, 0.3}; // relative to the top: 0.3, 1, 0.1, 0.6
    float logits[4];
    for (int i = 0; i < 4; i++) logits[i] = (float)log(prob[i]);
    SamplerParams p = plain();
    int counts[4], n = 20000;

    p.min_p = 0.2f; // keeps 0.5, 0.3, 0.15
    histogram(&s, logits, &p, NULL, 0, 1, n, counts);
    ck_assert_int_eq(counts[2], 0);
    for (int i = 0; i < 4; i++)
        if (i != 2) {
            double want = prob[i] / 0.95;
            ck_assert_msg(fabs(counts[i] / (double)n - want) < 5 * sqrt(want * (1 - want) / n),
                          "id %d", i);
        }
    p.min_p = 0.5f; // keeps 0.5, 0.3
    histogram(&s, logits, &p, NULL, 0, 2, n, counts);
    ck_assert_int_eq(counts[0] + counts[2], 0);
    ck_assert_double_lt(fabs(counts[1] / (double)n - 0.625), 5 * sqrt(0.625 * 0.375 / n));
    p.min_p = 0.61f; // only the top
    histogram(&s, logits, &p, NULL, 0, 3, 1000, counts);
    ck_assert_int_eq(counts[1], 1000);
    p.min_p = 1.0f;
    histogram(&s, logits, &p, NULL, 0, 4, 1000, counts);
    ck_assert_int_eq(counts[1], 1000);

    // After the temperature: T = 0.5 squares the ratios to 0.09, 1, 0.01, 0.36, so 0.2
    // now keeps two ids.
    p.min_p = 0.2f;
    p.temperature = 0.5f;
    histogram(&s, logits, &p, NULL, 0, 5, n, counts);
    ck_assert_int_eq(counts[0] + counts[2], 0);
    ck_assert_int_gt(counts[3], 0);
    // After top-k: k = 2 keeps 0.5 and 0.3, which min_p 0.2 both keeps.
    p.temperature = 1.0f;
    p.top_k = 2;
    histogram(&s, logits, &p, NULL, 0, 6, n, counts);
    ck_assert_int_eq(counts[0] + counts[2], 0);
    sampler_free(&s);
}
END_TEST

// With the new parameters at their defaults the draws are the old ones, whatever the
// counts and however the (empty) bias list is given; a zero bias changes nothing either.
START_TEST(test_defaults_unchanged) {
    Sampler a, b;
    ck_assert_int_eq(sampler_init(&a, 50, NULL), 0);
    ck_assert_int_eq(sampler_init(&b, 50, NULL), 0);
    float logits[50];
    for (int i = 0; i < 50; i++) logits[i] = (float)sin(i * 0.7) * 3;
    SamplerParams p = plain();
    p.top_k = 20;
    p.top_p = 0.9f;
    p.repetition_penalty = 1.3f;
    p.repetition_window = 4;
    SamplerParams q = p;
    SamplerBias zero[2] = {{3, 0.0f}, {7, 0.0f}};
    q.bias = zero;
    Rng ra, rb;
    rng_seed(&ra, 5);
    rng_seed(&rb, 5);
    int recent[4] = {1, 2, 3, 4};
    for (int i = 0; i < 500; i++) {
        q.nbias = i % 3; // none, one, two zero biases
        int x = sampler_draw(&a, logits, &p, recent, 4, &ra);
        ck_assert_int_eq(x, sampler_draw(&b, logits, &q, recent, 4, &rb));
        sampler_accept(&b, x); // counts without penalties change nothing
        recent[i % 4] = x;
    }
    ck_assert_uint_eq(ra.s[0], rb.s[0]);
    sampler_free(&a);
    sampler_free(&b);
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
    tcase_add_test(tc, test_logit_bias);
    tcase_add_test(tc, test_presence_frequency);
    tcase_add_test(tc, test_min_p);
    tcase_add_test(tc, test_defaults_unchanged);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
