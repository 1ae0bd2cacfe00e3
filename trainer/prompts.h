/*
 * prompts.h — the lines of charlm-train sample --prompt-file: one prompt a line, or one
 * JSON object a line, {"prompt": TEXT, ...generation parameters}.
 *
 * The file is JSON lines when its first line starts with '{'; then every non-blank line
 * is an object whose "prompt" is a string and whose other members are generation
 * parameters by their API names (core/genparams' rows, checked there, plus "stop": a
 * string or an array of at most GEN_MAX_STOP strings), each replacing the flags' value for
 * that line only. Otherwise each line, without its newline, is a prompt (an empty line is
 * an empty prompt). Prompts must be valid UTF-8.
 */
#ifndef CHARLM_PROMPTS_H
#define CHARLM_PROMPTS_H

#include <stddef.h>
#include <stdio.h>

#include "genparams.h"

typedef struct {
    char *prompt; // UTF-8, NUL-terminated
    size_t prompt_len;
    GenerateParams params;     // the flags', then the line's own
    char *stops[GEN_MAX_STOP]; // what params.stop points to, owned
    int line;                  // 1-based, in the file
} PromptLine;

/* Reads one line (len bytes, no newline) into out, as JSON when json is set, from base.
 * Returns 0, or -1 with one line in err (the line number is the caller's to add). */
int prompts_parse(const char *line, size_t len, int json, const GenerateParams *base,
                  PromptLine *out, char *err);
/* Reads every line of f into *out (*n of them, malloc'd; prompts_free_all releases).
 * Returns 0, or -1 with "line N: ..." in err and nothing left allocated. */
int prompts_read(FILE *f, const GenerateParams *base, PromptLine **out, int *n, char *err);
void prompts_free(PromptLine *l);
void prompts_free_all(PromptLine *lines, int n);

#endif
