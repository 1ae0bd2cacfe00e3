/*
 * genparams.h — the generation parameters a caller may set, each stated once: name,
 * type, range, defaults and meaning.
 *
 * Everything that takes or shows these parameters reads this table: the server's request
 * parser, charlm-train sample's flags and --help, GET /model (which hands the defaults
 * and ranges to the page), and a test keeps docs/API.md in step with it. Stop sequences
 * and the prompt are not numbers: GenerateParams holds the stops, generate.h the prompt.
 */
#ifndef CHARLM_GENPARAMS_H
#define CHARLM_GENPARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

// Bounds no configuration can widen: the server's --max-tokens and sample's --max-tokens
// stay within them.
#define GEN_MAX_TOKENS_LIMIT 1000000
#define GEN_SEED_MAX         9007199254740992.0 // 2^53: every integer up to it is exact in JSON

/* What one generation is asked for: these numbers, the stop sequences and the log
 * probabilities (generate.h runs it). */
#define GEN_MAX_STOP 4
#define GEN_MAX_TOP  20 // alternatives a logprob entry can list
#define GEN_MAX_STOP_BYTES                                                                         \
    64 // each; holding back a partial match costs its length squared per char

typedef struct {
    SamplerParams sampler;
    int max_tokens; // >= 0; 0 only makes sense with score_prompt
    uint64_t seed;
    int nstop;
    const char *stop[GEN_MAX_STOP]; // UTF-8, non-empty; borrowed for the generation's life
    int logprobs;                   // record each char's log probability (0 = off)
    int top_logprobs;               // 0 .. GEN_MAX_TOP alternatives recorded with each entry; a
                                    // Generation's own copy is at most the vocabulary's size
    int score_prompt;               // with logprobs: entries for the prompt's chars too
} GenerateParams;

typedef enum {
    GENPARAM_INT,   // int field; JSON numbers like 2.0 are accepted, 1.5 is not
    GENPARAM_FLOAT, // float field
    GENPARAM_SEED,  // uint64_t field, an integer in [0, GEN_SEED_MAX]
} GenParamType;

typedef struct {
    const char *name; // the JSON field; charlm-train sample's flag is --name with '-' for '_'
    GenParamType type;
    double min, max; // inclusive, except min when min_open; max may be INFINITY
    int min_open;
    double def;        // for /generate and charlm-train sample; NAN: none (seed: random)
    double def_openai; // for /v1/completions: OpenAI's defaults
    size_t offset;     // of the field in GenerateParams
    const char *help;  // one line: what it does
} GenParam;

extern const GenParam genparams[];
extern const int genparams_count;

/* The row named name (JSON spelling, or the flag's with '-'), or NULL. */
const GenParam *genparams_find(const char *name);
/* The upper bound in force: the row's max, for max_tokens lowered to max_tokens_cap (a
 * server's or sample's --max-tokens) when that is positive and smaller; INFINITY when
 * unbounded. Pass it as genparams_set's cap. */
double genparams_max(const GenParam *gp, int max_tokens_cap);
/* The row's default in force (openai: OpenAI's), lowered to genparams_max; NAN when it
 * has none (the seed). */
double genparams_default(const GenParam *gp, int openai, int max_tokens_cap);
/* Every parameter at genparams_default; the seed is left 0, no stop sequences. */
void genparams_defaults(GenerateParams *p, int openai, int max_tokens_cap);
/* Checks v against the row's range (the upper bound lowered to cap when cap > 0 and
 * smaller) and stores it. On failure writes "<name> must be ..." into err. */
int genparams_set(GenerateParams *p, const GenParam *gp, double v, double cap, char *err);
/* Checks every parameter in p against its row, as genparams_set would take it, for
 * parameters set in code rather than one at a time: 0, or -1 with genparams_set's message
 * for the first one out of range. Two values pass beyond the rows: max_tokens 0, which
 * scores the prompt without generating (GenerateParams.score_prompt), and any seed, since
 * every 64-bit seed draws (a request's choices draw with rng_child_seed's); the seed's row
 * is what JSON carries exactly. */
int genparams_check(const GenerateParams *p, char *err);
/* The range as text, e.g. "1 to 2000", "> 0", "(0, 1]"; cap as for genparams_set. */
void genparams_range_text(const GenParam *gp, double cap, char *buf, size_t len);

#endif
