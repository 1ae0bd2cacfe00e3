#include "infer.h"

#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "error.h"

// Outputs rounded up to whole strips.
static size_t strips_of(size_t out) {
    return (out + INFER_STRIP - 1) / INFER_STRIP;
}

// Packs w [out, in] (PyTorch's layout) as strips: dst[s][k][i] = w[s * 24 + i][k].
static void pack_strips(float *dst, const float *w, size_t out, size_t in) {
    for (size_t s = 0; s < strips_of(out); s++)
        for (size_t k = 0; k < in; k++)
            for (size_t i = 0; i < INFER_STRIP; i++) {
                size_t j = s * INFER_STRIP + i;
                dst[(s * in + k) * INFER_STRIP + i] = j < out ? w[j * in + k] : 0.0f;
            }
}

int infer_prepare(Model *model, char *err) {
    const ModelConfig *cf = &model->config;
    size_t E = cf->embed, H = cf->hidden, V = cf->vocab_size, G = 4 * H;
    size_t Gp = strips_of(G) * INFER_STRIP, Vp = strips_of(V) * INFER_STRIP;
    size_t n = V * G + H * Gp + (size_t)(cf->layers - 1) * Gp * 2 * H + H * Vp +
               (size_t)cf->layers * G + V;
    InferWeights *t = &model->infer;
    free(t->buf);
    memset(t, 0, sizeof(*t));
    t->buf = malloc(n * sizeof(float));
    if (!t->buf) return err_set(err, "out of memory for inference weights");
    float *p = t->buf;
    // Layer 0 only ever sees one of V embedding rows: project each once, here.
    t->input0 = p;
    p += V * G;
    for (size_t v = 0; v < V; v++)
        for (size_t j = 0; j < G; j++) {
            float sum = model->w.b_ih[0][j] + model->w.b_hh[0][j];
            for (size_t k = 0; k < E; k++)
                sum += model->w.embedding[v * E + k] * model->w.w_ih[0][j * E + k];
            t->input0[v * G + j] = sum;
        }
    for (int l = 0; l < cf->layers; l++) {
        if (l > 0) {
            t->w_ih[l] = p;
            pack_strips(p, model->w.w_ih[l], G, H);
            p += H * Gp;
        }
        t->w_hh[l] = p;
        pack_strips(p, model->w.w_hh[l], G, H);
        p += H * Gp;
    }
    t->fc_w = p;
    pack_strips(p, model->w.fc_w, V, H);
    p += H * Vp;
    for (int l = 0; l < cf->layers; l++, p += G) {
        t->bias[l] = p;
        for (size_t j = 0; j < G; j++) p[j] = model->w.b_ih[l][j] + model->w.b_hh[l][j];
    }
    t->fc_b = p;
    memcpy(p, model->w.fc_b, V * sizeof(float));
    return 0;
}

int infer_scratch_alloc(InferScratch *s, const ModelConfig *config, int max_n, char *err) {
    memset(s, 0, sizeof(*s));
    size_t rows = max_n > 0 ? (size_t)max_n : 1;
    size_t H = config->hidden;
    s->max_n = max_n;
    s->h = calloc(rows * H, sizeof(float));
    s->c = calloc(rows * H, sizeof(float));
    s->gates = calloc(rows * 4 * H, sizeof(float));
    s->tanh_c = calloc(H, sizeof(float));
    if (!s->h || !s->c || !s->gates || !s->tanh_c) {
        infer_scratch_free(s);
        return err_set(err, "out of memory for inference scratch (%d streams)", max_n);
    }
    return 0;
}

void infer_scratch_free(InferScratch *s) {
    free(s->h);
    free(s->c);
    free(s->gates);
    free(s->tanh_c);
    memset(s, 0, sizeof(*s));
}

int stream_state_alloc(StreamState *st, const ModelConfig *config, char *err) {
    size_t n = (size_t)config->layers * config->hidden;
    st->h = calloc(n, sizeof(float));
    st->c = calloc(n, sizeof(float));
    if (!st->h || !st->c) {
        stream_state_free(st);
        return err_set(err, "out of memory for a stream state");
    }
    return 0;
}

