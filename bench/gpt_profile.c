/*
 * gpt_profile — where one GPT training step's time goes, on one thread.
 *
 *   gpt_profile [--layers 4] [--heads 4] [--embed 256] [--block 128] [--batch 32]
 *               [--vocab 65] [--norm layernorm|rmsnorm] [--bias 0|1] [--reps 3]
 *
 * Builds a GPT-2-initialised model of those shapes (core/gpt.h) over random tokens, no
 * dropout, and times:
 *   - the step as the trainer runs it: gpt_forward with the loss, gpt_backward, the clip
 *     and the AdamW update (nanoGPT's groups, core/optim.h);
 *   - the same forward and backward again, layer op by layer op (core/gpt_ops.h) on the
 *     same workspace, in gpt_train.c's order, with a clock around each op, summed by kind:
 *     Linear (the sgemm products and their bias loops), attention, norms, GELU, the loss
 *     (softmax + cross-entropy, and d(logits)), embeddings and residual adds.
 * Before timing, the op-by-op pass is checked to give gpt_forward's loss and gpt_backward's
 * gradients bit for bit, so its parts are the step's parts; its total is printed beside
 * the whole step's so the clocks' own cost shows. Each figure is the best of --reps
 * (the machine is shared). OpenBLAS runs on one thread.
 *
 * The attention loops' FLOPs count the causal products only (q k^T and att v for u <= t,
 * twice that backward), so their GFLOP/s compares with the sgemm rate beside it. Apart
 * from the step, the same products are timed as OpenBLAS sgemm over the full squares (what
 * attention's products would cost as sgemm, softmax aside). The last stdout line is JSON:
 * {"step_ms", "parts": {name: {"fwd_ms", "bwd_ms"}}, "attention_as_sgemm_ms", ...}.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpt.h"
#include "gpt_ops.h"
#include "optim.h"
#include "error.h"
#include "rng.h"

enum { P_LINEAR, P_ATTENTION, P_NORM, P_GELU, P_LOSS, P_EMBED, P_COUNT };
static const char *const PART_NAMES[P_COUNT] = {
    "Linear (sgemm)", "attention", "norms", "GELU", "loss (softmax, CE)", "embeddings, residual",
};
static const char *const PART_KEYS[P_COUNT] = {"linear", "attention", "norm",
                                               "gelu",   "loss",      "embed_resid"};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define TIMED(acc, call)                                                                           \
    do {                                                                                           \
        double t0_ = now();                                                                        \
        call;                                                                                      \
        (acc) += now() - t0_;                                                                      \
    } while (0)

// gpt_forward without dropout, op by op, each op's time added to t[part].
static float mirror_forward(const Gpt *m, GptWorkspace *ws, const int *inputs, const int *targets,
                            double *t) {
    const GptConfig *c = &m->config;
    const GptWeights *w = &m->w;
    int B = ws->B, T = ws->T, C = c->embed, V = c->vocab_size, NH = c->heads, N = B * T;
    int rms = c->norm == GPT_RMSNORM;
    size_t NC = (size_t)N * C, C3 = 3 * (size_t)C, C4 = 4 * (size_t)C;
    size_t att_n = (size_t)B * NH * T * T;
    double t0 = now();
    for (int b = 0; b < B; b++)
        for (int p = 0; p < T; p++) {
            size_t row = (size_t)b * T + p;
            const float *te = w->wte + (size_t)inputs[row] * C, *pe = w->wpe + (size_t)p * C;
            float *x = ws->resid + row * C;
            for (int j = 0; j < C; j++) x[j] = te[j] + pe[j];
        }
    t[P_EMBED] += now() - t0;
    for (int l = 0; l < c->layers; l++) {
        const float *x = ws->resid + l * NC;
        float *ln1 = ws->ln1 + l * NC, *qkv = ws->qkv + l * NC * 3, *atty = ws->atty + l * NC;
        float *mid = ws->resid_mid + l * NC, *ln2 = ws->ln2 + l * NC;
        float *fc = ws->fc + l * NC * 4, *fc_gelu = ws->fc_gelu + l * NC * 4;
        float *out = ws->resid + (l + 1) * NC;
        TIMED(t[P_NORM], gpt_norm_forward(ln1, ws->ln1_mean + (size_t)l * N,
                                          ws->ln1_rstd + (size_t)l * N, x, w->ln1_w + (size_t)l * C,
                                          w->ln1_b ? w->ln1_b + (size_t)l * C : NULL, N, C, rms));
        TIMED(t[P_LINEAR], gpt_linear_forward(qkv, ln1, w->qkv_w + l * C3 * C,
                                              w->qkv_b ? w->qkv_b + l * C3 : NULL, N, C, 3 * C));
        TIMED(t[P_ATTENTION], gpt_attention_forward(atty, ws->att + l * att_n, ws->att_tmp, qkv,
                                                    NULL, B, T, C, NH));
        TIMED(t[P_LINEAR],
              gpt_linear_forward(ws->tmp, atty, w->attn_w + (size_t)l * C * C,
                                 w->attn_b ? w->attn_b + (size_t)l * C : NULL, N, C, C));
        t0 = now();
        for (size_t i = 0; i < NC; i++) mid[i] = x[i] + ws->tmp[i];
        t[P_EMBED] += now() - t0;
        TIMED(t[P_NORM],
              gpt_norm_forward(ln2, ws->ln2_mean + (size_t)l * N, ws->ln2_rstd + (size_t)l * N, mid,
                               w->ln2_w + (size_t)l * C, w->ln2_b ? w->ln2_b + (size_t)l * C : NULL,
                               N, C, rms));
        TIMED(t[P_LINEAR], gpt_linear_forward(fc, ln2, w->fc_w + l * C4 * C,
                                              w->fc_b ? w->fc_b + l * C4 : NULL, N, C, 4 * C));
        TIMED(t[P_GELU], gpt_gelu_forward(fc_gelu, fc, (size_t)N * C4));
        TIMED(t[P_LINEAR],
              gpt_linear_forward(ws->tmp, fc_gelu, w->proj_w + l * C4 * C,
                                 w->proj_b ? w->proj_b + (size_t)l * C : NULL, N, 4 * C, C));
        t0 = now();
        for (size_t i = 0; i < NC; i++) out[i] = mid[i] + ws->tmp[i];
        t[P_EMBED] += now() - t0;
    }
    TIMED(t[P_NORM], gpt_norm_forward(ws->lnf, ws->lnf_mean, ws->lnf_rstd,
                                      ws->resid + c->layers * NC, w->lnf_w, w->lnf_b, N, C, rms));
    TIMED(t[P_LINEAR], gpt_linear_forward(ws->logits, ws->lnf, w->wte, NULL, N, C, V));
    // The loss as gpt_forward computes it (softmax left in logits for backward).
    t0 = now();
    double loss = 0.0;
    for (int i = 0; i < N; i++) {
        float *z = ws->logits + (size_t)i * V;
        float max = z[0];
        for (int v = 1; v < V; v++) max = fmaxf(max, z[v]);
        float target = z[targets[i]] - max;
        double sum = 0.0;
        for (int v = 0; v < V; v++) {
            z[v] = expf(z[v] - max);
            sum += z[v];
        }
        for (int v = 0; v < V; v++) z[v] = (float)(z[v] / sum);
        loss += log(sum) - target;
    }
    t[P_LOSS] += now() - t0;
    return (float)(loss / N);
}

// gpt_backward without dropout, op by op, into grads.
static void mirror_backward(const Gpt *m, GptWorkspace *ws, const int *inputs, const int *targets,
                            float *grads, double *t) {
    const GptConfig *c = &m->config;
    const GptWeights *w = &m->w;
    GptWeights g;
    gpt_point(&g, c, grads);
    int B = ws->B, T = ws->T, C = c->embed, V = c->vocab_size, NH = c->heads, N = B * T;
    int rms = c->norm == GPT_RMSNORM;
    size_t NC = (size_t)N * C, C3 = 3 * (size_t)C, C4 = 4 * (size_t)C;
    size_t att_n = (size_t)B * NH * T * T;
    float norm = (float)N;
    double t0 = now();
    for (int i = 0; i < N; i++) {
        float *z = ws->logits + (size_t)i * V;
        z[targets[i]] -= 1.0f;
        for (int v = 0; v < V; v++) z[v] /= norm;
    }
    t[P_LOSS] += now() - t0;
    TIMED(t[P_LINEAR],
          gpt_linear_backward(ws->dln, g.wte, NULL, ws->logits, ws->lnf, w->wte, N, C, V));
    TIMED(t[P_EMBED], memset(ws->dres, 0, NC * sizeof(float)));
    TIMED(t[P_NORM],
          gpt_norm_backward(ws->dres, g.lnf_w, g.lnf_b, ws->dln, ws->resid + c->layers * NC,
                            ws->lnf_mean, ws->lnf_rstd, w->lnf_w, N, C, rms));
    for (int l = c->layers - 1; l >= 0; l--) {
        // gpt_backward copies d(resid) through the (absent) dropout mask into tmp.
        TIMED(t[P_EMBED], memcpy(ws->tmp, ws->dres, NC * sizeof(float)));
        TIMED(t[P_LINEAR],
              gpt_linear_backward(ws->dwide, g.proj_w + l * C4 * C,
                                  g.proj_b ? g.proj_b + (size_t)l * C : NULL, ws->tmp,
                                  ws->fc_gelu + l * NC * 4, w->proj_w + l * C4 * C, N, 4 * C, C));
        TIMED(t[P_GELU], gpt_gelu_backward(ws->dwide, ws->fc + l * NC * 4, NC * 4));
        TIMED(t[P_LINEAR],
              gpt_linear_backward(ws->dln, g.fc_w + l * C4 * C, g.fc_b ? g.fc_b + l * C4 : NULL,
                                  ws->dwide, ws->ln2 + l * NC, w->fc_w + l * C4 * C, N, C, 4 * C));
        TIMED(t[P_NORM],
              gpt_norm_backward(ws->dres, g.ln2_w + (size_t)l * C,
                                g.ln2_b ? g.ln2_b + (size_t)l * C : NULL, ws->dln,
                                ws->resid_mid + l * NC, ws->ln2_mean + (size_t)l * N,
                                ws->ln2_rstd + (size_t)l * N, w->ln2_w + (size_t)l * C, N, C, rms));
        TIMED(t[P_EMBED], memcpy(ws->tmp, ws->dres, NC * sizeof(float)));
        TIMED(t[P_LINEAR],
              gpt_linear_backward(ws->dln, g.attn_w + (size_t)l * C * C,
                                  g.attn_b ? g.attn_b + (size_t)l * C : NULL, ws->tmp,
                                  ws->atty + l * NC, w->attn_w + (size_t)l * C * C, N, C, C));
        TIMED(t[P_ATTENTION],
              gpt_attention_backward(ws->dqkv, ws->att_tmp, ws->dln, ws->att + l * att_n,
                                     ws->qkv + l * NC * 3, NULL, B, T, C, NH));
        TIMED(t[P_LINEAR],
              gpt_linear_backward(ws->dln, g.qkv_w + l * C3 * C, g.qkv_b ? g.qkv_b + l * C3 : NULL,
                                  ws->dqkv, ws->ln1 + l * NC, w->qkv_w + l * C3 * C, N, C, 3 * C));
        TIMED(t[P_NORM],
              gpt_norm_backward(ws->dres, g.ln1_w + (size_t)l * C,
                                g.ln1_b ? g.ln1_b + (size_t)l * C : NULL, ws->dln,
                                ws->resid + l * NC, ws->ln1_mean + (size_t)l * N,
                                ws->ln1_rstd + (size_t)l * N, w->ln1_w + (size_t)l * C, N, C, rms));
    }
    t0 = now();
    for (int b = 0; b < B; b++)
        for (int p = 0; p < T; p++) {
            size_t row = (size_t)b * T + p;
            float *dte = g.wte + (size_t)inputs[row] * C, *dpe = g.wpe + (size_t)p * C;
            const float *d = ws->dres + row * C;
            for (int j = 0; j < C; j++) {
                dte[j] += d[j];
                dpe[j] += d[j];
            }
        }
    t[P_EMBED] += now() - t0;
}

// Clip and AdamW with nanoGPT's groups, as the trainer steps.
static void optim_run(Gpt *m, Adam *adam, float *grads, const GptTensor *tensors, int nt) {
    optim_clip(grads, m->num_params, 1.0f);
    adam_begin(adam);
    for (int i = 0; i < nt; i++)
        adam_update(adam, m->params, grads, tensors[i].offset, tensors[i].offset + tensors[i].count,
                    1e-3f, tensors[i].decay ? 0.1f : 0.0f);
}

/* Not part of the step: what attention's products would cost as sgemm, for comparison
 * with the loops. Per layer and (sequence, head), the full T x T squares (sgemm cannot
 * skip the masked half): forward S = Q K^T and Y = P V, backward dP = dY V^T, dV = P^T dY,
 * dQ = dS K and dK = dS^T Q, read in place from the [B, T, 3C] qkv rows (leading
 * dimension 3C). Returns seconds per step. */
