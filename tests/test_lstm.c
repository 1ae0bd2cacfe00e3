/*
 * LSTM forward/backward: a finite-difference check of every parameter tensor, and
 * parity with PyTorch on the committed fixtures (tests/reference/make_fixture.py, and
 * make_reg_fixture.py for embedding and variational dropout with the masks it drew).
 *
 * Tolerances: logits and loss within 1e-5 relative (plus 1e-6 absolute for values near
 * zero); gradients within 1e-4 relative to the tensor's largest gradient.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lstm.h"
#include "model.h"
#include "safetensors.h"
#include "testutil.h"

#define FIXTURE     CHARLM_SOURCE_DIR "/tests/reference/fixture.safetensors"
#define REG_FIXTURE CHARLM_SOURCE_DIR "/tests/reference/reg_fixture.safetensors"

typedef struct {
    StFile file;
    Model model;
    int T, B;
    int *inputs, *targets; // [T, B]
} Fixture;

static void fixture_load_from(Fixture *fx, const char *path) {
    char err[512];
    ck_assert_msg(st_open(&fx->file, path, err) == 0, "%s", err);
    ModelConfig c = {
        (int)tu_fixture_long(&fx->file, "vocab_size"), (int)tu_fixture_long(&fx->file, "embed"),
        (int)tu_fixture_long(&fx->file, "hidden"), (int)tu_fixture_long(&fx->file, "layers")};
    fx->T = (int)tu_fixture_long(&fx->file, "seq");
    fx->B = (int)tu_fixture_long(&fx->file, "batch");
    ck_assert_int_eq(model_alloc(&fx->model, &c, err), 0);
    ModelTensor mt[MODEL_MAX_TENSORS];
    int nt = model_tensors(&c, mt);
    for (int i = 0; i < nt; i++)
        ck_assert_msg(st_read(&fx->file, mt[i].name, mt[i].ndim, mt[i].shape,
                              fx->model.params + mt[i].offset, err) == 0,
                      "%s", err);
    int64_t shape[2] = {fx->T, fx->B};
    float *in = tu_fixture_tensor(&fx->file, "inputs", 2, shape);
    float *tg = tu_fixture_tensor(&fx->file, "targets", 2, shape);
    fx->inputs = malloc(fx->T * fx->B * sizeof(int));
    fx->targets = malloc(fx->T * fx->B * sizeof(int));
    for (int i = 0; i < fx->T * fx->B; i++) {
        fx->inputs[i] = (int)in[i];
        fx->targets[i] = (int)tg[i];
    }
    free(in);
    free(tg);
}

static void fixture_load(Fixture *fx) {
    fixture_load_from(fx, FIXTURE);
}

static void fixture_free(Fixture *fx) {
    model_free(&fx->model);
    st_close(&fx->file);
    free(fx->inputs);
    free(fx->targets);
}

START_TEST(test_forward_matches_pytorch) {
    Fixture fx;
    fixture_load(&fx);
    const ModelConfig *c = &fx.model.config;
    LstmWorkspace ws;
    char err[512];
    ck_assert_int_eq(lstm_workspace_alloc(&ws, c, fx.T, fx.B, 0, err), 0);
    lstm_state_reset(&ws);
    lstm_forward(&fx.model, &ws, fx.inputs, NULL, 0.0f, NULL, 1.0f);
    int64_t lshape[3] = {fx.T, fx.B, c->vocab_size};
    float *want = tu_fixture_tensor(&fx.file, "logits", 3, lshape);
    for (int i = 0; i < fx.T * fx.B * c->vocab_size; i++)
        ck_assert_msg(fabsf(ws.logits[i] - want[i]) <= 1e-5f * fabsf(want[i]) + 1e-6f,
                      "logit %d: got %.9g, PyTorch %.9g", i, ws.logits[i], want[i]);

    int64_t one = 1;
    float *want_loss = tu_fixture_tensor(&fx.file, "loss", 1, &one);
    lstm_state_reset(&ws);
    float loss =
        lstm_forward(&fx.model, &ws, fx.inputs, fx.targets, 0.0f, NULL, (float)(fx.T * fx.B));
    ck_assert_msg(fabsf(loss - want_loss[0]) <= 1e-5f * want_loss[0], "loss %.9g vs PyTorch %.9g",
                  loss, want_loss[0]);
    free(want);
    free(want_loss);
    lstm_workspace_free(&ws);
    fixture_free(&fx);
}
END_TEST

START_TEST(test_backward_matches_pytorch) {
    Fixture fx;
    fixture_load(&fx);
    const ModelConfig *c = &fx.model.config;
    LstmWorkspace ws;
    char err[512];
    ck_assert_int_eq(lstm_workspace_alloc(&ws, c, fx.T, fx.B, 0, err), 0);
    float norm = (float)(fx.T * fx.B);
    float *grads = calloc(fx.model.num_params, sizeof(float));
    lstm_state_reset(&ws);
    lstm_forward(&fx.model, &ws, fx.inputs, fx.targets, 0.0f, NULL, norm);
    lstm_backward(&fx.model, &ws, fx.inputs, fx.targets, norm, grads);

    ModelTensor mt[MODEL_MAX_TENSORS];
    int nt = model_tensors(c, mt);
    for (int i = 0; i < nt; i++) {
        char name[80];
        snprintf(name, sizeof(name), "grad.%s", mt[i].name);
        float *want = tu_fixture_tensor(&fx.file, name, mt[i].ndim, mt[i].shape);
        float scale = 0;
        for (size_t k = 0; k < mt[i].count; k++) scale = fmaxf(scale, fabsf(want[k]));
        ck_assert_msg(scale > 0, "%s: PyTorch gradient is all zero", name);
        for (size_t k = 0; k < mt[i].count; k++) {
            float got = grads[mt[i].offset + k];
            ck_assert_msg(fabsf(got - want[k]) <= 1e-4f * scale, "%s[%zu]: got %.9g, PyTorch %.9g",
                          name, k, got, want[k]);
        }
        free(want);
    }
    free(grads);
    lstm_workspace_free(&ws);
    fixture_free(&fx);
}
END_TEST

/* Loss in double-checked float arithmetic for the finite-difference check. */
static double batch_loss(const Model *m, LstmWorkspace *ws, const int *in, const int *tg) {
    lstm_state_reset(ws);
    return lstm_forward(m, ws, in, tg, 0.0f, NULL, (float)(ws->T * ws->B));
}

