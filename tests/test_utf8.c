#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static int decode(const char *s, size_t len, uint32_t *cp) {
    return utf8_decode_one((const unsigned char *)s, len, cp);
}

START_TEST(test_decode_lengths) {
    uint32_t cp = 0;
    ck_assert_int_eq(decode("A", 1, &cp), 1);
    ck_assert_uint_eq(cp, 0x41);
    ck_assert_int_eq(decode("\xC3\xA9", 2, &cp), 2); // é
    ck_assert_uint_eq(cp, 0xE9);
    ck_assert_int_eq(decode("\xE2\x82\xAC", 3, &cp), 3); // €
    ck_assert_uint_eq(cp, 0x20AC);
    ck_assert_int_eq(decode("\xF0\x9F\x98\x80", 4, &cp), 4); // 😀
    ck_assert_uint_eq(cp, 0x1F600);
    ck_assert_int_eq(decode("\xF4\x8F\xBF\xBF", 4, &cp), 4); // U+10FFFF, the last one
    ck_assert_uint_eq(cp, 0x10FFFF);
    ck_assert_int_eq(decode("\xED\x9F\xBF", 3, &cp), 3); // U+D7FF, just below surrogates
    ck_assert_uint_eq(cp, 0xD7FF);
}
END_TEST

START_TEST(test_decode_rejects) {
    uint32_t cp;
    ck_assert_int_eq(decode("\xC0\xAF", 2, &cp), 0);             // overlong '/'
    ck_assert_int_eq(decode("\xC1\xBF", 2, &cp), 0);             // overlong
    ck_assert_int_eq(decode("\xE0\x80\xAF", 3, &cp), 0);         // overlong 3-byte
    ck_assert_int_eq(decode("\xF0\x80\x80\xAF", 4, &cp), 0);     // overlong 4-byte
    ck_assert_int_eq(decode("\xED\xA0\x80", 3, &cp), 0);         // U+D800
    ck_assert_int_eq(decode("\xED\xBF\xBF", 3, &cp), 0);         // U+DFFF
    ck_assert_int_eq(decode("\xF4\x90\x80\x80", 4, &cp), 0);     // U+110000
    ck_assert_int_eq(decode("\xF8\x88\x80\x80\x80", 5, &cp), 0); // 5-byte form
    ck_assert_int_eq(decode("\x80", 1, &cp), 0);                 // lone continuation
    ck_assert_int_eq(decode("\xFF", 1, &cp), 0);
    ck_assert_int_eq(decode("\xE2\x82", 2, &cp), 0);     // truncated by length
    ck_assert_int_eq(decode("\xE2\x82\x41", 3, &cp), 0); // continuation replaced
    ck_assert_int_eq(decode("", 0, &cp), 0);
}
END_TEST

START_TEST(test_find_invalid_offsets) {
    const char *ok = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80!";
    ck_assert_int_eq(utf8_find_invalid(ok, strlen(ok)), -1);
    ck_assert_int_eq(utf8_find_invalid("", 0), -1);
    // The offset is the first byte of the bad sequence, after valid multi-byte chars.
    const char *a = "\xC3\xA9\xE2\x82\xAC"
                    "ab\xC0\xAFz";
    ck_assert_int_eq(utf8_find_invalid(a, strlen(a)), 7);
    const char *b = "abc\xED\xA0\x80";
    ck_assert_int_eq(utf8_find_invalid(b, strlen(b)), 3);
    const char *c = "abcd\xF0\x9F\x98"; // truncated at the end of the buffer
    ck_assert_int_eq(utf8_find_invalid(c, strlen(c)), 4);
    const char *d = "x\xF4\x90\x80\x80";
    ck_assert_int_eq(utf8_find_invalid(d, strlen(d)), 1);
    // A NUL inside the buffer is valid U+0000; the length governs, not the terminator.
    ck_assert_int_eq(utf8_find_invalid("a\0\x80", 3), 2);
}
END_TEST

START_TEST(test_count_and_encode) {
    const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    ck_assert_uint_eq(utf8_count(s, strlen(s)), 4);
    ck_assert_uint_eq(utf8_count("", 0), 0);
    const uint32_t cps[] = {0x0, 0x41, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
    const int lens[] = {1, 1, 1, 2, 2, 3, 3, 4, 4};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        uint32_t back = 0xFFFFFFFF;
        int n = utf8_encode(cps[i], buf);
        ck_assert_int_eq(n, lens[i]);
        ck_assert_int_eq(decode(buf, (size_t)n, &back), n);
        ck_assert_uint_eq(back, cps[i]);
    }
    char buf[4];
    ck_assert_int_eq(utf8_encode(0x20AC, buf), 3);
    ck_assert_mem_eq(buf, "\xE2\x82\xAC", 3);
}
END_TEST

