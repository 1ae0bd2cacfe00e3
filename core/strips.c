#include "strips.h"

#include <string.h>

size_t strips_count(size_t out) {
    return (out + STRIPS_WIDTH - 1) / STRIPS_WIDTH;
}

size_t strips_floats(size_t out, size_t in) {
    return strips_count(out) * STRIPS_WIDTH * in;
}

void strips_pack(float *dst, const float *w, size_t out, size_t in) {
    for (size_t s = 0; s < strips_count(out); s++)
        for (size_t k = 0; k < in; k++)
            for (size_t i = 0; i < STRIPS_WIDTH; i++) {
                size_t j = s * STRIPS_WIDTH + i;
                dst[(s * in + k) * STRIPS_WIDTH + i] = j < out ? w[j * in + k] : 0.0f;
            }
}

typedef float v8f __attribute__((vector_size(32), aligned(4)));

#define STRIP_VECS (STRIPS_WIDTH / 8)
/* Four rows keep twelve sums, three weight vectors and a broadcast in AVX2's sixteen
 * registers: each step over k loads seven values for twelve multiply-adds. */
#define BLOCK_ROWS 4

/* Rows y[0 .. R) (R <= BLOCK_ROWS), columns j .. j + cols of the strip ws, over all k. */
static inline __attribute__((always_inline)) void strip_rows(int R, int in, int cols,
                                                             const float *const *xr,
                                                             const float *restrict ws,
                                                             float *const *yr) {
    float buf[BLOCK_ROWS][STRIPS_WIDTH];
    v8f acc[BLOCK_ROWS][STRIP_VECS];
    for (int i = 0; i < R; i++) {
        const float *yi = yr[i];
        if (cols < STRIPS_WIDTH) { // the last strip's few columns
            memset(buf[i], 0, sizeof(buf[i]));
            memcpy(buf[i], yi, (size_t)cols * sizeof(float));
            yi = buf[i];
        }
        for (int v = 0; v < STRIP_VECS; v++) acc[i][v] = *(const v8f *)(yi + 8 * v);
    }
    for (int k = 0; k < in; k++) {
        v8f w[STRIP_VECS];
        for (int v = 0; v < STRIP_VECS; v++)
            w[v] = *(const v8f *)(ws + (size_t)k * STRIPS_WIDTH + 8 * v);
        for (int i = 0; i < R; i++) {
            float a = xr[i][k];
            for (int v = 0; v < STRIP_VECS; v++) acc[i][v] += a * w[v];
        }
    }
    for (int i = 0; i < R; i++) {
        float *dst = cols < STRIPS_WIDTH ? buf[i] : yr[i];
        for (int v = 0; v < STRIP_VECS; v++) *(v8f *)(dst + 8 * v) = acc[i][v];
        if (dst != yr[i]) memcpy(yr[i], dst, (size_t)cols * sizeof(float));
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
void strips_matmul(int n, int in, int out, const float *restrict x, int ldx,
                   const float *restrict w, float *restrict y) {
    for (int j = 0; j < out; j += STRIPS_WIDTH) {
        const float *ws = w + (size_t)j * in; // this strip's [in, 24] block
        int cols = out - j < STRIPS_WIDTH ? out - j : STRIPS_WIDTH;
        for (int r = 0; r < n;) {
            int R = n - r >= BLOCK_ROWS ? BLOCK_ROWS : n - r;
            const float *xr[BLOCK_ROWS];
            float *yr[BLOCK_ROWS];
            for (int i = 0; i < R; i++) {
                xr[i] = x + (size_t)(r + i) * ldx;
                yr[i] = y + (size_t)(r + i) * out + j;
            }
            // Constant block sizes, so that each copy keeps its sums in registers.
            if (R == 4)
                strip_rows(4, in, cols, xr, ws, yr);
            else if (R == 3)
                strip_rows(3, in, cols, xr, ws, yr);
            else if (R == 2)
                strip_rows(2, in, cols, xr, ws, yr);
            else
                strip_rows(1, in, cols, xr, ws, yr);
            r += R;
        }
    }
}
