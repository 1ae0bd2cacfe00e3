#include "sampler.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int sampler_init(Sampler *s, int V, char *err) {
    memset(s, 0, sizeof(*s));
    if (V <= 0) return err_set(err, "sampler: vocabulary size must be positive, got %d", V);
    s->V = V;
    s->logits = malloc((size_t)V * sizeof(float));
    s->order = malloc((size_t)V * sizeof(int));
    s->seen = calloc((size_t)V, 1);
    s->counts = calloc((size_t)V, sizeof(int));
    if (!s->logits || !s->order || !s->seen || !s->counts) {
        sampler_free(s);
        return err_set(err, "sampler: out of memory for a vocabulary of %d", V);
    }
    return 0;
}

void sampler_free(Sampler *s) {
    free(s->logits);
    free(s->order);
    free(s->seen);
    free(s->counts);
    memset(s, 0, sizeof(*s));
}

void sampler_accept(Sampler *s, int id) {
    if (id >= 0 && id < s->V && s->counts[id] < INT_MAX) s->counts[id]++;
}

// Keeps every logit finite: an extreme penalty or bias can push one to infinity, where
// differences become NaN. A banned id sits at -FLT_MAX, below any logit a model gives.
static void clamp_logits(float *l, int V) {
    for (int v = 0; v < V; v++)
        if (!(l[v] >= -FLT_MAX))
            l[v] = -FLT_MAX;
        else if (l[v] > FLT_MAX)
            l[v] = FLT_MAX;
}

// Whether id i ranks before id j: the larger logit, ties to the lower id, so the order
// (and hence every draw) is a function of the logits alone.
static inline int ranks_before(const float *l, int i, int j) {
    return l[i] > l[j] || (l[i] == l[j] && i < j);
}

// Restores the heap below pos: order[0 .. n) is a heap whose root ranks first.
static void sift_down(int *order, int n, int pos, const float *l) {
    int id = order[pos];
    for (;;) {
        int child = 2 * pos + 1;
        if (child >= n) break;
        if (child + 1 < n && ranks_before(l, order[child + 1], order[child])) child++;
        if (!ranks_before(l, order[child], id)) break;
        order[pos] = order[child];
        pos = child;
    }
    order[pos] = id;
}

// Puts the k first-ranked ids, in rank order, at the front of order [V]: a heap popped k
// times, cheaper than a full sort when k < V.
static void top_ids(int *order, int V, int k, const float *l) {
    for (int v = 0; v < V; v++) order[v] = v;
    for (int pos = V / 2 - 1; pos >= 0; pos--) sift_down(order, V, pos, l);
    for (int n = V; n > V - k; n--) { // each pop parks the root at the heap's end
        int best = order[0];
        order[0] = order[n - 1];
        order[n - 1] = best;
        sift_down(order, n - 1, 0, l);
    }
    for (int i = V - k, j = V - 1; i < j; i++, j--) { // [V-k, V) is last-first: reverse
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    memmove(order, order + V - k, (size_t)k * sizeof(int));
}

int sampler_draw(Sampler *s, const float *logits, const SamplerParams *params, const int *recent,
                 int nrecent, Rng *rng) {
    int V = s->V;
    float *l = s->logits; // [V]
    memcpy(l, logits, (size_t)V * sizeof(float));

    for (int i = 0; i < params->nbias; i++) {
        const SamplerBias *b = &params->bias[i];
        if (b->id >= 0 && b->id < V) l[b->id] += b->bias;
    }
    if (params->nbias > 0) clamp_logits(l, V);

    float pen = params->repetition_penalty;
    int window = params->repetition_window < nrecent ? params->repetition_window : nrecent;
    if (pen != 1.0f && window > 0) {
        // Each id is penalised once however often it occurs in the window (CTRL's rule,
        // as in llama.cpp and Hugging Face).
        const int *w = recent + (nrecent - window);
        for (int i = 0; i < window; i++) {
            int id = w[i];
            if (id < 0 || id >= V || s->seen[id]) continue;
            s->seen[id] = 1;
            l[id] = l[id] > 0 ? l[id] / pen : l[id] * pen;
        }
        for (int i = 0; i < window; i++)
            if (w[i] >= 0 && w[i] < V) s->seen[w[i]] = 0;
        clamp_logits(l, V);
    }

    float fp = params->frequency_penalty, pp = params->presence_penalty;
    if (fp != 0.0f || pp != 0.0f) {
        for (int v = 0; v < V; v++)
            if (s->counts[v] > 0) l[v] -= fp * (float)s->counts[v] + pp;
        clamp_logits(l, V);
    }

    // Bans last, so that no penalty can lift a banned id back into reach.
    for (int i = 0; i < params->nbias; i++) {
        const SamplerBias *b = &params->bias[i];
        if (b->id >= 0 && b->id < V && b->bias <= -SAMPLER_BIAS_MAX) l[b->id] = -FLT_MAX;
    }

    if (params->temperature <= 0.0f || params->top_k == 1) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (l[v] > l[best]) best = v;
        return best;
    }

    // Top-k and top-p only depend on the order of the logits, which a positive
    // temperature does not change, so rank once and apply the temperature inside exp.
    int n = V;
    if (params->top_k > 0 && params->top_k < n) n = params->top_k;
    const int *order = s->order; // [n] ids, first-ranked first
    top_ids(s->order, V, n, l);

    // Unnormalised probabilities, largest first: exp((l - max) / T) is in (0, 1] for any
    // T > 0, so a tiny temperature cannot overflow.
    double inv_t = 1.0 / (double)params->temperature;
    double top = l[order[0]], total = 0.0;
    for (int i = 0; i < n; i++) {
        double p = exp(((double)l[order[i]] - top) * inv_t);
        l[order[i]] = (float)p;
        total += (float)p;
    }

    if (params->top_p < 1.0f) {
        // The smallest prefix of the sorted ids whose probability reaches top_p.
        double target = (double)params->top_p * total, cum = 0.0;
        int m = 0;
        while (m < n) {
            cum += l[order[m++]];
            if (cum >= target) break;
        }
        n = m;
        total = cum;
    }

    if (params->min_p > 0.0f) {
        // The first-ranked id's unnormalised probability is exactly 1, so min_p is the
        // threshold itself, and the ranked prefix at or above it is what stays (never
        // empty, since min_p <= 1).
        double cum = l[order[0]];
        int m = 1;
        while (m < n && l[order[m]] >= params->min_p) cum += l[order[m++]];
        n = m;
        total = cum;
    }

    double u = rng_double(rng) * total, cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += l[order[i]];
        if (u < cum) return order[i];
    }
    // u landed on the rounding edge: the last kept id that has any probability (a banned
    // one has none).
    while (n > 1 && l[order[n - 1]] == 0.0f) n--;
    return order[n - 1];
}
