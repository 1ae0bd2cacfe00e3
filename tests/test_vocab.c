#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "testutil.h"
#include "vocab.h"

START_TEST(test_build_sorted) {
    // é U+E9, € U+20AC, 😀 U+1F600, plus ASCII out of order and repeated.
    const char *text = "z\xF0\x9F\x98\x80 a\xE2\x82\xAC\xC3\xA9\naz\xC3\xA9";
    Vocab v;
    char err[ERR_LEN];
    ck_assert_int_eq(vocab_build(&v, text, strlen(text), err), 0);
    const uint32_t want[] = {'\n', ' ', 'a', 'z', 0xE9, 0x20AC, 0x1F600};
    ck_assert_int_eq(v.size, 7);
    for (int i = 0; i < 7; i++) ck_assert_uint_eq(v.chars[i], want[i]);
    for (int i = 0; i < 7; i++) ck_assert_int_eq(vocab_id(&v, want[i]), i);
    ck_assert_int_eq(vocab_id(&v, 'b'), -1);
    ck_assert_int_eq(vocab_id(&v, 0), -1);
    ck_assert_int_eq(vocab_id(&v, 0x10FFFF), -1);
    vocab_free(&v);
}
END_TEST

START_TEST(test_build_rejects) {
    Vocab v;
    char err[ERR_LEN];
    ck_assert_int_eq(vocab_build(&v, "", 0, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "empty"));
    ck_assert_int_eq(vocab_build(&v, "ab\xC3(", 4, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "byte offset 2"));
    ck_assert_int_eq(vocab_build(&v, "ab\0c", 4, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "NUL"));
}
END_TEST

START_TEST(test_json_round_trip) {
    const char *text = "\"quoted\"\\back\tslash\x01\x7F\n\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    Vocab v, w;
    char err[ERR_LEN];
    ck_assert_int_eq(vocab_build(&v, text, strlen(text), err), 0);
    char *json = vocab_to_json(&v);
    ck_assert_ptr_nonnull(json);
    ck_assert_ptr_nonnull(
        strstr(json, "{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": ["));
    ck_assert_ptr_nonnull(strstr(json, "\"\\u0001\""));
    ck_assert_ptr_nonnull(strstr(json, "\"\xF0\x9F\x98\x80\"")); // raw UTF-8
    ck_assert_int_eq(vocab_from_json(&w, json, strlen(json), err), 0);
    ck_assert_int_eq(w.size, v.size);
    ck_assert_mem_eq(w.chars, v.chars, (size_t)v.size * sizeof(uint32_t));
    char *again = vocab_to_json(&w);
    ck_assert_str_eq(again, json);
    free(again);
    free(json);
    vocab_free(&w);

    // Through the file, and the hash is that of the file's bytes.
    char *dir = tu_tmpdir();
    char path[4096], sha[65], sha2[65];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    ck_assert_int_eq(vocab_save(&v, path, err), 0);
    ck_assert_int_eq(vocab_load(&w, path, sha, err), 0);
    ck_assert_int_eq(w.size, v.size);
    size_t len;
    char *bytes = tu_read_file(path, &len);
    json = vocab_to_json(&v);
    ck_assert_uint_eq(len, strlen(json));
    ck_assert_mem_eq(bytes, json, len);
    ck_assert_int_eq(strlen(sha), 64);
    char *other = tu_write_file(dir, "copy.json", bytes, len);
    Vocab x;
    ck_assert_int_eq(vocab_load(&x, other, sha2, err), 0);
    ck_assert_str_eq(sha, sha2);
    vocab_free(&x);
    free(other);
    free(bytes);
    free(json);
    vocab_free(&w);
    vocab_free(&v);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_json_other_formatting) {
    // Another writer's whitespace and key order parse to the same vocabulary.
    const char *json = "{\n  \"chars\": [\"\\n\", \" \", \"a\", \"\\u00e9\"],\n  \"version\": 1,\n"
                       "  \"format\": \"charlm-vocab\"\n}\n";
    Vocab v;
    char err[ERR_LEN];
    ck_assert_int_eq(vocab_from_json(&v, json, strlen(json), err), 0);
    ck_assert_int_eq(v.size, 4);
    ck_assert_uint_eq(v.chars[3], 0xE9);
    vocab_free(&v);
}
END_TEST

static void expect_reject(const char *json, const char *fragment) {
    Vocab v = {0};
    char err[ERR_LEN] = "";
    ck_assert_msg(vocab_from_json(&v, json, strlen(json), err) == -1, "accepted: %s", json);
    ck_assert_msg(strstr(err, fragment) != NULL, "for %s: message '%s' lacks '%s'", json, err,
                  fragment);
    ck_assert_ptr_null(v.chars);
    ck_assert_int_eq(v.size, 0);
}

START_TEST(test_json_rejects) {
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"a\"",
                  "not valid JSON");
    expect_reject("[\"a\", \"b\"]", "not a JSON object");
    expect_reject("{\"format\": \"other\", \"version\": 1, \"chars\": [\"a\"]}", "format");
    expect_reject("{\"version\": 1, \"chars\": [\"a\"]}", "format");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 2, \"chars\": [\"a\"]}", "version");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": \"ab\"}",
                  "not an array");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": []}", "empty");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"a\", \"a\"]}",
                  "chars[1] duplicates chars[0]");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"a\", \"bc\"]}",
                  "chars[1] is not exactly one character");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"\"]}",
                  "chars[0] is not exactly one character");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"\xC3\xA9x\"]}",
                  "chars[0] is not exactly one character");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"b\", \"a\"]}",
                  "out of code point order");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"a\", 5]}",
                  "chars[1] is not a string");
    expect_reject("{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"\xC0\xAF\"]}",
                  "not exactly one character");
}
END_TEST

