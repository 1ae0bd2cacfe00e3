/*
 * optim.h — Adam with global-norm gradient clipping and a warmup + cosine schedule.
 *
 * Adam follows torch.optim.Adam (betas 0.9/0.999, eps 1e-8, bias correction, no weight
 * decay); clipping follows torch.nn.utils.clip_grad_norm_ (scale by clip/(norm+1e-6)
 * when norm > clip).
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
void adam_step(Adam *adam, float *params, const float *grads, float lr);
/* Linear warmup over `warmup` steps, then cosine decay to lr_min at `total`. step from 0. */
float optim_lr(long step, long total, long warmup, float lr_max, float lr_min);

#endif
