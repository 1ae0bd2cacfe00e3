/*
 * charlm-train — train, score and sample a character-level LSTM.
 *
 *   charlm-train [train] --corpus FILE --out DIR [options]
 *   charlm-train eval    --model DIR --corpus FILE [--val-frac X]
 *   charlm-train sample  --model DIR --prompt TEXT [options]
 *
 * This file picks the command and holds what the commands share; each command is a file
 * of its own (trainer/commands.h), its flags one table of rows (core/cli.h) next to the
 * struct they fill. Exit codes are cli.h's CLI_EXIT_*.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "error.h"

const char commands_usage[] =
    COMMANDS_TRAIN_USAGE "\n       " COMMANDS_EVAL_USAGE "\n       " COMMANDS_SAMPLE_USAGE;

const char commands_about[] =
    "Commands (train is the default):\n"
    "  train    learn a model from a text into a folder\n"
    "  eval     score a text with a trained model (loss and bits per char)\n"
    "  sample   continue a prompt with a trained model\n"
    "charlm-train COMMAND --help lists a command's flags. The flags of train:\n";

const char commands_exit_codes[] =
    "Exit codes: 0 done, 1 failure while running, 2 bad input (nothing written),\n"
    "130 interrupted (a checkpoint was written; --resume continues).\n";

int commands_bad_input(const char *msg) {
    fprintf(stderr, "charlm-train: %s\n", msg);
    return CLI_EXIT_BAD_INPUT;
}

int commands_parse_flags(const CliCommand *cmd, void *config, int argc, char **argv) {
    char err[ERR_LEN];
    int rc = cli_parse(cmd, config, argc, argv, err);
    if (rc < 0) return commands_bad_input(err);
    if (rc == CLI_HELP) {
        cli_help(cmd, stdout);
        return CLI_EXIT_OK;
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "eval")) return commands_eval(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "sample")) return commands_sample(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "train")) return commands_train(argc - 2, argv + 2);
    if (argc >= 2 && strncmp(argv[1], "-", 1) != 0) {
        fprintf(stderr, "charlm-train: unknown command '%s' (train, eval, sample; see --help)\n",
                argv[1]);
        return CLI_EXIT_BAD_INPUT;
    }
    return commands_train(argc - 1, argv + 1);
}
