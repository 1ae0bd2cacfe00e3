#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "generate.h"
#include "gpt.h"
#include "infer.h"
#include "utf8.h"

static const char *TEXT = "the cat sat on the mat.\nthe dog ran to the cat!\n";

/* The allocation seam: this suite is linked with --wrap=realloc (CMakeLists.txt), so the
 * reallocs of the code under test come here, and fail while realloc_fails is set. */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
static int realloc_fails;
void *__wrap_realloc(void *p, size_t n) {
    return realloc_fails ? NULL : __real_realloc(p, n);
}

static Vocab vocab;
static Model model;
static InferScratch scratch; // the LSTM's own, for references computed with infer_step
static void *arch_scratch;   // the same through the seam, for generate_run

static void setup(void) {
    char err[ERR_LEN];
    ck_assert_int_eq(vocab_build(&vocab, TEXT, strlen(TEXT), err), 0);
    ModelConfig c = {.vocab_size = vocab.size, .embed = 8, .hidden = 24, .layers = 2};
    ck_assert_int_eq(model_init(&model, &c, 5, err), 0);
    ck_assert_int_eq(infer_prepare(&model, err), 0);
    ck_assert_int_eq(infer_scratch_alloc(&scratch, &c, 2, err), 0);
    ck_assert_ptr_nonnull(arch_scratch = model.arch->scratch_alloc(&model, 2, err));
}

static void teardown(void) {
    infer_scratch_free(&scratch);
    model.arch->scratch_free(arch_scratch);
    model_free(&model);
    vocab_free(&vocab);
}

static GenerateParams params(float temperature, int max_tokens, uint64_t seed) {
    return (GenerateParams){.sampler = {.temperature = temperature,
                                        .top_k = 0,
                                        .top_p = 1.0f,
                                        .repetition_penalty = 1.0f,
                                        .repetition_window = 64},
                            .max_tokens = max_tokens,
                            .seed = seed};
}

// Greedy continuation computed here from infer_step alone: feed the ids, argmax.
static char *greedy_reference(const int *ids, int n, int max_tokens) {
    char err[ERR_LEN];
    StreamState st;
    ck_assert_int_eq(stream_state_alloc(&st, &model.config, err), 0);
    StreamState *sp = &st;
    int V = model.config.vocab_size;
    float *logits = malloc((size_t)V * sizeof(float));
    char *out = malloc((size_t)max_tokens * 4 + 1);
    size_t len = 0;
    for (int i = 0; i < n - 1; i++) infer_step(&model, &scratch, 1, &ids[i], &sp, logits);
    int id = ids[n - 1];
    for (int t = 0; t < max_tokens; t++) {
        infer_step(&model, &scratch, 1, &id, &sp, logits);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        len += (size_t)utf8_encode(vocab.chars[best], out + len);
        id = best;
    }
    out[len] = '\0';
    free(logits);
    stream_state_free(&st);
    return out;
}

typedef struct {
    char buf[4096];
    size_t len;
    int calls, cancel_after;
} Chunks;

static int collect(const char *chunk, size_t len, void *ctx) {
    Chunks *c = ctx;
    ck_assert_uint_gt(len, 0);
    ck_assert_uint_lt(c->len + len, sizeof(c->buf));
    memcpy(c->buf + c->len, chunk, len);
    c->len += len;
    c->buf[c->len] = '\0';
    c->calls++;
    return c->cancel_after && c->calls >= c->cancel_after;
}

static char *run(const char *prompt, const GenerateParams *p, Generation *g, Chunks *chunks) {
    char err[ERR_LEN];
    ck_assert_msg(generation_init(g, &model, &vocab, prompt, strlen(prompt), p, err) == 0, "%s",
                  err);
    ck_assert_int_eq(generate_run(g, arch_scratch, chunks ? collect : NULL, chunks), 0);
    return strdup(g->text);
}