START_TEST(test_gradients_match_finite_differences) {
    // A tiny 2-layer model; central differences in float need a fairly large step, so
    // the comparison is relative to each tensor's largest gradient.
    ModelConfig c = {7, 5, 6, 2};
    Model m;
    char err[512];
    ck_assert_int_eq(model_init(&m, &c, 3, err), 0);
    for (size_t k = 0; k < m.num_params; k++) m.params[k] *= 2.0f; // livelier gates
    int T = 6, B = 3;
    int in[18], tg[18];
    for (int i = 0; i < T * B; i++) {
        in[i] = (i * 5 + 1) % c.vocab_size;
        tg[i] = (i * 3 + 2) % c.vocab_size;
    }
    LstmWorkspace ws;
    ck_assert_int_eq(lstm_workspace_alloc(&ws, &c, T, B, 0, err), 0);
    float *grads = calloc(m.num_params, sizeof(float));
    batch_loss(&m, &ws, in, tg);
    lstm_backward(&m, &ws, in, tg, (float)(T * B), grads);

    ModelTensor mt[MODEL_MAX_TENSORS];
    int nt = model_tensors(&c, mt);
    const float eps = 1e-2f;
    for (int i = 0; i < nt; i++) {
        float scale = 0, worst = 0;
        for (size_t k = 0; k < mt[i].count; k++)
            scale = fmaxf(scale, fabsf(grads[mt[i].offset + k]));
        ck_assert_msg(scale > 0, "%s: analytic gradient is all zero", mt[i].name);
        for (size_t k = 0; k < mt[i].count; k++) {
            float *p = &m.params[mt[i].offset + k], saved = *p;
            *p = saved + eps;
            double up = batch_loss(&m, &ws, in, tg);
            *p = saved - eps;
            double down = batch_loss(&m, &ws, in, tg);
            *p = saved;
            float numeric = (float)((up - down) / (2 * eps));
            worst = fmaxf(worst, fabsf(numeric - grads[mt[i].offset + k]));
        }
        ck_assert_msg(worst <= 2e-2f * scale, "%s: worst |numeric - analytic| %.3g, scale %.3g",
                      mt[i].name, worst, scale);
    }
    free(grads);
    lstm_workspace_free(&ws);
    model_free(&m);
}
END_TEST

