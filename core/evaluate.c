#include "evaluate.h"

#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "arch.h"

#define EVAL_CHUNK 128

int evaluate_ids(const Model *model, const int *ids, size_t n, int streams, EvalResult *out,
                 char *err) {
    size_t per = n > 0 ? (n - 1) / (size_t)streams : 0; // predictions per stream
    if (per == 0) return err_set(err, "text too short to score (%zu chars)", n);
    int T = per < EVAL_CHUNK ? (int)per : EVAL_CHUNK;
    const Arch *arch = model->arch;
    void *ws = arch->workspace_alloc(model, T, streams, NULL, err);
    if (!ws) return -1;
    int *inputs = malloc((size_t)T * streams * sizeof(int));  // [T, streams]
    int *targets = malloc((size_t)T * streams * sizeof(int)); // [T, streams]
    if (!inputs || !targets) {
        free(inputs);
        free(targets);
        arch->workspace_free(ws);
        return err_set(err, "out of memory scoring %zu chars", n);
    }
    arch->reset(ws);
    double total = 0.0;
    for (size_t done = 0, step; done < per; done += step) {
        step = per - done < (size_t)T ? per - done : (size_t)T;
        for (size_t t = 0; t < step; t++)
            for (int s = 0; s < streams; s++) {
                size_t at = (size_t)s * per + done + t;
                inputs[t * streams + s] = ids[at];
                targets[t * streams + s] = ids[at + 1];
            }
        total += arch->forward(model, ws, (int)step, inputs, targets, NULL, 1.0f);
        arch->carry(ws);
    }
    out->count = per * (size_t)streams;
    out->loss = total / (double)out->count;
    free(inputs);
    free(targets);
    arch->workspace_free(ws);
    return 0;
}
