/* charlm-server over real HTTP for every architecture: each test runs once per row of
 * CASES (an LSTM, a GPT with LayerNorm and biases whose context of 16 chars is far shorter
 * than the texts, and one with RMSNorm and an odd context of 9), and each route's text
 * must be the one core's own loop (generate_run) gives for the same prompt, parameters and
 * seed; scores must be charlm-train eval's. Then the three served side by side, and a
 * folder reloaded from one architecture to another under load. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "arch.h"
#include "artefacts.h"
#include "error.h"
#include "generate.h"
#include "genparams.h"
#include "gpt.h"
#include "server_harness.h"
#include "testutil.h"
#include "utf8.h"

#define BLOCK 16 // the GPT's context: generations and prompts below run several of it

static const ModelConfig LSTM_HYPER = {.embed = 16, .hidden = 48, .layers = 2};
static const GptConfig GPT_HYPER = {
    .layers = 2, .heads = 2, .embed = 16, .block = BLOCK, .norm = GPT_LAYERNORM, .bias = 1};
// RMSNorm without biases, and an odd context: the rule keeps 4 of 9 chars.
static const GptConfig GPT_RMS_HYPER = {
    .layers = 1, .heads = 4, .embed = 16, .block = 9, .norm = GPT_RMSNORM, .bias = 0};
static struct {
    const char *name; // its folder root/<name>, so the id the server gives it
    const char *arch;
    const void *hyper;
    char dir[4096];
    Model model; // loaded here too, for the references
    Vocab vocab;
} CASES[] = {{.name = "lstm", .arch = "lstm", .hyper = &LSTM_HYPER},
             {.name = "gpt", .arch = "gpt", .hyper = &GPT_HYPER},
             {.name = "gpt-rms", .arch = "gpt", .hyper = &GPT_RMS_HYPER}};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static char *sample; // the text the models' vocabulary comes from; prompts are cut from it

static void suite_setup(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    root = tu_tmpdir();
    sample = tu_sample_text(3000);
    for (int c = 0; c < NCASES; c++) {
        snprintf(CASES[c].dir, sizeof CASES[c].dir, "%s/%s", root, CASES[c].name);
        ck_assert_int_eq(tu_make_arch_dir(CASES[c].dir, sample, CASES[c].arch, CASES[c].hyper, 7),
                         0);
        char err[ERR_LEN];
        ck_assert_msg(artefacts_load(CASES[c].dir, &CASES[c].model, &CASES[c].vocab, NULL, err) ==
                          0,
                      "%s", err);
    }
}

static void suite_teardown(void) {
    for (int c = 0; c < NCASES; c++) {
        arch_free(&CASES[c].model);
        vocab_free(&CASES[c].vocab);
    }
    free(sample);
    tu_rmtree(root);
    free(root);
    curl_global_cleanup();
}

// Each test starts its own server on its case's folder.
static void start(int c, const char *const *args) {
    ck_assert_int_eq(srv_start(&S, CASES[c].dir, args), 0);
}

static void stop(void) {
    ck_assert_int_eq(srv_stop(&S), 0);
}

/* What core's generation loop makes of a request body, read the way the server reads it
 * (openai: /v1/completions' defaults): the Generation run to its end, to be freed by
 * generation_free. Stop strings and biases point into *owner (cJSON_Delete it after). */
static void reference(int c, const char *body, int openai, Generation *g, cJSON **owner) {
    cJSON *j = cJSON_Parse(body);
    ck_assert_ptr_nonnull(j);
    static SamplerBias bias[256];
    GenerateParams p;
    genparams_defaults(&p, openai, 0);
    char err[ERR_LEN];
    for (int i = 0; i < genparams_count; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, genparams[i].name);
        if (cJSON_IsNumber(v) && v->valuedouble == 0 && !strcmp(v->string, "max_tokens"))
            p.max_tokens = 0; // scoring only: echo's range, not genparams'
        else if (cJSON_IsNumber(v))
            ck_assert_msg(genparams_set(&p, &genparams[i], v->valuedouble, 0, err) == 0, "%s", err);
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stop"), *s;
    if (cJSON_IsString(stop)) p.stop[p.nstop++] = stop->valuestring;
    cJSON_ArrayForEach(s, (cJSON_IsArray(stop) ? stop : NULL)) p.stop[p.nstop++] = s->valuestring;
    const cJSON *lb = cJSON_GetObjectItemCaseSensitive(j, "logit_bias"), *b;
    cJSON_ArrayForEach(b, lb) { // token ids, or single ASCII chars (/generate's keys)
        int id = b->string[0] >= '0' && b->string[0] <= '9'
                     ? atoi(b->string)
                     : vocab_id(&CASES[c].vocab, b->string[0]);
        bias[p.sampler.nbias] = (SamplerBias){id, (float)b->valuedouble};
        p.sampler.nbias++;
    }
    p.sampler.bias = bias;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(j, "logprobs");
    if (cJSON_IsNumber(lp) || cJSON_IsTrue(lp)) {
        p.logprobs = 1;
        p.top_logprobs = cJSON_IsNumber(lp) ? lp->valueint : 0;
        p.score_prompt = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "echo"));
    }
    const char *prompt = json_str(j, "prompt");
    Model *m = &CASES[c].model;
    ck_assert_msg(generation_init(g, m, &CASES[c].vocab, prompt, strlen(prompt), &p, err) == 0,
                  "%s", err);
    void *scratch = m->arch->scratch_alloc(m, 1, err);
    ck_assert_ptr_nonnull(scratch);
    ck_assert_int_eq(generate_run(g, scratch, NULL, NULL), 0);
    m->arch->scratch_free(scratch);
    *owner = j;
}