START_TEST(test_carried_state_equals_one_long_pass) {
    // Scoring a sequence in two chunks with the state carried must equal one pass.
    ModelConfig c = {9, 4, 8, 2};
    Model m;
    char err[512];
    ck_assert_int_eq(model_init(&m, &c, 11, err), 0);
    int ids[13];
    for (int i = 0; i < 13; i++) ids[i] = (i * 7 + 3) % c.vocab_size;
    LstmWorkspace whole, parts;
    ck_assert_int_eq(lstm_workspace_alloc(&whole, &c, 12, 1, 0, err), 0);
    ck_assert_int_eq(lstm_workspace_alloc(&parts, &c, 8, 1, 0, err), 0);
    lstm_state_reset(&whole);
    double one = lstm_forward(&m, &whole, ids, ids + 1, 0.0f, NULL, 1.0f);
    lstm_state_reset(&parts);
    double two = lstm_forward(&m, &parts, ids, ids + 1, 0.0f, NULL, 1.0f);
    lstm_state_carry(&parts);
    parts.T = 4;
    two += lstm_forward(&m, &parts, ids + 8, ids + 9, 0.0f, NULL, 1.0f);
    ck_assert_msg(fabs(one - two) < 1e-5 * one, "one pass %.9g, two chunks %.9g", one, two);
    lstm_workspace_free(&whole);
    lstm_workspace_free(&parts);
    model_free(&m);
}
END_TEST

START_TEST(test_dropout_masks_scale_kept_units) {
    ModelConfig c = {5, 3, 32, 2};
    Model m;
    char err[512];
    ck_assert_int_eq(model_init(&m, &c, 5, err), 0);
    LstmWorkspace ws;
    ck_assert_int_eq(lstm_workspace_alloc(&ws, &c, 4, 8, 1, err), 0);
    int in[32] = {0}, tg[32] = {0};
    Rng rng;
    rng_seed(&rng, 1);
    lstm_state_reset(&ws);
    lstm_forward(&m, &ws, in, tg, 0.25f, &rng, 32.0f);
    int zeros = 0, n = 4 * 8 * 32;
    for (int k = 0; k < n; k++) {
        ck_assert(ws.mask[k] == 0.0f || fabsf(ws.mask[k] - 1.0f / 0.75f) < 1e-6f);
        zeros += ws.mask[k] == 0.0f;
    }
    ck_assert_msg(zeros > n / 8 && zeros < n * 3 / 8, "%d of %d dropped at p = 0.25", zeros, n);
    lstm_workspace_free(&ws);
    model_free(&m);
}
END_TEST

/* Runs one case of the regularisation fixture: the masks it stores go into a regularised
 * workspace (var = 0: embedding dropout only), then forward and backward are compared
 * with PyTorch's "<prefix>.*" tensors. */
