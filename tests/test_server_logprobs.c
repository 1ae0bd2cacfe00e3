/* charlm-server's logprobs against PyTorch's, for every architecture: each test of the
 * "http" case runs once per row of FIXTURES, a committed model folder and the numbers a
 * reference script computed for it (expected.json; see the scripts for what each field
 * means): an LSTM (tests/reference/make_logprob_fixture.py) and a GPT whose context of 16
 * chars is a twentieth of the scored text and under half the greedy continuation
 * (make_gpt_logprob_fixture.py, its numbers by charlm's context rule). Scoring a text by
 * echo, a greedy continuation through /v1/completions (plain and streamed) and /generate,
 * the mean of the echo's logprobs against `charlm-train eval`'s loss; the same numbers with
 * prefill chunks of 1, 7 and 64, and batched with 15 other generations. And on a model of
 * two chars: alternatives are at most the vocabulary, on every route, and offsets count
 * the prompt's unknown chars. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt.h"
#include "model.h"
#include "server_harness.h"
#include "testutil.h"

static struct {
    const char *dir;
    cJSON *fx; // its expected.json
} FIXTURES[] = {{CHARLM_SOURCE_DIR "/tests/reference/logprobs", NULL},
                {CHARLM_SOURCE_DIR "/tests/reference/gpt_logprobs", NULL}};
#define NFIXTURES ((int)(sizeof FIXTURES / sizeof FIXTURES[0]))

// The fixture the current test runs on (start sets them).
static const char *fixdir;
static cJSON *fx;
static double tol;         // its tolerance, absolute
static double max_diff;    // the largest difference the current test has seen
static const char *text;   // the scored text T
static const char *prompt; // the greedy prompt P
static int greedy_n;       // how many chars P is continued by

static const cJSON *get(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "no \"%s\"", k);
    return v;
}

static void suite_setup(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    for (int f = 0; f < NFIXTURES; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/expected.json", FIXTURES[f].dir);
        char *json = tu_read_file(path, NULL);
        ck_assert_ptr_nonnull(json);
        FIXTURES[f].fx = cJSON_Parse(json);
        free(json);
        ck_assert_ptr_nonnull(FIXTURES[f].fx);
        // The file charlm-train eval scores is the text the fixture describes.
        snprintf(path, sizeof path, "%s/text.txt", FIXTURES[f].dir);
        char *file = tu_read_file(path, NULL);
        ck_assert_ptr_nonnull(file);
        ck_assert_str_eq(file, json_str(get(FIXTURES[f].fx, "score"), "text"));
        free(file);
    }
}

static void suite_teardown(void) {
    for (int f = 0; f < NFIXTURES; f++) cJSON_Delete(FIXTURES[f].fx);
    curl_global_cleanup();
}

// Each test starts its own server on fixture f's folder, with args (NULL-terminated, or
// NULL).
static void start(int f, const char *const *args) {
    fixdir = FIXTURES[f].dir;
    fx = FIXTURES[f].fx;
    tol = json_num(fx, "tolerance");
    text = json_str(get(fx, "score"), "text");
    prompt = json_str(get(fx, "greedy"), "prompt");
    greedy_n = cJSON_GetArraySize(get(get(fx, "greedy"), "ids"));
    max_diff = 0;
    ck_assert_int_eq(srv_start(&S, fixdir, args), 0);
}

static void stop(void) {
    fprintf(stderr, "%s: max |charlm - torch| %.3g (tolerance %g)\n", fixdir, max_diff, tol);
    ck_assert_int_eq(srv_stop(&S), 0);
}

static void near(double got, double want, const char *what, int i) {
    double d = fabs(got - want);
    ck_assert_msg(d <= tol, "%s %d: %.9f, torch says %.9f", what, i, got, want);
    if (d > max_diff) max_diff = d;
}

// A request with prompt (JSON-escaped by cJSON) and the other members as given.
static char *request(const char *p, const char *rest) {
    cJSON *s = cJSON_CreateString(p);
    char *quoted = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    size_t n = strlen(quoted) + strlen(rest) + 32;
    char *body = malloc(n);
    snprintf(body, n, "{\"prompt\": %s, %s}", quoted, rest);
    free(quoted);
    return body;
}

static cJSON *post_ok(const char *path, const char *body) {
    Resp r = http_post(S.port, path, body);
    ck_assert_msg(r.status == 200, "%s: %ld %s", path, r.status, r.body);
    cJSON *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static const cJSON *choice0(const cJSON *j) {
    const cJSON *choices = get(j, "choices");
    ck_assert_int_eq(cJSON_GetArraySize(choices), 1);
    return cJSON_GetArrayItem(choices, 0);
}

// What the fixture expects of token i: its char, logprob (NULL for an unscored token) and
// top-5 row [[id, char, logprob] x 5] (NULL likewise).
typedef struct {
    const cJSON *tokens, *logprob, *top;
} Expect;

static Expect expect_score(void) {
    const cJSON *s = get(fx, "score");
    return (Expect){get(s, "tokens"), get(s, "logprob"), get(s, "top")};
}

// The greedy continuation's chars, from its ids; the caller deletes the array.
static Expect expect_greedy(cJSON **chars) {
    const cJSON *g = get(fx, "greedy");
    const cJSON *vocab = get(fx, "vocab");
    *chars = cJSON_CreateArray();
    const cJSON *id;
    cJSON_ArrayForEach(id, get(g, "ids")) {
        const cJSON *c = cJSON_GetArrayItem(vocab, id->valueint);
        cJSON_AddItemToArray(*chars, cJSON_CreateString(c->valuestring));
    }
    return (Expect){*chars, get(g, "logprob"), get(g, "top")};
}

// A completions top_logprobs dict: the fixture's top 5 plus the chosen char, each within
// tol, and nothing else.
static void check_top_dict(const cJSON *dict, const Expect *x, int i) {
    ck_assert_msg(cJSON_IsObject(dict), "top_logprobs %d is not an object", i);
    const char *chosen = cJSON_GetArrayItem(x->tokens, i)->valuestring;
    int entries = 0, chosen_in_top = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetArrayItem(x->top, i)) {
        const char *c = cJSON_GetArrayItem(row, 1)->valuestring;
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(dict, c);
        ck_assert_msg(cJSON_IsNumber(got), "top_logprobs %d lacks \"%s\"", i, c);
        near(got->valuedouble, cJSON_GetArrayItem(row, 2)->valuedouble, "top_logprobs", i);
        chosen_in_top |= strcmp(c, chosen) == 0;
        entries++;
    }
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(dict, chosen);
    ck_assert_msg(cJSON_IsNumber(got), "top_logprobs %d lacks the chosen \"%s\"", i, chosen);
    near(got->valuedouble, cJSON_GetArrayItem(x->logprob, i)->valuedouble, "chosen", i);
    ck_assert_int_eq(cJSON_GetArraySize(dict), entries + !chosen_in_top);
}

// A completions logprobs object against the fixture, offsets against offsets (a JSON
// array of ints).
static void check_completion_logprobs(const cJSON *lp, const Expect *x, const cJSON *offsets) {
    ck_assert_msg(cJSON_IsObject(lp), "logprobs is not an object");
    const cJSON *tokens = get(lp, "tokens"), *tlp = get(lp, "token_logprobs");
    const cJSON *top = get(lp, "top_logprobs"), *off = get(lp, "text_offset");
    int n = cJSON_GetArraySize(x->tokens);
    ck_assert_int_eq(cJSON_GetArraySize(tokens), n);
    ck_assert_int_eq(cJSON_GetArraySize(tlp), n);
    ck_assert_int_eq(cJSON_GetArraySize(top), n);
    ck_assert_int_eq(cJSON_GetArraySize(off), n);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(cJSON_GetArrayItem(tokens, i)->valuestring,
                         cJSON_GetArrayItem(x->tokens, i)->valuestring);
        ck_assert_int_eq(cJSON_GetArrayItem(off, i)->valueint,
                         cJSON_GetArrayItem(offsets, i)->valueint);
        const cJSON *want = cJSON_GetArrayItem(x->logprob, i);
        const cJSON *got = cJSON_GetArrayItem(tlp, i), *dict = cJSON_GetArrayItem(top, i);
        if (cJSON_IsNull(want)) {
            ck_assert_msg(cJSON_IsNull(got), "token_logprobs %d is not null", i);
            ck_assert_msg(cJSON_IsNull(dict), "top_logprobs %d is not null", i);
            continue;
        }
        ck_assert_msg(cJSON_IsNumber(got), "token_logprobs %d is not a number", i);
        near(got->valuedouble, want->valuedouble, "token_logprobs", i);
        check_top_dict(dict, x, i);
    }
}

// 0, 1, ..., n-1: the offsets of a continuation without echo, its chars all one code
// point each.
static cJSON *count_up(int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(i));
    return a;
}

// The echo of T, scored, checked against the fixture; the caller deletes the reply.
static cJSON *check_echo(void) {
    char *body = request(text, "\"max_tokens\": 0, \"echo\": true, \"logprobs\": 5");
    cJSON *j = post_ok("/v1/completions", body);
    free(body);
    const cJSON *c = choice0(j);
    // The unknown chars stay in the text and are not tokens; offsets count them.
    ck_assert_str_eq(json_str(c, "text"), text);
    ck_assert_str_eq(json_str(c, "finish_reason"), "length");
    Expect x = expect_score();
    check_completion_logprobs(get(c, "logprobs"), &x, get(get(fx, "score"), "text_offset"));
    const cJSON *u = get(j, "usage");
    ck_assert_int_eq((int)json_num(u, "prompt_tokens"), cJSON_GetArraySize(x.tokens));
    ck_assert_int_eq((int)json_num(u, "completion_tokens"), 0);
    return j;
}

// P continued greedily, with the members of extra ("" or ", ..."); malloc'd.
static char *greedy_request(const char *extra) {
    char rest[256];
    snprintf(rest, sizeof rest, "\"max_tokens\": %d, \"temperature\": 0, \"logprobs\": 5%s",
             greedy_n, extra);
    return request(prompt, rest);
}

// The greedy continuation on /v1/completions, checked against the fixture; the caller
// deletes the reply.
static cJSON *check_greedy(void) {
    char *body = greedy_request("");
    cJSON *j = post_ok("/v1/completions", body);
    free(body);
    const cJSON *c = choice0(j);
    ck_assert_str_eq(json_str(c, "text"), json_str(get(fx, "greedy"), "text"));
    ck_assert_str_eq(json_str(c, "finish_reason"), "length");
    cJSON *chars;
    Expect x = expect_greedy(&chars);
    cJSON *offsets = count_up(cJSON_GetArraySize(chars));
    check_completion_logprobs(get(c, "logprobs"), &x, offsets);
    cJSON_Delete(offsets);
    cJSON_Delete(chars);
    return j;
}

START_TEST(test_echo_scores_the_text) {
    start(_i, NULL);
    cJSON *j = check_echo();
    // The mean surprise is torch's, and charlm-train eval's loss on the same text.
    const cJSON *tlp = get(get(choice0(j), "logprobs"), "token_logprobs");
    int n = cJSON_GetArraySize(tlp);
    double sum = 0;
    for (int i = 1; i < n; i++) sum -= cJSON_GetArrayItem(tlp, i)->valuedouble;
    double mean = sum / (n - 1);
    near(mean, json_num(get(fx, "score"), "mean_nll"), "mean", 0);
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof(cmd), "%s eval --model '%s' --corpus '%s/text.txt'",
             tu_bin("charlm-train"), fixdir, fixdir);
    ck_assert_int_eq(tu_run(cmd, &out, NULL), 0);
    const char *line = strrchr(out, '{');
    ck_assert_ptr_nonnull(line);
    cJSON *ev = cJSON_Parse(line);
    ck_assert_msg(ev != NULL, "charlm-train eval printed %s", out);
    near(json_num(ev, "loss"), mean, "eval loss vs server mean", 0);
    near(json_num(ev, "loss"), json_num(get(fx, "score"), "mean_nll"), "eval loss", 0);
    ck_assert_int_eq((int)json_num(ev, "chars"), n - 1);
    ck_assert_int_eq((int)json_num(ev, "chars"), (int)json_num(get(fx, "score"), "chars"));
    ck_assert_int_eq((int)json_num(ev, "skipped"), (int)json_num(get(fx, "score"), "skipped"));
    cJSON_Delete(ev);
    free(out);
    cJSON_Delete(j);
    stop();
}
END_TEST

START_TEST(test_echo_logprobs_zero) {
    // logprobs 0: each dict holds just the chosen char.
    start(_i, NULL);
    char *body = request(text, "\"max_tokens\": 0, \"echo\": true, \"logprobs\": 0");
    cJSON *j = post_ok("/v1/completions", body);
    free(body);
    const cJSON *lp = get(choice0(j), "logprobs");
    Expect x = expect_score();
    const cJSON *top = get(lp, "top_logprobs");
    int n = cJSON_GetArraySize(x.tokens);
    ck_assert_int_eq(cJSON_GetArraySize(top), n);
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(top, 0)));
    for (int i = 1; i < n; i++) {
        const cJSON *dict = cJSON_GetArrayItem(top, i);
        ck_assert_int_eq(cJSON_GetArraySize(dict), 1);
        const char *chosen = cJSON_GetArrayItem(x.tokens, i)->valuestring;
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(dict, chosen);
        ck_assert_msg(cJSON_IsNumber(got), "top_logprobs %d lacks the chosen \"%s\"", i, chosen);
        near(got->valuedouble, cJSON_GetArrayItem(x.logprob, i)->valuedouble, "chosen", i);
    }
    cJSON_Delete(j);
    stop();
}
END_TEST

START_TEST(test_greedy_completion) {
    start(_i, NULL);
    cJSON_Delete(check_greedy());
    stop();
}
END_TEST

START_TEST(test_greedy_stream) {
    start(_i, NULL);
    char *body = greedy_request("");
    cJSON *plain = post_ok("/v1/completions", body);
    free(body);
    const cJSON *want = get(choice0(plain), "logprobs");
    body = greedy_request(", \"stream\": true");
    Resp r = http_post(S.port, "/v1/completions", body);
    free(body);
    ck_assert_int_eq(r.status, 200);
    char *ev[256];
    int n = sse_events(r.body, ev, 256);
    ck_assert_int_ge(n, 3);
    ck_assert_str_eq(ev[n - 1], "[DONE]");
    // The chunks' four arrays, concatenated.
    const char *names[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
    cJSON *got = cJSON_CreateObject(), *cat[4];
    for (int k = 0; k < 4; k++) cJSON_AddItemToObject(got, names[k], cat[k] = cJSON_CreateArray());
    char text_got[256] = "";
    int ends = 0;
    for (int i = 0; i < n - 1; i++) {
        cJSON *e = cJSON_Parse(ev[i]);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(json_str(e, "object"), "text_completion");
        const cJSON *c = choice0(e);
        const cJSON *fin = get(c, "finish_reason");
        const cJSON *lp = get(c, "logprobs");
        ck_assert_int_lt(strlen(text_got) + strlen(json_str(c, "text")), sizeof(text_got));
        strcat(text_got, json_str(c, "text"));
        if (!cJSON_IsNull(fin)) { // the end: no text, no tokens
            ck_assert_str_eq(fin->valuestring, "length");
            ck_assert_str_eq(json_str(c, "text"), "");
            ends++;
        } else {
            ck_assert_int_eq(ends, 0);
            ck_assert_str_ne(json_str(c, "text"), "");
            for (int k = 0; k < 4; k++) {
                const cJSON *item;
                cJSON_ArrayForEach(item, get(lp, names[k])) {
                    cJSON_AddItemToArray(cat[k], cJSON_Duplicate(item, 1));
                }
            }
        }
        cJSON_Delete(e);
    }
    ck_assert_int_eq(ends, 1);
    ck_assert_str_eq(text_got, json_str(get(fx, "greedy"), "text"));
    // The same numbers as the plain reply, to the bit, and so torch's within tol.
    for (int k = 0; k < 4; k++) {
        char *a = cJSON_PrintUnformatted(get(got, names[k]));
        char *b = cJSON_PrintUnformatted(get(want, names[k]));
        ck_assert_str_eq(a, b);
        free(a);
        free(b);
    }
    cJSON *chars;
    Expect x = expect_greedy(&chars);
    cJSON *offsets = count_up(cJSON_GetArraySize(chars));
    check_completion_logprobs(got, &x, offsets);
    cJSON_Delete(offsets);
    cJSON_Delete(chars);
    cJSON_Delete(got);
    for (int i = 0; i < n; i++) free(ev[i]);
    resp_free(&r);
    cJSON_Delete(plain);
    stop();
}
END_TEST

START_TEST(test_greedy_generate) {
    start(_i, NULL);
    char *body = greedy_request("");
    cJSON *j = post_ok("/generate", body);
    free(body);
    ck_assert_str_eq(json_str(j, "text"), json_str(get(fx, "greedy"), "text"));
    ck_assert_str_eq(json_str(j, "finish_reason"), "length");
    ck_assert_int_eq((int)json_num(j, "tokens"), greedy_n);
    cJSON *chars;
    Expect x = expect_greedy(&chars);
    const cJSON *lp = get(j, "logprobs");
    int n = cJSON_GetArraySize(chars);
    ck_assert_int_eq(cJSON_GetArraySize(lp), n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(lp, i);
        ck_assert_str_eq(json_str(e, "char"), cJSON_GetArrayItem(chars, i)->valuestring);
        near(json_num(e, "logprob"), cJSON_GetArrayItem(x.logprob, i)->valuedouble, "logprob", i);
        // The fixture's top 5 in the server's order, which is most likely first.
        const cJSON *top = get(e, "top"), *alt;
        ck_assert_int_eq(cJSON_GetArraySize(top), 5);
        double prev = 0;
        unsigned matched = 0; // which of torch's 5 the server's entries were
        cJSON_ArrayForEach(alt, top) {
            const char *c = json_str(alt, "char");
            double v = json_num(alt, "logprob");
            ck_assert_msg(v <= prev, "top of %d is not most likely first", i);
            prev = v;
            int m = -1;
            for (int k = 0; k < 5; k++) {
                const cJSON *row = cJSON_GetArrayItem(cJSON_GetArrayItem(x.top, i), k);
                if (strcmp(cJSON_GetArrayItem(row, 1)->valuestring, c) == 0) m = k;
            }
            ck_assert_msg(m >= 0, "\"%s\" is in the top of %d, not in torch's", c, i);
            ck_assert_msg(!(matched & 1u << m), "\"%s\" twice in the top of %d", c, i);
            matched |= 1u << m;
            const cJSON *row = cJSON_GetArrayItem(cJSON_GetArrayItem(x.top, i), m);
            near(v, cJSON_GetArrayItem(row, 2)->valuedouble, "top", i);
        }
    }
    cJSON_Delete(chars);
    cJSON_Delete(j);
    stop();
}
END_TEST

// The same numbers for every prefill chunk: T's 312 chars go in chunks of 1, 7 and 64 (64
// longer than the GPT's context), and P by chunks or, under 64, a char per decode step.
START_TEST(test_prefill_chunks) {
    static const char *const chunks[] = {"1", "7", "64"};
    for (int k = 0; k < 3; k++) {
        const char *args[] = {"--prefill-chunk", chunks[k], NULL};
        start(_i, args);
        cJSON_Delete(check_echo());
        cJSON_Delete(check_greedy());
        stop();
    }
}
END_TEST

// A reply's logprobs, printed, to compare two replies to the bit; malloc'd.
static char *logprobs_printed(const cJSON *reply) {
    return cJSON_PrintUnformatted(get(choice0(reply), "logprobs"));
}

// T scored and P continued while 15 other generations run in the same batch (one worker):
// torch's numbers, and the very ones they had alone.
START_TEST(test_batched_with_15_others) {
    const char *args[] = {"--threads", "1", "--max-tokens", "1000000", NULL};
    start(_i, args);
    cJSON *echo_alone = check_echo(), *greedy_alone = check_greedy();
    // Long generations that stay in flight until their clients leave: a third with T as
    // their prompt (prefilled while the others decode), the rest with a piece of P.
    enum { OTHERS = 15 };
    int fd[OTHERS];
    for (int i = 0; i < OTHERS; i++) {
        char rest[128], *body;
        snprintf(rest, sizeof rest, "\"max_tokens\": 1000000, \"seed\": %d", i);
        if (i % 3) {
            char piece[8];
            snprintf(piece, sizeof piece, "%.*s", 1 + i % 5, prompt);
            body = request(piece, rest);
        } else {
            body = request(text, rest);
        }
        size_t n = strlen(body) + 256;
        char *req = malloc(n);
        snprintf(req, n,
                 "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        fd[i] = raw_send(S.port, req);
        free(req);
        free(body);
    }
    int waited = 0;
    while (health_in_flight(S.port) < OTHERS && waited < 10000) sleep_ms(5), waited += 5;
    ck_assert_int_eq(health_in_flight(S.port), OTHERS);
    cJSON *echo = check_echo(), *greedy = check_greedy();
    // The others ran all along.
    ck_assert_int_eq(health_in_flight(S.port), OTHERS);
    cJSON *pairs[][2] = {{echo, echo_alone}, {greedy, greedy_alone}};
    for (int k = 0; k < 2; k++) {
        char *a = logprobs_printed(pairs[k][0]), *b = logprobs_printed(pairs[k][1]);
        ck_assert_msg(strcmp(a, b) == 0, "%s: the numbers changed in the batch", fixdir);
        free(a);
        free(b);
        cJSON_Delete(pairs[k][0]);
        cJSON_Delete(pairs[k][1]);
    }
    for (int i = 0; i < OTHERS; i++) close(fd[i]);
    for (waited = 0; health_in_flight(S.port) > 0 && waited < 10000; waited += 5) sleep_ms(5);
    ck_assert_int_eq(health_in_flight(S.port), 0);
    stop();
}
END_TEST

// ---- A model of two chars, a and b (untrained), of each architecture (the GPT's context
// of 4 shorter than the replies): more alternatives are asked for than it has, and prompts
// hold chars it lacks.

static const ModelConfig TINY_LSTM = {.embed = 4, .hidden = 8, .layers = 1};
static const GptConfig TINY_GPT = {
    .layers = 1, .heads = 2, .embed = 8, .block = 4, .norm = GPT_LAYERNORM, .bias = 1};
static const struct {
    const char *arch;
    const void *hyper;
} TINY[] = {{"lstm", &TINY_LSTM}, {"gpt", &TINY_GPT}};
#define NTINY ((int)(sizeof TINY / sizeof TINY[0]))

static char *tiny_dir;

static void tiny_start(int t) {
    tiny_dir = tu_tmpdir();
    ck_assert_int_eq(tu_make_arch_dir(tiny_dir, "abba", TINY[t].arch, TINY[t].hyper, 7), 0);
    ck_assert_int_eq(srv_start(&S, tiny_dir, NULL), 0);
}

static void tiny_stop(void) {
    ck_assert_int_eq(srv_stop(&S), 0);
    tu_rmtree(tiny_dir);
    free(tiny_dir);
}

// One of the model's chars, each at most once in an entry's alternatives (bit in *seen).
static void expect_ab(const char *c, unsigned *seen, const char *where, int i) {
    ck_assert_msg(!strcmp(c, "a") || !strcmp(c, "b"), "%s %d: alternative \"%s\"", where, i, c);
    unsigned bit = c[0] == 'a' ? 1 : 2;
    ck_assert_msg(!(*seen & bit), "%s %d: \"%s\" twice", where, i, c);
    *seen |= bit;
}

// 20 alternatives (5 on /v1/completions) of a 2-char vocabulary are the 2 chars, on every
// route: never an entry for an id past the vocabulary (ASan: a read before its array).
START_TEST(test_alternatives_at_most_the_vocabulary) {
    tiny_start(_i);
    cJSON *j = post_ok("/generate", "{\"prompt\": \"ab\", \"max_tokens\": 8, \"logprobs\": 20}");
    const cJSON *e, *t;
    int i = 0;
    cJSON_ArrayForEach(e, get(j, "logprobs")) {
        const cJSON *top = get(e, "top");
        ck_assert_int_eq(cJSON_GetArraySize(top), 2);
        unsigned seen = 0;
        cJSON_ArrayForEach(t, top) {
            expect_ab(json_str(t, "char"), &seen, "/generate", i);
            ck_assert(cJSON_IsNumber(get(t, "logprob")));
        }
        i++;
    }
    ck_assert_int_eq(i, 8);
    cJSON_Delete(j);

    j = post_ok("/v1/chat/completions",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"ab\"}], \"max_tokens\": 8, "
                "\"logprobs\": true, \"top_logprobs\": 20}");
    i = 0;
    cJSON_ArrayForEach(e, get(get(choice0(j), "logprobs"), "content")) {
        const cJSON *top = get(e, "top_logprobs");
        ck_assert_int_eq(cJSON_GetArraySize(top), 2);
        unsigned seen = 0;
        cJSON_ArrayForEach(t, top) {
            expect_ab(json_str(t, "token"), &seen, "chat", i);
            ck_assert(cJSON_IsNumber(get(t, "logprob")));
        }
        i++;
    }
    ck_assert_int_eq(i, 8);
    cJSON_Delete(j);

    j = post_ok("/v1/completions", "{\"prompt\": \"ab\", \"max_tokens\": 8, \"logprobs\": 5}");
    i = 0;
    cJSON_ArrayForEach(e, get(get(choice0(j), "logprobs"), "top_logprobs")) {
        // The k most likely and the chosen one: both chars, the chosen among them.
        ck_assert_int_eq(cJSON_GetArraySize(e), 2);
        unsigned seen = 0;
        cJSON_ArrayForEach(t, e) {
            expect_ab(t->string, &seen, "completions", i);
            ck_assert(cJSON_IsNumber(t));
        }
        i++;
    }
    ck_assert_int_eq(i, 8);
    cJSON_Delete(j);
    tiny_stop();
}
END_TEST

// text_offset counts code points of the choice's text, the echoed prompt's unknown chars
// included: "€€ab" puts a at 2 and b at 3, and the generated chars after them.
START_TEST(test_text_offset_after_unknown_chars) {
    tiny_start(_i);
    cJSON *j = post_ok("/v1/completions", "{\"prompt\": \"\u20ac\u20acab\", \"max_tokens\": 2, "
                                          "\"echo\": true, \"logprobs\": 1}");
    const cJSON *c = choice0(j);
    ck_assert_int_eq(strncmp(json_str(c, "text"),
                             "\xe2\x82\xac\xe2\x82\xac"
                             "ab",
                             8),
                     0);
    const cJSON *off = get(get(c, "logprobs"), "text_offset");
    ck_assert_int_eq(cJSON_GetArraySize(off), 4);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(cJSON_GetArrayItem(off, i)->valueint == 2 + i, "text_offset %d is %d", i,
                      cJSON_GetArrayItem(off, i)->valueint);
    cJSON_Delete(j);
    tiny_stop();
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_logprobs");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_loop_test(tc, test_echo_scores_the_text, 0, NFIXTURES);
    tcase_add_loop_test(tc, test_echo_logprobs_zero, 0, NFIXTURES);
    tcase_add_loop_test(tc, test_greedy_completion, 0, NFIXTURES);
    tcase_add_loop_test(tc, test_greedy_stream, 0, NFIXTURES);
    tcase_add_loop_test(tc, test_greedy_generate, 0, NFIXTURES);
    tcase_add_loop_test(tc, test_prefill_chunks, 0, NFIXTURES);
    tcase_add_loop_test(tc, test_batched_with_15_others, 0, NFIXTURES);
    suite_add_tcase(s, tc);
    TCase *tiny = tcase_create("two_chars");
    tcase_add_unchecked_fixture(tiny, suite_setup, suite_teardown);
    tcase_set_timeout(tiny, 180);
    tcase_add_loop_test(tiny, test_alternatives_at_most_the_vocabulary, 0, NTINY);
    tcase_add_loop_test(tiny, test_text_offset_after_unknown_chars, 0, NTINY);
    suite_add_tcase(s, tiny);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
