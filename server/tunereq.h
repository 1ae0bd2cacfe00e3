/*
 * tunereq.h — the body of POST /v1/fine_tuning/jobs, parsed and checked (pure: no I/O, no
 * server state, so it is table-tested in process). OpenAI's shape:
 *
 *   {"training_file": "file-...", "validation_file": "file-..." | null,
 *    "model": "lstm" | "gpt" | <a served model's id>,
 *    "hyperparameters": {"n_epochs": N | "auto", "batch_size": N | "auto",
 *                        "learning_rate_multiplier": X | "auto",
 *                        "steps": N, "max_time": seconds},      (the last two: charlm's)
 *    "suffix": "...", "seed": N, "method": {"type": "supervised"}, "metadata": {...}}
 *
 * Whether the files and the model exist is the caller's to check; this checks shapes and
 * ranges, and names the field at fault (OpenAI's `param`).
 */
#ifndef CHARLM_TUNEREQ_H
#define CHARLM_TUNEREQ_H

#include <stddef.h>
#include <stdint.h>

#define TUNEREQ_FILE_ID_MAX 64
#define TUNEREQ_MODEL_MAX   128
#define TUNEREQ_SUFFIX_MAX  40 // bytes of [A-Za-z0-9._-]: it becomes part of a folder's name
#define TUNEREQ_EPOCHS_MAX  1000
#define TUNEREQ_STEPS_MAX   10000000
#define TUNEREQ_BATCH_MAX   4096
#define TUNEREQ_LR_MULT_MAX 100
#define TUNEREQ_TIME_MAX    (7 * 86400) // seconds

typedef struct {
    char training_file[TUNEREQ_FILE_ID_MAX];
    char validation_file[TUNEREQ_FILE_ID_MAX]; // "": none
    char model[TUNEREQ_MODEL_MAX];
    double n_epochs; // 0: not given ("auto")
    long steps;      // 0: not given
    int batch_size;  // 0: "auto", the architecture's default
    double lr_mult;  // 0: "auto", 1
    double max_time; // seconds of training; 0: no budget
    char suffix[TUNEREQ_SUFFIX_MAX + 1];
    int has_seed;
    uint64_t seed;
} TuneRequest;

/* Parses len bytes of JSON into r. Returns 0, or -1 with a message in err (cap bytes) and
 * *param the field at fault (NULL: the body as a whole). */
int tunereq_parse(const char *body, size_t len, TuneRequest *r, char *err, size_t cap,
                  const char **param);

#endif
