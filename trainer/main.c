/*
 * charlm-train — train, score and sample a character-level LSTM.
 *
 *   charlm-train [train] --corpus FILE --out DIR [options]
 *   charlm-train eval    --model DIR --corpus FILE [--val-frac X]
 *   charlm-train sample  --model DIR --prompt TEXT [options]
 *   charlm-train repl    --model DIR
 *
 * This file picks the command; each command is a file of its own (trainer/commands.h), its
 * flags one table of rows (core/cli.h) next to the struct they fill, and what they share is
 * trainer/commands.c. Exit codes are cli.h's CLI_EXIT_*.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "eval")) return commands_eval(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "sample")) return commands_sample(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "train")) return commands_train(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "repl")) return commands_repl(argc - 2, argv + 2);
    if (argc >= 2 && strncmp(argv[1], "-", 1) != 0) {
        fprintf(stderr,
                "charlm-train: unknown command '%s' (train, eval, sample, repl; see --help)\n",
                argv[1]);
        return CLI_EXIT_BAD_INPUT;
    }
    return commands_train(argc - 1, argv + 1);
}
