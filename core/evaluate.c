#include "evaluate.h"

#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "lstm.h"

#define EVAL_CHUNK 128

int evaluate_ids(const Model *model, const int *ids, size_t n, int streams, EvalResult *out,
                 char *err) {
    size_t per = n > 0 ? (n - 1) / (size_t)streams : 0; // predictions per stream
    if (per == 0) return err_set(err, "text too short to score (%zu chars)", n);
    int T = per < EVAL_CHUNK ? (int)per : EVAL_CHUNK;
    LstmWorkspace ws;
    if (lstm_workspace_alloc(&ws, &model->config, T, streams, 0, err) != 0) return -1;
    int *inputs = malloc((size_t)T * streams * sizeof(int));  // [T, streams]
    int *targets = malloc((size_t)T * streams * sizeof(int)); // [T, streams]
    if (!inputs || !targets) {
        free(inputs);
        free(targets);
        lstm_workspace_free(&ws);
        return err_set(err, "out of memory scoring %zu chars", n);
    }
    lstm_state_reset(&ws);
    double total = 0.0;
    for (size_t done = 0; done < per; done += (size_t)ws.T) {
        ws.T = per - done < (size_t)T ? (int)(per - done) : T;
        for (int t = 0; t < ws.T; t++)
            for (int s = 0; s < streams; s++) {
                size_t at = (size_t)s * per + done + t;
                inputs[t * streams + s] = ids[at];
                targets[t * streams + s] = ids[at + 1];
            }
        total += lstm_forward(model, &ws, inputs, targets, 0.0f, NULL, 1.0f);
        lstm_state_carry(&ws);
    }
    out->count = per * (size_t)streams;
    out->loss = total / (double)out->count;
    free(inputs);
    free(targets);
    lstm_workspace_free(&ws);
    return 0;
}