static char *reference_text(int c, const char *body, int openai) {
    Generation g;
    cJSON *owner;
    reference(c, body, openai, &g, &owner);
    char *t = strdup(g.text);
    generation_free(&g);
    cJSON_Delete(owner);
    return t;
}

static const cJSON *choice(const cJSON *reply, int i) {
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(reply, "choices"), i);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* A JSON string literal of text (for prompts cut from the sample, which hold newlines). */
static char *quoted(const char *text) {
    cJSON *s = cJSON_CreateString(text);
    char *q = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    return q;
}

/* The sample's chars [at, at + n) as a JSON string literal. */
static char *sample_quoted(size_t at, size_t n) {
    char *piece = strndup(sample + at, n);
    char *q = quoted(piece);
    free(piece);
    return q;
}

// Requests every route must answer as core's loop does: greedy, sampled much longer than
// the GPT's context, each sampling control, stops, and a prompt longer than the context
// (LONG_PROMPT: it stands for a piece of the sample, the empty prompt for none).
#define LONG_PROMPT "@"
static const char *const BODIES[] = {
    "{\"prompt\": \"the cat\", \"max_tokens\": 80, \"temperature\": 0, \"seed\": 1}",
    "{\"prompt\": \"a red hat \", \"max_tokens\": 200, \"seed\": 77, \"temperature\": 0.9, "
    "\"top_k\": 10, \"top_p\": 0.95, \"repetition_penalty\": 1.2}",
    "{\"prompt\": \"the dog \", \"max_tokens\": 100, \"seed\": 3, \"temperature\": 1, "
    "\"presence_penalty\": 1.5, \"frequency_penalty\": 2}",
    "{\"prompt\": \"the dog \", \"max_tokens\": 100, \"seed\": 4, \"temperature\": 1, "
    "\"logit_bias\": {\"%d\": -100, \"%d\": 4, \"%d\": 2.5}}", // e, t, a
    "{\"prompt\": \"on a mat\", \"max_tokens\": 100, \"seed\": 5, \"temperature\": 1.5, "
    "\"min_p\": 0.3}",
    "{\"prompt\": \"the sun \", \"max_tokens\": 150, \"seed\": 6, \"temperature\": 1, "
    "\"stop\": [\"xyz\", \"ra\", \"s\"]}",
    "{\"prompt\": " LONG_PROMPT ", \"max_tokens\": 60, \"seed\": 8, \"temperature\": 1}",
    "{\"prompt\": \"\", \"max_tokens\": 40, \"seed\": 9, \"temperature\": 0.5}",
};
#define NBODIES ((int)(sizeof BODIES / sizeof BODIES[0]))

/* BODIES[i] with the long prompt (100 chars, over six of the GPT's contexts) put in, and
 * extra members (each after a comma, or "") added at the end; malloc'd. */
static char *body_of(int i, const char *extra) {
    char b[512]; // the ids of logit_bias: both cases have the sample's vocabulary
    const Vocab *v = &CASES[0].vocab;
    snprintf(b, sizeof b, BODIES[i], vocab_id(v, 'e'), vocab_id(v, 't'), vocab_id(v, 'a'));
    const char *at = strstr(b, LONG_PROMPT);
    char *q = at ? sample_quoted(200, 100) : strdup("");
    size_t n = strlen(b) + strlen(q) + strlen(extra) + 1;
    char *out = malloc(n);
    if (at)
        snprintf(out, n, "%.*s%s%s", (int)(at - b), b, q, at + strlen(LONG_PROMPT));
    else
        snprintf(out, n, "%s", b);
    snprintf(out + strlen(out) - 1, n - strlen(out) + 1, "%s}", extra); // before the '}'
    free(q);
    return out;
}