START_TEST(test_load_missing_names_path) {
    Vocab v;
    char err[ERR_LEN];
    ck_assert_int_eq(vocab_load(&v, "/nonexistent/dir/vocab.json", NULL, err), -1);
    ck_assert_str_eq(err, "/nonexistent/dir/vocab.json: No such file or directory");
    char *dir = tu_tmpdir();
    char *p = tu_write_file(dir, "vocab.json", "{\"format\": 1}", 13);
    ck_assert_int_eq(vocab_load(&v, p, NULL, err), -1);
    ck_assert_ptr_nonnull(strstr(err, p));
    ck_assert_ptr_nonnull(strstr(err, "format"));
    free(p);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Text to ids and back, table-driven: the chars the vocabulary lacks are skipped and
 * collected, each id keeps its byte offset, and decoding the ids gives the text without
 * the skipped chars. The vocabulary: "\n", " ", "a", "z", é, €, 😀. */
START_TEST(test_encode_decode) {
    const char *built = "z\xF0\x9F\x98\x80 a\xE2\x82\xAC\xC3\xA9\n";
    static const struct {
        const char *text;
        int n;
        int ids[8];
        size_t offsets[8];
        const char *unknown, *decoded;
    } rows[] = {
        {"", 0, {0}, {0}, "", ""},
        {"az", 2, {2, 3}, {0, 1}, "", "az"},
        {"a b", 2, {2, 1}, {0, 1}, "b", "a "},
        {"\xC3\xA9x\xE2\x82\xAC", 2, {4, 5}, {0, 3}, "x", "\xC3\xA9\xE2\x82\xAC"},
        {"\xF0\x9F\x98\x80\xC3\xB6\n", 2, {6, 0}, {0, 6}, "\xC3\xB6", "\xF0\x9F\x98\x80\n"},
        {"qq", 0, {0}, {0}, "qq", ""},
    };
    Vocab v;
    char err[ERR_LEN];
    ck_assert_int_eq(vocab_build(&v, built, strlen(built), err), 0);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        const char *t = rows[r].text;
        int ids[16];
        size_t off[16];
        char unknown[64], text[64], ch[5];
        size_t n = vocab_encode(&v, t, strlen(t), ids, off, unknown);
        ck_assert_uint_eq(n, (size_t)rows[r].n);
        for (size_t i = 0; i < n; i++) {
            ck_assert_int_eq(ids[i], rows[r].ids[i]);
            ck_assert_uint_eq(off[i], rows[r].offsets[i]);
            // the char at each offset is the id's
            const char *c = vocab_char(&v, ids[i], ch);
            ck_assert(strncmp(t + off[i], c, strlen(c)) == 0);
        }
        ck_assert_str_eq(unknown, rows[r].unknown);
        ck_assert_uint_eq(vocab_decode(&v, ids, n, text), strlen(rows[r].decoded));
        ck_assert_str_eq(text, rows[r].decoded);
        ck_assert_uint_eq(vocab_encode(&v, t, strlen(t), ids, NULL, NULL), n); // both optional
    }
    vocab_free(&v);
}
END_TEST

int main(void) {
    Suite *s = suite_create("vocab");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_build_sorted);
    tcase_add_test(tc, test_encode_decode);
    tcase_add_test(tc, test_build_rejects);
    tcase_add_test(tc, test_json_round_trip);
    tcase_add_test(tc, test_json_other_formatting);
    tcase_add_test(tc, test_json_rejects);
    tcase_add_test(tc, test_load_missing_names_path);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
