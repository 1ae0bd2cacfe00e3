/*
 * GPT forward/backward and AdamW: parity with PyTorch on the committed fixtures
 * (tests/reference/make_gpt_fixture.py: LayerNorm with biases, RMSNorm without, dropout
 * masks drawn by the script and injected), a finite-difference check of every tensor, the
 * tensor table and GPT-2's init, and the config checks.
 *
 * Tolerances: logits and loss within 1e-5 relative (plus 1e-6 absolute for values near
 * zero); gradients within 1e-4 of the tensor's largest gradient; parameters after each of
 * three clipped AdamW steps within 1e-5 relative or 1e-4 of the tensor's largest value,
 * except the few whose gradient is rounding noise (see check_adamw). Finite differences
 * (step 1e-3 on a float loss) within 1e-2 of the tensor's largest gradient plus 2e-4, the
 * noise floor of such a difference. Each check prints the largest error it saw.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "optim.h"
#include "safetensors.h"
#include "testutil.h"

#define FIXTURE_DIR CHARLM_SOURCE_DIR "/tests/reference/"

typedef struct {
    StFile file;
    Gpt model;
    int T, B;
    int *inputs, *targets; // [B, T]
    float *mask[4];        // emb, attn, attn_resid, mlp_resid
    GptMasks masks;
    GptTensor *t;
    int nt;
} Fixture;

static float meta_float(const StFile *f, const char *key) {
    return strtof(tu_fixture_meta(f, key), NULL);
}

static void read_params(Fixture *fx, const char *prefix) {
    char err[512], name[96];
    for (int i = 0; i < fx->nt; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, fx->t[i].name);
        ck_assert_msg(st_read(&fx->file, name, fx->t[i].ndim, fx->t[i].shape,
                              fx->model.params + fx->t[i].offset, err) == 0,
                      "%s", err);
    }
}

static void fixture_load(Fixture *fx, const char *file) {
    char err[512], path[512];
    snprintf(path, sizeof path, "%s%s", FIXTURE_DIR, file);
    ck_assert_msg(st_open(&fx->file, path, err) == 0, "%s", err);
    const StFile *f = &fx->file;
    GptConfig c = {(int)tu_fixture_long(f, "vocab_size"),
                   (int)tu_fixture_long(f, "layers"),
                   (int)tu_fixture_long(f, "heads"),
                   (int)tu_fixture_long(f, "embed"),
                   (int)tu_fixture_long(f, "block"),
                   strcmp(tu_fixture_meta(f, "norm"), "rmsnorm") == 0 ? GPT_RMSNORM : GPT_LAYERNORM,
                   (int)tu_fixture_long(f, "bias")};
    fx->T = (int)tu_fixture_long(f, "seq");
    fx->B = (int)tu_fixture_long(f, "batch");
    ck_assert_msg(gpt_alloc(&fx->model, &c, err) == 0, "%s", err);
    fx->t = malloc(GPT_MAX_TENSORS * sizeof *fx->t);
    fx->nt = gpt_tensors(&c, fx->t);
    read_params(fx, "");
    int64_t bt[2] = {fx->B, fx->T};
    float *in = tu_fixture_tensor(f, "inputs", 2, bt), *tg = tu_fixture_tensor(f, "targets", 2, bt);
    fx->inputs = malloc(fx->B * fx->T * sizeof(int));
    fx->targets = malloc(fx->B * fx->T * sizeof(int));
    for (int i = 0; i < fx->B * fx->T; i++) {
        fx->inputs[i] = (int)in[i];
        fx->targets[i] = (int)tg[i];
    }
    free(in);
    free(tg);
    int64_t L = c.layers, B = fx->B, T = fx->T, C = c.embed, NH = c.heads;
    int64_t emb[3] = {B, T, C}, att[5] = {L, B, NH, T, T}, res[4] = {L, B, T, C};
    fx->mask[0] = tu_fixture_tensor(f, "mask.emb", 3, emb);
    fx->mask[1] = tu_fixture_tensor(f, "mask.attn", 5, att);
    fx->mask[2] = tu_fixture_tensor(f, "mask.attn_resid", 4, res);
    fx->mask[3] = tu_fixture_tensor(f, "mask.mlp_resid", 4, res);
    fx->masks = (GptMasks){fx->mask[0], fx->mask[1], fx->mask[2], fx->mask[3]};
}

static void fixture_free(Fixture *fx) {
    gpt_free(&fx->model);
    st_close(&fx->file);
    free(fx->inputs);
    free(fx->targets);
    for (int i = 0; i < 4; i++) free(fx->mask[i]);
    free(fx->t);
}

/* Largest |got - want| over n entries, failing past tol(want) = rel |want| + abs. */
static float compare(const char *what, const float *got, const float *want, size_t n, float rel,
                     float abs) {
    float worst = 0;
    for (size_t k = 0; k < n; k++) {
        float d = fabsf(got[k] - want[k]);
        worst = fmaxf(worst, d);
        ck_assert_msg(d <= rel * fabsf(want[k]) + abs, "%s[%zu]: got %.9g, PyTorch %.9g", what, k,
                      got[k], want[k]);
    }
    return worst;
}

