/*
 * generate.h — the generation loop: prompt -> state -> sampled characters -> stop.
 *
 * A Generation is one request's stream. It is driven one step at a time so that a
 * scheduler can advance many of them with a single step of the model's architecture
 * (arch.h), which holds the stream's state in g.state:
 *
 *     while (!g.done) {
 *         if (generation_room(&g) == 0) ... feed generation_shift's ids (a prefill) ...
 *         int id = generation_input(&g);          // next char to feed
 *         model->arch->step(model, scratch, 1, &id, &g.state, logits);
 *         generation_advance(&g, logits);          // consume the prompt or sample
 *         ... new text is g.text[g.emitted_before .. g.emitted) ...
 *     }
 *
 * With a context (arch.h) and the prompt not scored, only the prompt's chars the context
 * rule would still hold at its end are fed (prompt_pos starts past the others): the same
 * state as feeding it all, for less work.
 *
 * Prompt characters missing from the vocabulary are skipped and collected in
 * unknown_chars. An empty prompt feeds the newline (or id 0 when the vocabulary has no
 * newline). Stop sequences are matched against generated text only; text that could
 * still become a stop sequence is held back from `emitted`, so streamed chunks
 * concatenate to exactly the final text, which never contains the stop sequence.
 *
 * The sampler (sampler.h) counts the ids the generation draws, for the presence and
 * frequency penalties; prompt ids feed only the repetition window. A logit bias list
 * (params.sampler.bias) is checked at init: ids in the vocabulary, each at most once
 * (so at most V entries), values in [-100, 100]; it is borrowed like the stop strings.
 *
 * Log probabilities (params.logprobs) are the model's own: the log-softmax of the raw
 * logits at each position, before bias, penalties, temperature or any cut, so they say
 * what the model believed rather than what the sampler was allowed to draw. Each
 * generated char gets an entry in lp[], with its top_logprobs most likely alternatives
 * (all the vocabulary's chars when it has fewer: g.params.top_logprobs says how many);
 * with score_prompt the prompt's chars get entries too (first, in order), the first of
 * them without a logprob since nothing predicted it. max_tokens 0 then scores a text.
 */
#ifndef CHARLM_GENERATE_H
#define CHARLM_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "genparams.h"
#include "model.h"
#include "rng.h"
#include "sampler.h"
#include "vocab.h"

typedef struct {
    int id;        // the char
    float logprob; // log-softmax of the model's logits at id; NAN for the first prompt char
    int prompt;    // a prompt char (score_prompt) rather than a generated one
    size_t offset; // byte offset of the char in the prompt, or in text when generated
} TokenLogprob;

/* Why a generation ended. FINISH_CANCELLED: asked to stop (its client left, the drain);
 * FINISH_ERROR: it could not go on (out of memory for its text, its log probabilities or
 * its step). FINISH_REASONS counts them, for tables indexed by reason. */
typedef enum {
    FINISH_NONE = 0,
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_CANCELLED,
    FINISH_ERROR,
    FINISH_REASONS
} FinishReason;

typedef struct {
    const Model *model;
    const Vocab *vocab;
    GenerateParams params;
    void *state; // the architecture's per-stream state (arch.h)
    Sampler sampler;
    Rng rng;

    int *prompt_ids; // [n_prompt] prompt ids still to feed, from prompt_pos
    int n_prompt, prompt_pos;
    int next_id; // the last sampled id, fed once the prompt is consumed
    int *recent; // [2 * window] latest ids (prompt included), oldest first, for the penalty
    int n_recent, window;
    int context; // the architecture's longest context, 0 = unbounded
    int *fed;    // [context] the ids the state holds, oldest first (with a context)
    int n_fed;

    char *text; // generated UTF-8 (NUL-terminated), stop sequence removed at the end
    size_t len, cap;
    size_t emitted;        // text[0 .. emitted) is final and may be streamed
    size_t emitted_before; // emitted before the last advance

    TokenLogprob *lp; // [n_lp] prompt entries first, then generated ones
    int *top_id;      // [n_lp, top_logprobs] most likely first (ties: lower id first)
    float *top_lp;    // [n_lp, top_logprobs]
    int n_lp, cap_lp;
    size_t *prompt_offset; // [n_prompt] byte offsets of the prompt ids (score_prompt)

    char *unknown_chars; // prompt chars not in the vocabulary, in order of appearance, UTF-8
    int prompt_tokens;   // prompt chars used
    int tokens;          // generated chars, stop sequence included
    int done;
    FinishReason finish;
} Generation;

/* Prompt must be valid UTF-8. Allocates everything the generation needs. Returns 0; -1
 * with err for what was asked (parameters, prompt, logit bias); GEN_OUT_OF_MEMORY with err
 * when an allocation failed (the stream's state included), which a retry may not meet. */
#define GEN_OUT_OF_MEMORY (-2)
int generation_init(Generation *g, const Model *model, const Vocab *vocab, const char *prompt,
                    size_t prompt_len, const GenerateParams *params, char *err);
void generation_free(Generation *g);
/* What generation_init checks of params: the numbers against genparams' rows, the stop
 * sequences (at most GEN_MAX_STOP, non-empty, at most GEN_MAX_STOP_BYTES each) and
 * top_logprobs. Returns 0, or -1 with one line in err. */
int generation_params_check(const GenerateParams *p, char *err);
/* The id to feed at the next step. */
int generation_input(const Generation *g);
/* Prompt ids not yet fed (a prefill chunk may take up to this many). */
int generation_prompt_left(const Generation *g);
/* Chars the state takes before the context rule (arch.h) applies: INT_MAX without a
 * context. A prefill chunk must be at most this long; at 0, generation_shift comes first. */
int generation_room(const Generation *g);
/* The context rule, when generation_room is 0: resets the state and returns the ids to
 * feed it again, *n of them (a prefill whose logits nobody reads), before going on. */
const int *generation_shift(Generation *g, int *n);
/* Consumes the logits the last step produced for this stream. Returns 1 when done.
 * logits may be NULL for a prompt position whose logits nobody reads: not the prompt's
 * last, and the prompt not scored (params.score_prompt with logprobs). */
int generation_advance(Generation *g, const float *logits);
/* Entries of lp[] that are final: the prompt's once it is consumed, and those of the
 * generated chars in text[0 .. emitted). */
int generation_logprobs_ready(const Generation *g);
/* Marks a generation finished early (client gone): FINISH_CANCELLED. */
void generation_cancel(Generation *g);
/* Ends a generation that cannot go on (its step could not be run): FINISH_ERROR. Both keep
 * the text so far, and do nothing to a generation already done. */
void generation_fail(Generation *g);
const char *finish_reason_name(FinishReason r);

/* Runs a whole generation on its own (n = 1 steps, scratch from the architecture's
 * scratch_alloc), calling on_text for each newly emitted chunk if given (return non-zero
 * from it to cancel). */
int generate_run(Generation *g, void *scratch,
                 int (*on_text)(const char *chunk, size_t len, void *ctx), void *ctx);

#endif
