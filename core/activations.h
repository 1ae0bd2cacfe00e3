/*
 * activations.h — the LSTM cell's nonlinearities, written so the compiler vectorises them.
 *
 * glibc's tanhf goes through expm1f one value at a time and took a third of a training
 * step. These use one polynomial exp (Cephes-style range reduction: x = n ln2 + r,
 * e^r by a degree-6 polynomial, 2^n put straight into the exponent bits), branch-free,
 * accurate to a few ulp — well inside the PyTorch-parity tolerances. The clamps become
 * vector min/max only because the build says -fno-trapping-math.
 */
#ifndef CHARLM_ACTIVATIONS_H
#define CHARLM_ACTIVATIONS_H

#include <stdint.h>
#include <string.h>

static inline float act_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    // Round x / ln2 to the nearest integer by the 1.5 * 2^23 trick (vectorises on SSE2).
    float n = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

static inline float act_sigmoid(float x) {
    return 1.0f / (1.0f + act_exp(-x));
}

static inline float act_tanh(float x) {
    return 1.0f - 2.0f / (1.0f + act_exp(2.0f * x));
}

/* One LSTM cell update for H units. z: [4H] pre-activations (bias included), replaced by
 * the activated gates i, f, g, o; c: [H] cell state, updated in place; tanh_c, h: [H]. */
static inline void act_lstm_cell(float *restrict z, float *restrict c, float *restrict tanh_c,
                                 float *restrict h, int H) {
    float *restrict zi = z, *restrict zf = z + H, *restrict zg = z + 2 * H,
                    *restrict zo = z + 3 * H;
    for (int j = 0; j < H; j++) {
        float ig = act_sigmoid(zi[j]), fg = act_sigmoid(zf[j]);
        float gg = act_tanh(zg[j]), og = act_sigmoid(zo[j]);
        float cn = fg * c[j] + ig * gg;
        float th = act_tanh(cn);
        zi[j] = ig;
        zf[j] = fg;
        zg[j] = gg;
        zo[j] = og;
        c[j] = cn;
        tanh_c[j] = th;
        h[j] = og * th;
    }
}

/* Backward through one cell update for H units. gates: [4H] activated i, f, g, o;
 * c_prev, tanh_c: [H]; dh: [H] gradient reaching h from above and from step t+1;
 * dc: [H] gradient from step t+1 on entry, the one for step t-1 on return;
 * dz: [4H] receives the gradient of the pre-activations. */
static inline void act_lstm_cell_backward(const float *restrict gates, const float *restrict c_prev,
                                          const float *restrict tanh_c, const float *restrict dh,
                                          float *restrict dc, float *restrict dz, int H) {
    const float *ig = gates, *fg = gates + H, *gg = gates + 2 * H, *og = gates + 3 * H;
    for (int j = 0; j < H; j++) {
        float dcj = dh[j] * og[j] * (1.0f - tanh_c[j] * tanh_c[j]) + dc[j];
        dz[j] = dcj * gg[j] * ig[j] * (1.0f - ig[j]);
        dz[H + j] = dcj * c_prev[j] * fg[j] * (1.0f - fg[j]);
        dz[2 * H + j] = dcj * ig[j] * (1.0f - gg[j] * gg[j]);
        dz[3 * H + j] = dh[j] * tanh_c[j] * og[j] * (1.0f - og[j]);
        dc[j] = dcj * fg[j];
    }
}

#endif
