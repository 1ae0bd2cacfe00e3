/*
 * train.c — charlm-train train (trainer/commands.h): its flag rows, the training loop,
 * the log (with what the model writes, on request), the published model and the
 * checkpoint, and SIGINT/SIGTERM.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "artefacts.h"
#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "corpus.h"
#include "error.h"
#include "evaluate.h"
#include "fileio.h"
#include "generate.h"
#include "genparams.h"
#include "gpt.h"
#include "progress.h"
#include "train.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void join_path(char *out, size_t len, const char *dir, const char *name) {
    snprintf(out, len, "%s/%s", dir, name);
}

/* Keeps the log rows up to `step` (a resumed run rewrites what came after). */
static int log_truncate(const char *path, long step, char *err) {
    char *text;
    size_t len;
    if (access(path, F_OK) != 0) return 0;
    if (file_read_all(path, 0, &text, &len, err) != 0) return -1;
    size_t keep = 0;
    for (char *line = text; line < text + len;) {
        char *nl = memchr(line, '\n', text + len - line);
        char *next = nl ? nl + 1 : text + len;
        const char *s = strstr(line, "\"step\":");
        if (!s || s > next || strtol(s + 7, NULL, 10) > step) break;
        keep = next - text;
        line = next;
    }
    const void *parts[] = {text};
    size_t lens[] = {keep};
    int rc = file_write_atomic(path, parts, lens, 1, err);
    free(text);
    return rc;
}

static int log_append(const char *path, const char *line, char *err) {
    FILE *f = fopen(path, "a");
    if (!f) return err_set(err, "%s: cannot open for appending", path);
    fputs(line, f);
    int bad = fflush(f) != 0;
    bad |= fclose(f) != 0;
    return bad ? err_set(err, "%s: write failed", path) : 0;
}

/* Publishes the best model: vocab.json, then model.safetensors, each written aside and
 * renamed. The vocab waits for its model, so that a server reloading a folder being
 * retrained on another text keeps the previous pair (which match) until the new model is
 * there too; the model records the vocab's hash, so the instant between the two renames
 * is refused, not served. */
static int save_best(const TrainState *st, const char *out, const Corpus *corpus,
                     const char *vocab_json, const char *vocab_sha, char *err) {
    char path[4096];
    join_path(path, sizeof(path), out, "vocab.json");
    const void *parts[] = {vocab_json};
    size_t lens[] = {strlen(vocab_json)};
    if (file_write_atomic(path, parts, lens, 1, err) != 0) return -1;
    ModelInfo info = {0};
    snprintf(info.vocab_sha256, sizeof(info.vocab_sha256), "%s", vocab_sha);
    snprintf(info.corpus_sha256, sizeof(info.corpus_sha256), "%s", corpus->sha256);
    info.steps = st->best_step;
    info.best_val_loss = st->best_val_loss;
    join_path(path, sizeof(path), out, "model.safetensors");
    return artefacts_save_model(path, &st->model, &info, err);
}

// The most chars --sample-chars asks of every evaluation: a log row stays a few KiB.
#define SAMPLE_CHARS_MAX 1000

typedef struct {
    const char *corpus, *out, *arch, *norm, *init;
    int resume, version, sample_chars;
    double eval_seconds; // also validate once this much training time has passed; 0 = off
    ModelConfig lstm;    // the LSTM's hyperparameters, from its rows
    GptConfig gpt;       // the GPT's, from its rows
    TrainConfig c;
} TrainArgs;

static void threads_default(void *config) {
    TrainArgs *a = config;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    a->c.threads = cpus < 1 ? 1 : cpus > TRAIN_MAX_THREADS ? TRAIN_MAX_THREADS : (int)cpus;
}

static void checkpoint_every_default(void *config) {
    TrainArgs *a = config;
    a->c.checkpoint_every = a->c.eval_every;
}

// The ranges are train_config_check's, from the same constants: the rows give them to
// --help and to the parser's messages, the check keeps library callers in them too.
#define TA(f)    offsetof(TrainArgs, f)
#define TEXT_(x) #x
#define TEXT(x)  TEXT_(x) // a default from core/train.h as its flag row's text
#define ROW_FLOAT01(flag, field, text)                                                             \
    {                                                                                              \
        .name = flag, .type = CLI_FLOAT, .placeholder = "X", .offset = TA(field), .def = "0",      \
        .min = 0, .max = 1, .max_open = 1, .help = text                                            \
    }

