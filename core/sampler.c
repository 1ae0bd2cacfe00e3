#include "sampler.h"

#include <float.h>
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
    if (!s->logits || !s->order || !s->seen) {
        sampler_free(s);
        return err_set(err, "sampler: out of memory for a vocabulary of %d", V);
    }
    return 0;
}

void sampler_free(Sampler *s) {
    free(s->logits);
    free(s->order);
    free(s->seen);
    memset(s, 0, sizeof(*s));
}

// qsort has no context argument; the logits being sorted are per call, so they travel in
// a thread-local (the server samples on many threads at once).
static _Thread_local const float *sort_logits;

// Descending logit, ties broken by the lower id, so the order (and hence every draw) is a
// function of the logits alone and not of qsort's internals.
static int by_logit_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float li = sort_logits[i], lj = sort_logits[j];
    if (li > lj) return -1;
    if (li < lj) return 1;
    return (i > j) - (i < j);
}

int sampler_draw(Sampler *s, const float *logits, const SamplerParams *params, const int *recent,
                 int nrecent, Rng *rng) {
    int V = s->V;
    float *l = s->logits; // [V]
    memcpy(l, logits, (size_t)V * sizeof(float));

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
        // An extreme penalty can push a logit to infinity, where differences become NaN.
        for (int v = 0; v < V; v++)
            if (!(l[v] >= -FLT_MAX))
                l[v] = -FLT_MAX;
            else if (l[v] > FLT_MAX)
                l[v] = FLT_MAX;
    }

    if (params->temperature <= 0.0f || params->top_k == 1) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (l[v] > l[best]) best = v;
        return best;
    }

    // Top-k and top-p only depend on the order of the logits, which a positive
    // temperature does not change, so sort once and apply the temperature inside exp.
    int *order = s->order; // [V]
    for (int v = 0; v < V; v++) order[v] = v;
    sort_logits = l;
    qsort(order, (size_t)V, sizeof(int), by_logit_desc);

    int n = V;
    if (params->top_k > 0 && params->top_k < n) n = params->top_k;

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

    double u = rng_double(rng) * total, cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += l[order[i]];
        if (u < cum) return order[i];
    }
    return order[n - 1]; // u landed on the rounding edge of the last kept id
}