START_TEST(test_greedy_matches_argmax) {
    Generation g;
    GenerateParams p = params(0.0f, 40, 1);
    Chunks ch = {0};
    char *text = run("the ca", &p, &g, &ch);
    int ids[6];
    for (int i = 0; i < 6; i++) ids[i] = vocab_id(&vocab, (unsigned char)"the ca"[i]);
    char *ref = greedy_reference(ids, 6, 40);
    ck_assert_str_eq(text, ref);
    ck_assert_str_eq(ch.buf, text);
    ck_assert_int_eq(g.tokens, 40);
    ck_assert_int_eq(g.prompt_tokens, 6);
    ck_assert_int_eq(g.finish, FINISH_LENGTH);
    ck_assert_str_eq(finish_reason_name(g.finish), "length");
    generation_free(&g);
    free(text);
    free(ref);
}
END_TEST

START_TEST(test_unknown_and_empty_prompt) {
    Generation g;
    GenerateParams p = params(0.0f, 10, 1);
    char *text = run("th\xe2\x82\xac"
                     "e Z\xe2\x98\x83",
                     &p, &g, NULL); // "th€e Z☃"
    ck_assert_str_eq(g.unknown_chars, "\xe2\x82\xac"
                                      "Z\xe2\x98\x83");
    ck_assert_int_eq(g.prompt_tokens, 4); // t h e space
    int ids[4] = {vocab_id(&vocab, 't'), vocab_id(&vocab, 'h'), vocab_id(&vocab, 'e'),
                  vocab_id(&vocab, ' ')};
    char *ref = greedy_reference(ids, 4, 10);
    ck_assert_str_eq(text, ref);
    generation_free(&g);
    free(text);
    free(ref);

    // Empty, or nothing usable: the newline from the zero state.
    int nl = vocab_id(&vocab, '\n');
    ref = greedy_reference(&nl, 1, 10);
    const char *prompts[2] = {"", "ZZ"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(
            generation_init(&g, &model, &vocab, prompts[i], strlen(prompts[i]), &p, NULL), 0);
        ck_assert_int_eq(generation_input(&g), nl);
        ck_assert_int_eq(generate_run(&g, arch_scratch, NULL, NULL), 0);
        ck_assert_int_eq(g.prompt_tokens, 0);
        ck_assert_str_eq(g.text, ref);
        generation_free(&g);
    }
    free(ref);
}
END_TEST

START_TEST(test_stop_sequences) {
    Generation g;
    GenerateParams p = params(1.0f, 60, 42);
    char *full = run("the", &p, &g, NULL);
    generation_free(&g);
    ck_assert_uint_ge(strlen(full), 20); // the vocabulary is ASCII: bytes are chars
    // Stop at the first place the text ends with a two-char piece taken from the middle.
    char stop[3] = {full[12], full[13], 0};
    size_t cut = (size_t)(strstr(full, stop) - full);
    p.stop[0] = "\x01never"; // not in the text: changes nothing
    p.stop[1] = stop;
    p.nstop = 2;
    Chunks ch = {0};
    char *text = run("the", &p, &g, &ch);
    ck_assert_int_eq(g.finish, FINISH_STOP);
    ck_assert_uint_eq(strlen(text), cut);
    ck_assert(strncmp(text, full, cut) == 0);
    ck_assert_int_eq(g.tokens, (int)cut + 2); // the stop sequence counts as generated
    ck_assert_str_eq(ch.buf, text);           // streamed chunks never showed the stop
    generation_free(&g);
    free(text);

    // A stop whose first char keeps appearing but which never completes: chars are held
    // back while they might start it, then released, so the chunks still add up.
    char partial[3] = {full[0], (char)0x7e, 0}; // '~' is not in the vocabulary
    p.stop[0] = partial;
    p.nstop = 1;
    memset(&ch, 0, sizeof(ch));
    text = run("the", &p, &g, &ch);
    ck_assert_int_eq(g.finish, FINISH_LENGTH);
    ck_assert_str_eq(text, full);
    ck_assert_str_eq(ch.buf, full);
    generation_free(&g);
    free(text);
    free(full);
}
END_TEST