// The rows both architectures have, each with its own default.
#define ROW_BATCH(d)                                                                               \
    {                                                                                              \
        .name = "batch", .type = CLI_INT, .placeholder = "N", .offset = TA(c.batch), .def = d,     \
        .min = 1, .max = TRAIN_MAX_BATCH, .help = "batch size B"                                   \
    }
#define ROW_STEPS(d)                                                                               \
    {                                                                                              \
        .name = "steps", .type = CLI_LONG, .placeholder = "N", .offset = TA(c.steps), .def = d,    \
        .min = 1, .max = INFINITY, .help = "optimisation steps"                                    \
    }
#define ROW_LR(d, text)                                                                            \
    {                                                                                              \
        .name = "lr", .type = CLI_FLOAT, .placeholder = "X", .offset = TA(c.lr), .def = d,         \
        .min = 0, .max = TRAIN_MAX_LR, .min_open = 1, .max_open = 1, .help = text                  \
    }
#define ROW_BETA2(d, text)                                                                         \
    {                                                                                              \
        .name = "beta2", .type = CLI_FLOAT, .placeholder = "X", .offset = TA(c.beta2), .def = d,   \
        .min = 0, .max = 1, .max_open = 1, .help = text                                            \
    }
#define ROW_CLIP(d)                                                                                \
    {                                                                                              \
        .name = "clip", .type = CLI_FLOAT, .placeholder = "X", .offset = TA(c.clip), .def = d,     \
        .min = 0, .max = INFINITY, .help = "clip gradients to this global norm, 0 = off"           \
    }
#define ROW_WEIGHT_DECAY(d, text)                                                                  \
    {                                                                                              \
        .name = "weight-decay", .type = CLI_FLOAT, .placeholder = "X",                             \
        .offset = TA(c.weight_decay), .def = d, .min = 0, .max = INFINITY, .help = text            \
    }

// Every architecture's rows: what to train on, then (run_opts) how to run.
static const CliOpt common_opts[] = {
    {.name = "corpus",
     .type = CLI_STRING,
     .placeholder = "FILE",
     .offset = TA(corpus),
     .required = 1,
     .help = "UTF-8 text to train on"},
    {.name = "out",
     .type = CLI_STRING,
     .placeholder = "DIR",
     .offset = TA(out),
     .required = 1,
     .help = "folder for vocab.json, model.safetensors, train_log.jsonl, checkpoint"},
    {.name = "arch",
     .type = CLI_STRING,
     .placeholder = "NAME",
     .offset = TA(arch),
     .def = ARCH_DEFAULT,
     .help = "lstm or gpt; the flags up to --clip are its own (--arch gpt --help lists the GPT's)"},
    {.name = "init",
     .type = CLI_STRING,
     .placeholder = "DIR",
     .offset = TA(init),
     .help = "start from the model folder DIR: its weights, architecture, sizes and vocabulary"},
    {.name = "version",
     .type = CLI_BOOL,
     .offset = TA(version),
     .stop = 1,
     .help = "print the program's version and exit"},
};

