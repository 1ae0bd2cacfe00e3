// server/textcheck: what counts as a training text, each case a row fed whole, split in two
// at every position, and a byte at a time: the verdict and its reason (offsets, line
// numbers) must not depend on how the bytes arrive.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textcheck.h"

static const struct {
    const char *what;
    const char *data;
    size_t len;           // 0: strlen(data)
    const char *filename; // may be NULL
    const char *reason;   // a part of the reason; NULL: accepted
} checks[] = {
    {"plain text", "To be, or not to be\n", 0, "a.txt", NULL},
    {"UTF-8 text", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n", 0, "a.txt", NULL},
    {"text with no name", "hello", 0, NULL, NULL},
    {"only blanks", " \n\t", 0, "a.txt", NULL},
    {"JSON lines", "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"x\": 1}\n", 0, "d.jsonl", NULL},
    {"JSON lines without a last newline", "{\"text\": \"one\"}\n{\"text\": \"two\"}", 0, "d.jsonl",
     NULL},
    {"JSON lines found by their first byte", "  {\"text\": \"a\"}\r\n", 0, "data.txt", NULL},
    {"JSON lines after blank lines", "\n\n {\"text\": \"a\"}\nno\n", 0, "data.txt", "line 4"},
    {"text after blank lines is text", "\n\n hello {\n", 0, "data.txt", NULL},
    {"empty", "", 0, "a.txt", "empty"},
    {"a NUL byte", "ab\0cd", 5, "a.txt", "NUL byte (at byte 2)"},
    {"invalid UTF-8", "ok \xff no", 0, "a.txt", "not UTF-8 text (an invalid byte at byte 3)"},
    {"a bad continuation", "ab\xe2\x82x", 0, "a.txt", "an invalid byte at byte 2"},
    {"a truncated sequence at the end", "abc\xf0\x9f\x98", 0, "a.txt", "an invalid byte at byte 3"},
    {"an overlong form", "\xc0\xaf", 0, "a.txt", "at byte 0"},
    {"an overlong 3-byte form", "x\xe0\x80\xaf", 0, "a.txt", "at byte 1"},
    {"a surrogate", "xy\xed\xa0\x80", 0, "a.txt", "at byte 2"},
    {"past U+10FFFF", "\xf4\x90\x80\x80", 0, "a.txt", "at byte 0"},
    {"a JSON line without text", "{\"text\": \"a\"}\n{\"t\": \"b\"}\n", 0, "d.jsonl", "line 2"},
    {"text not a string", "{\"text\": 5}\n", 0, "d.jsonl", "line 1"},
    {"a line that is no JSON", "{\"text\": \"a\"}\nplain\n", 0, "x.txt", "line 2"},
    {"a bad last line without a newline", "{\"text\": \"a\"}\n{", 0, "x.txt", "line 2"},
    {"a .jsonl of plain text", "hello\n", 0, "d.jsonl", "line 1"},
    {"a .jsonl of blank lines", "\n  \n", 0, "d.jsonl", "no JSON line"},
};

// Feeds row i as a first piece of `first` bytes, then pieces of `step` bytes (0: the rest
// whole); the verdict, and the reason in why.
static int run(size_t i, size_t first, size_t step, char *why, size_t cap) {
    const char *d = checks[i].data;
    size_t len = checks[i].len ? checks[i].len : strlen(d);
    TextCheck c;
    textcheck_begin(&c, checks[i].filename);
    int rc = textcheck_feed(&c, d, first);
    for (size_t at = first; at < len && rc == 0;) {
        size_t n = step && step < len - at ? step : len - at;
        rc = textcheck_feed(&c, d + at, n);
        at += n;
    }
    if (rc == 0) rc = textcheck_end(&c);
    snprintf(why, cap, "%s", rc ? c.why : "");
    textcheck_free(&c);
    return rc;
}

START_TEST(test_check) {
    for (size_t i = 0; i < sizeof(checks) / sizeof(*checks); i++) {
        size_t len = checks[i].len ? checks[i].len : strlen(checks[i].data);
        // Split in two at every position (whole at 0 and len), then a byte at a time.
        for (size_t split = 0; split <= len + 1; split++) {
            char why[256];
            int rc =
                split <= len ? run(i, split, 0, why, sizeof(why)) : run(i, 0, 1, why, sizeof(why));
            if (!checks[i].reason) {
                ck_assert_msg(rc == 0, "%s (split %zu): refused: %s", checks[i].what, split, why);
                continue;
            }
            ck_assert_msg(rc == -1, "%s (split %zu): accepted", checks[i].what, split);
            ck_assert_msg(strstr(why, checks[i].reason),
                          "%s (split %zu): reason \"%s\", expected \"%s\"", checks[i].what, split,
                          why, checks[i].reason);
        }
    }
}
END_TEST

// A JSON line longer than TEXTCHECK_LINE_MAX is refused with its line number, however
// it arrives, and the check holds no more than that bound; a plain text has no such bound.
START_TEST(test_line_bound) {
    size_t n = TEXTCHECK_LINE_MAX + 100;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, 'a', n);
    memcpy(big, "{\"text\": \"x\"}\n{\"text\": \"", 24);
    TextCheck c;
    textcheck_begin(&c, "d.jsonl");
    int rc = 0;
    for (size_t at = 0; at < n && rc == 0; at += 4096)
        rc = textcheck_feed(&c, big + at, n - at < 4096 ? n - at : 4096);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(c.why, "line 2 is longer than"), "%s", c.why);
    textcheck_free(&c);

    textcheck_begin(&c, "a.txt");
    memset(big, 'a', n);
    ck_assert_int_eq(textcheck_feed(&c, big, n), 0);
    ck_assert_int_eq(textcheck_feed(&c, big, n), 0);
    ck_assert_int_eq(textcheck_end(&c), 0);
    ck_assert_uint_eq(c.line.cap, 0);
    textcheck_free(&c);
    free(big);
}
END_TEST

int main(void) {
    Suite *s = suite_create("textcheck");
    TCase *tc = tcase_create("textcheck");
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_line_bound);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
