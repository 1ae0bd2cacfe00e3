#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "error.h"

int adam_init(Adam *adam, size_t n, char *err) {
    adam->n = n;
    adam->m = calloc(n, sizeof(float));
    adam->v = calloc(n, sizeof(float));
    adam->t = 0;
    adam->beta1 = 0.9f;
    adam->beta2 = 0.999f;
    adam->eps = 1e-8f;
    if (!adam->m || !adam->v) {
        adam_free(adam);
        return err_set(err, "out of memory for optimizer state (%zu parameters)", n);
    }
    return 0;
}

void adam_free(Adam *adam) {
    free(adam->m);
    free(adam->v);
    adam->m = adam->v = NULL;
}

float optim_clip(float *grads, size_t n, float clip) {
    double sq = 0.0;
    for (size_t i = 0; i < n; i++) sq += (double)grads[i] * grads[i];
    float norm = (float)sqrt(sq);
    if (clip > 0 && norm > clip) {
        float scale = clip / (norm + 1e-6f);
        for (size_t i = 0; i < n; i++) grads[i] *= scale;
    }
    return norm;
}

void adam_begin(Adam *adam) {
    adam->t++;
}

void adam_update(Adam *adam, float *params, const float *grads, size_t from, size_t to, float lr,
                 float weight_decay) {
    float b1 = adam->beta1, b2 = adam->beta2;
    // Same arithmetic as torch.optim.Adam's single-tensor path.
    float bc1 = 1.0f - powf(b1, (float)adam->t);
    float bc2_sqrt = sqrtf(1.0f - powf(b2, (float)adam->t));
    float step_size = lr / bc1;
    // AdamW scales before the moment update, as torch does; skipped at 0 so plain Adam
    // stays exactly what it was.
    if (weight_decay != 0.0f) {
        float keep = (float)(1.0 - (double)lr * weight_decay);
        for (size_t i = from; i < to; i++) params[i] *= keep;
    }
    for (size_t i = from; i < to; i++) {
        float g = grads[i];
        adam->m[i] = b1 * adam->m[i] + (1.0f - b1) * g;
        adam->v[i] = b2 * adam->v[i] + (1.0f - b2) * g * g;
        float denom = sqrtf(adam->v[i]) / bc2_sqrt + adam->eps;
        params[i] -= step_size * adam->m[i] / denom;
    }
}

void adam_step(Adam *adam, float *params, const float *grads, float lr) {
    adam_begin(adam);
    adam_update(adam, params, grads, 0, adam->n, lr, 0.0f);
}

float optim_lr(long step, long total, long warmup, float lr_max, float lr_min) {
    return optim_lr_budget(step, total, warmup, 0.0, lr_max, lr_min);
}

float optim_lr_budget(long step, long total, long warmup, double spent, float lr_max,
                      float lr_min) {
    // On a budget the warmup ends at its steps or at its share of the budget, whichever
    // comes first: a budget too short for the steps still gets its peak rate early.
    double ramp = (double)(step + 1) / (double)warmup, by_time = spent / OPTIM_BUDGET_WARMUP;
    if (step < warmup && by_time < 1) return lr_max * (float)(by_time > ramp ? by_time : ramp);
    long span = total - warmup > 1 ? total - warmup : 1;
    double progress = (double)(step - warmup) / (double)span;
    if (spent > progress) progress = spent;
    if (progress > 1.0) progress = 1.0;
    return (float)(lr_min + 0.5 * (lr_max - lr_min) * (1.0 + cos(M_PI * progress)));
}
