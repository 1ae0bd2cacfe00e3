/*
 * gpt_ops.h — the GPT's layers, forward and backward, over N rows (N = B*T positions).
 *
 * Matrices are row-major; a Linear's weight is [out, in] as PyTorch stores it. Backward
 * functions add into the parameter gradients (dw, db) and, where said, into the input
 * gradient, so the residual stream's gradient accumulates without copies.
 */
#ifndef CHARLM_GPT_OPS_H
#define CHARLM_GPT_OPS_H

#include <stddef.h>

/* out[N, OC] = in[N, IC] @ w^T + b (b may be NULL), one sgemm. */
void gpt_linear_forward(float *out, const float *in, const float *w, const float *b, int N, int IC,
                        int OC);
/* din[N, IC] = dout @ w (overwritten; din may be NULL), dw[OC, IC] += dout^T @ in,
 * db[OC] += column sums of dout (when db is not NULL). */
void gpt_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int N, int IC, int OC);

/* out[N, C] = norm(in) * w + b. rms: RMSNorm (no mean, b unused), else LayerNorm (b may be
 * NULL). Saves each row's mean (LayerNorm) and 1/sqrt(var + eps) for backward. */
void gpt_norm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                      const float *b, int N, int C, int rms);
/* din[N, C] += the input gradient; dw += , db += (db may be NULL). */
void gpt_norm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *mean, const float *rstd, const float *w, int N, int C, int rms);

/* Causal attention of B sequences of T: qkv [B, T, 3C] (q, k, v side by side) -> out
 * [B, T, C], heads NH of C/NH. att [B, NH, T, T] receives the softmax probabilities (0 above
 * the diagonal); mask [B, NH, T, T] (or NULL) multiplies them before they weight v, in
 * scratch [T, T]. */
void gpt_attention_forward(float *out, float *att, float *scratch, const float *qkv,
                           const float *mask, int B, int T, int C, int NH);
/* dqkv [B, T, 3C] = the gradient of qkv (overwritten), from dout [B, T, C]; scratch is
 * [2, T, T]. */
void gpt_attention_backward(float *dqkv, float *scratch, const float *dout, const float *att,
                            const float *qkv, const float *mask, int B, int T, int C, int NH);

/* out[n] = x * Phi(x), the exact (erf) GELU. */
void gpt_gelu_forward(float *out, const float *in, size_t n);
/* d[n] *= GELU'(in), in place. */
void gpt_gelu_backward(float *d, const float *in, size_t n);

#endif
