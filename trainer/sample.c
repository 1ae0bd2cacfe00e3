/*
 * sample.c — charlm-train sample (trainer/commands.h): continues a prompt with a model
 * folder, its generation flags made from core/genparams' rows.
 */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "arch.h"
#include "artefacts.h"
#include "batch.h"
#include "cli.h"
#include "commands.h"
#include "error.h"
#include "generate.h"
#include "genparams.h"
#include "prompts.h"
#include "utf8.h"

static int print_chunk(const char *chunk, size_t len, void *ctx) {
    (void)ctx;
    fwrite(chunk, 1, len, stdout);
    fflush(stdout);
    return 0;
}

// The generation flags are core/genparams' rows: --max-tokens for max_tokens, and so on.
#define SAMPLE_MAX_PARAMS 16
// Prompts of --prompt-file in flight at once (the server's scheduler steps up to 64).
#define SAMPLE_BATCH 64

typedef struct {
    const char *model, *prompt, *prompt_file;
    long whole[SAMPLE_MAX_PARAMS]; // integer parameters, by genparams index
    double real[SAMPLE_MAX_PARAMS];
} SampleArgs;

static void seed_default(void *config) {
    SampleArgs *a = config;
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s)) s = (uint64_t)time(NULL);
    a->whole[genparams_find("seed") - genparams] = (long)(s & ((1ull << 53) - 1));
}

/* Fills opts with --model, --prompt and a row per generation parameter; names and defs are
 * the rows' text. Returns the number of rows. */
static int sample_opts(CliOpt *opts, char (*names)[32], char (*defs)[32]) {
    int n = 0;
    opts[n++] = (CliOpt){.name = "model",
                         .type = CLI_STRING,
                         .placeholder = "DIR",
                         .offset = offsetof(SampleArgs, model),
                         .required = 1,
                         .help = "model folder: vocab.json + model.safetensors"};
    opts[n++] = (CliOpt){.name = "prompt",
                         .type = CLI_STRING,
                         .placeholder = "TEXT",
                         .offset = offsetof(SampleArgs, prompt),
                         .text = 1,
                         .help = "text to continue (may be empty); this or --prompt-file"};
    opts[n++] = (CliOpt){.name = "prompt-file",
                         .type = CLI_STRING,
                         .placeholder = "FILE",
                         .offset = offsetof(SampleArgs, prompt_file),
                         .help = "continue each line's prompt (- = stdin), a JSON line each"};
    for (int i = 0; i < genparams_count && i < SAMPLE_MAX_PARAMS; i++) {
        const GenParam *gp = &genparams[i];
        int real = gp->type == GENPARAM_FLOAT;
        char *name = names[i];
        snprintf(name, 32, "%s", gp->name);
        for (char *c = name; *c; c++)
            if (*c == '_') *c = '-';
        CliOpt o = {.name = name,
                    .type = real ? CLI_DOUBLE : CLI_LONG,
                    .placeholder = real ? "X" : "N",
                    .offset = real ? offsetof(SampleArgs, real) + i * sizeof(double)
                                   : offsetof(SampleArgs, whole) + i * sizeof(long),
                    .min = gp->min,
                    .max = gp->max,
                    .min_open = gp->min_open,
                    .def = defs[i],
                    .help = gp->help};
        if (isnan(gp->def)) {
            o.def = "random";
            o.compute = seed_default;
        } else {
            snprintf(defs[i], 32, "%g", gp->def);
        }
        opts[n++] = o;
    }
    return n;
}

// Each prompt's line of output, in the order of the file.
static void print_line(const Generation *g, int i, void *ctx) {
    (void)i;
    (void)ctx;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", g->text);
    cJSON_AddStringToObject(o, "finish_reason", finish_reason_name(g->finish));
    cJSON_AddNumberToObject(o, "tokens", g->tokens);
    cJSON_AddNumberToObject(o, "seed", (double)g->params.seed);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (line) {
        puts(line);
        fflush(stdout);
    } else {
        fprintf(stderr, "charlm-train: out of memory for an output line\n");
    }
    free(line);
}

/* --prompt-file: every line is read and checked before anything is generated, so a bad
 * line is exit 2 with nothing on stdout. */
