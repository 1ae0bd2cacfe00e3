#include "generate.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "genparams.h"
#include "utf8.h"

// The numbers are genparams' rows, checked there; the rest is generate.h's.
int generation_params_check(const GenerateParams *p, char *err) {
    if (genparams_check(p, err)) return -1;
    if (p->top_logprobs < 0 || p->top_logprobs > GEN_MAX_TOP)
        return err_set(err, "top_logprobs must be from 0 to %d", GEN_MAX_TOP);
    if (p->nstop < 0 || p->nstop > GEN_MAX_STOP)
        return err_set(err, "at most %d stop sequences", GEN_MAX_STOP);
    for (int i = 0; i < p->nstop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return err_set(err, "stop sequences must not be empty");
    for (int i = 0; i < p->nstop; i++)
        if (strlen(p->stop[i]) > GEN_MAX_STOP_BYTES)
            return err_set(err, "stop sequences must be at most %d bytes", GEN_MAX_STOP_BYTES);
    return 0;
}

// At most one entry per id of the vocabulary, each within OpenAI's range. The sampler's
// window marks, all clear outside sampler_draw, serve to find repeated ids.
static int bias_check(const SamplerParams *p, Sampler *s, char *err) {
    if (p->nbias < 0 || p->nbias > s->V || (p->nbias > 0 && !p->bias))
        return err_set(err, "logit_bias takes at most %d entries (one per char)", s->V);
    int rc = 0;
    for (int i = 0; i < p->nbias && !rc; i++) {
        const SamplerBias *b = &p->bias[i];
        if (b->id < 0 || b->id >= s->V)
            rc = err_set(err, "logit_bias: id %d is not in the vocabulary (0 to %d)", b->id,
                         s->V - 1);
        else if (!(fabsf(b->bias) <= SAMPLER_BIAS_MAX))
            rc = err_set(err, "logit_bias: values must be in [-100, 100]");
        else if (s->seen[b->id])
            rc = err_set(err, "logit_bias: id %d is given twice", b->id);
        else
            s->seen[b->id] = 1;
    }
    for (int i = 0; i < p->nbias; i++)
        if (p->bias[i].id >= 0 && p->bias[i].id < s->V) s->seen[p->bias[i].id] = 0;
    return rc;
}

// Appends to the window of latest ids, sliding the newest `window` of them back to the
// front when the buffer [2 * window] fills, so they stay contiguous for the sampler.
static void recent_push(Generation *g, int id) {
    if (g->window == 0) return;
    if (g->n_recent == 2 * g->window) {
        memmove(g->recent, g->recent + g->window, (size_t)g->window * sizeof(int));
        g->n_recent = g->window;
    }
    g->recent[g->n_recent++] = id;
}

/* Appends an entry for id predicted by logits (NULL: nothing predicted it). The
 * log-softmax is summed in double so that it matches a float64 reference to ~1e-7. */
static int lp_record(Generation *g, const float *logits, int id, int prompt, size_t offset) {
    int K = g->params.top_logprobs;
    if (g->n_lp == g->cap_lp) {
        int cap = g->cap_lp ? 2 * g->cap_lp : 64;
        TokenLogprob *lp = realloc(g->lp, (size_t)cap * sizeof(*lp));
        if (lp) g->lp = lp;
        int *ti = K ? realloc(g->top_id, (size_t)cap * K * sizeof(int)) : NULL;
        if (ti) g->top_id = ti;
        float *tl = K ? realloc(g->top_lp, (size_t)cap * K * sizeof(float)) : NULL;
        if (tl) g->top_lp = tl;
        if (!lp || (K && (!ti || !tl))) return -1;
        g->cap_lp = cap;
    }
    TokenLogprob *e = &g->lp[g->n_lp];
    *e = (TokenLogprob){.id = id, .logprob = NAN, .prompt = prompt, .offset = offset};
    int *top_id = K ? g->top_id + (size_t)g->n_lp * K : NULL;
    float *top_lp = K ? g->top_lp + (size_t)g->n_lp * K : NULL;
    g->n_lp++;
    if (!logits) {
        for (int k = 0; k < K; k++) top_id[k] = -1, top_lp[k] = NAN;
        return 0;
    }
    int V = g->vocab->size;
    float m = logits[0];
    for (int v = 1; v < V; v++)
        if (logits[v] > m) m = logits[v];
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - m);
    double lse = m + log(sum);
    e->logprob = (float)(logits[id] - lse);
    // K is at most 20 of ~100 ids: repeated selection beats sorting the row. K <= V
    // (generation_init), so every round finds an id.
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int v = 0; v < V; v++) {
            int taken = 0;
            for (int j = 0; j < k && !taken; j++) taken = top_id[j] == v;
            if (!taken && (best < 0 || logits[v] > logits[best])) best = v;
        }
        top_id[k] = best;
        top_lp[k] = (float)(logits[best] - lse);
    }
    return 0;
}