static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t k = 0; k < n; k++) m = fmaxf(m, fabsf(x[k]));
    return m;
}

static void check_forward(const char *file) {
    Fixture fx;
    fixture_load(&fx, file);
    const GptConfig *c = &fx.model.config;
    GptWorkspace ws;
    char err[512];
    // Room for the whole block, used for the fixture's T (shorter in the RMSNorm one).
    ck_assert_msg(gpt_workspace_alloc(&ws, c, c->block, fx.B, err) == 0, "%s", err);
    ws.T = fx.T;
    float norm = (float)(fx.B * fx.T);
    gpt_forward(&fx.model, &ws, fx.inputs, NULL, &fx.masks, norm);
    int64_t lshape[3] = {fx.B, fx.T, c->vocab_size}, one = 1;
    float *want = tu_fixture_tensor(&fx.file, "logits", 3, lshape);
    size_t n = (size_t)fx.B * fx.T * c->vocab_size;
    float worst = compare("logits", ws.logits, want, n, 1e-5f, 1e-6f);
    float *want_loss = tu_fixture_tensor(&fx.file, "loss", 1, &one);
    float loss = gpt_forward(&fx.model, &ws, fx.inputs, fx.targets, &fx.masks, norm);
    ck_assert_msg(fabsf(loss - want_loss[0]) <= 1e-5f * want_loss[0], "loss %.9g vs PyTorch %.9g",
                  loss, want_loss[0]);
    // Without the masks the numbers differ: the masks really are applied.
    float plain = gpt_forward(&fx.model, &ws, fx.inputs, fx.targets, NULL, norm);
    ck_assert_msg(fabsf(plain - loss) > 1e-3f, "loss %.9g with masks, %.9g without", loss, plain);
    printf("%s forward: loss %.9g vs %.9g, worst logit diff %.3g\n", file, loss, want_loss[0],
           worst);
    free(want);
    free(want_loss);
    gpt_workspace_free(&ws);
    fixture_free(&fx);
}

/* Compares grads with the fixture's "grad.*"; returns the worst difference relative to
 * each tensor's scale. */
static float compare_grads(Fixture *fx, const float *grads) {
    char name[96];
    float worst = 0;
    for (int i = 0; i < fx->nt; i++) {
        const GptTensor *t = &fx->t[i];
        snprintf(name, sizeof name, "grad.%s", t->name);
        float *want = tu_fixture_tensor(&fx->file, name, t->ndim, t->shape);
        float scale = max_abs(want, t->count);
        ck_assert_msg(scale > 0, "%s: PyTorch gradient is all zero", name);
        float d = compare(name, grads + t->offset, want, t->count, 0.0f, 1e-4f * scale);
        worst = fmaxf(worst, d / scale);
        free(want);
    }
    return worst;
}