START_TEST(test_routes_are_the_core_loop) {
    start(_i, NULL);
    for (int i = 0; i < NBODIES; i++) {
        char *body = body_of(i, "");
        Generation g;
        cJSON *owner;
        reference(_i, body, 0, &g, &owner);
        cJSON *j = http_post_ok(S.port, "/generate", body);
        ck_assert_msg(strcmp(json_str(j, "text"), g.text) == 0, "%s: %s\n/generate: %s\ncore: %s",
                      CASES[_i].name, body, json_str(j, "text"), g.text);
        ck_assert_str_eq(json_str(j, "finish_reason"), finish_reason_name(g.finish));
        ck_assert_int_eq((int)json_num(j, "tokens"), g.tokens);
        ck_assert_int_eq((int)json_num(j, "prompt_tokens"), g.prompt_tokens);
        cJSON_Delete(j);

        // Streamed, the chunks make the same text.
        char *sbody = body_of(i, ", \"stream\": true");
        Resp r = http_post(S.port, "/generate", sbody);
        ck_assert_int_eq(r.status, 200);
        cJSON *final;
        char *streamed = sse_generate_text(r.body, &final);
        ck_assert_str_eq(streamed, g.text);
        ck_assert_str_eq(json_str(final, "finish_reason"), finish_reason_name(g.finish));
        cJSON_Delete(final);
        free(streamed);
        resp_free(&r);
        generation_free(&g);
        cJSON_Delete(owner);

        // /v1/completions with OpenAI's defaults for what the body leaves out, plain and
        // streamed.
        char *want = reference_text(_i, body, 1);
        j = http_post_ok(S.port, "/v1/completions", body);
        ck_assert_msg(strcmp(json_str(choice(j, 0), "text"), want) == 0, "%s: %s", CASES[_i].name,
                      body);
        cJSON_Delete(j);
        r = http_post(S.port, "/v1/completions", sbody);
        ck_assert_int_eq(r.status, 200);
        const char *finish;
        cJSON *usage;
        streamed = sse_completion_text(r.body, &finish, &usage);
        ck_assert_str_eq(streamed, want);
        cJSON_Delete(usage);
        free(streamed);
        resp_free(&r);
        free(want);
        free(sbody);
        free(body);
    }
    stop();
}
END_TEST

START_TEST(test_logit_bias_and_stop_hold) {
    // What the references above could share with the server by mistake, checked on its
    // own: a banned char never comes, a forced one always does, a stop ends the text.
    start(_i, NULL);
    cJSON *j = http_post_ok(S.port, "/generate",
                            "{\"prompt\": \"the cat\", \"max_tokens\": 300, \"seed\": 2, "
                            "\"temperature\": 1.5, \"logit_bias\": {\"e\": -100, \" \": -100}}");
    const char *t = json_str(j, "text");
    ck_assert_int_eq((int)strlen(t), 300);
    ck_assert_ptr_null(strchr(t, 'e'));
    ck_assert_ptr_null(strchr(t, ' '));
    cJSON_Delete(j);
    j = http_post_ok(S.port, "/generate",
                     "{\"prompt\": \"the cat\", \"max_tokens\": 100, \"seed\": 2, "
                     "\"logit_bias\": {\"d\": 100}}");
    t = json_str(j, "text");
    ck_assert_int_eq((int)strspn(t, "d"), 100);
    cJSON_Delete(j);
    j = http_post_ok(S.port, "/generate",
                     "{\"prompt\": \"the cat\", \"max_tokens\": 100, \"seed\": 2, "
                     "\"logit_bias\": {\"d\": 100, \"o\": 100}, \"stop\": [\"od\"]}");
    ck_assert_str_eq(json_str(j, "finish_reason"), "stop");
    ck_assert_ptr_null(strstr(json_str(j, "text"), "od"));
    cJSON_Delete(j);
    stop();
}
END_TEST

/* The content of a /v1/chat/completions SSE body: the deltas joined. */
static char *chat_stream_content(const char *body) {
    char *ev[4096];
    int n = sse_events(body, ev, 4096);
    ck_assert_int_ge(n, 2);
    ck_assert_str_eq(ev[n - 1], "[DONE]");
    char *text = calloc(1, strlen(body) + 1);
    for (int i = 0; i < n - 1; i++) {
        cJSON *e = cJSON_Parse(ev[i]);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(json_str(e, "object"), "chat.completion.chunk");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(choice(e, 0), "delta");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(d, "content");
        if (cJSON_IsString(content)) strcat(text, content->valuestring);
        cJSON_Delete(e);
    }
    for (int i = 0; i < n; i++) free(ev[i]);
    return text;
}

