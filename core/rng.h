/*
 * rng.h — a small, fast, seedable generator (xoshiro256**, seeded through splitmix64).
 *
 * Its whole state is four words, so checkpoints store it and a resumed run draws the
 * same numbers an uninterrupted one would have.
 */
#ifndef CHARLM_RNG_H
#define CHARLM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *rng, uint64_t seed);
uint64_t rng_next(Rng *rng);
/* The seed of the index-th of several draws made for one seed: index 0 is seed itself,
 * the others are decorrelated from it and from each other, all below 2^53 (exact in JSON). */
uint64_t rng_child_seed(uint64_t seed, uint64_t index);
/* Uniform in [0, 1) with 24 bits, as float. */
float rng_float(Rng *rng);
/* Uniform in [0, 1) with 53 bits. */
double rng_double(Rng *rng);
/* Uniform integer in [0, n). */
uint64_t rng_below(Rng *rng, uint64_t n);
/* Standard normal (Box-Muller). */
float rng_normal(Rng *rng);

#endif