START_TEST(test_seed_and_cancel) {
    Generation g;
    GenerateParams p = params(1.0f, 50, 7);
    p.sampler.top_k = 5;
    p.sampler.repetition_penalty = 1.3f;
    p.sampler.repetition_window = 3; // slides many times over 50 tokens
    char *a = run("the dog", &p, &g, NULL);
    generation_free(&g);
    char *b = run("the dog", &p, &g, NULL);
    generation_free(&g);
    ck_assert_str_eq(a, b);
    p.seed = 8;
    char *c = run("the dog", &p, &g, NULL);
    generation_free(&g);
    ck_assert_str_ne(a, c);

    Chunks ch = {.cancel_after = 5};
    char *d = run("the dog", &p, &g, &ch);
    ck_assert_int_eq(g.finish, FINISH_CANCELLED);
    ck_assert_int_eq(g.tokens, 5);
    ck_assert_str_eq(finish_reason_name(g.finish), "cancelled");
    generation_free(&g);
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

// Two generations advanced together through one n = 2 step give the texts they give
// alone: what lets a scheduler batch requests without changing their output.
START_TEST(test_batched_equals_alone) {
    GenerateParams p1 = params(0.9f, 30, 3), p2 = params(0.7f, 45, 4);
    Generation g;
    char *alone1 = run("the cat", &p1, &g, NULL);
    generation_free(&g);
    char *alone2 = run("dog", &p2, &g, NULL);
    generation_free(&g);

    Generation a, b;
    ck_assert_int_eq(generation_init(&a, &model, &vocab, "the cat", 7, &p1, NULL), 0);
    ck_assert_int_eq(generation_init(&b, &model, &vocab, "dog", 3, &p2, NULL), 0);
    int V = model.config.vocab_size;
    float *logits = malloc(2 * (size_t)V * sizeof(float)); // [2, V]
    while (!a.done || !b.done) {
        Generation *live[2];
        int n = 0;
        if (!a.done) live[n++] = &a;
        if (!b.done) live[n++] = &b;
        int ids[2];
        void *st[2];
        for (int i = 0; i < n; i++) ids[i] = generation_input(live[i]), st[i] = live[i]->state;
        model.arch->step(&model, arch_scratch, n, ids, st, logits);
        for (int i = 0; i < n; i++) generation_advance(live[i], logits + (size_t)i * V);
    }
    ck_assert_str_eq(a.text, alone1);
    ck_assert_str_eq(b.text, alone2);
    free(logits);
    generation_free(&a);
    generation_free(&b);
    free(alone1);
    free(alone2);
}
END_TEST

START_TEST(test_rejects_bad_input) {
    Generation g;
    char err[ERR_LEN];
    GenerateParams p = params(1.0f, 10, 1);
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a\xff", 2, &p, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "UTF-8"));
    p.max_tokens = -1;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    p = params(1.0f, 10, 1);
    p.logprobs = 1;
    p.top_logprobs = GEN_MAX_TOP + 1;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    p = params(1.0f, 10, 1);
    p.sampler.top_p = 0;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    p = params(-1.0f, 10, 1);
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    p = params(1.0f, 10, 1);
    p.nstop = 1;
    p.stop[0] = "";
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    // Stop sequences of at most GEN_MAX_STOP_BYTES bytes.
    char stop[GEN_MAX_STOP_BYTES + 2];
    memset(stop, 'z', GEN_MAX_STOP_BYTES);
    stop[GEN_MAX_STOP_BYTES] = '\0';
    p.stop[0] = stop;
    ck_assert_msg(generation_init(&g, &model, &vocab, "a", 1, &p, err) == 0, "%s", err);
    generation_free(&g);
    strcat(stop, "z");
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    ck_assert_str_eq(err, "stop sequences must be at most 64 bytes");
}
END_TEST

// The penalties count generated chars only: the sampler's counts are the text's chars.
// A -100 bias keeps a char out of the text; bad bias lists and ranges are refused.
START_TEST(test_counts_and_bias) {
    Generation g;
    GenerateParams p = params(1.0f, 60, 3);
    p.sampler.frequency_penalty = 0.5f;
    char *text = run("the the the", &p, &g, NULL);
    int V = vocab.size, total = 0;
    for (int v = 0; v < V; v++) {
        int n = 0;
        for (const char *c = text; *c; c++) n += vocab_id(&vocab, (unsigned char)*c) == v;
        ck_assert_int_eq(g.sampler.counts[v], n);
        total += n;
    }
    ck_assert_int_eq(total, g.tokens);
    generation_free(&g);
    free(text);

    SamplerBias ban[2] = {{vocab_id(&vocab, 't'), -100}, {vocab_id(&vocab, ' '), -100}};
    p = params(2.0f, 300, 4);
    p.sampler.bias = ban;
    p.sampler.nbias = 2;
    text = run("the ", &p, &g, NULL);
    ck_assert_int_eq(g.tokens, 300);
    ck_assert_ptr_null(strchr(text, 't'));
    ck_assert_ptr_null(strchr(text, ' '));
    generation_free(&g);
    free(text);

    char err[ERR_LEN];
    SamplerBias bad[2] = {{0, 1}, {0, 2}};
    p.sampler.bias = bad;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "twice"));
    bad[1].id = V;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    bad[1] = (SamplerBias){1, 100.5f};
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    p.sampler.nbias = V + 1;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    p = params(1.0f, 10, 1);
    p.sampler.presence_penalty = 2.5f;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    p = params(1.0f, 10, 1);
    p.sampler.frequency_penalty = -2.5f;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
    p = params(1.0f, 10, 1);
    p.sampler.min_p = 1.5f;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "a", 1, &p, err), -1);
}
END_TEST

