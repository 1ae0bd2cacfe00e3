#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

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

START_TEST(test_sha256_parts) {
    char a[65], b[65];
    const void *parts[] = {"a", "", "bc"};
    size_t lens[] = {1, 0, 2};
    sha256_hex_parts(parts, lens, 3, a);
    sha256_hex("abc", 3, b);
    ck_assert_str_eq(a, b);
    sha256_hex_parts(NULL, NULL, 0, a);
    ck_assert_str_eq(a, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

// A FIFO, a symlink to /dev/zero, a directory and a socket in a fresh folder.
static char *special_files(void) {
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    snprintf(path, sizeof path, "%s/zero", dir);
    ck_assert_int_eq(symlink("/dev/zero", path), 0);
    snprintf(path, sizeof path, "%s/dir", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd); // the socket file stays
    return dir;
}

// Everything but a regular file is refused at once: a FIFO without a writer must not
// block (check's timeout fails the test if it does).
START_TEST(test_read_regular_only) {
    char *dir = special_files(), path[4096], err[ERR_LEN], *data;
    size_t len;
    static const struct {
        const char *name, *msg;
    } refused[] = {{"fifo", "not a regular file"},
                   {"zero", "not a regular file"},
                   {"dir", "is a directory"},
                   {"sock", "not a regular file"},
                   {"missing", "No such file or directory"}};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, refused[i].name);
        ck_assert_int_eq(file_read_regular(path, 0, &data, &len, err), -1);
        ck_assert_ptr_null(data);
        char want[4200];
        snprintf(want, sizeof want, "%s: %s", path, refused[i].msg);
        ck_assert_str_eq(err, want);
        struct stat st;
        ck_assert_int_eq(file_open_regular(path, &st, err), -1);
    }
    char *p = tu_write_file(dir, "ok", "0123456789", 10);
    ck_assert_int_eq(file_read_regular(p, 10, &data, &len, err), 0);
    ck_assert_uint_eq(len, 10);
    ck_assert_str_eq(data, "0123456789");
    free(data);
    // The size is checked before anything is read.
    ck_assert_int_eq(file_read_regular(p, 9, &data, &len, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "larger than 9 bytes"));
    // A symlink to a regular file is followed.
    snprintf(path, sizeof path, "%s/link", dir);
    ck_assert_int_eq(symlink(p, path), 0);
    ck_assert_int_eq(file_read_regular(path, 0, &data, &len, err), 0);
    ck_assert_uint_eq(len, 10);
    free(data);
    free(p);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

// file_read_all still reads a pipe to its end (a corpus from `<(zcat ...)`), but not a
// device that never ends.
START_TEST(test_read_all_pipe_not_device) {
    char *dir = special_files(), path[4096], err[ERR_LEN], *data;
    size_t len;
    snprintf(path, sizeof path, "%s/fifo", dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *w = fopen(path, "w");
        if (!w) _exit(1);
        fputs("piped text", w);
        _exit(fclose(w) == 0 ? 0 : 1);
    }
    ck_assert_int_eq(file_read_all(path, 0, &data, &len, err), 0);
    ck_assert_str_eq(data, "piped text");
    free(data);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    snprintf(path, sizeof path, "%s/zero", dir);
    ck_assert_int_eq(file_read_all(path, 0, &data, &len, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "zero: not a regular file or a pipe"));
    ck_assert_ptr_null(data);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

// What was read is refused when the file's size or times moved meanwhile: a rewrite in
// place shows in one of them even when it keeps the size.
START_TEST(test_check_unchanged) {
    char *dir = tu_tmpdir(), err[ERR_LEN];
    char *p = tu_write_file(dir, "f", "0123456789", 10);
    struct stat st;
    int fd = file_open_regular(p, &st, err);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(st.st_size, 10);
    ck_assert_int_eq(file_check_unchanged(fd, &st, p, err), 0);
    // Same size, another modification time (a copy of a same-sized model over it).
    struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    ck_assert_int_eq(utimensat(AT_FDCWD, p, old, 0), 0);
    ck_assert_int_eq(file_check_unchanged(fd, &st, p, err), -1);
    char want[4200];
    snprintf(want, sizeof want, "%s: changed while being read", p);
    ck_assert_str_eq(err, want);
    close(fd);
    // A shorter file (truncated by cp before it writes).
    fd = file_open_regular(p, &st, err);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(truncate(p, 4), 0);
    ck_assert_int_eq(file_check_unchanged(fd, &st, p, err), -1);
    ck_assert_str_eq(err, want);
    close(fd);
    free(p);
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
    tcase_add_test(tc, test_sha256_parts);
    tcase_add_test(tc, test_check_unchanged);
    suite_add_tcase(s, tc);
    // Special files: a FIFO that blocked would fail here, not after ctest's 300 s.
    TCase *special = tcase_create("special");
    tcase_set_timeout(special, 20);
    tcase_add_test(special, test_read_regular_only);
    tcase_add_test(special, test_read_all_pipe_not_device);
    suite_add_tcase(s, special);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
