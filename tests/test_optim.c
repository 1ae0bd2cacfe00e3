/*
 * Optimizer: clipping and one Adam step match PyTorch (clip_grad_norm_ + torch.optim.Adam)
 * on the committed fixture, and three AdamW steps (torch.optim.AdamW, decay on the weight
 * matrices but the embedding) on reg_fixture.safetensors, within 1e-5 relative to each
 * value (1e-5 absolute below 1); the learning-rate schedule has the documented shape.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "optim.h"
#include "safetensors.h"
#include "train.h"

#define FIXTURE     CHARLM_SOURCE_DIR "/tests/reference/fixture.safetensors"
#define REG_FIXTURE CHARLM_SOURCE_DIR "/tests/reference/reg_fixture.safetensors"

static void read_into(const StFile *f, const char *prefix, const ModelTensor *mt, int nt,
                      float *buf) {
    char name[96], err[512];
    for (int i = 0; i < nt; i++) {
        snprintf(name, sizeof(name), "%s%s", prefix, mt[i].name);
        ck_assert_msg(st_read(f, name, mt[i].ndim, mt[i].shape, buf + mt[i].offset, err) == 0, "%s",
                      err);
    }
}

START_TEST(test_clip_and_adam_match_pytorch) {
    StFile f;
    char err[512];
    ck_assert_msg(st_open(&f, FIXTURE, err) == 0, "%s", err);
    ModelConfig c = {atoi(st_meta(&f, "vocab_size")), atoi(st_meta(&f, "embed")),
                     atoi(st_meta(&f, "hidden")), atoi(st_meta(&f, "layers"))};
    float lr = strtof(st_meta(&f, "lr"), NULL), clip = strtof(st_meta(&f, "clip"), NULL);
    ModelTensor mt[MODEL_MAX_TENSORS];
    int nt = model_tensors(&c, mt);
    size_t n = model_param_count(&c);
    float *params = malloc(n * sizeof(float)), *grads = malloc(n * sizeof(float));
    float *want = malloc(n * sizeof(float));
    read_into(&f, "", mt, nt, params);
    read_into(&f, "grad.", mt, nt, grads);
    read_into(&f, "adam.", mt, nt, want);
    int64_t one = 1;
    float want_norm;
    ck_assert_int_eq(st_read(&f, "grad_norm", 1, &one, &want_norm, err), 0);

    float norm = optim_clip(grads, n, clip);
    ck_assert_msg(fabsf(norm - want_norm) <= 1e-5f * want_norm, "norm %g vs PyTorch %g", norm,
                  want_norm);
    ck_assert_msg(norm > clip, "the fixture must exercise clipping");
    Adam adam;
    ck_assert_int_eq(adam_init(&adam, n, err), 0);
    adam_step(&adam, params, grads, lr);
    for (int i = 0; i < nt; i++)
        for (size_t k = 0; k < mt[i].count; k++) {
            float got = params[mt[i].offset + k], w = want[mt[i].offset + k];
            ck_assert_msg(fabsf(got - w) <= 1e-5f * fmaxf(1.0f, fabsf(w)),
                          "%s[%zu] after Adam: %.9g, PyTorch %.9g", mt[i].name, k, got, w);
        }
    adam_free(&adam);
    free(params);
    free(grads);
    free(want);
    st_close(&f);
}
END_TEST

START_TEST(test_adamw_matches_pytorch) {
    StFile f;
    char err[512];
    ck_assert_msg(st_open(&f, REG_FIXTURE, err) == 0, "%s", err);
    ModelConfig c = {atoi(st_meta(&f, "vocab_size")), atoi(st_meta(&f, "embed")),
                     atoi(st_meta(&f, "hidden")), atoi(st_meta(&f, "layers"))};
    float lr = strtof(st_meta(&f, "lr"), NULL), wd = strtof(st_meta(&f, "weight_decay"), NULL);
    int steps = atoi(st_meta(&f, "adamw_steps"));
    Model m;
    ck_assert_int_eq(model_alloc(&m, &c, err), 0);
    ModelTensor mt[MODEL_MAX_TENSORS];
    int nt = model_tensors(&c, mt);
    size_t n = m.num_params;
    float *grads = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    float *plain = malloc(n * sizeof(float));
    read_into(&f, "", mt, nt, m.params);
    read_into(&f, "all.grad.", mt, nt, grads);
    read_into(&f, "adamw.", mt, nt, want);
    Adam adam, adam_plain;
    ck_assert_int_eq(adam_init(&adam, n, err), 0);
    ck_assert_int_eq(adam_init(&adam_plain, n, err), 0);
    memcpy(plain, m.params, n * sizeof(float));
    for (int s = 0; s < steps; s++) {
        train_adam_step(&adam, &m, grads, lr, wd);
        adam_step(&adam_plain, plain, grads, lr);
    }
    float worst = 0;
    for (int i = 0; i < nt; i++) {
        int decayed = 0;
        for (size_t k = 0; k < mt[i].count; k++) {
            size_t j = mt[i].offset + k;
            float got = m.params[j], w = want[j], d = fabsf(got - w) / fmaxf(1.0f, fabsf(w));
            worst = fmaxf(worst, d);
            ck_assert_msg(d <= 1e-5f, "%s[%zu] after AdamW: %.9g, PyTorch %.9g", mt[i].name, k, got,
                          w);
            decayed |= fabsf(plain[j] - w) > 1e-4f * fmaxf(1.0f, fabsf(w));
        }
        // The fixture's decay is large enough to tell decayed tensors from the others.
        int should = mt[i].ndim == 2 && strcmp(mt[i].name, "embedding.weight") != 0;
        ck_assert_msg(decayed == should, "%s: decayed %d, expected %d", mt[i].name, decayed,
                      should);
    }
    printf("AdamW parity: worst difference %.3g (relative above 1, absolute below)\n", worst);
    adam_free(&adam);
    adam_free(&adam_plain);
    model_free(&m);
    free(grads);
    free(want);
    free(plain);
    st_close(&f);
}
END_TEST

START_TEST(test_zero_weight_decay_is_adam_bit_for_bit) {
    ModelConfig c = {7, 5, 6, 2};
    Model m;
    char err[512];
    ck_assert_int_eq(model_init(&m, &c, 3, err), 0);
    size_t n = m.num_params;
    float *grads = malloc(n * sizeof(float)), *plain = malloc(n * sizeof(float));
    for (size_t k = 0; k < n; k++) grads[k] = (float)((k * 37) % 19) - 9.0f;
    memcpy(plain, m.params, n * sizeof(float));
    Adam a, b;
    ck_assert_int_eq(adam_init(&a, n, err), 0);
    ck_assert_int_eq(adam_init(&b, n, err), 0);
    for (int s = 0; s < 3; s++) {
        train_adam_step(&a, &m, grads, 1e-2f, 0.0f);
        adam_step(&b, plain, grads, 1e-2f);
    }
    ck_assert(memcmp(m.params, plain, n * sizeof(float)) == 0);
    adam_free(&a);
    adam_free(&b);
    model_free(&m);
    free(grads);
    free(plain);
}
END_TEST

START_TEST(test_clip_leaves_small_gradients_alone) {
    float g[3] = {0.3f, -0.4f, 0.0f};
    ck_assert_float_eq_tol(optim_clip(g, 3, 5.0f), 0.5f, 1e-6f);
    ck_assert_float_eq(g[0], 0.3f);
    ck_assert_float_eq(g[1], -0.4f);
    float h[2] = {3.0f, 4.0f};
    optim_clip(h, 2, 1.0f);
    ck_assert_float_eq_tol(sqrtf(h[0] * h[0] + h[1] * h[1]), 1.0f, 1e-5f);
}
END_TEST

START_TEST(test_schedule_warms_up_then_decays_to_min) {
    long total = 1000, warmup = 100;
    ck_assert_float_eq_tol(optim_lr(0, total, warmup, 1.0f, 0.1f), 0.01f, 1e-7f);
    ck_assert_float_eq_tol(optim_lr(99, total, warmup, 1.0f, 0.1f), 1.0f, 1e-6f);
    ck_assert_float_eq_tol(optim_lr(100, total, warmup, 1.0f, 0.1f), 1.0f, 1e-6f);
    ck_assert_float_eq_tol(optim_lr(550, total, warmup, 1.0f, 0.1f), 0.55f, 1e-5f);
    ck_assert_float_eq_tol(optim_lr(1000, total, warmup, 1.0f, 0.1f), 0.1f, 1e-6f);
    for (long s = 101; s < total; s++)
        ck_assert(optim_lr(s, total, warmup, 1.0f, 0.1f) <=
                  optim_lr(s - 1, total, warmup, 1.0f, 0.1f));
}
END_TEST

/* A time budget moves the cosine on when it runs ahead of the steps, never back, and
 * ends the warmup at 5% of the budget when that comes before the warmup's steps. */
