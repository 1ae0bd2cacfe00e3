/*
 * commands.h — the commands of charlm-train, one file each (trainer/train.c, eval.c,
 * sample.c, repl.c); trainer/main.c picks one by the first argument, trainer/commands.c holds
 * what they share.
 *
 * Each command takes the arguments after its name, reads them through its own table of
 * flag rows (core/cli.h), which --help prints, and returns the program's exit code, one of
 * cli.h's CLI_EXIT_*: bad input exits before anything is written.
 */
#ifndef CHARLM_COMMANDS_H
#define CHARLM_COMMANDS_H

#include "cli.h"

// Each command's synopsis: its own --help starts with it, the program's lists them all.
#define COMMANDS_TRAIN_USAGE "charlm-train [train] --corpus FILE --out DIR [options]"
#define COMMANDS_EVAL_USAGE  "charlm-train eval --model DIR --corpus FILE [options]"
#define COMMANDS_SAMPLE_USAGE                                                                      \
    "charlm-train sample --model DIR (--prompt TEXT | --prompt-file FILE) [options]"

#define COMMANDS_REPL_USAGE "charlm-train repl --model DIR"

/* train (also with no command name): learns a model from --corpus into --out, from fresh
 * weights or from those of --init's model folder, within --steps and --max-time:
 * vocab.json and model.safetensors, the best by validation loss so far, published
 * whenever it improves; train_log.jsonl, a row per evaluation; checkpoint.safetensors,
 * which --resume continues from, written every --checkpoint-every steps, at the end, and
 * on SIGINT or SIGTERM (then the exit code is CLI_EXIT_INTERRUPTED). Progress goes to
 * stderr, a summary line of JSON to stdout. Its --help is the program's: the commands,
 * then its flags, then the exit codes. */
int commands_train(int argc, char **argv);

/* eval: scores --corpus (or its last --val-frac) with the model folder --model, as one
 * stream from the zero state, leaving out chars the vocab lacks; prints one line of JSON:
 * loss, bits per char, chars scored and chars skipped. */
int commands_eval(int argc, char **argv);

/* sample: prints --prompt and its continuation by the model folder --model, streamed as
 * it is generated; the generation flags are core/genparams' parameters, the server's
 * request fields. A line on stderr gives the chars generated, why it stopped and the
 * seed, which a run without --seed draws at random. With --prompt-file, each line's prompt
 * (trainer/prompts.h) instead, batched (trainer/batch.h), one line of JSON out for each. */
int commands_sample(int argc, char **argv);

/* repl: a session with the model folder --model: prompts in, continuations out, and
 * commands that change the generation parameters (trainer/repl.c, trainer/replline.h). */
int commands_repl(int argc, char **argv);

// What the program says about itself in train's --help: the synopsis of every command,
// the list of them, the exit codes.
extern const char commands_usage[];
extern const char commands_about[];
extern const char commands_exit_codes[];

/* Prints "charlm-train: msg" on stderr; returns CLI_EXIT_BAD_INPUT. */
int commands_bad_input(const char *msg);
/* Reads a command's flags into config: returns -1 to go on, or the exit code to return
 * at once (after --help, or a bad flag). */
int commands_parse_flags(const CliCommand *cmd, void *config, int argc, char **argv);

#endif