static int sample_file(const char *model_dir, const char *path, const GenerateParams *p) {
    char err[ERR_LEN];
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        err_set(err, "--prompt-file %s: %s", path, strerror(errno));
        return commands_bad_input(err);
    }
    PromptLine *lines;
    int n, rc = prompts_read(f, p, &lines, &n, err);
    if (f != stdin) fclose(f);
    if (rc) {
        char msg[ERR_LEN + 64];
        snprintf(msg, sizeof(msg), "--prompt-file %s: %s", path, err);
        return commands_bad_input(msg);
    }
    Model model;
    Vocab vocab;
    ModelInfo info;
    if (artefacts_load(model_dir, &model, &vocab, &info, err) != 0) {
        prompts_free_all(lines, n);
        return commands_bad_input(err);
    }
    openblas_set_num_threads(1);
    rc = CLI_EXIT_OK;
    if (batch_run(&model, &vocab, lines, n, SAMPLE_BATCH, print_line, NULL, err) != 0) {
        fprintf(stderr, "charlm-train: %s\n", err);
        rc = CLI_EXIT_FAILURE;
    }
    prompts_free_all(lines, n);
    arch_free(&model);
    vocab_free(&vocab);
    return rc;
}

int commands_sample(int argc, char **argv) {
    CliOpt opts[3 + SAMPLE_MAX_PARAMS];
    char names[SAMPLE_MAX_PARAMS][32], defs[SAMPLE_MAX_PARAMS][32];
    CliCommand cmd = {.usage = COMMANDS_SAMPLE_USAGE,
                      .about = "Prints the prompt and its continuation; the seed goes to stderr.\n",
                      .opts = opts,
                      .nopts = sample_opts(opts, names, defs)};
    SampleArgs a = {0};
    int rc = commands_parse_flags(&cmd, &a, argc, argv);
    if (rc >= 0) return rc;
    const char *model_dir = a.model, *prompt = a.prompt;
    char err[ERR_LEN];
    if (!prompt == !a.prompt_file)
        return commands_bad_input(prompt ? "--prompt and --prompt-file: give one, not both"
                                         : "--prompt or --prompt-file is required (see --help)");
    GenerateParams p;
    genparams_defaults(&p, 0, 0);
    for (int i = 0; i < genparams_count && i < SAMPLE_MAX_PARAMS; i++) {
        const GenParam *gp = &genparams[i];
        double v = gp->type == GENPARAM_FLOAT ? a.real[i] : (double)a.whole[i];
        // The flag's row already checked the range; this stores the value as its type.
        if (genparams_set(&p, gp, v, 0, err) != 0) {
            fprintf(stderr, "charlm-train: --%s: %s\n", names[i], err);
            return CLI_EXIT_BAD_INPUT;
        }
    }
    if (a.prompt_file) return sample_file(model_dir, a.prompt_file, &p);
    long bad = utf8_find_invalid(prompt, strlen(prompt));
    if (bad >= 0) {
        err_set(err, "--prompt: invalid UTF-8 at byte offset %ld", bad);
        return commands_bad_input(err);
    }
    Model model;
    Vocab vocab;
    ModelInfo info;
    if (artefacts_load(model_dir, &model, &vocab, &info, err) != 0) return commands_bad_input(err);
    openblas_set_num_threads(1);
    rc = CLI_EXIT_FAILURE;
    Generation g;
    void *scratch;
    if (generation_init(&g, &model, &vocab, prompt, strlen(prompt), &p, err) != 0) {
        fprintf(stderr, "charlm-train: %s\n", err);
        goto out;
    }
    if (!(scratch = model.arch->scratch_alloc(&model, 1, err))) {
        fprintf(stderr, "charlm-train: %s\n", err);
        generation_free(&g);
        goto out;
    }
    fputs(prompt, stdout);
    generate_run(&g, scratch, print_chunk, NULL);
    putchar('\n');
    fprintf(stderr, "charlm-train: %d chars, finish %s, seed %llu%s%s\n", g.tokens,
            finish_reason_name(g.finish), (unsigned long long)p.seed,
            *g.unknown_chars ? ", skipped prompt chars: " : "", g.unknown_chars);
    model.arch->scratch_free(scratch);
    generation_free(&g);
    rc = CLI_EXIT_OK;
out:
    arch_free(&model);
    vocab_free(&vocab);
    return rc;
}
