/*
 * eval.c — charlm-train eval (trainer/commands.h): scores a text with a model folder.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "arch.h"
#include "artefacts.h"
#include "cli.h"
#include "commands.h"
#include "corpus.h"
#include "error.h"
#include "evaluate.h"

typedef struct {
    const char *model, *corpus;
    double val_frac;
} EvalArgs;

#define EA(f) offsetof(EvalArgs, f)
static const CliOpt eval_opts[] = {
    {.name = "model",
     .type = CLI_STRING,
     .placeholder = "DIR",
     .offset = EA(model),
     .required = 1,
     .help = "model folder: vocab.json + model.safetensors"},
    {.name = "corpus",
     .type = CLI_STRING,
     .placeholder = "FILE",
     .offset = EA(corpus),
     .required = 1,
     .help = "UTF-8 text to score"},
    {.name = "val-frac",
     .type = CLI_DOUBLE,
     .placeholder = "X",
     .offset = EA(val_frac),
     .min = 0,
     .max = 1,
     .min_open = 1,
     .def = "1",
     .help = "score only the last fraction X of the text; 1 is all of it"},
};

static const CliCommand eval_cmd = {
    .usage = COMMANDS_EVAL_USAGE,
    .about = "Scores a text as one stream from the zero state; prints loss, bpc, chars.\n",
    CLI_ROWS(eval_opts),
};

int commands_eval(int argc, char **argv) {
    EvalArgs a = {0};
    int rc = commands_parse_flags(&eval_cmd, &a, argc, argv);
    if (rc >= 0) return rc;
    const char *model_dir = a.model, *corpus_path = a.corpus;
    char err[ERR_LEN];
    Model model;
    Vocab vocab;
    ModelInfo info;
    if (artefacts_load(model_dir, &model, &vocab, &info, err) != 0) return commands_bad_input(err);
    Corpus corpus;
    rc = CLI_EXIT_BAD_INPUT;
    if (corpus_load(&corpus, corpus_path, &vocab, a.val_frac, err) != 0) {
        fprintf(stderr, "charlm-train: %s\n", err);
        goto out_model;
    }
    // Unknown chars are left out of the stream entirely: neither fed nor scored.
    size_t used = 0, skipped = 0;
    for (size_t i = corpus.n_train; i < corpus.n; i++) {
        if (corpus.ids[i] < 0)
            skipped++;
        else
            corpus.ids[used++] = corpus.ids[i];
    }
    EvalResult r;
    if (evaluate_ids(&model, corpus.ids, used, 1, &r, err) != 0) {
        fprintf(stderr, "charlm-train: %s: %s\n", corpus_path, err);
        goto out_corpus;
    }
    printf("{\"loss\": %.6f, \"bpc\": %.6f, \"chars\": %zu, \"skipped\": %zu}\n", r.loss,
           r.loss / log(2.0), r.count, skipped);
    rc = CLI_EXIT_OK;
out_corpus:
    corpus_free(&corpus);
out_model:
    arch_free(&model);
    vocab_free(&vocab);
    return rc;
}