static void check_reg_case(const char *prefix, int var) {
    Fixture fx;
    fixture_load_from(&fx, REG_FIXTURE);
    const ModelConfig *c = &fx.model.config;
    int B = fx.B, E = c->embed, H = c->hidden, L = c->layers, V = c->vocab_size;
    LstmWorkspace ws;
    char err[512], name[96];
    ck_assert_int_eq(lstm_workspace_alloc(&ws, c, fx.T, B, 0, err), 0);
    ck_assert_int_eq(lstm_workspace_regularise(&ws, 1, var, err), 0);
    int64_t v_shape[1] = {V}, in_shape[2] = {B, E}, mid_shape[3] = {L - 1, B, H},
            out_shape[2] = {B, H};
    ck_assert_int_eq(st_read(&fx.file, "emb_mask", 1, v_shape, ws.emb_mask, err), 0);
    if (var) {
        ck_assert_int_eq(st_read(&fx.file, "var_in", 2, in_shape, ws.var_in, err), 0);
        ck_assert_int_eq(st_read(&fx.file, "var_mid", 3, mid_shape, ws.var_mid, err), 0);
        ck_assert_int_eq(st_read(&fx.file, "var_out", 2, out_shape, ws.var_out, err), 0);
    }
    float norm = (float)(fx.T * B);
    lstm_state_reset(&ws);
    float loss = lstm_forward(&fx.model, &ws, fx.inputs, NULL, 0.0f, NULL, norm);
    int64_t lshape[3] = {fx.T, B, V}, one = 1;
    snprintf(name, sizeof(name), "%s.logits", prefix);
    float *want = tu_fixture_tensor(&fx.file, name, 3, lshape), worst_logit = 0;
    for (int i = 0; i < fx.T * B * V; i++) {
        float d = fabsf(ws.logits[i] - want[i]);
        worst_logit = fmaxf(worst_logit, d);
        ck_assert_msg(d <= 1e-5f * fabsf(want[i]) + 1e-6f, "%s logit %d: got %.9g, PyTorch %.9g",
                      prefix, i, ws.logits[i], want[i]);
    }
    free(want);
    snprintf(name, sizeof(name), "%s.loss", prefix);
    float *want_loss = tu_fixture_tensor(&fx.file, name, 1, &one);
    lstm_state_reset(&ws);
    loss = lstm_forward(&fx.model, &ws, fx.inputs, fx.targets, 0.0f, NULL, norm);
    ck_assert_msg(fabsf(loss - want_loss[0]) <= 1e-5f * want_loss[0], "%s loss %.9g vs %.9g",
                  prefix, loss, want_loss[0]);
    float *grads = calloc(fx.model.num_params, sizeof(float));
    lstm_backward(&fx.model, &ws, fx.inputs, fx.targets, norm, grads);

    ModelTensor mt[MODEL_MAX_TENSORS];
    int nt = model_tensors(c, mt);
    float worst_grad = 0; // relative to the tensor's scale
    for (int i = 0; i < nt; i++) {
        snprintf(name, sizeof(name), "%s.grad.%s", prefix, mt[i].name);
        want = tu_fixture_tensor(&fx.file, name, mt[i].ndim, mt[i].shape);
        float scale = 0;
        for (size_t k = 0; k < mt[i].count; k++) scale = fmaxf(scale, fabsf(want[k]));
        ck_assert_msg(scale > 0, "%s: PyTorch gradient is all zero", name);
        for (size_t k = 0; k < mt[i].count; k++) {
            float got = grads[mt[i].offset + k], d = fabsf(got - want[k]);
            worst_grad = fmaxf(worst_grad, d / scale);
            ck_assert_msg(d <= 1e-4f * scale, "%s[%zu]: got %.9g, PyTorch %.9g", name, k, got,
                          want[k]);
            // A dropped embedding row takes no gradient at all.
            if (i == 0 && ws.emb_mask[k / E] == 0.0f) ck_assert_float_eq(got, 0.0f);
        }
        free(want);
    }
    printf("reg parity %s: loss %.9g vs %.9g, worst logit diff %.3g, worst gradient diff %.3g "
           "of the tensor's scale\n",
           prefix, loss, want_loss[0], worst_logit, worst_grad);
    free(want_loss);
    free(grads);
    lstm_workspace_free(&ws);
    fixture_free(&fx);
}

