/*
 * test_replline — trainer/replline, table-driven: lines gathered into entries ('\' and
 * """ blocks), entries read as prompts or commands, /set through genparams' rows (a bad
 * value: one line, nothing changed), and what /show lists.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "genparams.h"
#include "replline.h"
#include "testutil.h"

static const struct {
    const char *lines[6]; // fed in order; the last completes the entry
    const char *entry;
} feeds[] = {
    {{"hello"}, "hello"},
    {{""}, ""},
    {{"one \\", "two"},
     "one \n"
     "two"},
    {{"a\\", "b\\", "c"}, "a\nb\nc"},
    {{"\"\"\"", "x", "", "y \\", "\"\"\""}, "x\n\ny \\"},
    {{"\"\"\"", "\"\"\""}, ""},
    {{
         "\"\"\" ",
     },
     "\"\"\" "}, // not a fence: a prompt
    {{"a\\", "\"\"\""}, "a\n\"\"\""},
};

START_TEST(test_feed_table) {
    for (size_t i = 0; i < sizeof feeds / sizeof feeds[0]; i++) {
        ReplInput in = {0};
        int n = 0;
        while (n < 6 && feeds[i].lines[n]) n++;
        for (int k = 0; k < n; k++) {
            int done = replline_feed(&in, feeds[i].lines[k]);
            ck_assert_msg(done == (k == n - 1), "case %zu line %d: done %d", i, k, done);
        }
        ck_assert_msg(strcmp(in.text.s, feeds[i].entry) == 0, "case %zu: '%s'", i, in.text.s);
        replline_clear(&in);
        ck_assert_int_eq(replline_feed(&in, "next"), 1);
        ck_assert_str_eq(in.text.s, "next");
        replline_free(&in);
    }
}
END_TEST

static const struct {
    const char *entry;
    int rc;
    ReplKind kind;
    const char *a, *b; // prompt text, or /set's name and value; or the error
} parses[] = {
    {"the cat", 0, REPL_PROMPT, "the cat", NULL},
    {"", 0, REPL_PROMPT, "", NULL},
    {"//etc", 0, REPL_PROMPT, "/etc", NULL},
    {"/set temperature 0.5", 0, REPL_SET, "temperature", "0.5"},
    {"/set  stop  a b", 0, REPL_SET, "stop", " a b"},
    {"/set stop", 0, REPL_SET, "stop", ""},
    {"/show", 0, REPL_SHOW, NULL, NULL},
    {"/reset", 0, REPL_RESET, NULL, NULL},
    {"/help", 0, REPL_HELP, NULL, NULL},
    {"/quit", 0, REPL_QUIT, NULL, NULL},
    {"/quit  ", 0, REPL_QUIT, NULL, NULL},
    {"/set", -1, 0, "usage: /set NAME VALUE (see /show for the names)", NULL},
    {"/show me", -1, 0, "/show takes nothing after it", NULL},
    {"/sett x 1", -1, 0, "unknown command /sett (see /help)", NULL},
    {"/", -1, 0, "unknown command / (see /help)", NULL},
};

START_TEST(test_parse_table) {
    for (size_t i = 0; i < sizeof parses / sizeof parses[0]; i++) {
        char entry[256], err[ERR_LEN] = "";
        snprintf(entry, sizeof entry, "%s", parses[i].entry);
        ReplCommand c;
        int rc = replline_parse(entry, &c, err);
        ck_assert_msg(rc == parses[i].rc, "'%s': rc %d (%s)", parses[i].entry, rc, err);
        if (rc) {
            ck_assert_str_eq(err, parses[i].a);
            continue;
        }
        ck_assert_int_eq(c.kind, parses[i].kind);
        if (c.kind == REPL_PROMPT) ck_assert_str_eq(c.text, parses[i].a);
        if (c.kind == REPL_SET) {
            ck_assert_str_eq(c.name, parses[i].a);
            ck_assert_str_eq(c.value, parses[i].b);
        }
    }
}
END_TEST

static const struct {
    const char *name, *value;
    const char *err; // NULL: accepted
} sets[] = {
    {"temperature", "0", NULL},
    {"max_tokens", "60", NULL},
    {"top_p", "0.5", NULL},
    {"seed", "12", NULL},
    {"stop", "a\\nb", NULL},
    {"temperature", "-1", "temperature must be >= 0"},
    {"top_p", "2", "top_p must be in (0, 1]"},
    {"top_k", "1.5", "top_k must be an integer"},
    {"max_tokens", "0", "max_tokens must be an integer from 1 to 1000000"},
    {"temperature", "hot", "temperature takes a number, got \"hot\""},
    {"temperature", "", "temperature takes a number, got \"\""},
    {"top-k", "3", "unknown parameter \"top-k\" (see /show)"},
    {"stop", "0123456789012345678901234567890123456789012345678901234567890123456789",
     "stop sequences must be at most 64 bytes"},
};

START_TEST(test_set_table) {
    ReplParams rp;
    replline_defaults(&rp);
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        ReplParams before = rp;
        char err[ERR_LEN] = "";
        int rc = replline_set(&rp, sets[i].name, sets[i].value, err);
        if (!sets[i].err) {
            ck_assert_msg(rc == 0, "/set %s %s: %s", sets[i].name, sets[i].value, err);
            continue;
        }
        ck_assert_msg(rc == -1 && strcmp(err, sets[i].err) == 0, "/set %s %s: %d '%s'",
                      sets[i].name, sets[i].value, rc, err);
        ck_assert_msg(memcmp(&before, &rp, sizeof rp) == 0, "/set %s changed something",
                      sets[i].name);
    }
    GenerateParams p = replline_params(&rp, 99);
    ck_assert_float_eq(p.sampler.temperature, 0);
    ck_assert_int_eq(p.max_tokens, 60);
    ck_assert_uint_eq(p.seed, 12); // fixed by /set
    ck_assert_int_eq(p.nstop, 1);
    ck_assert_str_eq(p.stop[0], "a\nb");
    Buf out = {0};
    replline_show(&rp, &out);
    ck_assert_msg(strstr(out.s, "temperature 0\n") && strstr(out.s, "top_p 0.5\n") &&
                      strstr(out.s, "seed 12\n") && strstr(out.s, "stop a\\nb\n"),
                  "%s", out.s);
    for (int i = 0; i < genparams_count; i++)
        ck_assert_msg(strstr(out.s, genparams[i].name), "/show lacks %s", genparams[i].name);
    buf_free(&out);

    char err[ERR_LEN];
    ck_assert_int_eq(replline_set(&rp, "seed", "random", err), 0);
    ck_assert_int_eq(replline_set(&rp, "stop", "", err), 0);
    p = replline_params(&rp, 99);
    ck_assert_uint_eq(p.seed, 99); // drawn by the caller again
    ck_assert_int_eq(p.nstop, 0);
    replline_defaults(&rp);
    GenerateParams d;
    genparams_defaults(&d, 0, 0);
    ck_assert_float_eq(rp.p.sampler.temperature, d.sampler.temperature);
    ck_assert_int_eq(rp.p.max_tokens, d.max_tokens);
}
END_TEST

int main(void) {
    Suite *s = suite_create("replline");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_feed_table);
    tcase_add_test(tc, test_parse_table);
    tcase_add_test(tc, test_set_table);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
