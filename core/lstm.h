/*
 * lstm.h — training-time forward and backward over a [T, B] batch.
 *
 * Forward: embed -> for each layer, the input projections for all T steps in one
 * product ([T*B, in] x [in, 4H]), then T recurrent products ([B, H] x [H, 4H]) ->
 * (dropout between layers) -> logits for all T*B positions in one product -> softmax
 * cross-entropy. Every initial state is zero. Backward mirrors it, accumulating into a
 * gradient buffer laid out like the parameters.
 *
 * A workspace holds every activation the backward pass needs for one (T, B), so the
 * training loop allocates once. The loss is summed over positions and divided by `norm`
 * (normally T*B), which lets the batch be split across threads whose gradients then add
 * up to the gradient of the whole batch's mean.
 */
#ifndef CHARLM_LSTM_H
#define CHARLM_LSTM_H

#include "model.h"
#include "rng.h"

typedef struct {
    ModelConfig config;
    int T, B;
    float *x;      // [T, B, E] embedded inputs
    float *gates;  // [L, T, B, 4H] activated gates i, f, g, o
    float *c;      // [L, T+1, B, H] cell state, row 0 = initial (zero)
    float *h;      // [L, T+1, B, H] hidden state, row 0 = initial (zero)
    float *tanh_c; // [L, T, B, H]
    float *mask;   // [L-1, T, B, H] dropout masks (already scaled by 1/(1-p)), or NULL
    float *drop;   // [L-1, T, B, H] masked outputs fed to the next layer, or NULL
    float *logits; // [T, B, V] logits, then softmax probabilities after the loss
    float *dgates; // [T, B, 4H] backward scratch
    float *dh;     // [T, B, H] gradient flowing into a layer's outputs
    float *din;    // [T, B, max(E, H)] gradient of a layer's inputs
    float *dh_next; // [B, H]
    float *dc_next; // [B, H]
} LstmWorkspace;

int lstm_workspace_alloc(LstmWorkspace *ws, const ModelConfig *config, int T, int B,
                         int with_dropout, char *err);
void lstm_workspace_free(LstmWorkspace *ws);

/* inputs, targets: [T, B] token ids. dropout in [0, 1); rng draws masks when > 0.
 * Returns the summed cross-entropy over the T*B positions divided by norm; if
 * targets is NULL only logits are computed and 0 is returned. */
float lstm_forward(const Model *model, LstmWorkspace *ws, const int *inputs, const int *targets,
                   float dropout, Rng *rng, float norm);
/* Adds d(loss)/d(params) into grads (laid out like model->params). Must follow a
 * forward call with targets on the same workspace. */
void lstm_backward(const Model *model, LstmWorkspace *ws, const int *inputs, const int *targets,
                   float norm, float *grads);

#endif