// log-softmax of one row, in double, the definition the entries must meet.
static double ref_logprob(const float *logits, int id) {
    int V = vocab.size;
    double m = logits[0], sum = 0.0;
    for (int v = 1; v < V; v++)
        if (logits[v] > m) m = logits[v];
    for (int v = 0; v < V; v++) sum += exp(logits[v] - m);
    return logits[id] - m - log(sum);
}

// Every entry is the log-softmax of the logits that step produced (stepped again here),
// for the prompt's chars after the first (score_prompt) and for every generated char;
// alternatives come most likely first; a stop sequence's chars leave no entry.
START_TEST(test_logprobs) {
    const char *prompt = "the c\xc3\xa9t"; // é is not in the vocabulary: no entry, no step
    GenerateParams p = params(1.0f, 40, 11);
    p.logprobs = 1;
    p.top_logprobs = 5;
    p.score_prompt = 1;
    Generation g;
    char *text = run(prompt, &p, &g, NULL);
    int V = vocab.size, K = 5;
    ck_assert_int_eq(g.prompt_tokens, 6);
    ck_assert_int_eq(g.n_lp, g.prompt_tokens + g.tokens);
    ck_assert_int_eq(generation_logprobs_ready(&g), g.n_lp);
    ck_assert(isnan(g.lp[0].logprob));
    ck_assert(g.lp[0].prompt && g.lp[5].prompt && !g.lp[6].prompt);
    ck_assert_uint_eq(g.lp[5].offset, 7); // "t" after the two bytes of é
    ck_assert_uint_eq(g.lp[6].offset, 0);

    char err[ERR_LEN];
    StreamState st;
    ck_assert_int_eq(stream_state_alloc(&st, &model.config, err), 0);
    StreamState *sp = &st;
    float *logits = malloc((size_t)V * sizeof(float));
    for (int i = 0; i + 1 < g.n_lp; i++) {
        infer_step(&model, &scratch, 1, &g.lp[i].id, &sp, logits);
        const TokenLogprob *e = &g.lp[i + 1];
        ck_assert_double_eq_tol(e->logprob, ref_logprob(logits, e->id), 1e-6);
        const int *ti = g.top_id + (size_t)(i + 1) * K;
        const float *tl = g.top_lp + (size_t)(i + 1) * K;
        for (int k = 0; k < K; k++) {
            ck_assert_double_eq_tol(tl[k], ref_logprob(logits, ti[k]), 1e-6);
            if (k) ck_assert(tl[k] <= tl[k - 1]);
            for (int v = 0; v < V; v++) { // nothing left out is more likely than what is in
                int in = 0;
                for (int j = 0; j <= k; j++) in |= ti[j] == v;
                if (!in) ck_assert(logits[v] <= logits[ti[k]]);
            }
        }
    }
    generation_free(&g);
    free(text);

    // Scoring only: max_tokens 0 ends once the prompt is read.
    p.max_tokens = 0;
    text = run("the cat", &p, &g, NULL);
    ck_assert_str_eq(text, "");
    ck_assert_int_eq(g.finish, FINISH_LENGTH);
    ck_assert_int_eq(g.n_lp, 7);
    generation_free(&g);
    free(text);

    // A stop sequence removed from the text takes its entries with it.
    p = params(0.0f, 40, 1);
    p.logprobs = 1;
    char *free_text = run("the", &p, &g, NULL);
    ck_assert_int_ge(g.len, 2);
    char stop[3] = {free_text[0], free_text[1], 0};
    generation_free(&g);
    p.nstop = 1;
    p.stop[0] = stop;
    text = run("the", &p, &g, NULL);
    ck_assert_int_eq(g.finish, FINISH_STOP);
    ck_assert_int_eq(g.n_lp, 0);
    ck_assert_int_eq(g.tokens, 2);
    generation_free(&g);
    free(text);
    free(free_text);
    free(logits);
    stream_state_free(&st);
}
END_TEST