static const CliOpt run_opts[] = {
    {.name = "val-frac",
     .type = CLI_DOUBLE,
     .placeholder = "X",
     .offset = TA(c.val_frac),
     .def = "0.1",
     .min = 0,
     .max = 1,
     .min_open = 1,
     .max_open = 1,
     .help = "last fraction of the text held out"},
    {.name = "eval-every",
     .type = CLI_LONG,
     .placeholder = "N",
     .offset = TA(c.eval_every),
     .def = "100",
     .min = 1,
     .max = INFINITY,
     .help = "validate and log every N steps"},
    {.name = "patience",
     .type = CLI_LONG,
     .placeholder = "N",
     .offset = TA(c.patience),
     .def = "0",
     .min = 0,
     .max = INFINITY,
     .help = "stop after N evaluations without a better validation loss, 0 = off"},
    {.name = "checkpoint-every",
     .type = CLI_LONG,
     .placeholder = "N",
     .offset = TA(c.checkpoint_every),
     .def = "--eval-every",
     .compute = checkpoint_every_default,
     .min = 1,
     .max = INFINITY,
     .help = "write checkpoint.safetensors every N steps"},
    {.name = "seed",
     .type = CLI_U64,
     .placeholder = "N",
     .offset = TA(c.seed),
     .def = "42",
     .help = "random seed for weights, batches and dropout"},
    {.name = "threads",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(c.threads),
     .def = "online CPUs",
     .compute = threads_default,
     .min = 1,
     .max = TRAIN_MAX_THREADS,
     .help = "worker threads splitting each batch; a fixed value gives reproducible results"},
    {.name = "max-time",
     .type = CLI_DOUBLE,
     .placeholder = "SECONDS",
     .offset = TA(c.max_time),
     .min = 0,
     .max = INFINITY,
     .min_open = 1,
     .help = "a budget of training time: the schedule follows it, the run ends when it is spent"},
    {.name = "eval-seconds",
     .type = CLI_DOUBLE,
     .placeholder = "SECONDS",
     .offset = TA(eval_seconds),
     .def = "0",
     .min = 0,
     .max = INFINITY,
     .help = "also validate (and checkpoint) after every SECONDS of training time; 0 = off"},
    {.name = "sample-chars",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(sample_chars),
     .def = "0",
     .min = 0,
     .max = SAMPLE_CHARS_MAX,
     .help = "at every evaluation, log N chars the model writes; 0 = off"},
    {.name = "resume",
     .type = CLI_BOOL,
     .offset = TA(resume),
     .help = "continue from DIR/checkpoint.safetensors"},
};

static const CliOpt lstm_opts[] = {
    {.name = "embed",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(lstm.embed),
     .def = "64",
     .min = 1,
     .max = MODEL_MAX_WIDTH,
     .help = "embedding size E"},
    {.name = "hidden",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(lstm.hidden),
     .def = "256",
     .min = 1,
     .max = MODEL_MAX_WIDTH,
     .help = "LSTM hidden size H"},
    {.name = "layers",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(lstm.layers),
     .def = "1",
     .min = 1,
     .max = MODEL_MAX_LAYERS,
     .help = "LSTM layers L"},
    ROW_FLOAT01("dropout", c.dropout, "dropout between LSTM layers"),
    ROW_FLOAT01("embed-dropout", c.embed_dropout, "drop whole embedding rows (one mask per step)"),
    ROW_FLOAT01("var-dropout", c.var_dropout,
                "variational dropout on every layer's input and output"),
    ROW_WEIGHT_DECAY(
        "0", "AdamW decoupled weight decay on the weight matrices, below 1 / --lr; 0 = Adam"),
    {.name = "seq",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(c.seq),
     .def = TEXT(TRAIN_LSTM_SEQ),
     .min = 1,
     .max = TRAIN_MAX_SEQ,
     .help = "sequence length T"},
    ROW_BATCH(TEXT(TRAIN_LSTM_BATCH)),
    ROW_STEPS(TEXT(TRAIN_LSTM_STEPS)),
    ROW_LR(TEXT(TRAIN_LSTM_LR), "peak Adam learning rate; warmup, then cosine decay to lr/10"),
    ROW_BETA2("0.999", "Adam's second-moment decay"),
    ROW_CLIP("5"),
};

