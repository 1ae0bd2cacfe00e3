/*
 * test_prompts — trainer/prompts' lines, table-driven: a text line is its prompt; a JSON
 * line's members replace the flags' parameters through genparams' rows, each bad value
 * one line of error; prompts_read numbers the lines.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "genparams.h"
#include "prompts.h"
#include "testutil.h"

typedef struct {
    const char *line;
    int json;
    const char *err; // the message, or NULL for a line that reads
    const char *prompt;
    int max_tokens;
    float temperature;
    unsigned long long seed;
    int nstop;
    const char *stop1; // the last stop sequence
} Case;

// The flags' parameters every line starts from: max_tokens 200, temperature 0.8, seed 7.
static const Case cases[] = {
    {"the cat", 0, NULL, "the cat", 200, 0.8f, 7, 0, NULL},
    {"", 0, NULL, "", 200, 0.8f, 7, 0, NULL},
    {"{\"prompt\": 1}", 0, NULL, "{\"prompt\": 1}", 200, 0.8f, 7, 0, NULL},
    {"caf\xc3\xa9", 0, NULL, "caf\xc3\xa9", 200, 0.8f, 7, 0, NULL},
    {"bad \xc3", 0, "the prompt is not valid UTF-8 (byte offset 4)", NULL, 0, 0, 0, 0, NULL},
    {"{\"prompt\": \"hi\"}", 1, NULL, "hi", 200, 0.8f, 7, 0, NULL},
    {"{\"prompt\": \"hi\", \"max_tokens\": 5, \"temperature\": 0, \"seed\": 9}  ", 1, NULL, "hi", 5,
     0, 9, 0, NULL},
    {"{\"seed\": 3, \"prompt\": \"\\u00e9\\n\"}", 1, NULL, "\xc3\xa9\n", 200, 0.8f, 3, 0, NULL},
    {"{\"prompt\": \"a\", \"stop\": \"x\"}", 1, NULL, "a", 200, 0.8f, 7, 1, "x"},
    {"{\"prompt\": \"a\", \"stop\": [\"x\", \"yz\"]}", 1, NULL, "a", 200, 0.8f, 7, 2, "yz"},
    {"{\"prompt\": \"a\", \"max_tokens\": 0}", 1, "max_tokens must be an integer from 1 to 1000000",
     NULL, 0, 0, 0, 0, NULL},
    {"{\"prompt\": \"a\", \"max_tokens\": 2.5}", 1, "max_tokens must be an integer", NULL, 0, 0, 0,
     0, NULL},
    {"{\"prompt\": \"a\", \"temperature\": -1}", 1, "temperature must be >= 0", NULL, 0, 0, 0, 0,
     NULL},
    {"{\"prompt\": \"a\", \"temperature\": \"hot\"}", 1, "temperature must be a number", NULL, 0, 0,
     0, 0, NULL},
    {"{\"prompt\": \"a\", \"top-k\": 3}", 1,
     "unknown field \"top-k\" (prompt, stop or a generation parameter)", NULL, 0, 0, 0, 0, NULL},
    {"{\"prompt\": \"a\", \"stop\": [\"\"]}", 1, "stop sequences must not be empty", NULL, 0, 0, 0,
     0, NULL},
    {"{\"prompt\": \"a\", \"stop\": [\"1\", \"2\", \"3\", \"4\", \"5\"]}", 1,
     "stop takes at most 4 sequences", NULL, 0, 0, 0, 0, NULL},
    {"{\"prompt\": \"a\", \"stop\": 3}", 1, "stop must be a string or an array of strings", NULL, 0,
     0, 0, 0, NULL},
    {"{\"max_tokens\": 3}", 1, "no \"prompt\"", NULL, 0, 0, 0, 0, NULL},
    {"{\"prompt\": \"a\"} x", 1, "not a JSON object", NULL, 0, 0, 0, 0, NULL},
    {"[\"a\"]", 1, "not a JSON object", NULL, 0, 0, 0, 0, NULL},
    {"{\"prompt\": \"a\"", 1, "not a JSON object", NULL, 0, 0, 0, 0, NULL},
};

static GenerateParams base(void) {
    GenerateParams p;
    genparams_defaults(&p, 0, 0);
    p.seed = 7;
    return p;
}

START_TEST(test_parse_table) {
    GenerateParams b = base();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        PromptLine l;
        char err[ERR_LEN] = "";
        int rc = prompts_parse(c->line, strlen(c->line), c->json, &b, &l, err);
        if (c->err) {
            ck_assert_msg(rc == -1 && strcmp(err, c->err) == 0, "'%s': rc %d '%s', expected '%s'",
                          c->line, rc, err, c->err);
            continue;
        }
        ck_assert_msg(rc == 0, "'%s': %s", c->line, err);
        ck_assert_str_eq(l.prompt, c->prompt);
        ck_assert_int_eq(l.prompt_len, strlen(c->prompt));
        ck_assert_int_eq(l.params.max_tokens, c->max_tokens);
        ck_assert_float_eq(l.params.sampler.temperature, c->temperature);
        ck_assert_uint_eq(l.params.seed, c->seed);
        ck_assert_int_eq(l.params.nstop, c->nstop);
        if (c->nstop) ck_assert_str_eq(l.params.stop[c->nstop - 1], c->stop1);
        ck_assert_float_eq(l.params.sampler.top_p, b.sampler.top_p); // untouched
        prompts_free(&l);
    }
}
END_TEST

static int read_text(const char *text, PromptLine **lines, int *n, char *err) {
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    GenerateParams b = base();
    int rc = prompts_read(f, &b, lines, n, err);
    fclose(f);
    return rc;
}

START_TEST(test_read_numbers_lines) {
    PromptLine *lines;
    int n;
    char err[ERR_LEN];
    ck_assert_int_eq(read_text("a\n\nb c", &lines, &n, err), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(lines[1].prompt, "");
    ck_assert_str_eq(lines[2].prompt, "b c");
    ck_assert_int_eq(lines[2].line, 3);
    prompts_free_all(lines, n);
    // The first line decides: JSON lines, blank ones skipped.
    ck_assert_int_eq(read_text("{\"prompt\": \"x\"}\n\n{\"prompt\": \"y\"}\n", &lines, &n, err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(lines[1].prompt, "y");
    ck_assert_int_eq(lines[1].line, 3);
    prompts_free_all(lines, n);
    ck_assert_int_eq(read_text("{\"prompt\": \"x\"}\nplain\n", &lines, &n, err), -1);
    ck_assert_str_eq(err, "line 2: not a JSON object");
    ck_assert_int_eq(read_text("", &lines, &n, err), 0);
    ck_assert_int_eq(n, 0);
    prompts_free_all(lines, n);
}
END_TEST

int main(void) {
    Suite *s = suite_create("prompts");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_table);
    tcase_add_test(tc, test_read_numbers_lines);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