// generate_run's on_text: from the first chunk on, every realloc fails.
static int fail_reallocs(const char *chunk, size_t len, void *ctx) {
    (void)chunk, (void)len, (void)ctx;
    realloc_fails = 1;
    return 0;
}

/* Out of memory mid-generation, for the text or the log probabilities, whichever grows
 * first (both start at room for 64), or for the prompt's entries: the generation ends
 * with FINISH_ERROR ("error", not a client that left), keeping the text so far (the start
 * of what it would have generated), every char of it emitted, and an entry exactly for
 * each char it kept. And out of memory at the start is GEN_OUT_OF_MEMORY, not -1. */
START_TEST(test_out_of_memory_ends_in_error) {
    static const struct {
        const char *what;
        int logprobs, score_prompt, long_prompt;
    } rows[] = {
        {"text", 0, 0, 0},
        {"text before entries", 1, 0, 0},
        {"entries before text", 1, 1, 0},
        {"prompt entries", 1, 1, 1},
    };
    char prompt[256];
    for (size_t r = 0; r < sizeof(rows) / sizeof(*rows); r++) {
        snprintf(prompt, sizeof(prompt), "%s", rows[r].long_prompt ? TEXT : "the cat");
        if (rows[r].long_prompt) strcat(prompt, TEXT); // more than 64 entries to score
        GenerateParams p = params(0.0f, 200, 1);
        p.logprobs = rows[r].logprobs;
        p.top_logprobs = 3;
        p.score_prompt = rows[r].score_prompt;
        Generation full, g;
        char *whole = run(prompt, &p, &full, NULL);
        ck_assert_int_eq(full.finish, FINISH_LENGTH);
        char err[ERR_LEN];
        ck_assert_int_eq(generation_init(&g, &model, &vocab, prompt, strlen(prompt), &p, err), 0);
        if (rows[r].long_prompt) realloc_fails = 1;
        int rc = generate_run(&g, arch_scratch, fail_reallocs, NULL);
        realloc_fails = 0;
        ck_assert_int_eq(rc, 0);
        ck_assert_msg(g.finish == FINISH_ERROR, "%s: finish %d", rows[r].what, g.finish);
        ck_assert_str_eq(finish_reason_name(g.finish), "error");
        ck_assert_int_lt(g.tokens, 200);
        if (!rows[r].long_prompt) ck_assert_int_gt(g.tokens, 0);
        ck_assert_uint_eq(g.len, (size_t)g.tokens); // one byte per char in this vocabulary
        ck_assert_uint_eq(g.emitted, g.len);
        ck_assert_int_eq(strncmp(g.text, whole, g.len), 0);
        int prompt_entries = rows[r].score_prompt ? g.prompt_pos : 0;
        ck_assert_int_eq(g.n_lp, rows[r].logprobs ? prompt_entries + g.tokens : 0);
        ck_assert_int_eq(generation_logprobs_ready(&g), g.n_lp);
        for (int i = prompt_entries; i < g.n_lp; i++) ck_assert_uint_lt(g.lp[i].offset, g.len);
        if (rows[r].long_prompt) ck_assert_int_lt(g.prompt_pos, g.n_prompt);
        generation_free(&g);
        generation_free(&full);
        free(whole);
    }
    // At the start, out of memory is told apart from a bad request.
    GenerateParams p = params(0.0f, 10, 1);
    p.logprobs = p.score_prompt = 1;
    Generation g;
    char err[ERR_LEN];
    realloc_fails = 1; // the prompt's first entry
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "the", 3, &p, err), GEN_OUT_OF_MEMORY);
    realloc_fails = 0;
    p.max_tokens = -1;
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "the", 3, &p, err), -1);
}
END_TEST