// nanoGPT's shakespeare_char recipe, made smaller so that a default run on 2 cores gives a
// useful model in about 10 minutes (docs/CLI.md).
static const CliOpt gpt_opts[] = {
    {.name = "layers",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(gpt.layers),
     .def = "4",
     .min = 1,
     .max = GPT_MAX_LAYERS,
     .help = "transformer blocks L"},
    {.name = "heads",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(gpt.heads),
     .def = "4",
     .min = 1,
     .max = GPT_MAX_EMBED,
     .help = "attention heads; must divide --embed"},
    {.name = "embed",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(gpt.embed),
     .def = "128",
     .min = 1,
     .max = GPT_MAX_EMBED,
     .help = "embedding size C"},
    {.name = "block",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(gpt.block),
     .def = TEXT(TRAIN_GPT_BLOCK),
     .min = 1,
     .max = GPT_MAX_BLOCK,
     .help = "context in chars, and the length of the training windows"},
    ROW_FLOAT01("dropout", c.dropout,
                "dropout on the embeddings, the attention and every residual branch"),
    {.name = "bias",
     .type = CLI_INT,
     .placeholder = "N",
     .offset = TA(gpt.bias),
     .def = "0",
     .min = 0,
     .max = 1,
     .help = "1: biases in every Linear and LayerNorm"},
    {.name = "norm",
     .type = CLI_STRING,
     .placeholder = "NAME",
     .offset = TA(norm),
     .def = "layernorm",
     .help = "layernorm or rmsnorm"},
    {.name = "weight-decay",
     .type = CLI_FLOAT,
     .placeholder = "X",
     .offset = TA(c.weight_decay),
     .def = "0.1",
     .min = 0,
     .max = INFINITY,
     .help =
         "AdamW decoupled weight decay on every tensor of 2 or more dimensions, below 1 / --lr"},
    ROW_BATCH(TEXT(TRAIN_GPT_BATCH)),
    ROW_STEPS(TEXT(TRAIN_GPT_STEPS)),
    ROW_LR(TEXT(TRAIN_GPT_LR), "peak AdamW learning rate; warmup, then cosine decay to lr/10"),
    ROW_BETA2("0.99", "AdamW's second-moment decay"),
    ROW_CLIP("1"),
};

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ROWS                                                                                   \
    (NROWS(common_opts) + NROWS(run_opts) +                                                        \
     (NROWS(lstm_opts) > NROWS(gpt_opts) ? NROWS(lstm_opts) : NROWS(gpt_opts)))

/* --arch and --init choose the rows, so they are read first: the last value of the flag
 * in argv, as cli_parse would take it; NULL without one. */
static const char *flag_value(int argc, char **argv, const char *flag) {
    const char *value = NULL;
    size_t n = strlen(flag);
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0 || strncmp(argv[i] + 2, flag, n) != 0) continue;
        const char *rest = argv[i] + 2 + n;
        if (*rest == '\0' && i + 1 < argc)
            value = argv[++i];
        else if (*rest == '=')
            value = rest + 1;
    }
    return value;
}

/* The model folder of --init, and the flags it makes wrong: --arch and the flags of its
 * hyperparameters, which are the model's. vocab_json gets vocab.json's bytes, which the
 * published model keeps as they are. Returns 0, or -1 with err. */
static int init_load(const char *dir, int argc, char **argv, Model *model, Vocab *vocab,
                     char **vocab_json, char *err) {
    ModelInfo info;
    char why[ERR_LEN];
    if (artefacts_load(dir, model, vocab, &info, why) != 0) return err_set(err, "--init: %s", why);
    ArchField f[1 + ARCH_MAX_FIELDS] = {{"arch", 0, model->arch->name}};
    int nf = 1 + model->arch->fields(model, f + 1);
    for (int i = 0; i < nf; i++) {
        if (!flag_value(argc, argv, f[i].name)) continue;
        char value[24];
        snprintf(value, sizeof value, "%ld", f[i].number);
        return err_set(err, "--%s: the model of --init decides it (%s has %s %s); leave it out",
                       f[i].name, dir, f[i].name, f[i].text ? f[i].text : value);
    }
    char *path = path_join(dir, "vocab.json"), sha[65];
    size_t len;
    int rc =
        path ? file_read_regular(path, 0, vocab_json, &len, why) : err_set(why, "out of memory");
    free(path);
    if (rc != 0) return err_set(err, "--init: %s", why);
    sha256_hex(*vocab_json, len, sha);
    if (strcmp(sha, info.vocab_sha256) != 0)
        return err_set(err, "--init: %s/vocab.json changed while being read", dir);
    return 0;
}

/* What the model writes now, for its log row: n chars from an empty prompt with the
 * generation defaults, drawn with their own seed, as a JSON string after ", \"sample\": ".
 * The weights are laid out for inference again first: they changed since the last time. */
static int sample_add(Model *model, const Vocab *vocab, void *scratch, int n, uint64_t seed,
                      Buf *row, char *err) {
    if (model->arch->prepare(model, err) != 0) return -1;
    GenerateParams p;
    genparams_defaults(&p, 0, 0);
    p.max_tokens = n;
    p.seed = seed;
    Generation g;
    if (generation_init(&g, model, vocab, "", 0, &p, err) != 0) return -1;
    generate_run(&g, scratch, NULL, NULL);
    cJSON *text = g.finish == FINISH_LENGTH ? cJSON_CreateString(g.text) : NULL;
    char *json = text ? cJSON_PrintUnformatted(text) : NULL;
    generation_free(&g);
    cJSON_Delete(text);
    if (!json) return err_set(err, "out of memory for a sample of %d chars", n);
    buf_adds(row, ", \"sample\": ");
    buf_adds(row, json);
    free(json);
    return 0;
}

