/* The safetensors container: writing and reading back, and every malformed file rejected
 * with a message that names the file and what is wrong. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "safetensors.h"
#include "testutil.h"

// Opens a file that must be rejected with a message containing fragment and the path.
static void expect_open_error(const char *path, const char *fragment) {
    StFile f;
    char err[ERR_LEN] = "";
    ck_assert_msg(st_open(&f, path, err) == -1, "%s was accepted", path);
    ck_assert_msg(strstr(err, fragment) != NULL, "message '%s' lacks '%s'", err, fragment);
    ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name the file", err);
    ck_assert_ptr_null(f.bytes);
}

static void expect_header_error(const char *header, size_t dlen, const char *fragment) {
    static const float zeros[64];
    ck_assert_uint_le(dlen, sizeof zeros);
    char *path = tu_write_safetensors(tu_dir, "bad.safetensors", header, zeros, dlen);
    expect_open_error(path, fragment);
    free(path);
}

START_TEST(test_round_trip) {
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 7};
    float b[3] = {0.25f, INFINITY, -1};
    float c[24];
    for (int i = 0; i < 24; i++) c[i] = (float)i / 3.0f;
    StTensorOut t[] = {{"a", 2, {2, 3}, a}, {"b.bias", 1, {3}, b}, {"c", 3, {2, 3, 4}, c}};
    StMeta meta[] = {{"k", "v"}, {"note", "h\xC3\xA9llo \"quoted\""}};
    char err[ERR_LEN], path[4096];
    snprintf(path, sizeof path, "%s/t.safetensors", tu_dir);
    ck_assert_int_eq(st_write(path, t, 3, meta, 2, err), 0);

    // The header is padded to a multiple of 8 and the data follows in order.
    size_t len;
    char *bytes = tu_read_file(path, &len);
    uint64_t hlen;
    memcpy(&hlen, bytes, 8);
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(len, 8 + hlen + sizeof a + sizeof b + sizeof c);
    ck_assert_mem_eq(bytes + 8 + hlen, a, sizeof a);
    ck_assert_mem_eq(bytes + len - sizeof c, c, sizeof c);
    free(bytes);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_ptr_null(tu_read_file(tmp, NULL)); // the temp file was renamed away

    StFile f;
    ck_assert_int_eq(st_open(&f, path, err), 0);
    ck_assert_int_eq(st_count(&f), 3);
    ck_assert_str_eq(st_meta(&f, "k"), "v");
    ck_assert_str_eq(st_meta(&f, "note"), "h\xC3\xA9llo \"quoted\"");
    ck_assert_ptr_null(st_meta(&f, "absent"));
    float ra[6], rb[3], rc[24];
    ck_assert_int_eq(st_read(&f, "a", 2, (int64_t[]){2, 3}, ra, err), 0);
    ck_assert_int_eq(st_read(&f, "b.bias", 1, (int64_t[]){3}, rb, err), 0);
    ck_assert_int_eq(st_read(&f, "c", 3, (int64_t[]){2, 3, 4}, rc, err), 0);
    ck_assert_mem_eq(ra, a, sizeof a);
    ck_assert_mem_eq(rb, b, sizeof b);
    ck_assert_mem_eq(rc, c, sizeof c);

    ck_assert_int_eq(st_read(&f, "a", 2, (int64_t[]){3, 2}, ra, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "tensor a has shape [2, 3], expected [3, 2]"));
    ck_assert_int_eq(st_read(&f, "a", 1, (int64_t[]){6}, ra, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "has shape [2, 3], expected [6]"));
    ck_assert_int_eq(st_read(&f, "zzz", 1, (int64_t[]){6}, ra, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "missing tensor zzz"));
    st_close(&f);
}
END_TEST

START_TEST(test_truncated_and_length) {
    char *p5 = tu_write_file(tu_dir, "five.safetensors", "\x10\0\0\0\0", 5);
    expect_open_error(p5, "file too short (5 bytes)");
    char *p0 = tu_write_file(tu_dir, "empty.safetensors", "", 0);
    expect_open_error(p0, "file too short (0 bytes)");

    // Header length claims more than the file holds.
    char buf[16] = {0};
    uint64_t big = 1000;
    memcpy(buf, &big, 8);
    memcpy(buf + 8, "{}      ", 8);
    char *pl = tu_write_file(tu_dir, "long.safetensors", buf, 16);
    expect_open_error(pl, "header length 1000 is larger than the file (16 bytes)");
    uint64_t absurd = 0xFFFFFFFFFFFFFF00ULL;
    memcpy(buf, &absurd, 8);
    char *pa = tu_write_file(tu_dir, "absurd.safetensors", buf, 16);
    expect_open_error(pa, "is absurd");

    // A cut-off file: the header is whole but the data is not, so offsets fall outside.
    float d[4] = {1, 2, 3, 4};
    char *pt = tu_write_safetensors(
        tu_dir, "cut.safetensors",
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 12);
    expect_open_error(pt, "outside the data area");
    free(p5), free(p0), free(pl), free(pa), free(pt);
}
END_TEST

START_TEST(test_bad_json) {
    expect_header_error("{\"x\":{\"dtype\":\"F32\",", 0, "header is not valid JSON");
    expect_header_error("{} garbage", 0, "header is not valid JSON");
    expect_header_error("[1, 2]", 0, "header is not a JSON object");
    expect_header_error("\"x\"", 0, "header is not a JSON object");
    // Padding after the object is allowed.
    char *ok = tu_write_safetensors(tu_dir, "pad.safetensors", "{}      ", NULL, 0);
    StFile f;
    char err[ERR_LEN];
    ck_assert_int_eq(st_open(&f, ok, err), 0);
    ck_assert_int_eq(st_count(&f), 0);
    st_close(&f);
    free(ok);
}
END_TEST

START_TEST(test_bad_entries) {
    expect_header_error("{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                        "tensor x: missing dtype");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8,
                        "tensor x: missing shape");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8,
                        "tensor x: missing data_offsets");
    expect_header_error("{\"x\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8,
                        "tensor x has dtype F16, only F32 is supported");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                        "tensor x: shape does not match data_offsets");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                        "not a non-negative integer");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8,
                        "not a non-negative integer");
    // A shape whose product wraps around 2^64 must not pass for a small tensor.
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,1],"
                        "\"data_offsets\":[0,0]}}",
                        0, "shape does not match data_offsets");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                        "reversed");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
                        "data_offsets is not two non-negative integers");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16,
                        "tensor x: data_offsets [8, 24] lie outside the data area (16 bytes)");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                        12, "tensors x and y overlap");
    expect_header_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                        16, "tensor x appears twice");
    expect_header_error("{\"x\":[1,2]}", 0, "tensor x: entry is not an object");
    expect_header_error("{\"__metadata__\":{\"a\":\"1\",\"b\":2}}", 0,
                        "metadata value for \"b\" is not a string");
    expect_header_error("{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not an object");
}
END_TEST

// The writer records the data's SHA-256; the reader checks it when present.
START_TEST(test_checksum) {
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    StTensorOut t[] = {{"a", 1, {4}, a}, {"b", 1, {2}, b}};
    StMeta meta[] = {{"k", "v"}, {ST_DATA_SHA256, "a caller's value is replaced"}};
    char err[ERR_LEN], path[4096], sha[65];
    snprintf(path, sizeof path, "%s/t.safetensors", tu_dir);
    ck_assert_int_eq(st_write(path, t, 2, meta, 2, err), 0);
    StFile f;
    ck_assert_int_eq(st_open(&f, path, err), 0);
    float both[6] = {1, 2, 3, 4, 5, 6};
    sha256_hex(both, sizeof both, sha);
    ck_assert_str_eq(st_meta(&f, ST_DATA_SHA256), sha);
    ck_assert_str_eq(st_meta(&f, "k"), "v");
    st_close(&f);
    // Without metadata of its own a file still gets the checksum.
    ck_assert_int_eq(st_write(path, t, 2, NULL, 0, err), 0);
    ck_assert_int_eq(st_open(&f, path, err), 0);
    ck_assert_str_eq(st_meta(&f, ST_DATA_SHA256), sha);
    st_close(&f);

    // One flipped bit anywhere in the data is caught.
    size_t len;
    char *bytes = tu_read_file(path, &len);
    bytes[len - 5] ^= 0x10;
    char *flipped = tu_write_file(tu_dir, "flipped.safetensors", bytes, len);
    expect_open_error(flipped, "tensor data checksum mismatch (file corrupt?)");
    free(bytes), free(flipped);

    // Present, it must be a digest; absent, nothing is checked.
    float d[2] = {1, 2};
    char *p =
        tu_write_safetensors(tu_dir, "badsum.safetensors",
                             "{\"__metadata__\":{\"data_sha256\":\"abc\"},"
                             "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                             d, 8);
    expect_open_error(p, "metadata \"data_sha256\" is not a sha256 hex digest");
    free(p);
    p = tu_write_safetensors(tu_dir, "nosum.safetensors",
                             "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d,
                             8);
    ck_assert_int_eq(st_open(&f, p, err), 0);
    ck_assert_ptr_null(st_meta(&f, ST_DATA_SHA256));
    st_close(&f);
    free(p);
}
END_TEST

// The file must be exactly as long as its header says: no more, no less.
START_TEST(test_size_matches_header) {
    float d[5] = {1, 2, 3, 4, 5};
    const char *h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    char *p = tu_write_safetensors(tu_dir, "long.safetensors", h, d, 20);
    expect_open_error(p, "the header describes 16 bytes of tensor data but the file has 20");
    free(p);
    p = tu_write_safetensors(tu_dir, "short.safetensors", h, d, 15);
    expect_open_error(p, "data_offsets [0, 16] lie outside the data area (15 bytes)");
    free(p);
    // A header claiming a huge tensor is refused from the header alone (the file is tiny).
    p = tu_write_safetensors(tu_dir, "huge.safetensors",
                             "{\"x\":{\"dtype\":\"F32\",\"shape\":[1000000000000],"
                             "\"data_offsets\":[0,4000000000000]}}",
                             d, 4);
    expect_open_error(p, "lie outside the data area (4 bytes)");
    free(p);
    // Empty tensors need no data.
    p = tu_write_safetensors(tu_dir, "empty.safetensors",
                             "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
                             NULL, 0);
    StFile f;
    char err[ERR_LEN];
    ck_assert_msg(st_open(&f, p, err) == 0, "%s", err);
    st_close(&f);
    free(p);
}
END_TEST

// Only regular files are opened, without blocking on a FIFO (check's timeout would fail
// the test) or reading a device forever.
START_TEST(test_special_files) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fifo.safetensors", tu_dir);
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    expect_open_error(path, "not a regular file");
    snprintf(path, sizeof path, "%s/zero.safetensors", tu_dir);
    ck_assert_int_eq(symlink("/dev/zero", path), 0);
    expect_open_error(path, "not a regular file");
    snprintf(path, sizeof path, "%s/dir.safetensors", tu_dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    expect_open_error(path, "is a directory");
}
END_TEST

typedef struct {
    const char *path;
    const char *bytes[2];
    size_t len[2];
    int copies;
    atomic_int done;
} Rewriter;

/* Rewrites the file in place copies times, alternating two versions, as cp does: opened
 * with O_TRUNC, so that it is empty and then partly written until the last write. */