START_TEST(test_chat) {
    start(_i, NULL);
    const char *chat = "{\"messages\": [{\"role\": \"system\", \"content\": \"the sun\"}, "
                       "{\"role\": \"user\", \"content\": \"a cat sat on a mat\"}], "
                       "\"max_tokens\": 90, \"seed\": 5";
    // The built-in template's prompt and its default stop.
    char *want = reference_text(_i,
                                "{\"prompt\": \"the sun\\nUser: a cat sat on a mat\\nAssistant: "
                                "\", \"stop\": \"\\nUser:\", \"max_tokens\": 90, \"seed\": 5}",
                                1);
    char body[1024];
    snprintf(body, sizeof body, "%s}", chat);
    cJSON *j = http_post_ok(S.port, "/v1/chat/completions", body);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(choice(j, 0), "message");
    ck_assert_str_eq(json_str(m, "content"), want);
    cJSON_Delete(j);
    snprintf(body, sizeof body, "%s, \"stream\": true}", chat);
    Resp r = http_post(S.port, "/v1/chat/completions", body);
    ck_assert_int_eq(r.status, 200);
    char *streamed = chat_stream_content(r.body);
    ck_assert_str_eq(streamed, want);
    free(streamed);
    resp_free(&r);
    free(want);
    stop();
}
END_TEST

START_TEST(test_choices_and_prompts) {
    start(_i, NULL);
    // /generate lists each choice's seed: core's loop with that seed gives its text.
    const char *opts = "\"max_tokens\": 70, \"temperature\": 1, \"top_k\": 0";
    char body[512];
    snprintf(body, sizeof body, "{\"prompt\": \"the \", \"n\": 3, \"seed\": 5, %s}", opts);
    cJSON *g = http_post_ok(S.port, "/generate", body);
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body, "{\"prompt\": \"the \", \"seed\": %.0f, %s}",
                 json_num(choice(g, i), "seed"), opts);
        char *want = reference_text(_i, body, 0);
        ck_assert_str_eq(json_str(choice(g, i), "text"), want);
        free(want);
        for (int k = 0; k < i; k++)
            ck_assert_str_ne(json_str(choice(g, i), "text"), json_str(choice(g, k), "text"));
    }
    // Several prompts × n on /v1/completions: prompt p's choices are its own request's,
    // with the same seeds as /generate's (OpenAI's defaults are those opts).
    cJSON *a = http_post_ok(S.port, "/v1/completions",
                            "{\"prompt\": [\"a cat\", \"the \"], \"n\": 3, \"max_tokens\": 70, "
                            "\"seed\": 5}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(a, "choices")), 6);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(json_str(choice(a, 3 + i), "text"), json_str(choice(g, i), "text"));
        snprintf(body, sizeof body, "{\"prompt\": \"a cat\", \"seed\": %.0f, %s}",
                 json_num(choice(g, i), "seed"), opts);
        char *want = reference_text(_i, body, 0);
        ck_assert_str_eq(json_str(choice(a, i), "text"), want);
        free(want);
    }
    cJSON_Delete(a);
    cJSON_Delete(g);
    stop();
}
END_TEST

/* charlm-train eval's loss on text. */
static double eval_loss(int c, const char *text) {
    char *path = tu_write_file(root, "scored.txt", text, strlen(text));
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s eval --model '%s' --corpus '%s'", tu_bin("charlm-train"),
             CASES[c].dir, path);
    ck_assert_int_eq(tu_run(cmd, &out, NULL), 0);
    cJSON *ev = cJSON_Parse(strrchr(out, '{'));
    ck_assert_msg(ev != NULL, "charlm-train eval printed %s", out);
    ck_assert_int_eq((int)json_num(ev, "chars"), (int)utf8_count(text, strlen(text)) - 1);
    double loss = json_num(ev, "loss");
    cJSON_Delete(ev);
    free(out);
    free(path);
    return loss;
}

/* The mean of the token_logprobs of an echo, after the first (null); checks each against
 * core's entries. */
static double echo_mean(const cJSON *lp, const Generation *g, int nprompt) {
    const cJSON *tlp = cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs");
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(tlp, 0)));
    double sum = 0;
    for (int i = 1; i < nprompt; i++) {
        double v = cJSON_GetArrayItem(tlp, i)->valuedouble;
        ck_assert_msg(fabs(v - g->lp[i].logprob) <= 1e-6, "char %d: %.9g, core %.9g", i, v,
                      g->lp[i].logprob);
        sum -= v;
    }
    return sum / (nprompt - 1);
}