/* Where feeding a prompt of n chars may start when nobody reads its scores. The context
 * rule leaves the state holding only the prompt's last chars, fed again from the reset
 * state, and a prefill gives the bits of as many steps (arch.h): feeding just those chars
 * gives the same state and logits, without computing the ones the rule would drop. */
static int prompt_start(int n, int context) {
    int fed = 0;
    for (int i = 0; i < n; i++) fed = (fed == context ? arch_context_keep(context) : fed) + 1;
    return n - fed;
}

int generation_init(Generation *g, const Model *model, const Vocab *vocab, const char *prompt,
                    size_t prompt_len, const GenerateParams *params, char *err) {
    memset(g, 0, sizeof(*g));
    if (generation_params_check(params, err)) return -1;
    if (model->vocab_size != vocab->size)
        return err_set(err, "model has %d outputs but the vocabulary %d chars", model->vocab_size,
                       vocab->size);
    long bad = utf8_find_invalid(prompt, prompt_len);
    if (bad >= 0) return err_set(err, "prompt is not valid UTF-8 (byte %ld)", bad);

    g->model = model;
    g->vocab = vocab;
    g->params = *params;
    // A vocabulary of fewer chars than asked for lists them all.
    if (g->params.top_logprobs > vocab->size) g->params.top_logprobs = vocab->size;
    size_t nchars = utf8_count(prompt, prompt_len);
    g->prompt_ids = malloc((nchars ? nchars : 1) * sizeof(int));
    if (params->logprobs && params->score_prompt) {
        g->prompt_offset = malloc((nchars ? nchars : 1) * sizeof(size_t));
        if (!g->prompt_offset) goto oom;
    }
    g->unknown_chars = malloc(prompt_len + 1);
    g->cap = 64;
    g->text = malloc(g->cap);
    if (!g->prompt_ids || !g->unknown_chars || !g->text) goto oom;
    g->text[0] = '\0';

    g->n_prompt = (int)vocab_encode(vocab, prompt, prompt_len, g->prompt_ids, g->prompt_offset,
                                    g->unknown_chars);
    g->prompt_tokens = g->n_prompt;
    if (g->n_prompt == 0) {
        // Nothing usable to condition on: start from the zero state on a newline, the
        // usual boundary between texts.
        int nl = vocab_id(vocab, '\n');
        g->prompt_ids[g->n_prompt++] = nl >= 0 ? nl : 0;
    }

    // The window never needs to be longer than every char the generation will see.
    long most = (long)g->prompt_tokens + params->max_tokens;
    g->window =
        params->sampler.repetition_window < most ? params->sampler.repetition_window : (int)most;
    if (g->window > 0) {
        g->recent = malloc(2 * (size_t)g->window * sizeof(int));
        if (!g->recent) goto oom;
    }
    for (int i = 0; i < g->prompt_tokens; i++) recent_push(g, g->prompt_ids[i]);

    g->context = model->arch->context(model);
    if (g->context > 0 && !(g->fed = malloc((size_t)g->context * sizeof(int)))) goto oom;
    if (g->context > 0 && !g->prompt_offset) g->prompt_pos = prompt_start(g->n_prompt, g->context);
    if (!(g->state = model->arch->state_alloc(model, err)) ||
        sampler_init(&g->sampler, vocab->size, err)) { // vocab->size > 0: only memory fails
        generation_free(g);
        return GEN_OUT_OF_MEMORY;
    }
    if (bias_check(&params->sampler, &g->sampler, err)) {
        generation_free(g);
        return -1;
    }
    rng_seed(&g->rng, params->seed);
    if (g->prompt_offset && g->prompt_tokens > 0 &&
        lp_record(g, NULL, g->prompt_ids[0], 1, g->prompt_offset[0]))
        goto oom;
    return 0;

oom:
    generation_free(g);
    err_set(err, "out of memory for a generation");
    return GEN_OUT_OF_MEMORY;
}