// generate_run's on_text: the scheduler's failure, after the first chunk.
static int fail_generation(const char *chunk, size_t len, void *ctx) {
    (void)chunk, (void)len;
    generation_fail(ctx);
    return 0;
}

// generation_fail ends a running generation with FINISH_ERROR; a done one keeps its reason.
START_TEST(test_fail) {
    GenerateParams p = params(1.0f, 50, 7);
    Generation g;
    char err[ERR_LEN];
    ck_assert_int_eq(generation_init(&g, &model, &vocab, "the", 3, &p, err), 0);
    ck_assert_int_eq(generate_run(&g, arch_scratch, fail_generation, &g), 0);
    ck_assert_int_eq(g.finish, FINISH_ERROR);
    ck_assert_int_eq(g.tokens, 1);
    generation_cancel(&g);
    ck_assert_int_eq(g.finish, FINISH_ERROR);
    generation_free(&g);
    free(run("the", &p, &g, NULL));
    generation_fail(&g);
    ck_assert_int_eq(g.finish, FINISH_LENGTH);
    generation_free(&g);
}
END_TEST

// More alternatives asked for than the vocabulary holds (20 of its 16 chars): each entry
// lists every char once, most likely first, and the generation says how many it lists.
START_TEST(test_alternatives_at_most_the_vocabulary) {
    int V = vocab.size;
    ck_assert_int_lt(V, GEN_MAX_TOP);
    GenerateParams p = params(1.0f, 30, 3);
    p.logprobs = 1;
    p.top_logprobs = GEN_MAX_TOP;
    p.score_prompt = 1;
    Generation g;
    char *text = run("the cat", &p, &g, NULL);
    ck_assert_int_eq(g.params.top_logprobs, V);
    ck_assert_int_eq(g.n_lp, 7 + 30);
    for (int i = 1; i < g.n_lp; i++) {
        const int *ti = g.top_id + (size_t)i * V;
        const float *tl = g.top_lp + (size_t)i * V;
        int listed[64] = {0};
        for (int k = 0; k < V; k++) {
            ck_assert_msg(ti[k] >= 0 && ti[k] < V, "entry %d, alternative %d: id %d", i, k, ti[k]);
            ck_assert_msg(!listed[ti[k]]++, "entry %d lists id %d twice", i, ti[k]);
            ck_assert(isfinite(tl[k]));
            if (k) ck_assert(tl[k] <= tl[k - 1]);
        }
    }
    generation_free(&g);
    free(text);
}
END_TEST

