/*
 * train.h — the training loop's state and one optimisation step.
 *
 * A step draws B random windows, splits the batch across `threads` workers (each runs
 * forward and backward on its columns with single-threaded OpenBLAS into its own
 * gradient buffer), adds the workers' gradients in a fixed order, clips, and takes an
 * Adam(W) step at the scheduled learning rate. Everything random comes from one generator
 * whose state the checkpoint keeps, so the same seed and thread count give the same
 * bits, and a resumed run continues exactly where the interrupted one stopped. A time
 * budget (max_time) is the exception: its schedule follows the clock.
 */
#ifndef CHARLM_TRAIN_H
#define CHARLM_TRAIN_H

#include "arch.h"
#include "corpus.h"
#include "model.h"
#include "optim.h"
#include "rng.h"

#define TRAIN_MAX_THREADS 64
// Bounds train_config_check applies (and charlm-train's flags state).
#define TRAIN_MAX_SEQ   65536
#define TRAIN_MAX_BATCH 65536
#define TRAIN_MAX_LR    10 // exclusive

// charlm-train's defaults for each architecture: its flag rows show these, and the
// server's fine-tuning jobs size their runs by them.
#define TRAIN_LSTM_BATCH 64
#define TRAIN_LSTM_SEQ   128
#define TRAIN_LSTM_STEPS 1500
#define TRAIN_LSTM_LR    2e-3
#define TRAIN_GPT_BATCH  32
#define TRAIN_GPT_BLOCK  128
#define TRAIN_GPT_STEPS  2000
#define TRAIN_GPT_LR     1e-3

typedef struct {
    const Arch *arch;  // the architecture trained; NULL: the default (ARCH_DEFAULT)
    const void *hyper; // its hyperparameters, its own struct (Arch.config_set)
    int vocab_size;
    // Start from these weights rather than fresh ones: a model of arch, hyper and
    // vocab_size (Arch.hyper gives a loaded model's), borrowed by train_init alone.
    const Model *init;
    float dropout;       // between LSTM layers, or the GPT's everywhere (ArchDropout)
    float embed_dropout; // whole embedding rows, one mask per step
    float var_dropout;   // variational: one mask per sequence on every layer's input and output
    float weight_decay;  // AdamW's, on the tensors the architecture's table decays
    float beta2;         // Adam's second-moment decay
    long patience;       // evaluations without a better validation loss before stopping; 0 = off
    int seq;             // T, at most the architecture's context
    int batch;           // B
    long steps;
    // A budget of training time in seconds, 0 = none: the schedule runs on the larger of
    // the steps' and the budget's progress, and the run ends once it is spent.
    double max_time;
    float lr, clip;
    double val_frac;
    long eval_every, checkpoint_every;
    uint64_t seed;
    int threads;
} TrainConfig;

typedef struct {
    int b0, nb;   // this worker's batch columns
    void *ws;     // [T, nb] activations: the architecture's workspace
    float *grads; // [num_params]
    int *inputs;  // [T, nb]
    int *targets; // [T, nb]
    Rng rng;      // dropout masks
    float loss;
} TrainWorker;

typedef struct {
    TrainConfig config;
    Model model;
    Adam adam;
    float *grads;         // [num_params] summed over workers
    Rng rng;              // batches and dropout seeds
    long step;            // steps completed
    double train_time;    // seconds in train_step, over every resumed run (checkpointed)
    double best_val_loss; // INFINITY before the first evaluation
    long best_step;
    int *inputs, *targets; // [T, B]
    int nworkers;
    TrainWorker workers[TRAIN_MAX_THREADS];
} TrainState;

/* Checks flag values; the message names the flag. */
int train_config_check(const TrainConfig *config, char *err);
/* A fresh model from config->seed, or config->init's weights. */
int train_init(TrainState *st, const TrainConfig *config, char *err);
void train_free(TrainState *st);
/* One optimisation step; returns the batch's mean loss and sets *lr to the rate used. */
float train_step(TrainState *st, const Corpus *corpus, float *lr);
/* Warmup length of the schedule for a run of `steps`. */
long train_warmup(long steps);
/* One optimiser step: torch.optim.AdamW with weight_decay on the tensors the
 * architecture's table marks (the LSTM: its weight matrices and the output layer's; the
 * GPT: every tensor of two or more dimensions, as nanoGPT's groups) and 0 on the others;
 * with weight_decay 0, plain Adam. */
void train_adam_step(Adam *adam, Model *model, const float *grads, float lr, float weight_decay);
/* Whether --patience says to stop now: the last evaluation was at st->step and the
 * best one is `patience` or more evaluations back. */
int train_should_stop(const TrainState *st);
/* Whether the time budget is spent (never without one). */
int train_out_of_time(const TrainState *st);

/* checkpoint.safetensors: parameters, Adam moments, step, RNG, best validation loss and
 * training time. */
int train_checkpoint_save(const TrainState *st, const char *path, const char *corpus_sha256,
                          char *err);
/* Restores a checkpoint into an initialised state whose config must match it. */
int train_checkpoint_load(TrainState *st, const char *path, const char *corpus_sha256, char *err);

#endif
