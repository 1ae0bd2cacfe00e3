/*
 * arch.h — the model seam: one table of operations per architecture.
 *
 * Code that trains, scores, loads or serves a model calls the architecture through
 * model->arch and never names one; an architecture (core/lstm*.c, core/gpt*.c) fills
 * one Arch with its functions, the way a ggml backend fills ggml_backend_i. The table says
 * what an architecture must provide:
 *
 *   hyperparameters  read from a model file's metadata, checked, and listed as named values
 *                    (written back as metadata and shown on the model card)
 *   parameters       the tensor table (names, shapes, offsets into one float buffer),
 *                    allocation and the seeded initialisation
 *   training         a workspace for [T, B] windows, forward (mean loss) and backward
 *                    (gradients added into a buffer laid out like the parameters), and for
 *                    scoring a long text chunk by chunk, a reset and a carry of its state
 *   inference        prepare (the inference layout of the weights), a per-stream state,
 *                    scratch for a batched step of n streams, and a prefill of one stream's
 *                    chunk; a step's row is the same whatever n is, and a prefill gives the
 *                    bits of as many steps
 *   context          the longest context a stream can hold, or 0 when unbounded; a
 *                    stream that is full when one more char must be fed keeps its last
 *                    floor(context / 2) chars, fed again from the reset state, and goes on
 *                    (the context rule, which generation and scoring both follow)
 *
 * Handles (workspace, state, scratch) are the architecture's own objects behind void *:
 * only its functions look inside. The model file names its architecture in the metadata
 * key "arch"; a file without it is an LSTM (every file written before the seam), and the
 * LSTM's files are written without it, so their bytes stay what they were
 * (docs/FORMATS.md).
 */
#ifndef CHARLM_ARCH_H
#define CHARLM_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "rng.h"
#include "safetensors.h"

// The most tensors any architecture's table has (the GPT's: 4 + 12 per layer, 64 layers).
#define ARCH_MAX_TENSORS (4 + 12 * 64)
// The most hyperparameters an architecture lists.
#define ARCH_MAX_FIELDS 16
#define ARCH_DEFAULT    "lstm" // a model file without the "arch" key

/* One hyperparameter by name: a number, or text when text is not NULL. */
typedef struct {
    const char *name;
    long number;
    const char *text;
} ArchField;

/* Training's dropout rates, as charlm-train's flags set them; each architecture applies
 * those it has (the LSTM all three) and the others are 0. */
typedef struct {
    float dropout;       // between layers (the LSTM), or on every residual branch
    float embed_dropout; // whole embedding rows, one mask per step for the batch
    float var_dropout;   // variational: one mask per window on every layer's input and output
} ArchDropout;

