#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "fileio.h"
#include "testutil.h"

START_TEST(test_sha256_vectors) {
    char hex[65];
    sha256_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_atomic_write_and_read) {
    char *dir = tu_tmpdir();
    char path[4096], tmp[4200], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    ck_assert_int_eq(dir_ensure(path, err), 0);
    ck_assert_int_eq(dir_ensure(path, err), 0); // already there is fine
    snprintf(path, sizeof path, "%s/a/b/c/out.bin", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const void *parts[] = {"hello ", "", "world"};
    size_t lens[] = {6, 0, 5};
    ck_assert_int_eq(file_write_atomic(path, parts, lens, 3, err), 0);
    char *data;
    size_t len;
    ck_assert_int_eq(file_read_all(path, 0, &data, &len, err), 0);
    ck_assert_uint_eq(len, 11);
    ck_assert_str_eq(data, "hello world"); // NUL-terminated
    free(data);
    struct stat st;
    ck_assert_int_ne(stat(tmp, &st), 0);

    // Overwrites replace the whole file.
    const void *one[] = {"x"};
    size_t onelen[] = {1};
    ck_assert_int_eq(file_write_atomic(path, one, onelen, 1, err), 0);
    ck_assert_int_eq(file_read_all(path, 0, &data, &len, err), 0);
    ck_assert_uint_eq(len, 1);
    free(data);

    // Renaming over a directory fails: an error naming the path, the old target intact,
    // and no temp file left behind.
    snprintf(path, sizeof path, "%s/a/b", dir);
    snprintf(tmp, sizeof tmp, "%s/a/b.tmp", dir);
    ck_assert_int_eq(file_write_atomic(path, one, onelen, 1, err), -1);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_int_ne(stat(tmp, &st), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));

    snprintf(path, sizeof path, "%s/missing/out.bin", dir);
    ck_assert_int_eq(file_write_atomic(path, one, onelen, 1, err), -1);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));

    ck_assert_int_eq(file_read_all(path, 0, &data, &len, err), -1);
    ck_assert_ptr_null(data);
    char want[4200];
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    ck_assert_str_eq(err, want);
    snprintf(path, sizeof path, "%s/a", dir);
    ck_assert_int_eq(file_read_all(path, 0, &data, &len, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "is a directory"));

    // dir_ensure on a path that is a file.
    snprintf(path, sizeof path, "%s/a/b/c/out.bin", dir);
    ck_assert_int_eq(dir_ensure(path, err), -1);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_read_large) {
    // Larger than any single stdio buffer, with bytes of every value.
    char *dir = tu_tmpdir(), err[ERR_LEN];
    size_t n = 3 * 1000 * 1000 + 7;
    char *buf = malloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = (char)(i * 31 + (i >> 9));
    char *path = tu_write_file(dir, "big", buf, n);
    char *data;
    size_t len;
    ck_assert_int_eq(file_read_all(path, 0, &data, &len, err), 0);
    ck_assert_uint_eq(len, n);
    ck_assert_mem_eq(data, buf, n);
    ck_assert_int_eq(data[n], 0);
    free(data);
    free(buf);
    free(path);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("fileio");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_atomic_write_and_read);
    tcase_add_test(tc, test_read_large);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