START_TEST(test_echo_scores_as_eval) {
    // A text of 200 chars: twelve of the GPT's contexts, so the context rule runs many
    // times while it is scored, in prefill chunks (64 here, 7 and 1 below).
    static const char *const chunks[] = {"64", "7", "1"};
    char *q = sample_quoted(500, 200);
    char *text = strndup(sample + 500, 200);
    double want = eval_loss(_i, text);
    for (int k = 0; k < 3; k++) {
        const char *args[] = {"--prefill-chunk", chunks[k], NULL};
        start(_i, args);
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"prompt\": %s, \"max_tokens\": 0, \"echo\": true, \"logprobs\": 1}", q);
        Generation g;
        cJSON *owner;
        reference(_i, body, 1, &g, &owner);
        cJSON *j = http_post_ok(S.port, "/v1/completions", body);
        const cJSON *c = choice(j, 0);
        ck_assert_str_eq(json_str(c, "text"), text);
        double mean = echo_mean(cJSON_GetObjectItemCaseSensitive(c, "logprobs"), &g, 200);
        ck_assert_msg(fabs(mean - want) <= 1e-5 * fabs(want),
                      "%s, chunk %s: the echo's mean %.9g, eval %.9g", CASES[_i].name, chunks[k],
                      mean, want);
        cJSON_Delete(j);

        // A prompt longer than the context with echo and a continuation: the prompt's
        // scores as above, then core's text.
        snprintf(body, sizeof body,
                 "{\"prompt\": %s, \"max_tokens\": 50, \"seed\": 3, \"echo\": true, "
                 "\"logprobs\": 1}",
                 q);
        generation_free(&g);
        cJSON_Delete(owner);
        reference(_i, body, 1, &g, &owner);
        j = http_post_ok(S.port, "/v1/completions", body);
        c = choice(j, 0);
        char *whole = malloc(strlen(text) + strlen(g.text) + 1);
        sprintf(whole, "%s%s", text, g.text);
        ck_assert_str_eq(json_str(c, "text"), whole);
        echo_mean(cJSON_GetObjectItemCaseSensitive(c, "logprobs"), &g, 200);
        free(whole);
        cJSON_Delete(j);
        // Without echo, the same continuation.
        snprintf(body, sizeof body, "{\"prompt\": %s, \"max_tokens\": 50, \"seed\": 3}", q);
        j = http_post_ok(S.port, "/v1/completions", body);
        ck_assert_str_eq(json_str(choice(j, 0), "text"), g.text);
        cJSON_Delete(j);
        generation_free(&g);
        cJSON_Delete(owner);
        stop();
    }
    free(text);
    free(q);
}
END_TEST

typedef struct {
    int port;
    const char *path;
    char body[512];
    Resp r;
    atomic_int finished;
} Job;

static void *job_run(void *arg) {
    Job *j = arg;
    j->r = http_post(j->port, j->path, j->body);
    atomic_store(&j->finished, 1);
    return NULL;
}

START_TEST(test_same_text_under_load) {
    // 400 chars, 25 of the GPT's contexts, alone and while 8 others run (long and short
    // prompts, streamed or not, both routes).
    const char *target = "{\"prompt\": \"a red hat \", \"max_tokens\": 400, \"seed\": 77, "
                         "\"temperature\": 0.9, \"top_k\": 10, \"repetition_penalty\": 1.2}";
    char *want = reference_text(_i, target, 0);
    const char *args[] = {"--threads", "2", NULL};
    start(_i, args);
    cJSON *alone = http_post_ok(S.port, "/generate", target);
    ck_assert_str_eq(json_str(alone, "text"), want);
    cJSON_Delete(alone);
    enum { N = 9 };
    Job jobs[N];
    pthread_t t[N];
    char *long_prompt = sample_quoted(1000, 150);
    jobs[0] = (Job){.port = S.port, .path = "/generate"};
    snprintf(jobs[0].body, sizeof jobs[0].body, "%s", target);
    for (int i = 1; i < N; i++) {
        jobs[i] = (Job){.port = S.port, .path = i % 3 ? "/generate" : "/v1/completions"};
        snprintf(jobs[i].body, sizeof jobs[i].body,
                 "{\"prompt\": %s, \"max_tokens\": %d, \"seed\": %d, \"stream\": %s}",
                 i % 2 ? long_prompt : "\"the\"", 300 + 40 * i, i, i % 4 ? "true" : "false");
        pthread_create(&t[i], NULL, job_run, &jobs[i]);
    }
    // The target starts once the others run.
    for (int waited = 0; waited < 10000 && health_in_flight(S.port) < N - 1; waited += 5)
        sleep_ms(5);
    pthread_create(&t[0], NULL, job_run, &jobs[0]);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++)
        ck_assert_msg(jobs[i].r.status == 200, "job %d: %ld %s", i, jobs[i].r.status,
                      jobs[i].r.body);
    cJSON *loaded = resp_json(&jobs[0].r);
    ck_assert_msg(strcmp(json_str(loaded, "text"), want) == 0,
                  "%s: the seeded text changed under load", CASES[_i].name);
    cJSON_Delete(loaded);
    for (int i = 0; i < N; i++) resp_free(&jobs[i].r);
    stop();
    free(long_prompt);
    free(want);
}
END_TEST

