/*
 * infer.h — one inference step that advances n independent streams at once.
 *
 * Each stream owns its recurrent state (h and c for every layer). A step gathers the
 * n streams' states into [n, H] rows, runs each layer as one product for all of them,
 * and scatters the new states back, so a server can batch concurrent requests through
 * it. A one-row sgemm takes another OpenBLAS kernel than a multi-row one and differs in
 * the last bits, so a lone stream is padded to two rows: a stream's numbers are then
 * the same whether it runs alone or beside others.
 */
#ifndef CHARLM_INFER_H
#define CHARLM_INFER_H

#include "model.h"

typedef struct {
    float *h; // [L, H]
    float *c; // [L, H]
} StreamState;

/* Scratch for steps of up to max_n streams. */
typedef struct {
    int max_n;
    float *x;      // [max(n,2), max(E, H)] layer input rows
    float *h;      // [max(n,2), H]
    float *c;      // [max(n,2), H]
    float *gates;  // [max(n,2), 4H]
    float *tanh_c; // [H] written by the shared cell update, unused here
    float *logits; // [max(n,2), V]
} InferScratch;

int infer_scratch_alloc(InferScratch *s, const ModelConfig *config, int max_n, char *err);
void infer_scratch_free(InferScratch *s);

int stream_state_alloc(StreamState *st, const ModelConfig *config, char *err);
void stream_state_reset(StreamState *st, const ModelConfig *config);
void stream_state_free(StreamState *st);

/* Feeds ids[i] to states[i] for i < n (n <= s->max_n) and writes each stream's next-char
 * logits into logits [n, V]. */
void infer_step(const Model *model, InferScratch *s, int n, const int *ids,
                StreamState *const *states, float *logits);

#endif
