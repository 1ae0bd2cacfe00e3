/*
 * optim.h — Adam(W) with global-norm gradient clipping and a warmup + cosine schedule.
 *
 * Adam follows torch.optim.Adam (betas 0.9/0.999, eps 1e-8, bias correction); with a
 * weight decay it is torch.optim.AdamW: decoupled decay, each decayed parameter is first
 * multiplied by 1 - lr * weight_decay, then takes the Adam step. Clipping follows
 * torch.nn.utils.clip_grad_norm_ (scale by clip/(norm+1e-6) when norm > clip).
 */
#ifndef CHARLM_OPTIM_H
#define CHARLM_OPTIM_H

#include <stddef.h>

typedef struct {
    size_t n;
    float *m; // [n] first moment
    float *v; // [n] second moment
    long t;   // steps taken
    float beta1, beta2, eps;
} Adam;

int adam_init(Adam *adam, size_t n, char *err);
void adam_free(Adam *adam);
/* Clips grads in place to global L2 norm `clip` (<= 0 disables); returns the norm before. */
float optim_clip(float *grads, size_t n, float clip);
/* One Adam step over all n parameters, without weight decay. */
void adam_step(Adam *adam, float *params, const float *grads, float lr);
/* AdamW in parts, for when only some tensors are decayed: adam_begin counts the step,
 * then each adam_update covers parameters [from, to) with its own weight decay (0 = plain
 * Adam). Every parameter must be updated exactly once per step. */
void adam_begin(Adam *adam);
void adam_update(Adam *adam, float *params, const float *grads, size_t from, size_t to, float lr,
                 float weight_decay);
/* Linear warmup over `warmup` steps, then cosine decay to lr_min at `total`. step from 0. */
float optim_lr(long step, long total, long warmup, float lr_max, float lr_min);
/* The same on a budget of time too, `spent` the share of it used so far (0 = the steps
 * alone, the bits of optim_lr): the warmup ramps by the larger of its steps' progress and
 * spent / OPTIM_BUDGET_WARMUP and ends when either is whole; past it, the cosine's
 * progress is the larger of the steps' and spent. */
#define OPTIM_BUDGET_WARMUP 0.05
float optim_lr_budget(long step, long total, long warmup, double spent, float lr_max, float lr_min);

#endif
