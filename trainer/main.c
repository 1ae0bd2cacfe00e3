/*
 * charlm-train — train, score and sample a character-level LSTM.
 *
 *   charlm-train [train] --corpus FILE --out DIR [options]
 *   charlm-train eval    --model DIR --corpus FILE [--val-frac F]
 *   charlm-train sample  --model DIR --prompt TEXT [options]
 *
 * Exit codes: 0 done, 2 bad input (nothing written), 1 failure while running,
 * 130 interrupted (a checkpoint was written; --resume continues).
 */
#include <cblas.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artefacts.h"
#include "corpus.h"
#include "error.h"
#include "evaluate.h"
#include "fileio.h"
#include "flags.h"
#include "generate.h"
#include "progress.h"
#include "train.h"
#include "utf8.h"

#define EXIT_BAD_INPUT   2
#define EXIT_INTERRUPTED 130
#define NFLAGS(f)        ((int)(sizeof(f) / sizeof((f)[0])))

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

static int bad_input(const char *msg) {
    fprintf(stderr, "charlm-train: %s\n", msg);
    return EXIT_BAD_INPUT;
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

static int save_best(const TrainState *st, const char *out, const Corpus *corpus,
                     const char *vocab_sha, char *err) {
    char path[4096];
    ModelInfo info = {0};
    snprintf(info.vocab_sha256, sizeof(info.vocab_sha256), "%s", vocab_sha);
    snprintf(info.corpus_sha256, sizeof(info.corpus_sha256), "%s", corpus->sha256);
    info.steps = st->best_step;
    info.best_val_loss = st->best_val_loss;
    join_path(path, sizeof(path), out, "model.safetensors");
    return artefacts_save_model(path, &st->model, &info, err);
}

static int cmd_train(int argc, char **argv) {
    const char *corpus_path = NULL, *out = NULL;
    int resume = 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    TrainConfig c = {.model = {.embed = 64, .hidden = 256, .layers = 1},
                     .dropout = 0.0f,
                     .seq = 128,
                     .batch = 64,
                     .steps = 1500,
                     .lr = 2e-3f,
                     .clip = 5.0f,
                     .val_frac = 0.1,
                     .eval_every = 100,
                     .checkpoint_every = 0,
                     .seed = 42,
                     .threads = cpus > 0 ? (int)(cpus < 64 ? cpus : 64) : 1};
    Flag flags[] = {
        {"corpus", FLAG_STRING, &corpus_path, "UTF-8 text to train on (required)"},
        {"out", FLAG_STRING, &out, "folder for vocab.json, model.safetensors, logs (required)"},
        {"embed", FLAG_INT, &c.model.embed, "embedding size E (default 64)"},
        {"hidden", FLAG_INT, &c.model.hidden, "LSTM hidden size H (default 256)"},
        {"layers", FLAG_INT, &c.model.layers, "LSTM layers L (default 1)"},
        {"dropout", FLAG_FLOAT, &c.dropout, "dropout between LSTM layers, [0, 1) (default 0)"},
        {"seq", FLAG_INT, &c.seq, "sequence length T (default 128)"},
        {"batch", FLAG_INT, &c.batch, "batch size B (default 64)"},
        {"steps", FLAG_LONG, &c.steps, "optimisation steps (default 1500)"},
        {"lr", FLAG_FLOAT, &c.lr,
         "peak Adam learning rate (default 2e-3; warmup, cosine to lr/10)"},
        {"clip", FLAG_FLOAT, &c.clip, "clip gradients to this global norm, 0 = off (default 5)"},
        {"val-frac", FLAG_DOUBLE, &c.val_frac, "last fraction of the text held out (default 0.1)"},
        {"eval-every", FLAG_LONG, &c.eval_every, "validate and log every N steps (default 100)"},
        {"checkpoint-every", FLAG_LONG, &c.checkpoint_every,
         "write checkpoint.safetensors every N steps (default: --eval-every)"},
        {"seed", FLAG_U64, &c.seed, "random seed for weights and batches (default 42)"},
        {"threads", FLAG_INT, &c.threads,
         "worker threads splitting each batch (default: online CPUs; results are reproducible "
         "for a fixed value)"},
        {"resume", FLAG_BOOL, &resume, "continue from DIR/checkpoint.safetensors"},
    };
    char err[ERR_LEN];
    int help;
    if (flags_parse(flags, NFLAGS(flags), argc, argv, &help, err) != 0) return bad_input(err);
    if (help) {
        printf("usage: charlm-train [train] --corpus FILE --out DIR [options]\n\n");
        flags_print_help(flags, NFLAGS(flags));
        return 0;
    }
    if (!corpus_path) return bad_input("--corpus is required (see --help)");
    if (!out) return bad_input("--out is required (see --help)");
    if (!flags_given(flags, NFLAGS(flags), "checkpoint-every")) c.checkpoint_every = c.eval_every;
    c.model.vocab_size = 1; // checked for real once the corpus is read
    if (train_config_check(&c, err) != 0) return bad_input(err);

    Vocab vocab = {0};
    Corpus corpus;
    if (corpus_load(&corpus, corpus_path, &vocab, c.val_frac, err) != 0) return bad_input(err);
    size_t n_val = corpus.n - corpus.n_train;
    if (corpus.n_train < (size_t)c.seq + 1 || n_val < 2) {
        err_set(err,
                "%s: too short: %zu chars give %zu for training and %zu for validation; "
                "need at least --seq + 1 = %d for training and 2 for validation",
                corpus_path, corpus.n, corpus.n_train, n_val, c.seq + 1);
        corpus_free(&corpus);
        vocab_free(&vocab);
        return bad_input(err);
    }
    c.model.vocab_size = vocab.size;

    char vocab_path[4096], ckpt_path[4096], log_path[4096], vocab_sha[65];
    join_path(vocab_path, sizeof(vocab_path), out, "vocab.json");
    join_path(ckpt_path, sizeof(ckpt_path), out, "checkpoint.safetensors");
    join_path(log_path, sizeof(log_path), out, "train_log.jsonl");
    char *vocab_json = vocab_to_json(&vocab);
    sha256_hex(vocab_json, strlen(vocab_json), vocab_sha);

    TrainState st;
    int rc = 1;
    if (train_init(&st, &c, err) != 0) {
        fprintf(stderr, "charlm-train: %s\n", err);
        goto done_early;
    }
    if (resume) {
        if (access(ckpt_path, F_OK) != 0) {
            err_set(err, "--resume: %s does not exist", ckpt_path);
            rc = bad_input(err);
            goto done;
        }
        if (train_checkpoint_load(&st, ckpt_path, corpus.sha256, err) != 0) {
            rc = bad_input(err);
            goto done;
        }
        if (st.step >= c.steps) {
            err_set(err, "--resume: the checkpoint is at step %ld; --steps is %ld", st.step,
                    c.steps);
            rc = bad_input(err);
            goto done;
        }
    }
    if (dir_ensure(out, err) != 0) {
        rc = bad_input(err);
        goto done;
    }
    {
        const void *parts[] = {vocab_json};
        size_t lens[] = {strlen(vocab_json)};
        if (file_write_atomic(vocab_path, parts, lens, 1, err) != 0 ||
            (resume ? log_truncate(log_path, st.step, err) : (unlink(log_path), 0)) != 0) {
            fprintf(stderr, "charlm-train: %s\n", err);
            goto done;
        }
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int streams = n_val - 1 < (size_t)c.batch ? (int)(n_val - 1) : c.batch;
    fprintf(
        stderr,
        "charlm-train: %zu chars (%zu train, %zu val), vocab %d, %zu parameters, %d thread%s%s\n",
        corpus.n, corpus.n_train, n_val, vocab.size, st.model.num_params, st.nworkers,
        st.nworkers == 1 ? "" : "s", resume ? ", resumed" : "");
    Progress progress;
    progress_init(&progress, c.steps, c.eval_every < 50 ? c.eval_every : 50);
    double train_time = 0, start = now_s(), last_val = -1;
    long tokens = 0;
    float loss = 0, lr = 0;
    while (st.step < c.steps) {
        if (stop_requested) {
            progress_finish(&progress);
            if (train_checkpoint_save(&st, ckpt_path, corpus.sha256, err) != 0) {
                fprintf(stderr, "charlm-train: %s\n", err);
                goto done;
            }
            fprintf(stderr,
                    "charlm-train: interrupted at step %ld; %s written, continue with --resume\n",
                    st.step, ckpt_path);
            rc = EXIT_INTERRUPTED;
            goto done;
        }
        double t0 = now_s();
        loss = train_step(&st, &corpus, &lr);
        train_time += now_s() - t0;
        tokens += (long)c.seq * c.batch;
        double tps = tokens / train_time;
        if (st.step % c.eval_every == 0 || st.step == c.steps) {
            EvalResult val;
            if (evaluate_ids(&st.model, corpus.ids + corpus.n_train, n_val, streams, &val, err) !=
                0) {
                fprintf(stderr, "charlm-train: validation: %s\n", err);
                goto done;
            }
            last_val = val.loss;
            char line[512];
            snprintf(line, sizeof(line),
                     "{\"step\": %ld, \"train_loss\": %.6f, \"val_loss\": %.6f, \"lr\": %.6g, "
                     "\"tokens_per_s\": %.1f, \"elapsed_s\": %.3f, \"val_streams\": %d, "
                     "\"val_chars\": %zu}\n",
                     st.step, loss, val.loss, lr, tps, now_s() - start, streams, val.count);
            if (log_append(log_path, line, err) != 0) {
                fprintf(stderr, "charlm-train: %s\n", err);
                goto done;
            }
            if (val.loss < st.best_val_loss) {
                st.best_val_loss = val.loss;
                st.best_step = st.step;
                if (save_best(&st, out, &corpus, vocab_sha, err) != 0) {
                    fprintf(stderr, "charlm-train: %s\n", err);
                    goto done;
                }
            }
        }
        if (st.step % c.checkpoint_every == 0 || st.step == c.steps) {
            if (train_checkpoint_save(&st, ckpt_path, corpus.sha256, err) != 0) {
                fprintf(stderr, "charlm-train: %s\n", err);
                goto done;
            }
        }
        progress_update(&progress, st.step, loss, last_val, tps, now_s() - start);
    }
    progress_finish(&progress);
    printf("{\"steps\": %ld, \"tokens_per_s\": %.1f, \"best_val_loss\": %.6f, \"best_step\": %ld, "
           "\"train_loss\": %.6f, \"elapsed_s\": %.3f, \"threads\": %d}\n",
           st.step, train_time > 0 ? tokens / train_time : 0.0, st.best_val_loss, st.best_step,
           loss, now_s() - start, st.nworkers);
    rc = 0;
done:
    train_free(&st);
done_early:
    free(vocab_json);
    corpus_free(&corpus);
    vocab_free(&vocab);
    return rc;
}

static int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *corpus_path = NULL;
    double val_frac = 1.0;
    Flag flags[] = {
        {"model", FLAG_STRING, &model_dir, "artefacts folder (required)"},
        {"corpus", FLAG_STRING, &corpus_path, "UTF-8 text to score (required)"},
        {"val-frac", FLAG_DOUBLE, &val_frac,
         "score only the last F of the text (default 1: all of it)"},
    };
    char err[ERR_LEN];
    int help;
    if (flags_parse(flags, NFLAGS(flags), argc, argv, &help, err) != 0) return bad_input(err);
    if (help) {
        printf("usage: charlm-train eval --model DIR --corpus FILE [--val-frac F]\n\n");
        flags_print_help(flags, NFLAGS(flags));
        return 0;
    }
    if (!model_dir || !corpus_path)
        return bad_input("eval needs --model and --corpus (see --help)");
    if (!(val_frac > 0 && val_frac <= 1)) return bad_input("--val-frac must be in (0, 1]");
    Model model;
    Vocab vocab;
    ModelInfo info;
    if (artefacts_load(model_dir, &model, &vocab, &info, err) != 0) return bad_input(err);
    Corpus corpus;
    int rc = EXIT_BAD_INPUT;
    if (corpus_load(&corpus, corpus_path, &vocab, val_frac, err) != 0) {
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
    rc = 0;
out_corpus:
    corpus_free(&corpus);
out_model:
    model_free(&model);
    vocab_free(&vocab);
    return rc;
}

static int print_chunk(const char *chunk, size_t len, void *ctx) {
    (void)ctx;
    fwrite(chunk, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int cmd_sample(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = NULL;
    GenerateParams p = {.sampler = {.temperature = 0.8f,
                                    .top_k = 40,
                                    .top_p = 1.0f,
                                    .repetition_penalty = 1.0f,
                                    .repetition_window = 64},
                        .max_tokens = 200,
                        .seed = (uint64_t)time(NULL)};
    Flag flags[] = {
        {"model", FLAG_STRING, &model_dir, "artefacts folder (required)"},
        {"prompt", FLAG_STRING, &prompt, "text to continue (required; may be empty)"},
        {"max-tokens", FLAG_INT, &p.max_tokens, "characters to generate (default 200)"},
        {"temperature", FLAG_FLOAT, &p.sampler.temperature, "0 = greedy (default 0.8)"},
        {"top-k", FLAG_INT, &p.sampler.top_k, "keep the k most likely, 0 = off (default 40)"},
        {"top-p", FLAG_FLOAT, &p.sampler.top_p, "nucleus mass in (0, 1] (default 1)"},
        {"repetition-penalty", FLAG_FLOAT, &p.sampler.repetition_penalty,
         "> 0, 1 = off (default 1)"},
        {"repetition-window", FLAG_INT, &p.sampler.repetition_window,
         "latest chars penalised (default 64)"},
        {"seed", FLAG_U64, &p.seed, "random seed (default: the clock)"},
    };
    char err[ERR_LEN];
    int help;
    if (flags_parse(flags, NFLAGS(flags), argc, argv, &help, err) != 0) return bad_input(err);
    if (help) {
        printf("usage: charlm-train sample --model DIR --prompt TEXT [options]\n\n");
        flags_print_help(flags, NFLAGS(flags));
        return 0;
    }
    if (!model_dir || !prompt) return bad_input("sample needs --model and --prompt (see --help)");
    if (p.max_tokens < 1 || p.max_tokens > 1000000)
        return bad_input("--max-tokens must be in 1..1000000");
    if (!(p.sampler.temperature >= 0)) return bad_input("--temperature must be >= 0");
    if (p.sampler.top_k < 0) return bad_input("--top-k must be >= 0");
    if (!(p.sampler.top_p > 0 && p.sampler.top_p <= 1))
        return bad_input("--top-p must be in (0, 1]");
    if (!(p.sampler.repetition_penalty > 0)) return bad_input("--repetition-penalty must be > 0");
    if (p.sampler.repetition_window < 0) return bad_input("--repetition-window must be >= 0");
    long bad = utf8_find_invalid(prompt, strlen(prompt));
    if (bad >= 0) {
        err_set(err, "--prompt: invalid UTF-8 at byte offset %ld", bad);
        return bad_input(err);
    }
    Model model;
    Vocab vocab;
    ModelInfo info;
    if (artefacts_load(model_dir, &model, &vocab, &info, err) != 0) return bad_input(err);
    openblas_set_num_threads(1);
    int rc = 1;
    Generation g;
    InferScratch scratch;
    if (generation_init(&g, &model, &vocab, prompt, strlen(prompt), &p, err) != 0) {
        fprintf(stderr, "charlm-train: %s\n", err);
        goto out;
    }
    if (infer_scratch_alloc(&scratch, &model.config, 1, err) != 0) {
        fprintf(stderr, "charlm-train: %s\n", err);
        generation_free(&g);
        goto out;
    }
    fputs(prompt, stdout);
    generate_run(&g, &scratch, print_chunk, NULL);
    putchar('\n');
    fprintf(stderr, "charlm-train: %d chars, finish %s, seed %llu%s%s\n", g.tokens,
            finish_reason_name(g.finish), (unsigned long long)p.seed,
            *g.unknown_chars ? ", skipped prompt chars: " : "", g.unknown_chars);
    infer_scratch_free(&scratch);
    generation_free(&g);
    rc = 0;
out:
    model_free(&model);
    vocab_free(&vocab);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "eval")) return cmd_eval(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "sample")) return cmd_sample(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
    if (argc >= 2 && strncmp(argv[1], "-", 1) != 0) {
        fprintf(stderr, "charlm-train: unknown command '%s' (train, eval, sample; see --help)\n",
                argv[1]);
        return EXIT_BAD_INPUT;
    }
    return cmd_train(argc - 1, argv + 1);
}
