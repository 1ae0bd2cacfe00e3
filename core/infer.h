/*
 * infer.h — one inference step that advances n independent streams at once.
 *
 * Each stream owns its recurrent state (h and c for every layer). A step gathers the
 * n streams' states into [n, H] rows, runs each layer's products for all of them with
 * one pass over the (transposed, see infer_prepare) weights, and scatters the new states
 * back, so a server can batch concurrent requests through it. Each row is computed by
 * the same operations whatever n is: a stream's numbers, and so its sampled text, are
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
    float *h;      // [n, H] the layer's states, then its outputs (the next layer's input)
    float *c;      // [n, H]
    float *gates;  // [n, 4H]
    float *tanh_c; // [H] written by the shared cell update, unused here
} InferScratch;

/* Scratch for prefilling one stream in chunks of up to max_t chars. */
typedef struct {
    int max_t;
    float *x;      // [max_t, H] a layer's outputs over the chunk, the next layer's input
    float *gates;  // [max_t, 4H]
    float *tanh_c; // [H] written by the shared cell update, unused here
} PrefillScratch;

/* Builds model->infer, the transposed weights infer_step reads. artefacts_load does it;
 * call it again after changing a model's parameters. */
int infer_prepare(Model *model, char *err);

int infer_scratch_alloc(InferScratch *s, const ModelConfig *config, int max_n, char *err);
void infer_scratch_free(InferScratch *s);

int stream_state_alloc(StreamState *st, const ModelConfig *config, char *err);
void stream_state_free(StreamState *st);

/* Feeds ids[i] to states[i] for i < n (n <= s->max_n) and writes each stream's next-char
 * logits into logits [n, V]. */
void infer_step(const Model *model, InferScratch *s, int n, const int *ids,
                StreamState *const *states, float *logits);

int prefill_scratch_alloc(PrefillScratch *s, const ModelConfig *config, int max_t, char *err);
void prefill_scratch_free(PrefillScratch *s);

/* Feeds ids[0 .. T) (T <= s->max_t) to one stream as a sequence, the way training's
 * forward runs: layer by layer, each layer's input projections for all T positions in
 * one product, then its recurrence, so a layer's weights are read once per chunk instead
 * of once per char, the recurrent ones stay in cache across the chunk, and no logits are
 * computed for positions nobody reads. Writes the logits of the last nlogits positions
 * (0 <= nlogits <= T) into logits [nlogits, V].
 * Every number is computed by the same chain of operations infer_step uses, so the state
 * and logits are bit for bit those of T single steps: where a prompt is cut into chunks
 * changes nothing. */
void infer_prefill(const Model *model, PrefillScratch *s, int T, const int *ids, StreamState *st,
                   float *logits, int nlogits);

#endif