static void check_backward(const char *file) {
    Fixture fx;
    fixture_load(&fx, file);
    GptWorkspace ws;
    char err[512];
    ck_assert_msg(gpt_workspace_alloc(&ws, &fx.model.config, fx.model.config.block, fx.B, err) == 0,
                  "%s", err);
    ws.T = fx.T;
    float norm = (float)(fx.B * fx.T);
    float *grads = calloc(fx.model.num_params, sizeof(float));
    gpt_forward(&fx.model, &ws, fx.inputs, fx.targets, &fx.masks, norm);
    gpt_backward(&fx.model, &ws, fx.inputs, fx.targets, norm, grads);
    float worst = compare_grads(&fx, grads);
    int64_t one = 1;
    float *want_norm = tu_fixture_tensor(&fx.file, "grad_norm", 1, &one);
    float got_norm = optim_clip(grads, fx.model.num_params, 0.0f);
    ck_assert_msg(fabsf(got_norm - want_norm[0]) <= 1e-5f * want_norm[0],
                  "gradient norm %.9g vs PyTorch %.9g", got_norm, want_norm[0]);
    printf("%s backward: worst gradient diff %.3g of the tensor's scale, norm %.9g vs %.9g\n", file,
           worst, got_norm, want_norm[0]);
    free(want_norm);
    free(grads);
    gpt_workspace_free(&ws);
    fixture_free(&fx);
}

static void check_adamw(const char *file) {
    Fixture fx;
    fixture_load(&fx, file);
    const StFile *f = &fx.file;
    GptWorkspace ws;
    Adam adam;
    char err[512], name[96];
    ck_assert_msg(gpt_workspace_alloc(&ws, &fx.model.config, fx.T, fx.B, err) == 0, "%s", err);
    size_t n = fx.model.num_params;
    ck_assert_int_eq(adam_init(&adam, n, err), 0);
    adam.beta1 = meta_float(f, "beta1");
    adam.beta2 = meta_float(f, "beta2");
    adam.eps = meta_float(f, "eps");
    float lr = meta_float(f, "lr"), wd = meta_float(f, "weight_decay"),
          clip = meta_float(f, "clip");
    float norm = (float)(fx.B * fx.T), worst = 0;
    int noise = 0;
    float *grads = malloc(n * sizeof(float));
    for (int step = 1; step <= 3; step++) {
        memset(grads, 0, n * sizeof(float));
        float loss = gpt_forward(&fx.model, &ws, fx.inputs, fx.targets, &fx.masks, norm);
        int64_t one = 1;
        snprintf(name, sizeof name, "step%d.loss", step);
        float *want_loss = tu_fixture_tensor(f, name, 1, &one);
        ck_assert_msg(fabsf(loss - want_loss[0]) <= 1e-5f * want_loss[0],
                      "step %d loss %.9g vs PyTorch %.9g", step, loss, want_loss[0]);
        free(want_loss);
        gpt_backward(&fx.model, &ws, fx.inputs, fx.targets, norm, grads);
        float gnorm = optim_clip(grads, n, clip);
        ck_assert_msg(step > 1 || gnorm > clip, "step 1's norm %.4g does not reach the clip",
                      gnorm);
        adam_begin(&adam);
        for (int i = 0; i < fx.nt; i++)
            adam_update(&adam, fx.model.params, grads, fx.t[i].offset,
                        fx.t[i].offset + fx.t[i].count, lr, fx.t[i].decay ? wd : 0.0f);
        for (int i = 0; i < fx.nt; i++) {
            const GptTensor *t = &fx.t[i];
            snprintf(name, sizeof name, "step%d.%s", step, t->name);
            float *want = tu_fixture_tensor(f, name, t->ndim, t->shape);
            snprintf(name, sizeof name, "grad.%s", t->name);
            float *grad1 = tu_fixture_tensor(f, name, t->ndim, t->shape);
            float scale = max_abs(want, t->count), grad_scale = max_abs(grad1, t->count);
            const float *got = fx.model.params + t->offset;
            for (size_t k = 0; k < t->count; k++) {
                float d = fabsf(got[k] - want[k]);
                // c_attn's key biases shift a whole row of scores, which softmax ignores:
                // their gradient is rounding noise (~1e-9), which Adam (eps 1e-8) turns into
                // steps of up to lr that differ between any two implementations. Those
                // entries only have to stay within an Adam step per step of PyTorch's.
                if (grad1[k] != 0.0f && fabsf(grad1[k]) < 1e-6f * grad_scale) {
                    noise++;
                    ck_assert_msg(d <= 2.0f * lr * (float)step,
                                  "%s[%zu] (noise gradient): got "
                                  "%.9g, PyTorch %.9g",
                                  name, k, got[k], want[k]);
                    continue;
                }
                worst = fmaxf(worst, d / scale);
                ck_assert_msg(d <= fmaxf(1e-5f * fabsf(want[k]), 1e-4f * scale),
                              "step%d.%s[%zu]: got %.9g, PyTorch %.9g", step, t->name, k, got[k],
                              want[k]);
            }
            free(grad1);
            free(want);
        }
    }
    printf("%s AdamW: 3 steps, worst parameter diff %.3g of the tensor's scale (%d entries with "
           "a noise gradient held to lr per step)\n",
           file, worst, noise / 3);
    free(grads);
    adam_free(&adam);
    gpt_workspace_free(&ws);
    fixture_free(&fx);
}

