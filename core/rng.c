#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void rng_seed(Rng *rng, uint64_t seed) {
    // splitmix64 never yields four zero words, the one state xoshiro cannot leave.
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

uint64_t rng_child_seed(uint64_t seed, uint64_t index) {
    if (index == 0) return seed;
    uint64_t x = seed ^ (index * 0xD1B54A32D192ED03ULL);
    return splitmix64(&x) & ((1ULL << 53) - 1);
}

uint64_t rng_next(Rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_float(Rng *rng) {
    return (float)(rng_next(rng) >> 40) * 0x1.0p-24f;
}

double rng_double(Rng *rng) {
    return (double)(rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t rng_below(Rng *rng, uint64_t n) {
    if (n <= 1) return 0;
    // Reject the top sliver of the range so every residue is equally likely.
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_next(rng);
    while (x >= limit);
    return x % n;
}

float rng_normal(Rng *rng) {
    // One draw per call (the sine partner is dropped) keeps the state the only state,
    // so checkpoints need nothing beyond the four words.
    double u1 = 1.0 - rng_double(rng); // (0, 1], safe for log
    double u2 = rng_double(rng);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
