#include "infer.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "error.h"

int infer_scratch_alloc(InferScratch *s, const ModelConfig *config, int max_n, char *err) {
    memset(s, 0, sizeof(*s));
    size_t rows = max_n > 2 ? (size_t)max_n : 2;
    size_t H = config->hidden, E = config->embed, wide = E > H ? E : H;
    s->max_n = max_n;
    s->x = calloc(rows * wide, sizeof(float));
    s->h = calloc(rows * H, sizeof(float));
    s->c = calloc(rows * H, sizeof(float));
    s->gates = calloc(rows * 4 * H, sizeof(float));
    s->tanh_c = calloc(H, sizeof(float));
    s->logits = calloc(rows * config->vocab_size, sizeof(float));
    if (!s->x || !s->h || !s->c || !s->gates || !s->tanh_c || !s->logits) {
        infer_scratch_free(s);
        return err_set(err, "out of memory for inference scratch (%d streams)", max_n);
    }
    return 0;
}

void infer_scratch_free(InferScratch *s) {
    free(s->x);
    free(s->h);
    free(s->c);
    free(s->gates);
    free(s->tanh_c);
    free(s->logits);
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

void stream_state_reset(StreamState *st, const ModelConfig *config) {
    size_t n = (size_t)config->layers * config->hidden;
    memset(st->h, 0, n * sizeof(float));
    memset(st->c, 0, n * sizeof(float));
}

void stream_state_free(StreamState *st) {
    free(st->h);
    free(st->c);
    st->h = st->c = NULL;
}

void infer_step(const Model *model, InferScratch *s, int n, const int *ids,
                StreamState *const *states, float *logits) {
    const ModelConfig *cf = &model->config;
    const LstmWeights *w = &model->w;
    int E = cf->embed, H = cf->hidden, V = cf->vocab_size, G = 4 * H;
    // A lone stream is computed as two identical rows so that it always goes through the
    // multi-row sgemm kernel, whose rows do not depend on how many rows there are.
    int rows = n < 2 ? 2 : n;

    for (int r = 0; r < rows; r++)
        memcpy(s->x + (size_t)r * E, w->embedding + (size_t)ids[r < n ? r : 0] * E,
               E * sizeof(float));
    for (int l = 0; l < cf->layers; l++) {
        int in = l == 0 ? E : H;
        for (int r = 0; r < rows; r++) {
            const StreamState *st = states[r < n ? r : 0];
            memcpy(s->h + (size_t)r * H, st->h + (size_t)l * H, H * sizeof(float));
            memcpy(s->c + (size_t)r * H, st->c + (size_t)l * H, H * sizeof(float));
        }
        for (int r = 0; r < rows; r++) {
            float *g = s->gates + (size_t)r * G;
            for (int j = 0; j < G; j++) g[j] = w->b_ih[l][j] + w->b_hh[l][j];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, G, in, 1.0f, s->x, in,
                    w->w_ih[l], in, 1.0f, s->gates, G);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, G, H, 1.0f, s->h, H, w->w_hh[l],
                    H, 1.0f, s->gates, G);
        for (int r = 0; r < rows; r++)
            act_lstm_cell(s->gates + (size_t)r * G, s->c + (size_t)r * H, s->tanh_c,
                          s->h + (size_t)r * H, H);
        for (int r = 0; r < n; r++) {
            memcpy(states[r]->h + (size_t)l * H, s->h + (size_t)r * H, H * sizeof(float));
            memcpy(states[r]->c + (size_t)l * H, s->c + (size_t)r * H, H * sizeof(float));
        }
        memcpy(s->x, s->h, (size_t)rows * H * sizeof(float)); // next layer's input
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, V, H, 1.0f, s->h, H, w->fc_w, H,
                0.0f, s->logits, V);
    for (int r = 0; r < n; r++)
        for (int v = 0; v < V; v++)
            logits[(size_t)r * V + v] = s->logits[(size_t)r * V + v] + w->fc_b[v];
}
