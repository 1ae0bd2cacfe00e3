/*
 * The corpus: a UTF-8 file as token ids (a vocabulary built from it, or a given one with
 * unknown characters as -1), its train/validation split counted in characters, its
 * SHA-256, the errors that name the file, and random training windows that stay inside
 * the training part.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corpus.h"
#include "error.h"
#include "rng.h"
#include "testutil.h"
#include "utf8.h"
#include "vocab.h"

// Writes len bytes of text to <tu_dir>/corpus.txt and loads it; the file's path is in path.
static int load(const char *text, size_t len, Vocab *vocab, double val_frac, Corpus *c, char *err,
                char path[4096]) {
    snprintf(path, 4096, "%s/corpus.txt", tu_dir);
    char *p = tu_write_file(tu_dir, "corpus.txt", text, len);
    ck_assert_ptr_nonnull(p);
    free(p);
    return corpus_load(c, path, vocab, val_frac, err);
}

START_TEST(test_vocab_built_sorted_and_ids) {
    // b a é ␠ a b ⏎ : five distinct code points, é as two bytes.
    const char *text = "ba\xC3\xA9 ab\n";
    Vocab v = {0};
    Corpus c;
    char err[ERR_LEN], path[4096];
    ck_assert_msg(load(text, strlen(text), &v, 0.1, &c, err, path) == 0, "%s", err);
    const uint32_t chars[] = {'\n', ' ', 'a', 'b', 0xE9};
    const int ids[] = {3, 2, 4, 1, 2, 3, 0};
    ck_assert_int_eq(v.size, 5);
    for (int i = 0; i < 5; i++) ck_assert_uint_eq(v.chars[i], chars[i]);
    ck_assert_uint_eq(c.n, 7);
    for (int i = 0; i < 7; i++) ck_assert_int_eq(c.ids[i], ids[i]);

    // The ids and the vocabulary give the file's bytes back.
    char back[64];
    size_t len = 0;
    for (size_t i = 0; i < c.n; i++) len += (size_t)utf8_encode(v.chars[c.ids[i]], back + len);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_mem_eq(back, text, len);
    corpus_free(&c);
    ck_assert_ptr_null(c.ids);
    vocab_free(&v);
}
END_TEST

START_TEST(test_split_sizes) {
    // Ten characters in fifteen bytes: the split counts characters. n_train = n - floor(n *
    // val_frac), the validation part being the end of the text.
    const char *text = "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                       "12345";
    const struct {
        double val_frac;
        size_t n_train;
    } cases[] = {{0.1, 9}, {0.25, 8}, {0.5, 5}, {0.05, 10}, {0.99, 1}, {1.0, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Vocab v = {0};
        Corpus c;
        char err[ERR_LEN], path[4096];
        ck_assert_msg(load(text, strlen(text), &v, cases[k].val_frac, &c, err, path) == 0, "%s",
                      err);
        ck_assert_uint_eq(c.n, 10);
        ck_assert_msg(c.n_train == cases[k].n_train, "val_frac %g: n_train %zu, expected %zu",
                      cases[k].val_frac, c.n_train, cases[k].n_train);
        corpus_free(&c);
        vocab_free(&v);
    }
}
END_TEST

START_TEST(test_sha256_of_the_file) {
    // FIPS 180-2's first example, "abc".
    Vocab v = {0};
    Corpus c;
    char err[ERR_LEN], path[4096];
    ck_assert_int_eq(load("abc", 3, &v, 0.1, &c, err, path), 0);
    ck_assert_str_eq(c.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    corpus_free(&c);
    vocab_free(&v);

    // A longer, multi-byte text against coreutils' sha256sum.
    char *text = tu_sample_text(5000);
    memcpy(text + 100, "\xE2\x82\xAC", 3);
    ck_assert_int_eq(load(text, strlen(text), &v, 0.1, &c, err, path), 0);
    char cmd[4200], *out;
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    ck_assert_int_eq(tu_run(cmd, &out, NULL), 0);
    ck_assert_uint_ge(strlen(out), 64);
    ck_assert_mem_eq(c.sha256, out, 64);
    ck_assert_uint_eq(c.n, strlen(text) - 2);
    free(out);
    free(text);
    corpus_free(&c);
    vocab_free(&v);
}
END_TEST

START_TEST(test_invalid_utf8_offset) {
    const struct {
        const char *text;
        size_t len;
        long offset;
    } cases[] = {
        {"ab\xC3(", 4, 2},                       // a lead byte without its continuation
        {"hello\x80", 6, 5},                     // a lone continuation byte
        {"\xFF rest", 6, 0},                     // never valid
        {"\xC3\xA9\xC0\xAF", 4, 2},              // overlong '/', after a valid two-byte char
        {"abc\xED\xA0\x80 def", 10, 3},          // a surrogate
        {"x\xE2\x82\xAC yz\xF0\x9F\x98", 10, 7}, // cut short by the end of the file
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Vocab v = {0};
        Corpus c;
        char err[ERR_LEN] = "", path[4096], want[4200];
        ck_assert_int_eq(load(cases[k].text, cases[k].len, &v, 0.1, &c, err, path), -1);
        snprintf(want, sizeof want, "%s: invalid UTF-8 at byte offset %ld", path, cases[k].offset);
        ck_assert_str_eq(err, want);
        ck_assert_ptr_null(c.ids);
        ck_assert_int_eq(v.size, 0); // nothing was built from a bad file
    }
}
END_TEST

START_TEST(test_missing_empty_and_nul) {
    Vocab v = {0};
    Corpus c;
    char err[ERR_LEN], path[4096];
    char want[4200];
    snprintf(path, sizeof path, "%s/absent.txt", tu_dir);
    ck_assert_int_eq(corpus_load(&c, path, &v, 0.1, err), -1);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(c.ids);
    ck_assert_int_eq(corpus_load(&c, tu_dir, &v, 0.1, err), -1);
    snprintf(want, sizeof want, "%s: is a directory", tu_dir);
    ck_assert_str_eq(err, want);

    ck_assert_int_eq(load("", 0, &v, 0.1, &c, err, path), -1);
    snprintf(want, sizeof want, "%s: the file is empty", path);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(c.ids);

    // U+0000 is valid UTF-8 but cannot be in a vocabulary (vocab.json could not carry it).
    ck_assert_int_eq(load("ab\0c", 4, &v, 0.1, &c, err, path), -1);
    ck_assert_str_eq(err, "NUL character at byte offset 2");
    ck_assert_ptr_null(c.ids);
    ck_assert_int_eq(v.size, 0);
}
END_TEST

START_TEST(test_given_vocab_marks_unknown) {
    Vocab v = {0};
    char err[ERR_LEN], path[4096];
    ck_assert_int_eq(vocab_build(&v, "cab", 3, err), 0);
    Corpus c;
    const char *text = "abxc\xC3\xA9"
                       "a\n";
    ck_assert_msg(load(text, strlen(text), &v, 0.5, &c, err, path) == 0, "%s", err);
    const int ids[] = {0, 1, -1, 2, -1, 0, -1};
    ck_assert_uint_eq(c.n, 7);
    for (int i = 0; i < 7; i++) ck_assert_int_eq(c.ids[i], ids[i]);
    ck_assert_uint_eq(c.n_train, 4);
    ck_assert_int_eq(v.size, 3); // the given vocabulary is used as it is
    corpus_free(&c);
    vocab_free(&v);
}
END_TEST

/* Unknown chars leave both splits, each keeping its own chars in order: the split point
 * moves by the unknowns before it. */