START_TEST(test_layernorm_forward_matches_pytorch) {
    check_forward("gpt_layernorm.safetensors");
}
END_TEST

START_TEST(test_rmsnorm_forward_matches_pytorch) {
    check_forward("gpt_rmsnorm.safetensors");
}
END_TEST

START_TEST(test_layernorm_backward_matches_pytorch) {
    check_backward("gpt_layernorm.safetensors");
}
END_TEST

START_TEST(test_rmsnorm_backward_matches_pytorch) {
    check_backward("gpt_rmsnorm.safetensors");
}
END_TEST

START_TEST(test_layernorm_adamw_steps_match_pytorch) {
    check_adamw("gpt_layernorm.safetensors");
}
END_TEST

START_TEST(test_rmsnorm_adamw_steps_match_pytorch) {
    check_adamw("gpt_rmsnorm.safetensors");
}
END_TEST

static double batch_loss(const Gpt *m, GptWorkspace *ws, const int *in, const int *tg) {
    return gpt_forward(m, ws, in, tg, NULL, (float)(ws->B * ws->T));
}

/* Central differences on a few entries of every tensor of a tiny model without dropout
 * (both norms, with and without biases), its weights livened up as the fixtures' are. */
static void check_finite_differences(int norm, int bias) {
    GptConfig c = {7, 2, 2, 8, 6, norm, bias};
    Gpt m;
    char err[512];
    ck_assert_msg(gpt_init(&m, &c, 17, err) == 0, "%s", err);
    for (size_t k = 0; k < m.num_params; k++) m.params[k] = m.params[k] * 4.0f;
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    int nt = gpt_tensors(&c, t);
    for (int i = 0; i < nt; i++) // norm weights and biases off their 1 and 0
        if (t[i].ndim == 1)
            for (size_t k = 0; k < t[i].count; k++)
                m.params[t[i].offset + k] += 0.3f * sinf((float)(7 * k + i));
    int B = 2, T = 5, in[10], tg[10];
    for (int i = 0; i < B * T; i++) {
        in[i] = (i * 5 + 1) % c.vocab_size;
        tg[i] = (i * 3 + 2) % c.vocab_size;
    }
    GptWorkspace ws;
    ck_assert_msg(gpt_workspace_alloc(&ws, &c, T, B, err) == 0, "%s", err);
    float *grads = calloc(m.num_params, sizeof(float));
    batch_loss(&m, &ws, in, tg);
    gpt_backward(&m, &ws, in, tg, (float)(B * T), grads);
    const float eps = 1e-3f;
    float worst_all = 0;
    for (int i = 0; i < nt; i++) {
        float scale = max_abs(grads + t[i].offset, t[i].count), worst = 0;
        // wpe's rows past T take no gradient; every other tensor must.
        ck_assert_msg(scale > 0, "%s: analytic gradient is all zero", t[i].name);
        size_t stride = t[i].count / 8 + 1;
        for (size_t k = 0; k < t[i].count; k += stride) {
            float *p = &m.params[t[i].offset + k], saved = *p;
            *p = saved + eps;
            double up = batch_loss(&m, &ws, in, tg);
            *p = saved - eps;
            double down = batch_loss(&m, &ws, in, tg);
            *p = saved;
            float numeric = (float)((up - down) / (2 * eps));
            worst = fmaxf(worst, fabsf(numeric - grads[t[i].offset + k]));
        }
        ck_assert_msg(worst <= 1e-2f * scale + 2e-4f,
                      "norm %d, bias %d, %s: worst |numeric - analytic| %.3g, scale %.3g", norm,
                      bias, t[i].name, worst, scale);
        worst_all = fmaxf(worst_all, worst / scale);
    }
    printf("finite differences (norm %d, bias %d): worst %.3g of the tensor's scale\n", norm, bias,
           worst_all);
    free(grads);
    free(t);
    gpt_workspace_free(&ws);
    gpt_free(&m);
}