START_TEST(test_schedule_on_a_budget_follows_the_larger_progress) {
    const struct {
        long step;
        double spent;
        float want; // lr with warmup 100 of 1000 steps, 1 -> 0.1
    } rows[] = {
        {0, 0.01, 0.2f},     // warming up, the budget ahead: 0.01 of its 0.05
        {50, 0.01, 0.51f},   // warming up, the steps ahead: 51 of 100
        {99, 0.001, 1.0f},   // the warmup's last step
        {0, 0.9, 0.122024f}, // the budget's warmup long over: the cosine at 0.9
        {99, 0.5, 0.55f},    // within the warmup's steps, half the budget spent
        {100, 0.5, 0.55f},   // half the budget: the cosine's middle, at its first step
        {550, 0.2, 0.55f},   // the steps ahead of the budget
        {550, 1.0, 0.1f},    // the budget spent: the floor
        {550, 7.0, 0.1f},    // overspent: still the floor
        {1000, 0.0, 0.1f},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ck_assert_msg(fabsf(optim_lr_budget(rows[i].step, 1000, 100, rows[i].spent, 1.0f, 0.1f) -
                            rows[i].want) < 1e-5f,
                      "row %zu: %g", i,
                      optim_lr_budget(rows[i].step, 1000, 100, rows[i].spent, 1.0f, 0.1f));
    // No budget is optim_lr bit for bit, at every step.
    for (long s = 0; s <= 1000; s++) {
        float a = optim_lr(s, 1000, 100, 2e-3f, 2e-4f);
        float b = optim_lr_budget(s, 1000, 100, 0.0, 2e-3f, 2e-4f);
        ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_clip_and_adam_match_pytorch);
    tcase_add_test(tc, test_adamw_matches_pytorch);
    tcase_add_test(tc, test_zero_weight_decay_is_adam_bit_for_bit);
    tcase_add_test(tc, test_clip_leaves_small_gradients_alone);
    tcase_add_test(tc, test_schedule_warms_up_then_decays_to_min);
    tcase_add_test(tc, test_schedule_on_a_budget_follows_the_larger_progress);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
