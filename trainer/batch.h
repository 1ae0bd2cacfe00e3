/*
 * batch.h — many generations at once through the architecture's batched step, as a
 * server's scheduler runs them, handed back in the order they were given.
 *
 * At most `width` generations are in flight, the oldest first: each step feeds one char to
 * every one not yet done (model->arch->step over their states), and each is handed to
 * on_done as soon as it and every one before it are done. A step's row is the same
 * whatever the batch (arch.h), so each text is what generate_run gives it alone.
 */
#ifndef CHARLM_BATCH_H
#define CHARLM_BATCH_H

#include "generate.h"
#include "model.h"
#include "prompts.h"
#include "vocab.h"

/* Generates lines[0 .. n) in batches of up to width streams, calling on_done(g, i, ctx)
 * for each i in order. Returns 0, or -1 with err when memory ran out (the lines handed
 * over so far stand). */
int batch_run(const Model *model, const Vocab *vocab, const PromptLine *lines, int n, int width,
              void (*on_done)(const Generation *g, int i, void *ctx), void *ctx, char *err);

#endif