START_TEST(test_gradients_match_finite_differences) {
    check_finite_differences(GPT_LAYERNORM, 1);
    check_finite_differences(GPT_LAYERNORM, 0);
    check_finite_differences(GPT_RMSNORM, 1);
}
END_TEST

START_TEST(test_tensor_table_names_and_tiles_the_buffer) {
    GptConfig c = {11, 3, 2, 16, 8, GPT_LAYERNORM, 1};
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    int n = gpt_tensors(&c, t);
    ck_assert_int_eq(n, 4 + 12 * 3);
    ck_assert_str_eq(t[0].name, "transformer.wte.weight");
    ck_assert_str_eq(t[1].name, "transformer.wpe.weight");
    ck_assert_int_eq(t[1].shape[0], 8);
    ck_assert_str_eq(t[4].name, "transformer.h.0.attn.c_attn.weight");
    ck_assert_int_eq(t[4].shape[0], 48);
    ck_assert_int_eq(t[4].shape[1], 16);
    ck_assert_str_eq(t[12].name, "transformer.h.0.mlp.c_proj.weight");
    ck_assert_int_eq(t[12].shape[0], 16);
    ck_assert_int_eq(t[12].shape[1], 64);
    ck_assert_str_eq(t[n - 1].name, "transformer.ln_f.bias");
    // Every float of the buffer belongs to exactly one tensor.
    size_t total = gpt_param_count(&c);
    char *seen = calloc(total, 1);
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < t[i].count; k++) {
            ck_assert(t[i].offset + k < total);
            ck_assert_int_eq(seen[t[i].offset + k]++, 0);
        }
    for (size_t k = 0; k < total; k++) ck_assert_int_eq(seen[k], 1);
    // Without biases, and RMSNorm never has norm biases: weights only.
    c.bias = 0;
    n = gpt_tensors(&c, t);
    ck_assert_int_eq(n, 3 + 6 * 3);
    ck_assert_str_eq(t[n - 1].name, "transformer.ln_f.weight");
    c.bias = 1;
    c.norm = GPT_RMSNORM;
    n = gpt_tensors(&c, t);
    ck_assert_int_eq(n, 3 + 10 * 3);
    ck_assert_str_eq(t[3].name, "transformer.h.0.attn.c_attn.weight");
    Gpt m;
    char err[512];
    ck_assert_int_eq(gpt_alloc(&m, &c, err), 0);
    ck_assert_ptr_null(m.w.ln1_b);
    ck_assert_ptr_null(m.w.lnf_b);
    ck_assert_ptr_eq(m.w.qkv_w, m.params + t[3].offset);
    gpt_free(&m);
    free(seen);
    free(t);
}
END_TEST