START_TEST(test_cut_at_boundaries) {
    static const struct {
        const char *s;
        size_t max, want;
    } cases[] = {
        {"abc", 5, 3},           // fits
        {"abc", 3, 3},           // exactly
        {"abcd", 3, 3},          // ASCII cut anywhere
        {"a\xE2\x82\xAC", 3, 1}, // would split the euro sign: before it
        {"a\xE2\x82\xAC", 2, 1}, // likewise
        {"a\xE2\x82\xAC"
         "b",
         4, 4}, // after it
        {"\xF0\x9F\x98\x80\xF0\x9F\x98\x80", 7, 4},
        {"\xC3\xA9", 1, 0}, // not even one char fits
        {"", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        size_t got = utf8_cut(cases[i].s, strlen(cases[i].s), cases[i].max);
        ck_assert_msg(got == cases[i].want, "case %zu: %zu, not %zu", i, got, cases[i].want);
        ck_assert_int_eq(utf8_find_invalid(cases[i].s, got), -1);
    }
}
END_TEST

// Each row: input, its length, the output cap, what comes out, and the input consumed.
typedef struct {
    const char *in;
    size_t len, cap;
    const char *out;
    size_t used;
} CopyCase;

static void check_copies(size_t (*copy)(const char *, size_t, char *, size_t),
                         const CopyCase *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char out[64];
        memset(out, 'Z', sizeof(out));
        ck_assert(cases[i].cap <= sizeof(out));
        size_t used = copy(cases[i].in, cases[i].len, out, cases[i].cap);
        ck_assert_msg(strcmp(out, cases[i].out) == 0, "case %zu: '%s', not '%s'", i, out,
                      cases[i].out);
        ck_assert_msg(used == cases[i].used, "case %zu: used %zu, not %zu", i, used, cases[i].used);
        ck_assert_int_eq(utf8_find_invalid(out, strlen(out)), -1);
    }
}

START_TEST(test_sanitize) {
    static const CopyCase cases[] = {
        {"plain", 5, 64, "plain", 5},
        {"caf\xC3\xA9 \xE2\x82\xAC", 9, 64, "caf\xC3\xA9 \xE2\x82\xAC", 9}, // valid: unchanged
        {"\xff", 1, 64, "\xEF\xBF\xBD", 1},                                 // a bad byte: U+FFFD
        {"a\xE2\x82", 3, 64, "a\xEF\xBF\xBD\xEF\xBF\xBD", 3},               // cut sequence: each
        {"\xC0\xAF/", 3, 64, "\xEF\xBF\xBD\xEF\xBF\xBD/", 3},               // overlong
        {"\xED\xA0\x80", 3, 64, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 3}, // surrogate
        {"ab\xE2\x82\xAC", 5, 5, "ab", 2}, // the euro sign would not fit whole
        {"ab\xff", 3, 5, "ab", 2},         // nor would U+FFFD
        {"ab\xE2\x82\xAC", 5, 6, "ab\xE2\x82\xAC", 5},
        {"x", 1, 1, "", 0},
        {"a\nb\"", 4, 64, "a\nb\"", 4}, // control chars are JSON's to escape
    };
    check_copies(utf8_sanitize, cases, sizeof(cases) / sizeof(*cases));
}
END_TEST

START_TEST(test_escape) {
    static const CopyCase cases[] = {
        {"plain \xE2\x82\xAC", 9, 64, "plain \xE2\x82\xAC", 9},
        {"a\nb", 3, 64, "a\\nb", 3},
        {"\r\t\\", 3, 64, "\\r\\t\\\\", 3},
        {"\x1b[2J\x7f", 5, 64, "\\x1b[2J\\x7f", 5},
        {"\xff\xE2\x82", 3, 64, "\\xff\\xe2\\x82", 3},
        {"n\0m", 3, 64, "n\\x00m", 3},
        {"ab\ncd", 5, 4, "ab", 2}, // an escape is never cut
        {"ab\ncd", 5, 5, "ab\\n", 3},
        {"\"q\"", 3, 64, "\"q\"", 3},
    };
    check_copies(utf8_escape, cases, sizeof(cases) / sizeof(*cases));
}
END_TEST

int main(void) {
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_decode_lengths);
    tcase_add_test(tc, test_decode_rejects);
    tcase_add_test(tc, test_find_invalid_offsets);
    tcase_add_test(tc, test_count_and_encode);
    tcase_add_test(tc, test_cut_at_boundaries);
    tcase_add_test(tc, test_sanitize);
    tcase_add_test(tc, test_escape);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