START_TEST(test_drop_unknown_compacts_each_split) {
    const struct {
        const char *text; // over the vocabulary "abc"; x, y are unknown
        double val_frac;
        const char *train, *val; // what is left of each split
    } rows[] = {
        {"abxcyaab", 0.5, "abc", "aab"}, // 8 chars: train "abxc", val "yaab"
        {"xxabcabc", 0.25, "abca", "bc"}, {"abcabcxy", 0.25, "abcabc", ""},
        {"xyxyaaaa", 0.5, "", "aaaa"},    {"abcaabca", 0.5, "abca", "abca"}, // nothing to drop
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        Vocab v = {0};
        char err[ERR_LEN], path[4096];
        ck_assert_int_eq(vocab_build(&v, "abc", 3, err), 0);
        Corpus c;
        ck_assert_msg(load(rows[r].text, 8, &v, rows[r].val_frac, &c, err, path) == 0, "%s", err);
        size_t nt = strlen(rows[r].train), nv = strlen(rows[r].val);
        ck_assert_uint_eq(corpus_drop_unknown(&c), 8 - nt - nv);
        ck_assert_uint_eq(c.n_train, nt);
        ck_assert_uint_eq(c.n, nt + nv);
        for (size_t i = 0; i < c.n; i++) {
            char want = i < nt ? rows[r].train[i] : rows[r].val[i - nt];
            ck_assert_msg(c.ids[i] == want - 'a', "row %zu id %zu: %d", r, i, c.ids[i]);
        }
        corpus_free(&c);
        vocab_free(&v);
    }
}
END_TEST

