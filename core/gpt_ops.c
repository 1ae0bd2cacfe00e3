#include "gpt_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

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

void gpt_attention_forward(float *out, float *att, const float *qkv, const float *mask, int B,
                           int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            size_t head = ((size_t)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                const float *q = base + (size_t)t * C3;
                float *p = att + head + (size_t)t * T;
                float max = -INFINITY;
                for (int u = 0; u <= t; u++) {
                    const float *k = base + (size_t)u * C3 + C;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    p[u] = s * scale;
                    if (p[u] > max) max = p[u];
                }
                float sum = 0.0f;
                for (int u = 0; u <= t; u++) {
                    p[u] = expf(p[u] - max);
                    sum += p[u];
                }
                for (int u = 0; u <= t; u++) p[u] /= sum;
                for (int u = t + 1; u < T; u++) p[u] = 0.0f;
                float *y = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                memset(y, 0, hs * sizeof(float));
                const float *mrow = mask ? mask + head + (size_t)t * T : NULL;
                for (int u = 0; u <= t; u++) {
                    float a = mrow ? p[u] * mrow[u] : p[u];
                    const float *v = base + (size_t)u * C3 + 2 * C;
                    for (int i = 0; i < hs; i++) y[i] += a * v[i];
                }
            }
        }
}

void gpt_attention_backward(float *dqkv, float *row, const float *dout, const float *att,
                            const float *qkv, const float *mask, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    memset(dqkv, 0, (size_t)B * T * C3 * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            float *dbase = dqkv + (size_t)b * T * C3 + (size_t)h * hs;
            size_t head = ((size_t)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                const float *p = att + head + (size_t)t * T;
                const float *mrow = mask ? mask + head + (size_t)t * T : NULL;
                const float *dy = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
                // Through y = sum_u drop(p_u) v_u: into v, and row = dL/dp.
                float dot = 0.0f; // sum_u p_u row_u, for the softmax
                for (int u = 0; u <= t; u++) {
                    const float *v = base + (size_t)u * C3 + 2 * C;
                    float *dv = dbase + (size_t)u * C3 + 2 * C;
                    float m = mrow ? mrow[u] : 1.0f, a = p[u] * m, d = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        d += dy[i] * v[i];
                        dv[i] += a * dy[i];
                    }
                    row[u] = d * m;
                    dot += p[u] * row[u];
                }
                const float *q = base + (size_t)t * C3;
                float *dq = dbase + (size_t)t * C3;
                for (int u = 0; u <= t; u++) {
                    float ds = p[u] * (row[u] - dot) * scale; // through softmax and the scale
                    const float *k = base + (size_t)u * C3 + C;
                    float *dk = dbase + (size_t)u * C3 + C;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
        }
}

void gpt_gelu_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * in[i] * (1.0f + erff(in[i] * (float)M_SQRT1_2));
}

void gpt_gelu_backward(float *d, const float *in, size_t n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
        d[i] *= cdf + x * inv_sqrt_2pi * expf(-0.5f * x * x);
    }
}
