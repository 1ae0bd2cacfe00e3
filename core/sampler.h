/*
 * sampler.h — turning logits into the next character.
 *
 * Order of operations, on a copy of the logits:
 *   1. logit bias: each listed id's bias is added to its logit. A bias of -100 (the
 *      least OpenAI allows) bans the id: after step 3 its logit is set to -FLT_MAX, so it
 *      is never drawn whatever the temperature or penalties (unless every id is banned;
 *      then the draw is among them all). +100 is an ordinary bias that outweighs any
 *      difference between a trained model's logits at usual temperatures.
 *   2. repetition penalty: for every id present in the recent window, a positive logit
 *      is divided by the penalty, a negative one multiplied (CTRL's rule).
 *   3. presence and frequency penalties (OpenAI's definitions): with c[j] the number of
 *      times j was generated so far (sampler_accept; the prompt does not count),
 *      logit[j] -= frequency_penalty * c[j] + presence_penalty * (c[j] > 0).
 *   4. temperature: 0 (or top-k 1) takes the argmax of the logits after 1-3 and stops.
 *   5. top-k: keep the k most likely ids (0 disables).
 *   6. top-p: keep the smallest set of most likely ids whose probability reaches p.
 *   7. min-p: keep the ids whose probability (after temperature) is at least min_p times
 *      the most likely id's (0 disables; 1 keeps only the most likely).
 *   8. a draw from the per-request generator among what is left.
 * Bias comes first so that it is a plain shift of what the model said, which the
 * penalties then act on like on any logit; min-p comes after top-k/top-p because all
 * three only cut the ranked list, and with its threshold relative to the top id it
 * gives the same cut wherever it sits. With every new parameter at its default
 * (no bias, penalties 0, min_p 0) the draws are those of steps 2, 4-6 and 8 alone.
 */
#ifndef CHARLM_SAMPLER_H
#define CHARLM_SAMPLER_H

#include "rng.h"

#define SAMPLER_BIAS_MAX 100.0f // |bias| <= this; -SAMPLER_BIAS_MAX bans the id

typedef struct {
    int id;     // 0 .. V-1
    float bias; // [-100, 100], added to the logit
} SamplerBias;

typedef struct {
    float temperature;        // >= 0; 0 = greedy
    int top_k;                // >= 0; 0 = off
    float top_p;              // (0, 1]
    float repetition_penalty; // > 0; 1 = off
    int repetition_window;    // >= 0 latest ids penalised
    float presence_penalty;   // [-2, 2]; 0 = off
    float frequency_penalty;  // [-2, 2]; 0 = off
    float min_p;              // [0, 1]; 0 = off
    int nbias;                // entries in bias, at most V, each id at most once
    const SamplerBias *bias;  // [nbias]; borrowed, must outlive the draws
} SamplerParams;

/* Scratch sized for a vocabulary of V, and one stream's counts of generated ids. */
typedef struct {
    int V;
    float *logits;       // [V] working copy
    int *order;          // [V] ids sorted by probability
    unsigned char *seen; // [V] window membership
    int *counts;         // [V] times each id was generated (sampler_accept)
} Sampler;

int sampler_init(Sampler *s, int V, char *err);
void sampler_free(Sampler *s);
/* Counts id as generated, for the presence and frequency penalties of later draws.
 * Counts start at 0 with sampler_init. */
void sampler_accept(Sampler *s, int id);
/* Draws the next id. recent: the last nrecent ids (oldest first); only the last
 * params->repetition_window of them are penalised. logits are not modified. */
int sampler_draw(Sampler *s, const float *logits, const SamplerParams *params, const int *recent,
                 int nrecent, Rng *rng);

#endif
