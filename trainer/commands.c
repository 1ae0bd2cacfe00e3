/* commands.c — what charlm-train's commands share: see commands.h. */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "version.h"

const char commands_usage[] =
    COMMANDS_TRAIN_USAGE "\n       " COMMANDS_EVAL_USAGE "\n       " COMMANDS_SAMPLE_USAGE
                         "\n       " COMMANDS_REPL_USAGE;

const char commands_about[] =
    "Commands (train is the default):\n"
    "  train    learn a model from a text into a folder\n"
    "  eval     score a text with a trained model (loss and bits per char)\n"
    "  sample   continue a prompt with a trained model\n"
    "  repl     a terminal session with a trained model\n"
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
    if (rc == CLI_STOP) { // --version, the one stop row
        printf("charlm-train %s\n", charlm_version);
        return CLI_EXIT_OK;
    }
    return -1;
}