START_TEST(test_tokenize_detokenize) {
    start(_i, NULL);
    const Vocab *v = &CASES[_i].vocab;
    cJSON *j = http_post_ok(S.port, "/tokenize", "{\"content\": \"the cat€\"}");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(j, "tokens");
    ck_assert_int_eq(cJSON_GetArraySize(tokens), 7);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(cJSON_GetArrayItem(tokens, i)->valueint, vocab_id(v, "the cat"[i]));
    ck_assert_str_eq(json_str(j, "unknown_chars"), "€");
    char *ids = cJSON_PrintUnformatted(tokens);
    char body[512];
    snprintf(body, sizeof body, "{\"tokens\": %s}", ids);
    cJSON *d = http_post_ok(S.port, "/detokenize", body);
    ck_assert_str_eq(json_str(d, "content"), "the cat");
    cJSON_Delete(d);
    free(ids);
    cJSON_Delete(j);
    stop();
}
END_TEST

/* The card of model c as GET /model serves it, against the model itself: its
 * architecture, hyperparameters, parameters and the memory of one stream. */
static void assert_card(const cJSON *card, int c, int full) {
    const Model *m = &CASES[c].model;
    ck_assert_str_eq(json_str(card, "arch"), CASES[c].arch);
    if (full) ck_assert_str_eq(json_str(card, "architecture"), m->arch->layout);
    ArchField f[ARCH_MAX_FIELDS];
    int n = m->arch->fields(m, f);
    for (int i = 0; i < n; i++)
        if (f[i].text)
            ck_assert_str_eq(json_str(card, f[i].name), f[i].text);
        else
            ck_assert_int_eq((long)json_num(card, f[i].name), f[i].number);
    ck_assert_int_eq((long)json_num(card, "parameters"), (long)m->num_params);
    // The state is the LSTM's h and c, or the GPT's keys and values at every position.
    const GptConfig *g = CASES[c].hyper;
    const ModelConfig *l = CASES[c].hyper;
    long want = strcmp(CASES[c].arch, "gpt") == 0 ? 2L * g->layers * g->block * g->embed * 4
                                                  : 2L * l->layers * l->hidden * 4;
    ck_assert_int_eq((long)json_num(card, "memory_per_stream"), want);
}

START_TEST(test_card) {
    start(_i, NULL);
    Resp r = http_get(S.port, "/model");
    ck_assert_int_eq(r.status, 200);
    cJSON *card = resp_json(&r);
    assert_card(card, _i, 1);
    cJSON_Delete(card);
    resp_free(&r);
    r = http_get(S.port, "/v1/models");
    cJSON *list = resp_json(&r);
    assert_card(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(list, "data"), 0), _i, 0);
    cJSON_Delete(list);
    resp_free(&r);
    // The startup line names the architecture and the memory per stream.
    char *log = tu_read_file(S.log, NULL), want[256];
    snprintf(want, sizeof want, ": vocab %d, arch %s, ", CASES[_i].model.vocab_size,
             CASES[_i].arch);
    ck_assert_msg(strstr(log, want), "no '%s' in the log:\n%s", want, log);
    snprintf(want, sizeof want, ", %zu bytes per stream, id %s",
             CASES[_i].model.arch->state_bytes(&CASES[_i].model), CASES[_i].name);
    ck_assert_msg(strstr(log, want), "no '%s' in the log:\n%s", want, log);
    free(log);
    stop();
}
END_TEST