typedef struct Arch {
    const char *name;   // the metadata value "arch", and --arch
    const char *layout; // the network in one line, for the model card

    /* Hyperparameters. config_set gives a new model the hyperparameters in hyper, the
     * architecture's own struct (the LSTM's ModelConfig, the GPT's GptConfig) as
     * charlm-train's flags fill it, and checks them; config_read fills them from a file's
     * metadata (vocab_size already checked and given), the message naming the file and
     * the key. Either may allocate what arch_free releases. fields lists them in the
     * order they are written; hyper gives them back as config_set takes them, so that a
     * new model can be made like a loaded one (training from its weights). */
    int (*config_set)(Model *model, const void *hyper, int vocab_size, char *err);
    int (*config_read)(Model *model, const StFile *f, int vocab_size, char *err);
    int (*config_check)(const Model *model, char *err);
    int (*fields)(const Model *model, ArchField *out);
    const void *(*hyper)(const Model *model);

    /* Parameters: the table of the hyperparameters' tensors (at most ARCH_MAX_TENSORS),
     * tensor i wherever it lives, pointing the weights at tensors stored one by one (NULL
     * when the weights must be one buffer: a loader then copies them into alloc's), a
     * zeroed allocation of the parameters, and the seeded initialisation (which
     * allocates). free releases all of it, inference layout included. */
    int (*tensors)(const Model *model, ModelTensor *out);
    const float *(*tensor)(const Model *model, int i);
    void (*point_each)(Model *model, float *const *data);
    // Pairs {second name, tensor}: a tied tensor that a file may also hold under a second
    // name (nanoGPT's lm_head.weight, which is wte), accepted when equal to it.
    const char *const (*tied)[2];
    int ntied;
    int (*alloc)(Model *model, char *err);
    int (*init)(Model *model, uint64_t seed, char *err);
    void (*free)(Model *model);
    void (*drop_weights)(Model *model); // keep only what inference reads (a server's model)

    /* Training. A workspace holds the activations of up to max_T steps of B windows, and
     * with drop (NULL: none) what its dropout needs. forward runs T of them (inputs and
     * targets [T, B]; targets NULL: logits only; a target < 0 is not scored) and returns
     * the summed cross-entropy divided by norm; with rng it trains, drawing the window's masks from
     * rng, and without (NULL) it scores. step_begin draws, once per optimisation step and from the
     * step's own generator, what the workspaces of all n workers share. reset zeroes the
     * state a forward starts from; carry makes the last forward's final state the next
     * one's start. An architecture with a context (below) scores windows of at most that
     * many steps, each from the reset state (evaluate.h). */
    void *(*workspace_alloc)(const Model *model, int max_T, int B, const ArchDropout *drop,
                             char *err);
    void (*workspace_free)(void *ws);
    void (*step_begin)(const Model *model, void *const *ws, int n, Rng *rng);
    float (*forward)(const Model *model, void *ws, int T, const int *inputs, const int *targets,
                     Rng *rng, float norm);
    void (*backward)(const Model *model, void *ws, const int *inputs, const int *targets,
                     float norm, float *grads);
    void (*reset)(void *ws);
    void (*carry)(void *ws);

    /* Inference. step feeds ids[i] to states[i] for i < n (n <= the scratch's max_n) and
     * writes logits [n, V]; prefill feeds ids[0 .. T) (T <= its max_t) to one state and
     * writes the logits of the last nlogits positions. scratch_fits and prefill_fits say
     * whether a scratch made for one model serves another of the same architecture too. */
    int (*prepare)(Model *model, char *err);
    size_t (*state_bytes)(const Model *model); // what one stream's state_alloc holds
    void *(*state_alloc)(const Model *model, char *err);
    void (*state_reset)(void *state); // as state_alloc left it: nothing fed
    void (*state_free)(void *state);
    void *(*scratch_alloc)(const Model *model, int max_n, char *err);
    void (*scratch_free)(void *scratch);
    int (*scratch_fits)(const Model *model, const void *scratch);
    void (*step)(const Model *model, void *scratch, int n, const int *ids, void *const *states,
                 float *logits);
    void *(*prefill_alloc)(const Model *model, int max_t, char *err);
    void (*prefill_free)(void *scratch);
    int (*prefill_fits)(const Model *model, const void *scratch);
    void (*prefill)(const Model *model, void *scratch, int T, const int *ids, void *state,
                    float *logits, int nlogits);
    int (*context)(const Model *model); // longest context in chars, 0 = unbounded
} Arch;

extern const Arch arch_lstm;
extern const Arch arch_gpt;

/* The context rule's one number: how many of its last chars a full context of that many
 * keeps, floor(context / 2). */
int arch_context_keep(int context);
/* The architecture of that name, or NULL. */
const Arch *arch_find(const char *name);
/* Frees a model through its table; a model never allocated (all zero) is left alone. */
void arch_free(Model *model);
/* The number of model's hyperparameter of that name (fields), or 0 without one. */
long arch_field(const Model *model, const char *name);
/* Parses the whole metadata value of key as an integer in [lo, hi]: for config_read. */
int arch_meta_long(const StFile *f, const char *key, long lo, long hi, long *out, char *err);

#endif
