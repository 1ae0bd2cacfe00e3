#include "infer.h"

#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "error.h"

int infer_prepare(Model *model, char *err) {
    const ModelConfig *cf = &model->config;
    size_t E = cf->embed, H = cf->hidden, V = cf->vocab_size, G = 4 * H;
    size_t n = V * G + H * G + (size_t)(cf->layers - 1) * G * 2 * H + H * V;
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
            p += H * G;
        }
        t->w_hh[l] = p;
        p += H * G;
        for (size_t j = 0; j < G; j++)
            for (size_t k = 0; k < H; k++) {
                if (l > 0) t->w_ih[l][k * G + j] = model->w.w_ih[l][j * H + k];
                t->w_hh[l][k * G + j] = model->w.w_hh[l][j * H + k];
            }
    }
    t->fc_w = p;
    for (size_t v = 0; v < V; v++)
        for (size_t k = 0; k < H; k++) t->fc_w[k * V + v] = model->w.fc_w[v * H + k];
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
 * y[r] += x[r] @ wt for r < n: x [n, in] rows ldx apart, wt [in, out], y [n, out].
 *
 * A general sgemm repacks the whole weight matrix on every call, which for the few rows
 * of an inference step costs more than the arithmetic. Here rows go in blocks of four
 * that share each weight row while it is in cache. Every element of y is the same chain
 * of multiply-adds over k in order, in the block and in the tail alike, so a stream's
 * numbers do not depend on how many streams share the step. On x86-64 a second copy is
 * compiled for AVX2 + FMA and picked at load time.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
static void
rows_matmul(int n, int in, int out, const float *restrict x, int ldx, const float *restrict wt,
            float *restrict y) {
    int r = 0;
    for (; r + 4 <= n; r += 4) {
        const float *x0 = x + (size_t)r * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        float *y0 = y + (size_t)r * out, *y1 = y0 + out, *y2 = y1 + out, *y3 = y2 + out;
        for (int k = 0; k < in; k++) {
            const float *w = wt + (size_t)k * out;
            float a0 = x0[k], a1 = x1[k], a2 = x2[k], a3 = x3[k];
            for (int j = 0; j < out; j++) {
                y0[j] += a0 * w[j];
                y1[j] += a1 * w[j];
                y2[j] += a2 * w[j];
                y3[j] += a3 * w[j];
            }
        }
    }
    for (; r < n; r++) {
        const float *xr = x + (size_t)r * ldx;
        float *yr = y + (size_t)r * out;
        for (int k = 0; k < in; k++) {
            const float *w = wt + (size_t)k * out;
            float a = xr[k];
            for (int j = 0; j < out; j++) yr[j] += a * w[j];
        }
    }
}

void infer_step(const Model *model, InferScratch *s, int n, const int *ids,
                StreamState *const *states, float *logits) {
    const ModelConfig *cf = &model->config;
    const LstmWeights *w = &model->w;
    const InferWeights *t = &model->infer;
    int H = cf->hidden, V = cf->vocab_size, G = 4 * H;

    for (int l = 0; l < cf->layers; l++) {
        if (l == 0) {
            for (int r = 0; r < n; r++)
                memcpy(s->gates + (size_t)r * G, t->input0 + (size_t)ids[r] * G, G * sizeof(float));
        } else {
            for (int r = 0; r < n; r++) {
                float *g = s->gates + (size_t)r * G;
                for (int j = 0; j < G; j++) g[j] = w->b_ih[l][j] + w->b_hh[l][j];
            }
            rows_matmul(n, H, G, s->h, H, t->w_ih[l], s->gates); // the layer below's outputs
        }
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
    for (int r = 0; r < n; r++) memcpy(logits + (size_t)r * V, w->fc_b, V * sizeof(float));
    rows_matmul(n, H, V, s->h, H, t->fc_w, logits);
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
    const ModelConfig *cf = &model->config;
    const LstmWeights *w = &model->w;
    const InferWeights *t = &model->infer;
    int H = cf->hidden, V = cf->vocab_size, G = 4 * H;

    for (int l = 0; l < cf->layers; l++) {
        // Input projections for the whole chunk: the layer below's outputs are in s->x.
        if (l == 0) {
            for (int i = 0; i < T; i++)
                memcpy(s->gates + (size_t)i * G, t->input0 + (size_t)ids[i] * G, G * sizeof(float));
        } else {
            for (int i = 0; i < T; i++) {
                float *g = s->gates + (size_t)i * G;
                for (int j = 0; j < G; j++) g[j] = w->b_ih[l][j] + w->b_hh[l][j];
            }
            rows_matmul(T, H, G, s->x, H, t->w_ih[l], s->gates);
        }
        // The recurrence, one position after the other; h and c live in the stream's state.
        float *h = st->h + (size_t)l * H, *c = st->c + (size_t)l * H;
        for (int i = 0; i < T; i++) {
            float *g = s->gates + (size_t)i * G;
            rows_matmul(1, H, G, h, H, t->w_hh[l], g);
            act_lstm_cell(g, c, s->tanh_c, h, H);
            memcpy(s->x + (size_t)i * H, h, H * sizeof(float));
        }
    }
    if (nlogits <= 0) return;
    const float *last = s->x + (size_t)(T - nlogits) * H;
    for (int i = 0; i < nlogits; i++) memcpy(logits + (size_t)i * V, w->fc_b, V * sizeof(float));
    rows_matmul(nlogits, H, V, last, H, t->fc_w, logits);
}
