/*
 * cli.h — command lines and environment variables for both programs, read from one table
 * of rows per command, and the exit codes they share.
 *
 * A row states everything about one setting: its flag, its environment variable, its
 * type, the placeholder and help line shown by --help, its range and its default. The
 * default is text that cli_parse applies by parsing it like a flag value, so the default
 * --help shows is the default in force; a default that depends on the machine or on other
 * settings is a function instead, and --help shows the row's text for it.
 *
 * Order of precedence: the default, then the environment, then the command line.
 * "--name value" and "--name=value" are both accepted; "--help" and "-h" ask for help.
 * A flag given twice takes its last value, but for CLI_LIST rows, which keep them all.
 */
#ifndef CHARLM_CLI_H
#define CHARLM_CLI_H

#include <stddef.h>
#include <stdio.h>

// Exit codes of charlm-train and charlm-server.
#define CLI_EXIT_OK          0
#define CLI_EXIT_FAILURE     1   // something failed while running
#define CLI_EXIT_BAD_INPUT   2   // a flag, variable or input file is wrong; nothing was written
#define CLI_EXIT_INTERRUPTED 130 // stopped by SIGINT/SIGTERM (128 + SIGINT, as shells report)

typedef enum {
    CLI_STRING, // const char *; points into argv, the environment or the row
    CLI_INT,    // int
    CLI_LONG,   // long
    CLI_U64,    // uint64_t
    CLI_FLOAT,  // float
    CLI_DOUBLE, // double
    CLI_BOOL,   // int, set to 1 by the bare flag; takes no value
    CLI_LIST,   // CliList: a flag that may be given several times, keeping every value
} CliType;

#define CLI_LIST_MAX 16

/* A CLI_LIST field. Each flag given adds a value; the variable is one value, replaced by
 * the flags when any is given. What a value holds (one item, or several separated by
 * commas) is for the row's user to read. */
typedef struct {
    int n;
    const char *value[CLI_LIST_MAX]; // pointing into argv, the environment or the row
} CliList;

typedef struct {
    const char *name; // the flag without "--"
    const char *env;  // environment variable, or NULL
    CliType type;
    const char *placeholder; // shown after the flag by --help ("N", "DIR"); NULL for bools
    size_t offset;           // of the destination in the caller's config struct
    double min, max;         // inclusive range, checked; min == max: no range
    int min_open, max_open;  // the bound itself is outside the range
    const char *def;         // default, parsed like a flag value; NULL: none, --help says "off"
    // A default computed after everything else is read, for rows given neither by flag nor
    // by variable; def is then only the text --help shows ("online CPUs").
    void (*compute)(void *config);
    int required; // the flag (or its variable) must be given
    int text;     // a string that may be empty or hold control characters (a prompt)
    // A CLI_BOOL answered at once, like --help (--version): given, it is set and cli_parse
    // returns CLI_STOP without reading further or asking for the required rows.
    int stop;
    const char *help;
} CliOpt;

typedef struct {
    const char *usage; // "charlm-train eval --model DIR --corpus FILE [options]"
    const char *about; // printed between the usage line and the flags, or NULL
    const CliOpt *opts;
    int nopts;
    const char *after; // printed after the flags, or NULL
} CliCommand;

/* .opts and .nopts of a CliCommand from a row array. */
#define CLI_ROWS(rows) .opts = (rows), .nopts = (int)(sizeof(rows) / sizeof((rows)[0]))

#define CLI_HELP 1
#define CLI_STOP 2

/* Fills config from the rows' defaults, the environment and argv[0 .. argc), in that
 * order, then applies computed defaults and checks required rows. Returns 0, CLI_HELP when
 * --help or -h was given (nothing after it is read), CLI_STOP when a stop row was (the
 * same), or -1 with one line in err naming the flag or variable at fault. */
int cli_parse(const CliCommand *cmd, void *config, int argc, char **argv, char *err);
/* Prints the usage line, about, one line per row and after. */
void cli_help(const CliCommand *cmd, FILE *f);
/* The folder holding the running program, e.g. "/usr/bin". Returns 0, or -1 when
 * /proc/self/exe cannot be read. */
int cli_program_dir(char *buf, size_t len);

#endif