void stream_state_free(StreamState *st) {
    free(st->h);
    free(st->c);
    st->h = st->c = NULL;
}

/*
 * y[r] += x[r] @ W^T for r < n: x [n, in] rows ldx apart, W packed in strips (model.h),
 * y [n, out].
 *
 * A general sgemm repacks the whole weight matrix on every call, which for the few rows
 * of an inference step costs more than the arithmetic. Here the strips are the outer
 * loop: a strip of weights ([in, 24], 36 KB for 384 inputs) is read from memory once and
 * stays in cache while every block of four rows runs over it, so a step reads the weights
 * once whatever the batch. A block's 24 sums a row stay in registers through the loop
 * over k. Every element of y is the same chain of multiply-adds over k in order, whatever
 * the block size and in the last, partial strip alike, so a stream's numbers do not
 * depend on how many streams share the step (or on a prompt being prefilled in chunks).
 * On x86-64 a second copy is compiled for AVX2 + FMA and picked at load time.
 */
typedef float v8f __attribute__((vector_size(32), aligned(4)));

#define STRIP_VECS (INFER_STRIP / 8)
/* Four rows keep twelve sums, three weight vectors and a broadcast in AVX2's sixteen
 * registers: each step over k loads seven values for twelve multiply-adds. */
#define BLOCK_ROWS 4