void generation_free(Generation *g) {
    free(g->prompt_ids);
    free(g->recent);
    free(g->fed);
    free(g->text);
    free(g->unknown_chars);
    free(g->lp);
    free(g->top_id);
    free(g->top_lp);
    free(g->prompt_offset);
    if (g->state) g->model->arch->state_free(g->state);
    if (g->sampler.logits || g->sampler.order || g->sampler.seen || g->sampler.counts)
        sampler_free(&g->sampler);
    memset(g, 0, sizeof(*g));
}

int generation_prompt_left(const Generation *g) {
    return g->n_prompt - g->prompt_pos;
}

int generation_input(const Generation *g) {
    return g->prompt_pos < g->n_prompt ? g->prompt_ids[g->prompt_pos] : g->next_id;
}

static int text_append(Generation *g, uint32_t cp) {
    if (g->len + 5 > g->cap) {
        size_t cap = g->cap * 2;
        char *t = realloc(g->text, cap);
        if (!t) return -1;
        g->text = t;
        g->cap = cap;
    }
    g->len += (size_t)utf8_encode(cp, g->text + g->len);
    g->text[g->len] = '\0';
    return 0;
}

static void finish(Generation *g, FinishReason why) {
    g->done = 1;
    g->finish = why;
    g->emitted = g->len;
}

int generation_room(const Generation *g) {
    return g->context > 0 ? g->context - g->n_fed : INT_MAX;
}

const int *generation_shift(Generation *g, int *n) {
    int keep = arch_context_keep(g->context);
    memmove(g->fed, g->fed + g->n_fed - keep, (size_t)keep * sizeof(int));
    g->n_fed = keep;
    g->model->arch->state_reset(g->state);
    *n = keep;
    return g->fed;
}

