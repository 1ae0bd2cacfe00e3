/*
 * artefacts.h — a model folder: model.safetensors + vocab.json (+ train_log.jsonl).
 *
 * Loading checks the pair against each other: hyperparameters from the metadata, every
 * tensor's shape against them, vocab_size against vocab.json, and vocab_sha256 against
 * the vocab file's bytes. Any mismatch is an error naming the file and the problem.
 */
#ifndef CHARLM_ARTEFACTS_H
#define CHARLM_ARTEFACTS_H

#include "model.h"
#include "vocab.h"

typedef struct {
    char vocab_sha256[65];
    char corpus_sha256[65];
    long steps;
    double best_val_loss;
} ModelInfo;

/* Writes <dir>/model.safetensors (atomically) with the metadata docs/FORMATS.md lists.
 * vocab.json must already be in dir: its hash goes into the metadata. */
int artefacts_save_model(const char *path, const Model *model, const ModelInfo *info, char *err);
/* Loads <dir>/vocab.json and <dir>/model.safetensors into vocab and model (allocated),
 * ready for inference (infer_prepare done). The file is read, never mapped (see
 * safetensors.h), and the weights point into what was read; a process that only infers
 * frees that with model_drop_weights. */
int artefacts_load(const char *dir, Model *model, Vocab *vocab, ModelInfo *info, char *err);
/* Loads a model file and checks it against an already loaded vocab with the given hash. */
int artefacts_load_model(const char *path, const Vocab *vocab, const char *vocab_sha256,
                         Model *model, ModelInfo *info, char *err);

#endif
