/*
 * lstm.h — training-time forward and backward over a [T, B] batch.
 *
 * Forward: for each layer, the input projections for all T steps at once, then T
 * recurrent products ([B, H] x [H, 4H]) -> (dropout between layers) -> logits for all
 * T*B positions in one product -> softmax cross-entropy. Layer 0's input is an embedding
 * row, so its projection is a lookup in a [V, 4H] table made by one small product, and
 * its backward sums gate gradients per token instead of multiplying [T*B]-row matrices;
 * layers above use one [T*B, H] x [H, 4H] product. Backward mirrors the forward pass,
 * accumulating into a gradient buffer laid out like the parameters.
 *
 * A workspace holds every activation the backward pass needs for one (T, B), so the
 * training loop allocates once. Row 0 of h and c is the initial state: zero for training
 * windows (lstm_state_reset), or the previous chunk's final state when a long text is
 * scored chunk by chunk (lstm_state_carry). The loss is summed over positions and divided by `norm`
 * (normally T*B), which lets the batch be split across threads whose gradients then add
 * up to the gradient of the whole batch's mean.
 */
#ifndef CHARLM_LSTM_H
#define CHARLM_LSTM_H

#include "model.h"
#include "rng.h"

typedef struct {
    ModelConfig config;
    int max_T; // capacity the buffers were allocated for
    int T;     // steps of the next forward call, 1 .. max_T (callers may lower it)
    int B;
    float *proj;    // [V, 4H] layer 0: token -> input projection table; its gradient in backward
    float *gates;   // [L, T, B, 4H] activated gates i, f, g, o
    float *c;       // [L, max_T+1, B, H] cell state, row 0 = initial
    float *h;       // [L, max_T+1, B, H] hidden state, row 0 = initial
    float *tanh_c;  // [L, T, B, H]
    float *mask;    // [L-1, T, B, H] dropout masks (already scaled by 1/(1-p)), or NULL
    float *drop;    // [L-1, T, B, H] masked outputs fed to the next layer, or NULL
    float *logits;  // [T, B, V] logits, then softmax probabilities after the loss
    float *dgates;  // [T, B, 4H] backward scratch
    float *dh;      // [T, B, H] gradient flowing into a layer's outputs
    float *din;     // [T, B, H] gradient of the inputs of a layer above 0
    float *dh_next; // [B, H]
    float *dc_next; // [B, H]
    // Training-only regularisation (lstm_workspace_regularise); all NULL otherwise. The
    // masks hold 0 or 1/(1-p) and are filled by the caller before lstm_forward.
    float *emb_mask; // [V] embedding dropout: one factor per embedding row
    float *var_in;   // [B, E] variational dropout on layer 0's input, shared across time
    float *var_mid;  // [L-1, B, H] on the inputs of the layers above 0
    float *var_out;  // [B, H] on the top layer's output
    float *x0;       // [T, B, E] layer 0's masked inputs (when emb_mask or var_in)
    float *dx0;      // [T, B, E] their gradient
    float *top;      // [T, B, H] the top layer's masked output (when var_out)
} LstmWorkspace;

int lstm_workspace_alloc(LstmWorkspace *ws, const ModelConfig *config, int max_T, int B,
                         int with_dropout, char *err);
void lstm_workspace_free(LstmWorkspace *ws);
/* Adds the buffers for embedding dropout (embed) and variational dropout (variational)
 * to a workspace (freeing all of it on failure). With them layer 0 multiplies gathered,
 * masked embedding rows instead of reading the token table. */
int lstm_workspace_regularise(LstmWorkspace *ws, int embed, int variational, char *err);
/* Fills mask[0 .. n) with 0 (probability p) or 1/(1-p), one rng_float per entry. */
void lstm_dropout_mask(float *mask, size_t n, float p, Rng *rng);

/* Zeroes the initial state of every layer. */
void lstm_state_reset(LstmWorkspace *ws);
/* Makes the final state of the last forward call the initial state of the next. */
void lstm_state_carry(LstmWorkspace *ws);

/* inputs, targets: [T, B] token ids. dropout in [0, 1); rng draws masks when > 0 (each
 * unit at each step; with var_mid the two masks multiply). The masks of a regularised
 * workspace apply as they are.
 * Returns the summed cross-entropy over the T*B positions divided by norm; if
 * targets is NULL only logits are computed and 0 is returned. */
float lstm_forward(const Model *model, LstmWorkspace *ws, const int *inputs, const int *targets,
                   float dropout, Rng *rng, float norm);
/* Adds d(loss)/d(params) into grads (laid out like model->params). Must follow a
 * forward call with targets on the same workspace. */
void lstm_backward(const Model *model, LstmWorkspace *ws, const int *inputs, const int *targets,
                   float norm, float *grads);

#endif
