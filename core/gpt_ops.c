#include "gpt_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "activations.h"
#include "gpt.h"

void gpt_linear_forward(float *out, const float *in, const float *w, const float *b, int N, int IC,
                        int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, in, IC, w, IC, 0.0f, out,
                OC);
    if (!b) return;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) out[(size_t)i * OC + o] += b[o];
}

void gpt_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int N, int IC, int OC) {
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, w, IC,
                    0.0f, din, IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f,
                dw, IC);
    if (!db) return;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) db[o] += dout[(size_t)i * OC + o];
}

void gpt_norm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                      const float *b, int N, int C, int rms) {
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double mu = 0.0;
        if (!rms) {
            for (int j = 0; j < C; j++) mu += x[j];
            mu /= C;
        }
        double var = 0.0; // the mean square about mu (0 for RMSNorm)
        for (int j = 0; j < C; j++) var += (x[j] - mu) * (x[j] - mu);
        float r = (float)(1.0 / sqrt(var / C + GPT_NORM_EPS));
        float m = (float)mu;
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) * r * w[j] + (b && !rms ? b[j] : 0.0f);
        if (!rms) mean[i] = m;
        rstd[i] = r;
    }
}

void gpt_norm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *mean, const float *rstd, const float *w, int N, int C,
                       int rms) {
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * C, *dy = dout + (size_t)i * C;
        float *dx = din + (size_t)i * C;
        float m = rms ? 0.0f : mean[i], r = rstd[i];
        // With xhat = (x - m) r and g = dy * w: dx = r (g - mean(g) - xhat mean(g xhat)),
        // RMSNorm without the mean(g) term, as its output does not subtract a mean.
        double g_mean = 0.0, gx_mean = 0.0;
        for (int j = 0; j < C; j++) {
            float xhat = (x[j] - m) * r, g = dy[j] * w[j];
            g_mean += g;
            gx_mean += (double)g * xhat;
            dw[j] += dy[j] * xhat;
            if (db) db[j] += dy[j];
        }
        g_mean = rms ? 0.0 : g_mean / C;
        gx_mean /= C;
        for (int j = 0; j < C; j++) {
            float xhat = (x[j] - m) * r, g = dy[j] * w[j];
            dx[j] += r * (g - (float)g_mean - xhat * (float)gx_mean);
        }
    }
}

/* Each (sequence, head) is three products, as sgemm runs them over the whole T x T square
 * (the part above the diagonal is computed and then zeroed: the products are where the
 * time goes, and a square runs faster than T triangles' rows). */
void gpt_attention_forward(float *out, float *att, float *scratch, const float *qkv,
                           const float *mask, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *k = q + C, *v = q + 2 * C;
            size_t head = ((size_t)b * NH + h) * T * T;
            float *p = att + head;
            // p [T, T] = q k^T / sqrt(hs), then the causal softmax row by row.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3,
                        0.0f, p, T);
            for (int t = 0; t < T; t++) {
                float *row = p + (size_t)t * T, max = -INFINITY, sum = 0.0f;
                for (int u = 0; u <= t; u++) max = fmaxf(max, row[u]);
                for (int u = 0; u <= t; u++) row[u] = act_exp(row[u] - max);
                for (int u = 0; u <= t; u++) sum += row[u];
                float inv = 1.0f / sum;
                for (int u = 0; u <= t; u++) row[u] *= inv;
                for (int u = t + 1; u < T; u++) row[u] = 0.0f;
            }
            // y [T, hs] = drop(p) v
            const float *w = p;
            if (mask) {
                const float *m = mask + head;
                for (size_t i = 0; i < (size_t)T * T; i++) scratch[i] = p[i] * m[i];
                w = scratch;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, w, T, v, C3,
                        0.0f, out + (size_t)b * T * C + (size_t)h * hs, C);
        }
}

void gpt_attention_backward(float *dqkv, float *scratch, const float *dout, const float *att,
                            const float *qkv, const float *mask, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    size_t TT = (size_t)T * T;
    float *dp = scratch, *w = scratch + TT; // [T, T] each
    memset(dqkv, 0, (size_t)B * T * C3 * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t off = (size_t)b * T * C3 + (size_t)h * hs, head = ((size_t)b * NH + h) * TT;
            const float *q = qkv + off, *k = q + C, *v = q + 2 * C, *p = att + head;
            const float *m = mask ? mask + head : NULL;
            const float *dy = dout + (size_t)b * T * C + (size_t)h * hs;
            float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
            // y = drop(p) v: dv = drop(p)^T dy, d(drop(p)) = dy v^T, dp = that masked again.
            const float *pw = p;
            if (m) {
                for (size_t i = 0; i < TT; i++) w[i] = p[i] * m[i];
                pw = w;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, pw, T, dy, C, 0.0f,
                        dv, C3);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, C, v, C3, 0.0f,
                        dp, T);
            // Through the softmax and the scale, in place: ds = p (dp - sum_u p dp) / sqrt(hs),
            // 0 above the diagonal (p is).
            for (int t = 0; t < T; t++) {
                float *row = dp + (size_t)t * T, dot = 0.0f;
                const float *pr = p + (size_t)t * T, *mr = m ? m + (size_t)t * T : NULL;
                for (int u = 0; u <= t; u++) {
                    if (mr) row[u] *= mr[u];
                    dot += pr[u] * row[u];
                }
                for (int u = 0; u <= t; u++) row[u] = pr[u] * (row[u] - dot) * scale;
                for (int u = t + 1; u < T; u++) row[u] = 0.0f;
            }
            // s = q k^T: dq = ds k, dk = ds^T q.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T, k, C3,
                        0.0f, dq, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T, q, C3, 0.0f,
                        dk, C3);
        }
}

/* Phi(x) = (1 + erf(x / sqrt 2)) / 2 with erf by Abramowitz and Stegun's 7.1.26 (absolute
 * error below 1.5e-7, a few float ulps of Phi) on |x|, and e = exp(-x^2 / 2), which that
 * formula and the density share. Branch-free, with activations.h's exp, so the loops
 * vectorise: glibc's erff and expf go one value at a time and took a sixth of a step. */
static inline float phi_and_exp(float x, float *e) {
    float z = fabsf(x) * (float)M_SQRT1_2;
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float poly =
        t * (0.254829592f +
             t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    *e = act_exp(-z * z);
    float erf_abs = 1.0f - poly * *e;
    return 0.5f + 0.5f * (x < 0 ? -erf_abs : erf_abs);
}

void gpt_gelu_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float e;
        out[i] = in[i] * phi_and_exp(in[i], &e);
    }
}

void gpt_gelu_backward(float *d, const float *in, size_t n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    for (size_t i = 0; i < n; i++) {
        float x = in[i], e, cdf = phi_and_exp(x, &e);
        d[i] *= cdf + x * inv_sqrt_2pi * e;
    }
}
