/* charlm-server and untrusted files: a model folder with a special file or corrupt weights
 * stops startup at once with one line and exit 1; special files in the page folder are
 * 404 at once. A hang shows as `timeout`'s exit 124 or the test case's timeout. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

static void suite_setup(void) {
    suite_model_make(2000, 8, 32, 1, 5);
}

static void suite_teardown(void) {
    suite_model_remove();
}

// A copy of the suite's model folder in a fresh directory (malloc'd path).
static char *copy_model(void) {
    char *dir = tu_tmpdir();
    const char *names[] = {"vocab.json", "model.safetensors", "train_log.jsonl"};
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", model_dir, names[i]);
        size_t len;
        char *bytes = tu_read_file(path, &len);
        ck_assert_ptr_nonnull(bytes);
        free(tu_write_file(dir, names[i], bytes, len));
        free(bytes);
    }
    return dir;
}

// Runs the server on dir; it must exit 1 with one line on stderr containing fragment.
static void expect_refused(const char *dir, const char *fragment) {
    char cmd[8192], *out, *err;
    snprintf(cmd, sizeof cmd, "timeout 10 '%s' --model '%s' --port 0", tu_bin("charlm-server"),
             dir);
    int rc = tu_run(cmd, &out, &err);
    ck_assert_msg(rc == 1, "%s: exit %d (124: it hung), stderr: %s", dir, rc, err);
    ck_assert_msg(strstr(err, fragment), "stderr '%s' lacks '%s'", err, fragment);
    char *nl = strchr(err, '\n');
    ck_assert_msg(nl && nl[1] == '\0', "not one line: '%s'", err);
    free(out);
    free(err);
}

// Rewrites dir/model.safetensors through f(bytes, &len, data_start).
static void mangle(const char *dir, void (*f)(char *b, size_t *len, size_t start)) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    char *b = tu_read_file(path, &len);
    ck_assert_ptr_nonnull(b);
    uint64_t hlen;
    memcpy(&hlen, b, 8);
    f(b, &len, 8 + (size_t)hlen);
    free(tu_write_file(dir, "model.safetensors", b, len));
    free(b);
}

static void all_ff(char *b, size_t *len, size_t start) {
    memset(b + start, 0xFF, *len - start);
}
static void flip_one(char *b, size_t *len, size_t start) {
    b[start + (*len - start) / 3] ^= 0x40;
}
static void no_sum_all_ff(char *b, size_t *len, size_t start) {
    char *k = memmem(b, start, "data_sha256", 11);
    ck_assert_ptr_nonnull(k);
    k[0] = 'D'; // same length: the header stays valid, without a checksum
    all_ff(b, len, start);
}
static void cut(char *b, size_t *len, size_t start) {
    (void)b;
    *len = start + (*len - start) / 2;
}
// tu_read_file keeps a NUL after the bytes: counting it appends a byte to the file.
static void append(char *b, size_t *len, size_t start) {
    (void)b, (void)start;
    *len += 1;
}

START_TEST(test_bad_model_refused) {
    static const struct {
        void (*f)(char *, size_t *, size_t);
        const char *msg;
    } corrupt[] = {
        {all_ff, "model.safetensors: tensor data checksum mismatch (file corrupt?)"},
        {flip_one, "model.safetensors: tensor data checksum mismatch (file corrupt?)"},
        {no_sum_all_ff, "model.safetensors: tensor embedding.weight: element 0 is NaN"},
        {cut, "lie outside the data area"},
        {append, "bytes of tensor data but the file has"},
    };
    for (size_t i = 0; i < sizeof corrupt / sizeof *corrupt; i++) {
        char *dir = copy_model();
        mangle(dir, corrupt[i].f);
        expect_refused(dir, corrupt[i].msg);
        tu_rmtree(dir);
        free(dir);
    }

    static const struct {
        const char *name;
        int fifo; // else a symlink to /dev/zero
        const char *msg;
    } special[] = {
        {"model.safetensors", 1, "model.safetensors: not a regular file"},
        {"model.safetensors", 0, "model.safetensors: not a regular file"},
        {"vocab.json", 1, "vocab.json: not a regular file"},
        {"vocab.json", 0, "vocab.json: not a regular file"},
    };
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
        char *dir = copy_model(), path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, special[i].name);
        ck_assert_int_eq(unlink(path), 0);
        if (special[i].fifo)
            ck_assert_int_eq(mkfifo(path, 0644), 0);
        else
            ck_assert_int_eq(symlink("/dev/zero", path), 0);
        expect_refused(dir, special[i].msg);
        tu_rmtree(dir);
        free(dir);
    }
}
END_TEST

// train_log.jsonl is optional: as a FIFO it is skipped (an empty curve), not waited on.
START_TEST(test_fifo_train_log_skipped) {
    char *dir = copy_model(), path[4096];
    snprintf(path, sizeof path, "%s/train_log.jsonl", dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    Srv s;
    ck_assert_int_eq(srv_start(&s, dir, NULL), 0);
    Resp r = http_get(s.port, "/model");
    ck_assert_int_eq(r.status, 200);
    cJSON *j = resp_json(&r);
    const cJSON *curve = cJSON_GetObjectItemCaseSensitive(j, "training_curve");
    ck_assert(cJSON_IsArray(curve) && cJSON_GetArraySize(curve) == 0);
    cJSON_Delete(j);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

// A FIFO, a symlink to /dev/zero, a symlink to a FIFO and a FIFO as index.html in the
// page folder: 404 at once, the server stays healthy and shuts down cleanly.
START_TEST(test_static_special_files) {
    char *dir = tu_tmpdir(), path[4096];
    free(tu_write_file(dir, "ok.txt", "fine", 4));
    snprintf(path, sizeof path, "%s/fifo.txt", dir);
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    snprintf(path, sizeof path, "%s/index.html", dir);
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    snprintf(path, sizeof path, "%s/zero.txt", dir);
    ck_assert_int_eq(symlink("/dev/zero", path), 0);
    snprintf(path, sizeof path, "%s/tofifo.txt", dir);
    ck_assert_int_eq(symlink("fifo.txt", path), 0);
    char env[4200];
    snprintf(env, sizeof env, "CHARLM_STATIC_DIR=%s", dir);
    const char *envs[] = {env, NULL};
    Srv s;
    ck_assert_int_eq(srv_start_env(&s, model_dir, NULL, envs), 0);
    const char *paths[] = {"/static/fifo.txt", "/static/zero.txt", "/static/tofifo.txt", "/",
                           "/index.html"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        Resp r = http_get(s.port, paths[i]);
        ck_assert_msg(r.status == 404, "%s -> %ld", paths[i], r.status);
        assert_error(&r, 404, NULL);
        resp_free(&r);
    }
    Resp r = http_get(s.port, "/static/ok.txt");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "fine");
    resp_free(&r);
    r = http_post(s.port, "/generate", "{\"prompt\": \"a\", \"max_tokens\": 3}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_files");
    TCase *tc = tcase_create("files");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    // Generous for the sanitizer build on a busy machine; a hang still fails well before
    // ctest's timeout.
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_model_refused);
    tcase_add_test(tc, test_fifo_train_log_skipped);
    tcase_add_test(tc, test_static_special_files);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
