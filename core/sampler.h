/*
 * sampler.h — turning logits into the next character.
 *
 * Order: repetition penalty (for every id present in the recent window, a positive
 * logit is divided by the penalty, a negative one multiplied) -> temperature (0 = argmax)
 * -> top-k (0 disables) -> top-p (smallest set of most likely ids whose probability
 * reaches p) -> a draw from the per-request generator.
 */
#ifndef CHARLM_SAMPLER_H
#define CHARLM_SAMPLER_H

#include "rng.h"

typedef struct {
    float temperature;        // >= 0; 0 = greedy
    int top_k;                // >= 0; 0 = off
    float top_p;              // (0, 1]
    float repetition_penalty; // > 0; 1 = off
    int repetition_window;    // >= 0 latest ids penalised
} SamplerParams;

/* Scratch sized for a vocabulary of V. */
typedef struct {
    int V;
    float *logits;       // [V] working copy
    int *order;          // [V] ids sorted by probability
    unsigned char *seen; // [V] window membership
} Sampler;

int sampler_init(Sampler *s, int V, char *err);
void sampler_free(Sampler *s);
/* Draws the next id. recent: the last nrecent ids (oldest first); only the last
 * params->repetition_window of them are penalised. logits are not modified. */
int sampler_draw(Sampler *s, const float *logits, const SamplerParams *params, const int *recent,
                 int nrecent, Rng *rng);

#endif
