/*
 * replline.h — what charlm-train repl reads, without the terminal: lines gathered into
 * entries, entries read as a prompt or a command, and the parameters /set changes.
 *
 * An entry is one line, or several: a line ending in '\' goes on with the next (the '\'
 * becomes a newline), and a line holding only """ opens a block that the next such line
 * closes (the lines between, joined by newlines). An entry starting with '/' is a command
 * (/set NAME VALUE, /show, /reset, /help, /quit); "//" starts a prompt with one '/'.
 * Anything else is a prompt, an empty one included.
 */
#ifndef CHARLM_REPLLINE_H
#define CHARLM_REPLLINE_H

#include "buf.h"
#include "genparams.h"

typedef struct {
    Buf text;     // the entry so far
    int in_block; // inside a """ block
    int going_on; // the last line ended in '\'
} ReplInput;

/* Adds one line (without its newline). Returns 1 when in->text holds a whole entry, 0
 * when it needs more lines. */
int replline_feed(ReplInput *in, const char *line);
/* Forgets what was gathered (after an entry is handled, or on Ctrl-C). */
void replline_clear(ReplInput *in);
void replline_free(ReplInput *in);

typedef enum { REPL_PROMPT, REPL_SET, REPL_SHOW, REPL_RESET, REPL_HELP, REPL_QUIT } ReplKind;

typedef struct {
    ReplKind kind;
    const char *text;  // REPL_PROMPT: the prompt
    const char *name;  // REPL_SET
    const char *value; // REPL_SET: the rest of the line, may be empty
} ReplCommand;

/* Reads an entry, which it edits in place (the command's pieces point into it). Returns
 * 0, or -1 with one line in err for an unknown command or a malformed one. */
int replline_parse(char *entry, ReplCommand *out, char *err);

/* The parameters in force: genparams' rows, a seed fixed by /set or drawn at each prompt,
 * one stop sequence or none. */
typedef struct {
    GenerateParams p; // its stops unused: see replline_params
    int seed_fixed;
    char stop[GEN_MAX_STOP_BYTES + 1]; // "" = none
} ReplParams;

/* genparams' defaults, a seed drawn at each prompt, no stop sequence. */
void replline_defaults(ReplParams *rp);
/* /set NAME VALUE: NAME is a genparams row by its API name (its range checked there),
 * "seed" also takes "random", and "stop" takes the text (\n, \t and \\ read as escapes;
 * empty: none). Returns 0, or -1 with one line in err and rp unchanged. */
int replline_set(ReplParams *rp, const char *name, const char *value, char *err);
/* The GenerateParams of one generation, pointing at rp's stop; seed when not fixed. */
GenerateParams replline_params(const ReplParams *rp, uint64_t seed);
/* One line per parameter ("temperature 0.8"), in genparams' order, then seed and stop. */
void replline_show(const ReplParams *rp, Buf *out);

#endif
