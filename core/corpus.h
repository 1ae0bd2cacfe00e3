/*
 * corpus.h — a training text as token ids, its split, and random training windows.
 *
 * The file must be valid UTF-8 (the error gives the byte offset of the first bad
 * sequence). The last val_frac of the characters is the validation split, contiguous.
 */
#ifndef CHARLM_CORPUS_H
#define CHARLM_CORPUS_H

#include <stddef.h>

#include "rng.h"
#include "vocab.h"

typedef struct {
    int *ids; // [n] every character of the file as a token id (-1 = not in vocab)
    size_t n;
    size_t n_train; // ids[0 .. n_train) train, ids[n_train .. n) validation
    char sha256[65];
} Corpus;

/* Reads path. If vocab->size == 0 the vocabulary is built from the text; otherwise the
 * given vocabulary is used and unknown characters become -1. */
int corpus_load(Corpus *corpus, const char *path, Vocab *vocab, double val_frac, char *err);
void corpus_free(Corpus *corpus);
/* Removes the ids -1 (chars a given vocabulary lacks) from both splits, each keeping its
 * order and its own chars, so that no window holds one. Returns how many it removed. */
size_t corpus_drop_unknown(Corpus *corpus);

/* Fills inputs and targets [T, B] with B windows starting at uniform random offsets of
 * the training split (targets are inputs shifted by one). */
void corpus_batch(const Corpus *corpus, Rng *rng, int T, int B, int *inputs, int *targets);

#endif