int generation_advance(Generation *g, const float *logits) {
    if (g->done) return 1;
    if (g->context > 0) g->fed[g->n_fed++] = generation_input(g); // what the step was fed
    g->emitted_before = g->emitted;
    if (g->prompt_pos < g->n_prompt) {
        g->prompt_pos++;
        if (g->prompt_pos < g->n_prompt) { // still reading the prompt
            if (g->prompt_offset && lp_record(g, logits, g->prompt_ids[g->prompt_pos], 1,
                                              g->prompt_offset[g->prompt_pos])) {
                finish(g, FINISH_ERROR); // out of memory for the prompt's entries
                return 1;
            }
            return 0;
        }
    }
    if (g->params.max_tokens == 0) { // scoring only
        finish(g, FINISH_LENGTH);
        return 1;
    }

    int id = sampler_draw(&g->sampler, logits, &g->params.sampler, g->recent, g->n_recent, &g->rng);
    // Out of memory mid-generation: end here with what we have rather than crash, and
    // with no entry for a char the text does not have.
    if (g->params.logprobs && lp_record(g, logits, id, 0, g->len)) {
        finish(g, FINISH_ERROR);
        return 1;
    }
    if (text_append(g, g->vocab->chars[id])) {
        if (g->params.logprobs) g->n_lp--;
        finish(g, FINISH_ERROR);
        return 1;
    }
    g->tokens++;
    g->next_id = id;
    recent_push(g, id);
    sampler_accept(&g->sampler, id);

    const GenerateParams *p = &g->params;
    for (int i = 0; i < p->nstop; i++) {
        size_t n = strlen(p->stop[i]);
        if (g->len >= n && memcmp(g->text + g->len - n, p->stop[i], n) == 0) {
            g->len -= n;
            g->text[g->len] = '\0';
            while (g->n_lp > 0 && !g->lp[g->n_lp - 1].prompt && g->lp[g->n_lp - 1].offset >= g->len)
                g->n_lp--;
            finish(g, FINISH_STOP);
            return 1;
        }
    }
    if (g->tokens >= p->max_tokens) {
        finish(g, FINISH_LENGTH);
        return 1;
    }

    // Hold back the longest tail that is the start of some stop sequence: if the next
    // chars complete it, it must never have been streamed.
    size_t hold = 0;
    for (int i = 0; i < p->nstop; i++) {
        size_t n = strlen(p->stop[i]);
        size_t k = n - 1 < g->len ? n - 1 : g->len;
        for (; k > hold; k--)
            if (memcmp(g->text + g->len - k, p->stop[i], k) == 0) break;
        if (k > hold) hold = k;
    }
    if (g->len - hold > g->emitted) g->emitted = g->len - hold;
    return 0;
}

int generation_logprobs_ready(const Generation *g) {
    int n = g->n_lp;
    if (g->prompt_pos < g->n_prompt && !g->done) {
        while (n > 0 && g->lp[n - 1].prompt) n--; // the prompt's entries come all at once
        return n;
    }
    while (n > 0 && !g->lp[n - 1].prompt && g->lp[n - 1].offset >= g->emitted) n--;
    return n;
}

void generation_cancel(Generation *g) {
    if (g->done) return;
    finish(g, FINISH_CANCELLED); // what was held back for a stop sequence is text after all
}

void generation_fail(Generation *g) {
    if (g->done) return;
    finish(g, FINISH_ERROR);
}

const char *finish_reason_name(FinishReason r) {
    switch (r) {
    case FINISH_LENGTH:
        return "length";
    case FINISH_STOP:
        return "stop";
    case FINISH_CANCELLED:
        return "cancelled";
    case FINISH_ERROR:
        return "error";
    default:
        return "none";
    }
}

int generate_run(Generation *g, void *scratch,
                 int (*on_text)(const char *chunk, size_t len, void *ctx), void *ctx) {
    const Arch *arch = g->model->arch;
    float *logits = malloc((size_t)g->model->vocab_size * sizeof(float)); // [V]
    void *prefill = NULL; // for the context rule's re-feed, made when first needed
    char err[ERR_LEN];
    int rc = logits ? 0 : -1;
    while (rc == 0 && !g->done) {
        if (generation_room(g) == 0) {
            int n;
            const int *ids = generation_shift(g, &n);
            if (!prefill && !(prefill = arch->prefill_alloc(g->model, n, err))) {
                rc = -1;
                break;
            }
            arch->prefill(g->model, prefill, n, ids, g->state, NULL, 0);
        }
        int id = generation_input(g);
        g->model->arch->step(g->model, scratch, 1, &id, &g->state, logits);
        generation_advance(g, logits);
        if (on_text && g->emitted > g->emitted_before &&
            on_text(g->text + g->emitted_before, g->emitted - g->emitted_before, ctx))
            generation_cancel(g);
    }
    if (prefill) arch->prefill_free(prefill);
    free(logits);
    return rc;
}