static double attention_sgemm(const GptWorkspace *ws, float *tt, float *th) {
    int B = ws->B, T = ws->T, C = ws->config.embed, NH = ws->config.heads, hs = C / NH;
    int C3 = 3 * C;
    size_t att_n = (size_t)B * NH * T * T, NC = (size_t)B * T * C;
    double t0 = now();
    for (int l = 0; l < ws->config.layers; l++)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *q = ws->qkv + l * NC * 3 + (size_t)b * T * C3 + (size_t)h * hs;
                const float *k = q + C, *v = q + 2 * C;
                const float *p = ws->att + l * att_n + ((size_t)b * NH + h) * T * T;
                const float *dy = ws->dln + (size_t)b * T * C + (size_t)h * hs;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, q, C3, k, C3,
                            0.0f, tt, T);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, v, C3,
                            0.0f, th, hs);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, C, v, C3,
                            0.0f, tt, T);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, dy, C,
                            0.0f, th, hs);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, k, C3,
                            0.0f, th, hs);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, q, C3,
                            0.0f, th, hs);
            }
    return now() - t0;
}

static int parse_int(const char *flag, const char *v, int lo, int hi) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "gpt_profile: %s must be an integer in %d..%d\n", flag, lo, hi);
        exit(2);
    }
    return (int)x;
}

