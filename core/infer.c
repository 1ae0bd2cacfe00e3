#include "infer.h"

#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "error.h"
#include "strips.h"

int infer_prepare(Model *model, char *err) {
    const ModelConfig *cf = &model->config;
    size_t E = cf->embed, H = cf->hidden, V = cf->vocab_size, G = 4 * H;
    size_t Gp = strips_count(G) * STRIPS_WIDTH, Vp = strips_count(V) * STRIPS_WIDTH;
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
            strips_pack(p, model->w.w_ih[l], G, H);
            p += H * Gp;
        }
        t->w_hh[l] = p;
        strips_pack(p, model->w.w_hh[l], G, H);
        p += H * Gp;
    }
    t->fc_w = p;
    strips_pack(p, model->w.fc_w, V, H);
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
    strips_matmul(n, H, G, below, H, t->w_ih[l], gates);
}

// logits [n, V] of the last layer's outputs h [n, H].
static void output_logits(const Model *model, int n, const float *h, float *logits) {
    int H = model->config.hidden, V = model->config.vocab_size;
    for (int r = 0; r < n; r++)
        memcpy(logits + (size_t)r * V, model->infer.fc_b, V * sizeof(float));
    strips_matmul(n, H, V, h, H, model->infer.fc_w, logits);
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
        strips_matmul(n, H, G, s->h, H, t->w_hh[l], s->gates);
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
            strips_matmul(1, H, G, h, H, t->w_hh[l], g);
            act_lstm_cell(g, c, s->tanh_c, h, H);
            memcpy(s->x + (size_t)i * H, h, H * sizeof(float));
        }
    }
    if (nlogits > 0) output_logits(model, nlogits, s->x + (size_t)(T - nlogits) * H, logits);
}