/* Rows y[0 .. R) (R <= BLOCK_ROWS), columns j .. j + cols of the strip ws, over all k. */
static inline __attribute__((always_inline)) void strip_rows(int R, int in, int cols,
                                                             const float *const *xr,
                                                             const float *restrict ws,
                                                             float *const *yr) {
    float buf[BLOCK_ROWS][INFER_STRIP];
    v8f acc[BLOCK_ROWS][STRIP_VECS];
    for (int i = 0; i < R; i++) {
        const float *yi = yr[i];
        if (cols < INFER_STRIP) { // the vocabulary's last few columns
            memset(buf[i], 0, sizeof(buf[i]));
            memcpy(buf[i], yi, (size_t)cols * sizeof(float));
            yi = buf[i];
        }
        for (int v = 0; v < STRIP_VECS; v++) acc[i][v] = *(const v8f *)(yi + 8 * v);
    }
    for (int k = 0; k < in; k++) {
        v8f w[STRIP_VECS];
        for (int v = 0; v < STRIP_VECS; v++)
            w[v] = *(const v8f *)(ws + (size_t)k * INFER_STRIP + 8 * v);
        for (int i = 0; i < R; i++) {
            float a = xr[i][k];
            for (int v = 0; v < STRIP_VECS; v++) acc[i][v] += a * w[v];
        }
    }
    for (int i = 0; i < R; i++) {
        float *dst = cols < INFER_STRIP ? buf[i] : yr[i];
        for (int v = 0; v < STRIP_VECS; v++) *(v8f *)(dst + 8 * v) = acc[i][v];
        if (dst != yr[i]) memcpy(yr[i], dst, (size_t)cols * sizeof(float));
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
static void
rows_matmul(int n, int in, int out, const float *restrict x, int ldx, const float *restrict w,
            float *restrict y) {
    for (int j = 0; j < out; j += INFER_STRIP) {
        const float *ws = w + (size_t)j * in; // this strip's [in, 24] block
        int cols = out - j < INFER_STRIP ? out - j : INFER_STRIP;
        for (int r = 0; r < n;) {
            int m = n - r;
            int R = m >= BLOCK_ROWS ? BLOCK_ROWS : m;
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

/* gates [n, 4H] = layer l's input projections of n rows and both biases: for layer 0 a
 * lookup of each id's row, above it the products with the layer below's outputs
 * (below [n, H]). Shared by a step and a prefill so that both compute them alike. */
static void input_gates(const Model *model, int l, int n, const int *ids, const float *below,
                        float *gates) {
    const InferWeights *t = &model->infer;
    int H = model->config.hidden, G = 4 * H;
    if (l == 0) {
        for (int r = 0; r < n; r++)
            memcpy(gates + (size_t)r * G, t->input0 + (size_t)ids[r] * G, G * sizeof(float));
        return;
    }
    for (int r = 0; r < n; r++) memcpy(gates + (size_t)r * G, t->bias[l], G * sizeof(float));
    rows_matmul(n, H, G, below, H, t->w_ih[l], gates);
}

// logits [n, V] of the last layer's outputs h [n, H].
static void output_logits(const Model *model, int n, const float *h, float *logits) {
    int H = model->config.hidden, V = model->config.vocab_size;
    for (int r = 0; r < n; r++)
        memcpy(logits + (size_t)r * V, model->infer.fc_b, V * sizeof(float));
    rows_matmul(n, H, V, h, H, model->infer.fc_w, logits);
}

void infer_step(const Model *model, InferScratch *s, int n, const int *ids,
                StreamState *const *states, float *logits) {
    const InferWeights *t = &model->infer;
    int H = model->config.hidden, G = 4 * H;
    for (int l = 0; l < model->config.layers; l++) {
        input_gates(model, l, n, ids, s->h, s->gates); // s->h: the layer below's outputs
        for (int r = 0; r < n; r++) {
            memcpy(s->h + (size_t)r * H, states[r]->h + (size_t)l * H, H * sizeof(float));
            memcpy(s->c + (size_t)r * H, states[r]->c + (size_t)l * H, H * sizeof(float));
        }
        rows_matmul(n, H, G, s->h, H, t->w_hh[l], s->gates);
        for (int r = 0; r < n; r++) {
            act_lstm_cell(s->gates + (size_t)r * G, s->c + (size_t)r * H, s->tanh_c,
                          s->h + (size_t)r * H, H);
            memcpy(states[r]->h + (size_t)l * H, s->h + (size_t)r * H, H * sizeof(float));
            memcpy(states[r]->c + (size_t)l * H, s->c + (size_t)r * H, H * sizeof(float));
        }
    }
    output_logits(model, n, s->h, logits);
}

int prefill_scratch_alloc(PrefillScratch *s, const ModelConfig *config, int max_t, char *err) {
    memset(s, 0, sizeof(*s));
    size_t rows = max_t > 0 ? (size_t)max_t : 1, H = config->hidden;
    s->max_t = max_t;
    s->x = calloc(rows * H, sizeof(float));
    s->gates = calloc(rows * 4 * H, sizeof(float));
    s->tanh_c = calloc(H, sizeof(float));
    if (!s->x || !s->gates || !s->tanh_c) {
        prefill_scratch_free(s);
        return err_set(err, "out of memory for prefill scratch (%d chars)", max_t);
    }
    return 0;
}

void prefill_scratch_free(PrefillScratch *s) {
    free(s->x);
    free(s->gates);
    free(s->tanh_c);
    memset(s, 0, sizeof(*s));
}

void infer_prefill(const Model *model, PrefillScratch *s, int T, const int *ids, StreamState *st,
                   float *logits, int nlogits) {
    const InferWeights *t = &model->infer;
    int H = model->config.hidden, G = 4 * H;
    for (int l = 0; l < model->config.layers; l++) {
        // Input projections for the whole chunk: the layer below's outputs are in s->x.
        input_gates(model, l, T, ids, s->x, s->gates);
        // The recurrence, one position after the other; h and c live in the stream's state.
        float *h = st->h + (size_t)l * H, *c = st->c + (size_t)l * H;
        for (int i = 0; i < T; i++) {
            float *g = s->gates + (size_t)i * G;
            rows_matmul(1, H, G, h, H, t->w_hh[l], g);
            act_lstm_cell(g, c, s->tanh_c, h, H);
            memcpy(s->x + (size_t)i * H, h, H * sizeof(float));
        }
    }
    if (nlogits > 0) output_logits(model, nlogits, s->x + (size_t)(T - nlogits) * H, logits);
}