static double min_d(double a, double b) {
    return a < b ? a : b;
}

int main(int argc, char **argv) {
    GptConfig cfg = {
        .vocab_size = 65, .layers = 4, .heads = 4, .embed = 256, .block = 128, .norm = 0};
    int B = 32, reps = 3;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: gpt_profile [--layers L] [--heads NH] [--embed C] "
                            "[--block T] [--batch B] [--vocab V] [--norm layernorm|rmsnorm] "
                            "[--bias 0|1] [--reps N]\n");
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--layers"))
            cfg.layers = parse_int(f, v, 1, GPT_MAX_LAYERS);
        else if (!strcmp(f, "--heads"))
            cfg.heads = parse_int(f, v, 1, GPT_MAX_EMBED);
        else if (!strcmp(f, "--embed"))
            cfg.embed = parse_int(f, v, 1, GPT_MAX_EMBED);
        else if (!strcmp(f, "--block"))
            cfg.block = parse_int(f, v, 1, 4096);
        else if (!strcmp(f, "--batch"))
            B = parse_int(f, v, 1, 4096);
        else if (!strcmp(f, "--vocab"))
            cfg.vocab_size = parse_int(f, v, 2, 1 << 20);
        else if (!strcmp(f, "--bias"))
            cfg.bias = parse_int(f, v, 0, 1);
        else if (!strcmp(f, "--reps"))
            reps = parse_int(f, v, 1, 1000);
        else if (!strcmp(f, "--norm") && (!strcmp(v, "layernorm") || !strcmp(v, "rmsnorm")))
            cfg.norm = !strcmp(v, "rmsnorm") ? GPT_RMSNORM : GPT_LAYERNORM;
        else {
            fprintf(stderr, "gpt_profile: unknown flag or value %s %s\n", f, v);
            return 2;
        }
    }
    char err[ERR_LEN];
    Gpt model;
    GptWorkspace ws;
    Adam adam;
    if (gpt_init(&model, &cfg, 42, err) != 0 ||
        gpt_workspace_alloc(&ws, &cfg, cfg.block, B, err) != 0 ||
        adam_init(&adam, model.num_params, err) != 0) {
        fprintf(stderr, "gpt_profile: %s\n", err);
        return 1;
    }
    adam.beta2 = 0.99f;
    GptTensor *tensors = malloc(sizeof(GptTensor) * GPT_MAX_TENSORS);
    int T = cfg.block, N = B * T, nt = tensors ? gpt_tensors(&cfg, tensors) : 0;
    int *inputs = malloc(sizeof(int) * (size_t)N), *targets = malloc(sizeof(int) * (size_t)N);
    float *grads = calloc(model.num_params, sizeof(float));
    float *grads2 = calloc(model.num_params, sizeof(float));
    float *tt = malloc(sizeof(float) * (size_t)T * T);
    float *th = malloc(sizeof(float) * (size_t)T * (cfg.embed / cfg.heads));
    if (!tensors || !inputs || !targets || !grads || !grads2 || !tt || !th) {
        fprintf(stderr, "gpt_profile: out of memory\n");
        return 1;
    }
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) inputs[i] = (int)rng_below(&rng, (uint64_t)cfg.vocab_size);
    for (int i = 0; i < N - 1; i++) targets[i] = inputs[i + 1];
    targets[N - 1] = (int)rng_below(&rng, (uint64_t)cfg.vocab_size);
    openblas_set_num_threads(1);

    // The op-by-op pass must be the step: same loss, same gradients, bit for bit.
    double scratch[P_COUNT] = {0};
    float loss = gpt_forward(&model, &ws, inputs, targets, NULL, (float)N);
    gpt_backward(&model, &ws, inputs, targets, (float)N, grads);
    float loss2 = mirror_forward(&model, &ws, inputs, targets, scratch);
    mirror_backward(&model, &ws, inputs, targets, grads2, scratch);
    if (loss != loss2 || memcmp(grads, grads2, model.num_params * sizeof(float)) != 0) {
        fprintf(stderr,
                "gpt_profile: the op-by-op pass does not reproduce gpt_forward and "
                "gpt_backward (loss %.9g vs %.9g): core/gpt_train.c changed, update "
                "mirror_forward/mirror_backward\n",
                loss, loss2);
        return 1;
    }

    double best_fwd = 1e30, best_fwd_noloss = 1e30, best_bwd = 1e30, best_opt = 1e30;
    double best_part_f[P_COUNT], best_part_b[P_COUNT], best_mirror = 1e30, best_att_sgemm = 1e30;
    for (int p = 0; p < P_COUNT; p++) best_part_f[p] = best_part_b[p] = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        gpt_forward(&model, &ws, inputs, NULL, NULL, (float)N);
        best_fwd_noloss = min_d(best_fwd_noloss, now() - t0);
        t0 = now();
        gpt_forward(&model, &ws, inputs, targets, NULL, (float)N);
        double t1 = now();
        gpt_backward(&model, &ws, inputs, targets, (float)N, grads);
        double t2 = now();
        optim_run(&model, &adam, grads, tensors, nt);
        double t3 = now();
        memset(grads, 0, model.num_params * sizeof(float));
        best_fwd = min_d(best_fwd, t1 - t0);
        best_bwd = min_d(best_bwd, t2 - t1);
        best_opt = min_d(best_opt, t3 - t2);

        double f[P_COUNT] = {0}, b[P_COUNT] = {0};
        t0 = now();
        mirror_forward(&model, &ws, inputs, targets, f);
        mirror_backward(&model, &ws, inputs, targets, grads, b);
        best_mirror = min_d(best_mirror, now() - t0);
        memset(grads, 0, model.num_params * sizeof(float));
        for (int p = 0; p < P_COUNT; p++) {
            best_part_f[p] = min_d(best_part_f[p], f[p]);
            best_part_b[p] = min_d(best_part_b[p], b[p]);
        }
        best_att_sgemm = min_d(best_att_sgemm, attention_sgemm(&ws, tt, th));
    }

    double step = best_fwd + best_bwd + best_opt, parts = best_opt;
    for (int p = 0; p < P_COUNT; p++) parts += best_part_f[p] + best_part_b[p];
    int C = cfg.embed;
    double C3 = 3.0 * C, C4 = 4.0 * C, V = cfg.vocab_size;
    double lin_flops = 3.0 * 2.0 * N * (cfg.layers * (C * C3 + C * C + C * C4 + C4 * C) + C * V);
    double att_fwd_flops = 2.0 * cfg.layers * B * C * (double)T * (T + 1); // q k^T + att v, causal
    printf("one GPT training step, 1 thread: L=%d NH=%d C=%d T=%d B=%d V=%d %s bias=%d, "
           "%.0f tokens, best of %d\n",
           cfg.layers, cfg.heads, C, T, B, cfg.vocab_size,
           cfg.norm == GPT_RMSNORM ? "rmsnorm" : "layernorm", cfg.bias, (double)N, reps);
    printf("whole: gpt_forward %.1f ms (%.1f ms without the loss), gpt_backward %.1f ms, "
           "clip + AdamW %.1f ms = %.1f ms per step, %.0f tokens/s\n",
           best_fwd * 1e3, best_fwd_noloss * 1e3, best_bwd * 1e3, best_opt * 1e3, step * 1e3,
           N / step);
    printf("op by op: forward + backward %.1f ms (best pass; the parts' best sum to %.1f ms "
           "with clip + AdamW)\n\n",
           best_mirror * 1e3, parts * 1e3);
    printf("%-22s %9s %9s %9s %7s %9s %9s\n", "part", "fwd ms", "bwd ms", "ms/step", "share",
           "GFLOP", "GFLOP/s");
    for (int p = 0; p < P_COUNT; p++) {
        double ms = (best_part_f[p] + best_part_b[p]) * 1e3;
        double flops = p == P_LINEAR ? lin_flops : p == P_ATTENTION ? 3.0 * att_fwd_flops : 0.0;
        printf("%-22s %9.1f %9.1f %9.1f %6.1f%%", PART_NAMES[p], best_part_f[p] * 1e3,
               best_part_b[p] * 1e3, ms, 100.0 * ms / (parts * 1e3));
        if (flops > 0)
            printf(" %9.2f %9.1f\n", flops * 1e-9, flops / (ms * 1e-3) * 1e-9);
        else
            printf("\n");
    }
    printf("%-22s %9s %9.1f %9.1f %6.1f%%\n", "clip + AdamW", "", best_opt * 1e3, best_opt * 1e3,
           100.0 * best_opt / parts);
    double att_sq_flops = 6.0 * 2.0 * cfg.layers * B * C * (double)T * T;
    printf("\nnot in the step: attention's 6 products per (sequence, head) as sgemm over the "
           "full T x T: %.1f ms per step, %.2f GFLOP, %.1f GFLOP/s\n",
           best_att_sgemm * 1e3, att_sq_flops * 1e-9, att_sq_flops / best_att_sgemm * 1e-9);
    printf("{\"step_ms\": %.3f, \"fwd_ms\": %.3f, \"bwd_ms\": %.3f, \"optim_ms\": %.3f, "
           "\"tokens_per_step\": %d, \"parts\": {",
           step * 1e3, best_fwd * 1e3, best_bwd * 1e3, best_opt * 1e3, N);
    for (int p = 0; p < P_COUNT; p++)
        printf("%s\"%s\": {\"fwd_ms\": %.3f, \"bwd_ms\": %.3f}", p ? ", " : "", PART_KEYS[p],
               best_part_f[p] * 1e3, best_part_b[p] * 1e3);
    printf("}, \"attention_as_sgemm_ms\": %.3f}\n", best_att_sgemm * 1e3);

    free(tensors);
    free(inputs);
    free(targets);
    free(grads);
    free(grads2);
    free(tt);
    free(th);
    adam_free(&adam);
    gpt_workspace_free(&ws);
    gpt_free(&model);
    return 0;
}