START_TEST(test_embedding_dropout_matches_pytorch) {
    check_reg_case("emb", 0);
}
END_TEST

START_TEST(test_variational_dropout_matches_pytorch) {
    check_reg_case("all", 1);
}
END_TEST

START_TEST(test_variational_masks_are_shared_across_time_and_multiply_with_dropout) {
    ModelConfig c = {5, 3, 16, 2};
    Model m;
    char err[512];
    ck_assert_int_eq(model_init(&m, &c, 5, err), 0);
    int T = 6, B = 4, BH = B * c.hidden;
    LstmWorkspace ws;
    ck_assert_int_eq(lstm_workspace_alloc(&ws, &c, T, B, 1, err), 0);
    ck_assert_int_eq(lstm_workspace_regularise(&ws, 0, 1, err), 0);
    Rng rng;
    rng_seed(&rng, 9);
    lstm_dropout_mask(ws.var_in, (size_t)B * c.embed, 0.5f, &rng);
    lstm_dropout_mask(ws.var_mid, BH, 0.5f, &rng);
    lstm_dropout_mask(ws.var_out, BH, 0.5f, &rng);
    int in[24] = {0}, tg[24] = {0};
    lstm_state_reset(&ws);
    lstm_forward(&m, &ws, in, tg, 0.25f, &rng, 24.0f);
    const float *top_h = ws.h + (size_t)(T + 1) * BH + BH; // layer 1, steps 1 .. T
    int both = 0;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < BH; k++) {
            float mask = ws.mask[t * BH + k], var = ws.var_mid[k];
            // Kept units carry 1/(1-0.25) * 1/(1-0.5); a unit either mask drops stays dropped.
            ck_assert(mask == 0.0f || (var != 0.0f && fabsf(mask - var / 0.75f) < 1e-6f));
            if (var == 0.0f) ck_assert_float_eq(mask, 0.0f);
            both += mask != 0.0f;
            ck_assert_float_eq(ws.top[t * BH + k], top_h[t * BH + k] * ws.var_out[k]);
        }
    ck_assert_msg(both > 0 && both < T * BH / 2, "%d of %d units kept", both, T * BH);
    lstm_workspace_free(&ws);
    model_free(&m);
}
END_TEST

START_TEST(test_dropout_mask_keeps_about_1_minus_p) {
    float mask[4000];
    Rng rng;
    rng_seed(&rng, 3);
    lstm_dropout_mask(mask, 4000, 0.3f, &rng);
    int zeros = 0;
    for (int k = 0; k < 4000; k++) {
        ck_assert(mask[k] == 0.0f || fabsf(mask[k] - 1.0f / 0.7f) < 1e-6f);
        zeros += mask[k] == 0.0f;
    }
    ck_assert_msg(zeros > 1050 && zeros < 1350, "%d of 4000 dropped at p = 0.3", zeros);
}
END_TEST

int main(void) {
    Suite *s = suite_create("lstm");
    TCase *tc = tcase_create("lstm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_forward_matches_pytorch);
    tcase_add_test(tc, test_backward_matches_pytorch);
    tcase_add_test(tc, test_gradients_match_finite_differences);
    tcase_add_test(tc, test_carried_state_equals_one_long_pass);
    tcase_add_test(tc, test_dropout_masks_scale_kept_units);
    tcase_add_test(tc, test_embedding_dropout_matches_pytorch);
    tcase_add_test(tc, test_variational_dropout_matches_pytorch);
    tcase_add_test(tc, test_variational_masks_are_shared_across_time_and_multiply_with_dropout);
    tcase_add_test(tc, test_dropout_mask_keeps_about_1_minus_p);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
