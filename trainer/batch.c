/* batch.c — generations batched through the architecture's step: see batch.h. */
#include "batch.h"

#include <stdlib.h>

#include "arch.h"
#include "error.h"

typedef struct {
    const Model *model;
    int width, V;
    Generation *g;  // [width] line i in slot i % width, for lo <= i < hi
    int *ids, *who; // [width] the step's inputs, and whose they are
    void **states;  // [width]
    float *logits;  // [width, V]
    void *scratch, *prefill;
} Batch;

static void batch_free(Batch *b) {
    const Arch *arch = b->model->arch;
    free(b->g);
    free(b->ids);
    free(b->who);
    free(b->states);
    free(b->logits);
    if (b->scratch) arch->scratch_free(b->scratch);
    if (b->prefill) arch->prefill_free(b->prefill);
}

/* One step of every generation in [lo, hi) not yet done; the context rule first for those
 * whose context is full, as generate_run does it. */
static int batch_step(Batch *b, int lo, int hi, char *err) {
    const Arch *arch = b->model->arch;
    int k = 0;
    for (int i = lo; i < hi; i++) {
        Generation *g = &b->g[i % b->width];
        if (g->done) continue;
        if (generation_room(g) == 0) {
            int n;
            const int *ids = generation_shift(g, &n);
            if (!b->prefill && !(b->prefill = arch->prefill_alloc(b->model, n, err))) return -1;
            arch->prefill(b->model, b->prefill, n, ids, g->state, NULL, 0);
        }
        b->ids[k] = generation_input(g);
        b->states[k] = g->state;
        b->who[k++] = i;
    }
    if (k == 0) return 0;
    arch->step(b->model, b->scratch, k, b->ids, b->states, b->logits);
    for (int j = 0; j < k; j++)
        generation_advance(&b->g[b->who[j] % b->width], b->logits + (size_t)j * b->V);
    return 0;
}

int batch_run(const Model *model, const Vocab *vocab, const PromptLine *lines, int n, int width,
              void (*on_done)(const Generation *g, int i, void *ctx), void *ctx, char *err) {
    if (width > n) width = n;
    if (width < 1) return 0;
    Batch b = {.model = model, .width = width, .V = model->vocab_size};
    b.g = calloc((size_t)width, sizeof(*b.g));
    b.ids = malloc((size_t)width * sizeof(int));
    b.who = malloc((size_t)width * sizeof(int));
    b.states = malloc((size_t)width * sizeof(void *));
    b.logits = malloc((size_t)width * (size_t)b.V * sizeof(float));
    if (!b.g || !b.ids || !b.who || !b.states || !b.logits) {
        batch_free(&b);
        return err_set(err, "out of memory for %d streams", width);
    }
    if (!(b.scratch = model->arch->scratch_alloc(model, width, err))) {
        batch_free(&b);
        return -1;
    }
    int lo = 0, hi = 0, rc = 0;
    while (rc == 0 && lo < n) {
        for (; hi < n && hi - lo < width; hi++) {
            const PromptLine *l = &lines[hi];
            if (generation_init(&b.g[hi % width], model, vocab, l->prompt, l->prompt_len,
                                &l->params, err) != 0) {
                rc = -1;
                break;
            }
        }
        if (rc == 0) rc = batch_step(&b, lo, hi, err);
        for (; lo < hi && (rc != 0 || b.g[lo % width].done); lo++) {
            if (rc == 0) on_done(&b.g[lo % width], lo, ctx);
            generation_free(&b.g[lo % width]);
        }
    }
    batch_free(&b);
    return rc;
}