/* POST /generate of BODIES[1] for model c by its id: c's own text and id. */
static void assert_answers_as(int port, int c) {
    char *body = body_of(1, "");
    char *want = reference_text(c, body, 0);
    free(body);
    char extra[64];
    snprintf(extra, sizeof extra, ", \"model\": \"%s\"", CASES[c].name);
    body = body_of(1, extra);
    cJSON *j = http_post_ok(port, "/generate", body);
    ck_assert_str_eq(json_str(j, "model"), CASES[c].name);
    ck_assert_msg(strcmp(json_str(j, "text"), want) == 0, "%s does not answer as itself",
                  CASES[c].name);
    cJSON_Delete(j);
    char path[64];
    snprintf(path, sizeof path, "/model?model=%s", CASES[c].name);
    Resp r = http_get(port, path);
    cJSON *card = resp_json(&r);
    assert_card(card, c, 1);
    cJSON_Delete(card);
    resp_free(&r);
    free(body);
    free(want);
}

START_TEST(test_side_by_side) {
    // --model twice, then --models over a folder holding both.
    Srv s;
    const char *each[] = {"--model", CASES[1].dir, "--model", CASES[2].dir, NULL};
    ck_assert_int_eq(srv_start(&s, CASES[0].dir, each), 0);
    for (int c = 0; c < NCASES; c++) assert_answers_as(s.port, c);
    ck_assert_int_eq(srv_stop(&s), 0);
    const char *folder[] = {"--models", root, NULL};
    ck_assert_int_eq(srv_start(&s, NULL, folder), 0);
    for (int c = NCASES - 1; c >= 0; c--) assert_answers_as(s.port, c);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

/* Copies model c's files into dir the way charlm-train publishes them: each written
 * aside and renamed over the old, the weights first. */
static void publish(const char *dir, int c) {
    static const char *const names[] = {"model.safetensors", "vocab.json", "train_log.jsonl"};
    for (int i = 0; i < 3; i++) {
        char from[8192], aside[8192], to[8192];
        snprintf(from, sizeof from, "%s/%s", CASES[c].dir, names[i]);
        size_t len;
        char *data = tu_read_file(from, &len);
        ck_assert_ptr_nonnull(data);
        snprintf(aside, sizeof aside, ".%s.tmp", names[i]);
        free(tu_write_file(dir, aside, data, len));
        free(data);
        snprintf(aside, sizeof aside, "%s/.%s.tmp", dir, names[i]);
        snprintf(to, sizeof to, "%s/%s", dir, names[i]);
        ck_assert_msg(rename(aside, to) == 0, "rename %s: %s", aside, strerror(errno));
    }
}

/* The parameters on the card: they tell the cases apart. */
static long card_parameters(int port) {
    Resp r = http_get(port, "/model");
    cJSON *card = resp_json(&r);
    long n = (long)json_num(card, "parameters");
    cJSON_Delete(card);
    resp_free(&r);
    return n;
}

typedef struct {
    int port;
    atomic_int *stop;
    const char *const *want; // [NCASES] the seeded text of each model
    atomic_int done;
    int wrong;
    long failed; // the status of the first failure, 0 for none
} Loader;

// Requests until told to stop: each must succeed with the text of one model or the other.
static void *load_run(void *arg) {
    Loader *l = arg;
    char *body = body_of(1, "");
    while (!atomic_load(l->stop)) {
        Resp r = http_post(l->port, "/generate", body);
        if (r.status != 200) {
            if (!l->failed) l->failed = r.status;
        } else {
            cJSON *j = cJSON_Parse(r.body);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
            int ok = 0;
            for (int c = 0; c < NCASES; c++)
                ok |= cJSON_IsString(t) && !strcmp(t->valuestring, l->want[c]);
            l->wrong += !ok;
            cJSON_Delete(j);
        }
        atomic_fetch_add(&l->done, 1);
        resp_free(&r);
    }
    free(body);
    return NULL;
}

START_TEST(test_reload_across_architectures) {
    char served[4200];
    snprintf(served, sizeof served, "%s/served", root);
    tu_rmtree(served);
    ck_assert_int_eq(mkdir(served, 0755), 0);
    publish(served, 0);
    char *body = body_of(1, "");
    char *want[NCASES];
    for (int c = 0; c < NCASES; c++) want[c] = reference_text(c, body, 0);
    Srv s;
    const char *args[] = {"--max-tokens", "1000000", NULL};
    ck_assert_int_eq(srv_start(&s, served, args), 0);
    // A stream started on the LSTM finishes on it while the folder becomes a GPT: one
    // long enough to outlast the first reload by far, about 2 s of core's loop here.
    char stream_body[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    free(reference_text(0, "{\"prompt\": \"the \", \"max_tokens\": 100000, \"seed\": 5}", 0));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    double n = 2.0 * 100000 / (secs > 1e-3 ? secs : 1e-3);
    snprintf(stream_body, sizeof stream_body,
             "{\"prompt\": \"the \", \"max_tokens\": %d, \"seed\": 5, \"stream\": true}",
             n < 100000    ? 100000
             : n > 1000000 ? 1000000
                           : (int)n);
    char *stream_want = reference_text(0, stream_body, 0);
    Job stream = {.port = s.port, .path = "/generate"};
    snprintf(stream.body, sizeof stream.body, "%s", stream_body);
    pthread_t st;
    pthread_create(&st, NULL, job_run, &stream);
    for (int waited = 0; waited < 10000 && health_in_flight(s.port) < 1; waited += 5) sleep_ms(5);

    atomic_int halt = 0;
    enum { NLOAD = 3, RELOADS = 6 };
    Loader l[NLOAD];
    pthread_t t[NLOAD];
    for (int i = 0; i < NLOAD; i++) {
        l[i] = (Loader){.port = s.port, .stop = &halt, .want = (const char *const *)want};
        pthread_create(&t[i], NULL, load_run, &l[i]);
    }
    for (int round = 1; round <= RELOADS; round++) {
        int c = round % NCASES;
        publish(served, c);
        int before = 0;
        for (int i = 0; i < NLOAD; i++) before += atomic_load(&l[i].done);
        ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
        long want_params = (long)CASES[c].model.num_params;
        for (int waited = 0; waited < 60000 && card_parameters(s.port) != want_params; waited += 10)
            sleep_ms(10);
        ck_assert_msg(card_parameters(s.port) == want_params, "reload %d: not %s yet", round,
                      CASES[c].name);
        if (round == 1)
            ck_assert_msg(!atomic_load(&stream.finished), "the stream ended before the reload");
        cJSON *j = http_post_ok(s.port, "/generate", body);
        ck_assert_msg(!strcmp(json_str(j, "text"), want[c]), "reload %d: not %s's text", round,
                      CASES[c].name);
        cJSON_Delete(j);
        // The load goes on across the reload.
        for (int waited = 0, now = before; waited < 60000 && now < before + 2 * NLOAD;
             waited += 10) {
            sleep_ms(10);
            now = 0;
            for (int i = 0; i < NLOAD; i++) now += atomic_load(&l[i].done);
        }
    }
    atomic_store(&halt, 1);
    int done = 0;
    for (int i = 0; i < NLOAD; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(l[i].failed == 0, "a request under reloads failed: %ld", l[i].failed);
        ck_assert_int_eq(l[i].wrong, 0);
        done += atomic_load(&l[i].done);
    }
    ck_assert_int_ge(done, RELOADS * 2 * NLOAD);
    pthread_join(st, NULL);
    ck_assert_int_eq(stream.r.status, 200);
    cJSON *final;
    char *streamed = sse_generate_text(stream.r.body, &final);
    ck_assert_msg(!strcmp(streamed, stream_want), "the stream did not finish on the LSTM");
    cJSON_Delete(final);
    free(streamed);
    resp_free(&stream.r);
    ck_assert_int_eq(srv_stop(&s), 0);
    for (int c = 0; c < NCASES; c++) free(want[c]);
    free(stream_want);
    free(body);
    tu_rmtree(served);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("server_arch");
    TCase *every = tcase_create("every architecture");
    tcase_add_unchecked_fixture(every, suite_setup, suite_teardown);
    tcase_set_timeout(every, 300);
    tcase_add_loop_test(every, test_routes_are_the_core_loop, 0, NCASES);
    tcase_add_loop_test(every, test_logit_bias_and_stop_hold, 0, NCASES);
    tcase_add_loop_test(every, test_chat, 0, NCASES);
    tcase_add_loop_test(every, test_choices_and_prompts, 0, NCASES);
    tcase_add_loop_test(every, test_echo_scores_as_eval, 0, NCASES);
    tcase_add_loop_test(every, test_same_text_under_load, 0, NCASES);
    tcase_add_loop_test(every, test_tokenize_detokenize, 0, NCASES);
    tcase_add_loop_test(every, test_card, 0, NCASES);
    suite_add_tcase(s, every);
    TCase *both = tcase_create("both at once");
    tcase_add_unchecked_fixture(both, suite_setup, suite_teardown);
    tcase_set_timeout(both, 300);
    tcase_add_test(both, test_side_by_side);
    tcase_add_test(both, test_reload_across_architectures);
    suite_add_tcase(s, both);
    return s;
}

int main(void) {
    return tu_run_suite(suite());
}
