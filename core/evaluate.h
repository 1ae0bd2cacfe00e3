/*
 * evaluate.h — scoring a text: mean cross-entropy in nats per character.
 *
 * The ids are cut into `streams` contiguous pieces run side by side, each from the zero
 * state with its state carried from chunk to chunk, never reset; an architecture with a
 * context (the GPT's block) scores each piece by the context rule (arch.h) instead:
 * windows of `context` chars with a stride of context - floor(context / 2), every char
 * predicted once, as a generation fed the text would predict it. With streams = 1 this is
 * the standard continuous bits-per-char measure (`charlm-train eval`); training's
 * validation uses B streams for speed and drops the last < B predictions that do not
 * divide evenly.
 */
#ifndef CHARLM_EVALUATE_H
#define CHARLM_EVALUATE_H

#include <stddef.h>

#include "model.h"

typedef struct {
    double loss;  // mean nats per scored prediction
    size_t count; // predictions scored
} EvalResult;

/* ids: [n] valid token ids. Fails only when out of memory or fewer than two chars per stream. */
int evaluate_ids(const Model *model, const int *ids, size_t n, int streams, EvalResult *out,
                 char *err);

#endif