// A corpus of n distinct code points in ascending order, so that id == position.
static void load_positions(size_t n, double val_frac, Corpus *c, Vocab *v) {
    char *text = malloc(n * 2), err[ERR_LEN], path[4096];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += (size_t)utf8_encode(0x100 + (uint32_t)i, text + len);
    *v = (Vocab){0};
    ck_assert_msg(load(text, len, v, val_frac, c, err, path) == 0, "%s", err);
    free(text);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(c->ids[i], (int)i);
}

START_TEST(test_windows_inside_training_part) {
    enum { T = 8, B = 64, BATCHES = 40 };
    Corpus c;
    Vocab v;
    load_positions(200, 0.25, &c, &v);
    ck_assert_uint_eq(c.n_train, 150);
    const size_t starts = c.n_train - T; // a window is T inputs and the target after them
    int seen[150] = {0};
    int inputs[T * B], targets[T * B];
    Rng rng;
    rng_seed(&rng, 42);
    for (int k = 0; k < BATCHES; k++) {
        corpus_batch(&c, &rng, T, B, inputs, targets);
        for (int b = 0; b < B; b++) {
            int at = inputs[b];
            ck_assert_int_ge(at, 0);
            ck_assert_uint_lt((size_t)at, starts);
            seen[at] = 1;
            for (int t = 0; t < T; t++) {
                ck_assert_int_eq(inputs[t * B + b], at + t);
                ck_assert_int_eq(targets[t * B + b], at + t + 1);
            }
            ck_assert_uint_lt((size_t)targets[(T - 1) * B + b], c.n_train);
        }
    }
    // 2560 draws over 142 starts reach every one of them, the last included.
    for (size_t s = 0; s < starts; s++) ck_assert_msg(seen[s], "start %zu never drawn", s);
    corpus_free(&c);
    vocab_free(&v);
}
END_TEST

START_TEST(test_windows_deterministic_for_a_seed) {
    enum { T = 5, B = 16 };
    Corpus c;
    Vocab v;
    load_positions(100, 0.1, &c, &v);
    int in1[T * B], tg1[T * B], in2[T * B], tg2[T * B];
    Rng r1, r2;
    rng_seed(&r1, 7);
    rng_seed(&r2, 7);
    for (int k = 0; k < 3; k++) {
        corpus_batch(&c, &r1, T, B, in1, tg1);
        corpus_batch(&c, &r2, T, B, in2, tg2);
        ck_assert_mem_eq(in1, in2, sizeof in1);
        ck_assert_mem_eq(tg1, tg2, sizeof tg1);
    }
    rng_seed(&r2, 8);
    corpus_batch(&c, &r2, T, B, in2, tg2);
    ck_assert_msg(memcmp(in1, in2, sizeof in1) != 0, "seeds 7 and 8 drew the same windows");
    corpus_free(&c);
    vocab_free(&v);
}
END_TEST

int main(void) {
    Suite *s = suite_create("corpus");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_add_test(tc, test_vocab_built_sorted_and_ids);
    tcase_add_test(tc, test_split_sizes);
    tcase_add_test(tc, test_sha256_of_the_file);
    tcase_add_test(tc, test_invalid_utf8_offset);
    tcase_add_test(tc, test_missing_empty_and_nul);
    tcase_add_test(tc, test_given_vocab_marks_unknown);
    tcase_add_test(tc, test_drop_unknown_compacts_each_split);
    tcase_add_test(tc, test_windows_inside_training_part);
    tcase_add_test(tc, test_windows_deterministic_for_a_seed);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
