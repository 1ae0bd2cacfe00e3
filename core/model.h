/*
 * model.h — the model's hyperparameters and its parameters in one buffer.
 *
 *   Embedding(V, E) -> LSTM(E -> H, L layers) -> Linear(H, V)
 *
 * All parameters live in one contiguous float buffer; LstmWeights holds named pointers
 * into it. The same layout (model_point) is laid over the gradient buffer and the two
 * Adam moment buffers, so zeroing, clipping, updating, saving and loading are each one
 * loop over num_params floats. Tensor layout is PyTorch's nn.LSTM (gate order i, f, g, o),
 * so the tensors load into PyTorch unchanged.
 */
#ifndef CHARLM_MODEL_H
#define CHARLM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_MAX_LAYERS  8
#define MODEL_MAX_WIDTH   4096 // largest embed and hidden size
#define MODEL_MAX_TENSORS (3 + 4 * MODEL_MAX_LAYERS)

typedef struct {
    int vocab_size; // V
    int embed;      // E
    int hidden;     // H
    int layers;     // L
} ModelConfig;

typedef struct {
    float *embedding;              // [V, E]
    float *w_ih[MODEL_MAX_LAYERS]; // [4H, in], in = E for layer 0, H above
    float *w_hh[MODEL_MAX_LAYERS]; // [4H, H]
    float *b_ih[MODEL_MAX_LAYERS]; // [4H]
    float *b_hh[MODEL_MAX_LAYERS]; // [4H]
    float *fc_w;                   // [V, H]
    float *fc_b;                   // [V]
} LstmWeights;

/* The weights laid out for inference (infer_prepare in infer.h), a copy that a step reads
 * instead of the model's own tensors (which a process that only infers can then drop,
 * model_drop_weights): the matrices packed in strips (strips.h), each strip's [in, 24] block
 * contiguous, so that a step reads each strip as one sequential run that the prefetcher can
 * follow. */

typedef struct {
    float *buf;
    float *input0;                 // [V, 4H] layer 0's input projection of each token, biases in
    float *w_ih[MODEL_MAX_LAYERS]; // [4H / 24][H][24], layers above 0
    float *w_hh[MODEL_MAX_LAYERS]; // [4H / 24][H][24]
    float *fc_w;                   // [ceil(V / 24)][H][24]
    float *bias[MODEL_MAX_LAYERS]; // [4H] b_ih + b_hh
    float *fc_b;                   // [V]
} InferWeights;

struct Arch;

typedef struct {
    const struct Arch *arch; // its operations (arch.h): &arch_lstm once allocated or loaded
    int vocab_size;          // V, every architecture's
    ModelConfig config;      // the LSTM's hyperparameters
    void *own; // another architecture's model (its own struct, e.g. core/gpt_arch.c's),
               // which its table's functions alone look into; NULL for the LSTM
    size_t num_params;
    float *params;   // [num_params] the one buffer the weights point into, or NULL
    const void *map; // or a loaded model's file, read into a mapping of its own, which
                     // LstmWeights points into tensor by tensor (artefacts.h)
    size_t map_len;
    LstmWeights w;      // all NULL after model_drop_weights
    InferWeights infer; // empty until infer_prepare
} Model;

/* One named tensor of the model, in the order they are stored. */
typedef struct {
    char name[48]; // PyTorch state_dict name, e.g. "lstm.weight_ih_l0"
    int ndim;
    int64_t shape[2];
    size_t offset; // in floats from the start of the parameter buffer
    size_t count;  // floats
    int decay;     // AdamW's weight decay applies to it (the optimiser's parameter groups)
} ModelTensor;

/* Rejects sizes outside what the code supports (with a message naming the field). */
int model_config_check(const ModelConfig *config, char *err);
size_t model_param_count(const ModelConfig *config);
/* Points every field of w into buf laid out as the model's parameters. */
void model_point(LstmWeights *w, const ModelConfig *config, float *buf);
/* Points every field of w at its own place: data[i] holds tensor i of model_tensors. */
void model_point_each(LstmWeights *w, const ModelConfig *config, float *const *data);
/* Tensor i of model_tensors' table, wherever it lives. */
const float *model_tensor(const Model *model, int i);
/* The tensor table: names, shapes and offsets. Returns the number of tensors. */
int model_tensors(const ModelConfig *config, ModelTensor *out);

/* Allocates and initialises like PyTorch: embedding ~ N(0, 1), LSTM and Linear weights
 * and biases ~ U(-1/sqrt(H), 1/sqrt(H)), from a generator seeded with seed. */
int model_init(Model *model, const ModelConfig *config, uint64_t seed, char *err);
/* Allocates zeroed parameters. */
int model_alloc(Model *model, const ModelConfig *config, char *err);
/* Frees the parameters or unmaps the file, and the inference weights. */
void model_free(Model *model);
/* Frees the weights in training layout (params or the file's bytes), keeping config,
 * num_params and the inference copy: for a process that only runs infer_step and
 * infer_prefill, so that a loaded model costs about its size once rather than twice.
 * Training, evaluation (lstm.h), saving and infer_prepare need the weights. */
void model_drop_weights(Model *model);

#endif