// A prompt entry's offset is its char's, also when chars the vocabulary lacks come first.
START_TEST(test_prompt_offsets_after_unknown_chars) {
    GenerateParams p = params(1.0f, 0, 1);
    p.logprobs = 1;
    p.score_prompt = 1;
    Generation g;
    char *text = run("\xc3\xa9\xc3\xa9th\xc3\xa9"
                     "e",
                     &p, &g, NULL); // é: not in the vocabulary
    ck_assert_str_eq(g.unknown_chars, "\xc3\xa9\xc3\xa9\xc3\xa9");
    ck_assert_int_eq(g.n_lp, 3);
    size_t want[3] = {4, 5, 8};
    for (int i = 0; i < 3; i++) ck_assert_uint_eq(g.lp[i].offset, want[i]);
    generation_free(&g);
    free(text);
}
END_TEST

/* With a context and the prompt unscored, only the chars the context rule keeps at the
 * prompt's end are fed, and the continuation is the one feeding the whole prompt (as a
 * scored prompt is fed) gives. */
START_TEST(test_unscored_prompt_feeds_what_the_context_keeps) {
    char err[ERR_LEN];
    Model gpt = {0};
    GptConfig c = {.layers = 1, .heads = 2, .embed = 8, .block = 7, .norm = GPT_LAYERNORM};
    ck_assert_int_eq(arch_gpt.config_set(&gpt, &c, vocab.size, err), 0);
    ck_assert_int_eq(arch_gpt.init(&gpt, 3, err), 0);
    ck_assert_int_eq(arch_gpt.prepare(&gpt, err), 0);
    void *sc = arch_gpt.scratch_alloc(&gpt, 1, err);
    ck_assert_ptr_nonnull(sc);
    GenerateParams p = params(1.0f, 60, 9);
    char *text[2];
    for (int scored = 0; scored < 2; scored++) {
        p.logprobs = p.score_prompt = scored;
        Generation g;
        ck_assert_int_eq(generation_init(&g, &gpt, &vocab, TEXT, strlen(TEXT), &p, err), 0);
        // 48 chars through a context of 7 that keeps 3: after the first 7, each refill
        // takes 4 more, and the last of the 41 left starts one: the state ends holding
        // the 3 kept and that one.
        ck_assert_int_eq(g.prompt_pos, (scored ? 0 : (int)strlen(TEXT) - 4));
        ck_assert_int_eq(generate_run(&g, sc, NULL, NULL), 0);
        text[scored] = strdup(g.text);
        generation_free(&g);
    }
    ck_assert_str_eq(text[0], text[1]);
    free(text[0]);
    free(text[1]);
    arch_gpt.scratch_free(sc);
    arch_free(&gpt);
}
END_TEST

int main(void) {
    Suite *s = suite_create("generate");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_greedy_matches_argmax);
    tcase_add_test(tc, test_unknown_and_empty_prompt);
    tcase_add_test(tc, test_stop_sequences);
    tcase_add_test(tc, test_seed_and_cancel);
    tcase_add_test(tc, test_batched_equals_alone);
    tcase_add_test(tc, test_rejects_bad_input);
    tcase_add_test(tc, test_counts_and_bias);
    tcase_add_test(tc, test_logprobs);
    tcase_add_test(tc, test_alternatives_at_most_the_vocabulary);
    tcase_add_test(tc, test_prompt_offsets_after_unknown_chars);
    tcase_add_test(tc, test_unscored_prompt_feeds_what_the_context_keeps);
    tcase_add_test(tc, test_out_of_memory_ends_in_error);
    tcase_add_test(tc, test_fail);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