int commands_train(int argc, char **argv) {
    char err[ERR_LEN];
    // With --init, the model folder is the architecture; it is read before anything else
    // so that its rows are the ones parsed.
    const char *init_dir = flag_value(argc, argv, "init");
    Model init = {0};
    Vocab vocab = {0};
    char *vocab_json = NULL;
    const Arch *arch;
    if (init_dir) {
        if (init_load(init_dir, argc, argv, &init, &vocab, &vocab_json, err) != 0) {
            fprintf(stderr, "charlm-train: %s\n", err);
            arch_free(&init);
            vocab_free(&vocab);
            free(vocab_json);
            return CLI_EXIT_BAD_INPUT;
        }
        arch = init.arch;
    } else {
        const char *arch_name = flag_value(argc, argv, "arch");
        if (!arch_name) arch_name = ARCH_DEFAULT;
        if (!(arch = arch_find(arch_name))) {
            err_set(err, "--arch: \"%.32s\" is not an architecture (lstm, gpt)", arch_name);
            return commands_bad_input(err);
        }
    }
    // train is the default command, so its --help is the program's.
    CliOpt rows[MAX_ROWS];
    size_t n = NROWS(common_opts), own = arch == &arch_gpt ? NROWS(gpt_opts) : NROWS(lstm_opts);
    memcpy(rows, common_opts, sizeof common_opts);
    memcpy(rows + n, arch == &arch_gpt ? gpt_opts : lstm_opts, own * sizeof(CliOpt));
    memcpy(rows + n + own, run_opts, sizeof run_opts);
    CliCommand cmd = {.usage = commands_usage,
                      .about = commands_about,
                      .opts = rows,
                      .nopts = (int)(n + own + NROWS(run_opts)),
                      .after = commands_exit_codes};
    TrainArgs a = {0};
    Corpus corpus = {0};
    TrainState st = {0};
    void *scratch = NULL;
    int rc = commands_parse_flags(&cmd, &a, argc, argv);
    if (rc >= 0) goto done_early;
    const char *corpus_path = a.corpus, *out = a.out;
    int resume = a.resume;
    TrainConfig c = a.c;
    c.arch = arch;
    if (init_dir) {
        c.hyper = arch->hyper(&init);
        c.vocab_size = init.vocab_size;
        c.init = &init;
        if (arch == &arch_gpt) c.seq = arch->context(&init); // the windows are the context
    } else if (arch == &arch_gpt) {
        if (strcmp(a.norm, "layernorm") == 0)
            a.gpt.norm = GPT_LAYERNORM;
        else if (strcmp(a.norm, "rmsnorm") == 0)
            a.gpt.norm = GPT_RMSNORM;
        else {
            err_set(err, "--norm: \"%.32s\" is neither layernorm nor rmsnorm", a.norm);
            goto bad_input;
        }
        c.seq = a.gpt.block; // the windows are the context
        c.hyper = &a.gpt;
    } else {
        c.hyper = &a.lstm;
    }
    if (!init_dir) c.vocab_size = 1; // checked for real once the corpus is read
    if (train_config_check(&c, err) != 0) goto bad_input;

    if (corpus_load(&corpus, corpus_path, &vocab, c.val_frac, err) != 0) goto bad_input;
    // A given vocabulary: chars it lacks leave both splits, so no window holds one.
    size_t skipped = init_dir ? corpus_drop_unknown(&corpus) : 0;
    size_t n_val = corpus.n - corpus.n_train;
    if (corpus.n_train < (size_t)c.seq + 1 || n_val < 2) {
        char dropped[96] = "";
        if (skipped)
            snprintf(dropped, sizeof dropped, " (%zu more are not in the vocabulary of --init)",
                     skipped);
        err_set(err,
                "%s: too short: %zu chars%s give %zu for training and %zu for validation; "
                "need at least --%s + 1 = %d for training and 2 for validation",
                corpus_path, corpus.n, dropped, corpus.n_train, n_val,
                arch == &arch_gpt ? "block" : "seq", c.seq + 1);
        goto bad_input;
    }
    c.vocab_size = vocab.size;

    char ckpt_path[4096], log_path[4096], next_log[4096], vocab_sha[65];
    join_path(ckpt_path, sizeof(ckpt_path), out, "checkpoint.safetensors");
    join_path(log_path, sizeof(log_path), out, "train_log.jsonl");
    join_path(next_log, sizeof(next_log), out, "train_log.jsonl.new");
    if (!vocab_json) vocab_json = vocab_to_json(&vocab);
    sha256_hex(vocab_json, strlen(vocab_json), vocab_sha);

    rc = CLI_EXIT_FAILURE;
    if (train_init(&st, &c, err) != 0) {
        fprintf(stderr, "charlm-train: %s\n", err);
        goto done;
    }
    arch_free(&init); // its weights are the state's now
    c.init = NULL;
    if (a.sample_chars > 0 && !(scratch = st.model.arch->scratch_alloc(&st.model, 1, err))) {
        fprintf(stderr, "charlm-train: %s\n", err);
        goto done;
    }
    if (resume) {
        if (access(ckpt_path, F_OK) != 0) {
            err_set(err, "--resume: %s does not exist", ckpt_path);
            goto bad_input;
        }
        if (train_checkpoint_load(&st, ckpt_path, corpus.sha256, err) != 0) goto bad_input;
        if (st.step >= c.steps) {
            err_set(err, "--resume: the checkpoint is at step %ld; --steps is %ld", st.step,
                    c.steps);
            goto bad_input;
        }
        if (train_out_of_time(&st)) {
            err_set(err, "--resume: the checkpoint has trained for %.3f s; --max-time is %g s",
                    st.train_time, c.max_time);
            goto bad_input;
        }
    }
    if (dir_ensure(out, err) != 0) goto bad_input;
    // A fresh log (which also shows at once that the folder takes files), or a resumed one.
    // A run logs to train_log.jsonl.new until it publishes its first model, and then
    // renames that over train_log.jsonl: a served folder keeps the curve of the model it
    // serves. A resumed run goes on with whichever of the two it was writing.
    int log_pending = resume ? access(next_log, F_OK) == 0 : 1;
    const char *run_log = log_pending ? next_log : log_path;
    const void *none[] = {""};
    size_t zero[] = {0};
    if ((resume ? log_truncate(run_log, st.step, err)
                : file_write_atomic(run_log, none, zero, 1, err)) != 0) {
        fprintf(stderr, "charlm-train: %s\n", err);
        goto done;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int streams = n_val - 1 < (size_t)c.batch ? (int)(n_val - 1) : c.batch;
    char skipped_text[64] = "";
    if (init_dir)
        snprintf(skipped_text, sizeof skipped_text, ", %zu skipped (not in the vocabulary)",
                 skipped);
    fprintf(stderr,
            "charlm-train: %zu chars (%zu train, %zu val)%s, vocab %d, %zu parameters, %d "
            "thread%s%s\n",
            corpus.n, corpus.n_train, n_val, skipped_text, vocab.size, st.model.num_params,
            st.nworkers, st.nworkers == 1 ? "" : "s", resume ? ", resumed" : "");
    Progress progress;
    progress_init(&progress, c.steps, c.eval_every < 50 ? c.eval_every : 50);
    double time0 = st.train_time, last_eval = st.train_time, start = now_s(), last_val = -1,
           tps = 0;
    long tokens = 0;
    float loss = 0, lr = 0;
    const char *stop = NULL; // why the run ends before --steps: "patience" or "time"
    while (st.step < c.steps && !stop) {
        if (stop_requested) {
            progress_finish(&progress);
            if (train_checkpoint_save(&st, ckpt_path, corpus.sha256, err) != 0) {
                fprintf(stderr, "charlm-train: %s\n", err);
                goto done;
            }
            fprintf(stderr,
                    "charlm-train: interrupted at step %ld; %s written, continue with --resume\n",
                    st.step, ckpt_path);
            rc = CLI_EXIT_INTERRUPTED;
            goto done;
        }
        loss = train_step(&st, &corpus, &lr);
        tokens += (long)c.seq * c.batch;
        double run_time = st.train_time - time0;
        tps = run_time > 0 ? tokens / run_time : 0.0;
        int out_of_time = train_out_of_time(&st);
        // A run sized by time has no useful step count to validate by: it may go by time.
        int by_time = a.eval_seconds > 0 && st.train_time - last_eval >= a.eval_seconds;
        if (st.step % c.eval_every == 0 || st.step == c.steps || out_of_time || by_time) {
            last_eval = st.train_time;
            EvalResult val;
            if (evaluate_ids(&st.model, corpus.ids + corpus.n_train, n_val, streams, &val, err) !=
                0) {
                fprintf(stderr, "charlm-train: validation: %s\n", err);
                goto done;
            }
            last_val = val.loss;
            Buf row = {0};
            buf_printf(&row,
                       "{\"step\": %ld, \"train_loss\": %.6f, \"val_loss\": %.6f, \"lr\": %.6g, "
                       "\"tokens_per_s\": %.1f, \"elapsed_s\": %.3f, \"val_streams\": %d, "
                       "\"val_chars\": %zu",
                       st.step, loss, val.loss, lr, tps, now_s() - start, streams, val.count);
            int bad = a.sample_chars > 0 &&
                      sample_add(&st.model, &vocab, scratch, a.sample_chars,
                                 rng_child_seed(c.seed, (uint64_t)st.step), &row, err) != 0;
            buf_adds(&row, "}\n");
            if (!bad && row.failed) bad = err_set(err, "out of memory for a log row") != 0;
            if (bad || log_append(run_log, row.s, err) != 0) {
                fprintf(stderr, "charlm-train: %s\n", err);
                buf_free(&row);
                goto done;
            }
            buf_free(&row);
            if (val.loss < st.best_val_loss) {
                st.best_val_loss = val.loss;
                st.best_step = st.step;
                if (save_best(&st, out, &corpus, vocab_json, vocab_sha, err) != 0) {
                    fprintf(stderr, "charlm-train: %s\n", err);
                    goto done;
                }
                if (log_pending && rename(next_log, log_path) != 0) {
                    fprintf(stderr, "charlm-train: %s: cannot rename to %s: %s\n", next_log,
                            log_path, strerror(errno));
                    goto done;
                }
                log_pending = 0;
                run_log = log_path;
            }
            if (train_should_stop(&st)) stop = "patience";
        }
        if (out_of_time && !stop) stop = "time";
        if (st.step % c.checkpoint_every == 0 || st.step == c.steps || stop || by_time) {
            if (train_checkpoint_save(&st, ckpt_path, corpus.sha256, err) != 0) {
                fprintf(stderr, "charlm-train: %s\n", err);
                goto done;
            }
        }
        double left = c.max_time > 0 ? c.max_time - st.train_time : -1;
        progress_update(&progress, st.step, loss, last_val, tps, now_s() - start,
                        c.max_time > 0 ? st.train_time / c.max_time : 0,
                        left < 0 && c.max_time > 0 ? 0 : left);
    }
    progress_finish(&progress);
    if (stop && strcmp(stop, "patience") == 0)
        fprintf(stderr,
                "charlm-train: stopped early at step %ld: no better validation loss in %ld "
                "evaluations since step %ld\n",
                st.step, c.patience, st.best_step);
    else if (stop)
        fprintf(stderr, "charlm-train: stopped at step %ld: %.3f s of training, --max-time %g\n",
                st.step, st.train_time, c.max_time);
    printf("{\"steps\": %ld, \"tokens_per_s\": %.1f, \"best_val_loss\": %.6f, \"best_step\": %ld, "
           "\"train_loss\": %.6f, \"elapsed_s\": %.3f, \"threads\": %d, \"stopped_early\": %s, "
           "\"stopped\": \"%s\", \"train_time_s\": %.3f, \"skipped\": %zu}\n",
           st.step, tps, st.best_val_loss, st.best_step, loss, now_s() - start, st.nworkers,
           stop && strcmp(stop, "patience") == 0 ? "true" : "false", stop ? stop : "steps",
           st.train_time, skipped);
    rc = CLI_EXIT_OK;
    goto done;
bad_input:
    rc = commands_bad_input(err);
done:
    if (scratch) st.model.arch->scratch_free(scratch);
    train_free(&st);
done_early:
    arch_free(&init);
    free(vocab_json);
    corpus_free(&corpus);
    vocab_free(&vocab);
    return rc;
}