static void *rewrite_loop(void *arg) {
    Rewriter *w = arg;
    for (int i = 0; i < w->copies; i++) {
        int fd = open(w->path, O_WRONLY | O_TRUNC);
        if (fd < 0) break;
        const char *b = w->bytes[i % 2];
        for (size_t at = 0; at < w->len[i % 2];) {
            size_t n = w->len[i % 2] - at < 65536 ? w->len[i % 2] - at : 65536;
            ssize_t got = write(fd, b + at, n);
            if (got <= 0) break;
            at += (size_t)got;
        }
        close(fd);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

// A file rewritten in place while it is read is refused (or read whole, as one version or
// the other), never a fault: a mapped file truncated under its reader raises SIGBUS.
START_TEST(test_rewritten_while_read) {
    enum { N = 1 << 20 }; // 4 MB of data, so that reads and rewrites overlap
    float *data[2];
    Rewriter w = {.copies = 100};
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/moving.safetensors", tu_dir);
    for (int v = 0; v < 2; v++) {
        data[v] = malloc(N * sizeof(float));
        for (int i = 0; i < N; i++) data[v][i] = (float)(v + 1);
        StTensorOut t = {"x", 1, {N}, data[v]};
        ck_assert_int_eq(st_write(path, &t, 1, NULL, 0, err), 0);
        w.bytes[v] = tu_read_file(path, &w.len[v]);
    }
    w.path = path;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, rewrite_loop, &w), 0);
    float *got = malloc(N * sizeof(float));
    int whole = 0, refused = 0;
    while (!atomic_load(&w.done)) {
        StFile f;
        if (st_open(&f, path, err) != 0) {
            ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name the file", err);
            ck_assert_ptr_null(f.bytes);
            refused++;
            continue;
        }
        ck_assert_int_eq(st_read(&f, "x", 1, (int64_t[]){N}, got, err), 0);
        ck_assert_msg(memcmp(got, data[0], N * sizeof(float)) == 0 ||
                          memcmp(got, data[1], N * sizeof(float)) == 0,
                      "a file read while rewritten mixes the two versions");
        st_close(&f);
        whole++;
    }
    pthread_join(t, NULL);
    ck_assert_int_gt(refused, 0); // the reads did meet the rewrites
    fprintf(stderr, "rewritten while read: %d read whole, %d refused\n", whole, refused);
    for (int v = 0; v < 2; v++) {
        free(data[v]);
        free((char *)w.bytes[v]);
    }
    free(got);
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_truncated_and_length);
    tcase_add_test(tc, test_bad_json);
    tcase_add_test(tc, test_bad_entries);
    tcase_add_test(tc, test_checksum);
    tcase_add_test(tc, test_size_matches_header);
    tcase_add_test(tc, test_rewritten_while_read);
    suite_add_tcase(s, tc);
    // Special files: a FIFO that blocked would fail here, not after ctest's 300 s.
    TCase *special = tcase_create("special");
    tcase_add_checked_fixture(special, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(special, 20);
    tcase_add_test(special, test_special_files);
    suite_add_tcase(s, special);
    return tu_run_suite(s);
}
