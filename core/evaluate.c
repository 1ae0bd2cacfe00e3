#include "evaluate.h"

#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "arch.h"

#define EVAL_CHUNK 128

/* The context rule's scoring (arch.h): each stream's piece in windows of `context` chars
 * with a stride of context - floor(context / 2), each window from the reset state; the
 * first window scores all its predictions, each later one its last `stride` (those before
 * were scored by the window before), so every char is predicted once, with the context a
 * generation that fed the text char by char would have had. */
static double score_windows(const Model *model, void *ws, const int *ids, size_t per, int streams,
                            int context, int *inputs, int *targets) {
    const Arch *arch = model->arch;
    size_t stride = (size_t)(context - arch_context_keep(context));
    double total = 0.0;
    for (size_t start = 0, scored = 0; scored < per; start += stride) {
        size_t T = per - start < (size_t)context ? per - start : (size_t)context;
        for (size_t t = 0; t < T; t++)
            for (int s = 0; s < streams; s++) {
                size_t at = (size_t)s * per + start + t;
                inputs[t * streams + s] = ids[at];
                targets[t * streams + s] = start + t < scored ? -1 : ids[at + 1];
            }
        arch->reset(ws);
        total += arch->forward(model, ws, (int)T, inputs, targets, NULL, 1.0f);
        scored = start + T;
    }
    return total;
}

int evaluate_ids(const Model *model, const int *ids, size_t n, int streams, EvalResult *out,
                 char *err) {
    size_t per = n > 0 ? (n - 1) / (size_t)streams : 0; // predictions per stream
    if (per == 0) return err_set(err, "text too short to score (%zu chars)", n);
    const Arch *arch = model->arch;
    int context = arch->context(model);
    int chunk = context > 0 ? context : EVAL_CHUNK;
    int T = per < (size_t)chunk ? (int)per : chunk;
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
    if (context > 0) total = score_windows(model, ws, ids, per, streams, context, inputs, targets);
    for (size_t done = 0, step; context == 0 && done < per; done += step) {
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