START_TEST(test_init_is_gpt2s) {
    GptConfig c = {65, 4, 4, 64, 32, GPT_LAYERNORM, 1};
    Gpt m;
    char err[512];
    ck_assert_int_eq(gpt_init(&m, &c, 5, err), 0);
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    int n = gpt_tensors(&c, t);
    for (int i = 0; i < n; i++) {
        const float *p = m.params + t[i].offset;
        double sum = 0, sq = 0;
        for (size_t k = 0; k < t[i].count; k++) {
            sum += p[k];
            sq += (double)p[k] * p[k];
        }
        double mean = sum / t[i].count, sd = sqrt(sq / t[i].count - mean * mean);
        if (t[i].ndim == 1) {
            float want = strstr(t[i].name, "ln_") && strstr(t[i].name, ".weight") ? 1.0f : 0.0f;
            for (size_t k = 0; k < t[i].count; k++) ck_assert_float_eq(p[k], want);
            continue;
        }
        double want = strstr(t[i].name, "c_proj.weight") ? 0.02 / sqrt(8.0) : 0.02;
        ck_assert_msg(fabs(sd - want) < 0.1 * want && fabs(mean) < 0.1 * want,
                      "%s: mean %.4g, sd %.4g, want sd %.4g", t[i].name, mean, sd, want);
        ck_assert(t[i].decay);
    }
    free(t);
    gpt_free(&m);
}
END_TEST

START_TEST(test_config_check_rejects_bad_sizes) {
    const struct {
        GptConfig c;
        const char *message;
    } cases[] = {
        {{0, 2, 2, 16, 8, GPT_LAYERNORM, 0}, "vocab_size 0"},
        {{11, 0, 2, 16, 8, GPT_LAYERNORM, 0}, "layers 0"},
        {{11, 2, 3, 16, 8, GPT_LAYERNORM, 0}, "heads 3 must divide embed 16"},
        {{11, 2, 0, 16, 8, GPT_LAYERNORM, 0}, "heads 0"},
        {{11, 2, 2, 0, 8, GPT_LAYERNORM, 0}, "embed 0"},
        {{11, 2, 2, 16, 0, GPT_LAYERNORM, 0}, "block 0"},
        {{11, 2, 2, 16, 8, 2, 0}, "norm 2"},
        {{11, 2, 2, 16, 8, GPT_RMSNORM, 2}, "bias 2"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        ck_assert_int_eq(gpt_config_check(&cases[i].c, err), -1);
        ck_assert_msg(strstr(err, cases[i].message) != NULL, "case %zu: '%s'", i, err);
    }
    GptConfig good = {11, 2, 2, 16, 8, GPT_RMSNORM, 1};
    ck_assert_int_eq(gpt_config_check(&good, err), 0);
    GptWorkspace ws;
    ck_assert_int_eq(gpt_workspace_alloc(&ws, &good, 9, 1, err), -1);
    ck_assert_msg(strstr(err, "block of 8") != NULL, "%s", err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gpt");
    TCase *tc = tcase_create("gpt");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_layernorm_forward_matches_pytorch);
    tcase_add_test(tc, test_rmsnorm_forward_matches_pytorch);
    tcase_add_test(tc, test_layernorm_backward_matches_pytorch);
    tcase_add_test(tc, test_rmsnorm_backward_matches_pytorch);
    tcase_add_test(tc, test_layernorm_adamw_steps_match_pytorch);
    tcase_add_test(tc, test_rmsnorm_adamw_steps_match_pytorch);
    tcase_add_test(tc, test_gradients_match_finite_differences);
    tcase_add_test(tc, test_tensor_table_names_and_tiles_the_buffer);
    tcase_add_test(tc, test_init_is_gpt2s);
    tcase_add_test(tc, test_config_check_rejects_bad_sizes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
