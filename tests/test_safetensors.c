#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artefacts.h"
#include "error.h"
#include "fileio.h"
#include "safetensors.h"
#include "testutil.h"

static char *dir;

static void setup(void) {
    dir = tu_tmpdir();
    ck_assert_ptr_nonnull(dir);
}

static void teardown(void) {
    tu_rmtree(dir);
    free(dir);
}

// A safetensors file from a literal header and raw data; returns its path (malloc'd).
static char *write_raw(const char *name, const char *header, const void *data, size_t dlen) {
    size_t hlen = strlen(header);
    char *buf = malloc(8 + hlen + dlen);
    uint64_t le = hlen;
    memcpy(buf, &le, 8);
    memcpy(buf + 8, header, hlen);
    if (dlen) memcpy(buf + 8 + hlen, data, dlen);
    char *path = tu_write_file(dir, name, buf, 8 + hlen + dlen);
    free(buf);
    return path;
}

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
    char *path = write_raw("bad.safetensors", header, zeros, dlen);
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
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
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
    char *p5 = tu_write_file(dir, "five.safetensors", "\x10\0\0\0\0", 5);
    expect_open_error(p5, "file too short (5 bytes)");
    char *p0 = tu_write_file(dir, "empty.safetensors", "", 0);
    expect_open_error(p0, "file too short (0 bytes)");

    // Header length claims more than the file holds.
    char buf[16] = {0};
    uint64_t big = 1000;
    memcpy(buf, &big, 8);
    memcpy(buf + 8, "{}      ", 8);
    char *pl = tu_write_file(dir, "long.safetensors", buf, 16);
    expect_open_error(pl, "header length 1000 is larger than the file (16 bytes)");
    uint64_t absurd = 0xFFFFFFFFFFFFFF00ULL;
    memcpy(buf, &absurd, 8);
    char *pa = tu_write_file(dir, "absurd.safetensors", buf, 16);
    expect_open_error(pa, "is absurd");

    // A cut-off file: the header is whole but the data is not, so offsets fall outside.
    float d[4] = {1, 2, 3, 4};
    char *pt =
        write_raw("cut.safetensors",
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
    char *ok = write_raw("pad.safetensors", "{}      ", NULL, 0);
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

// Saves a model folder from text; returns the model for comparison.
static void make_dir(const char *sub, Model *m, Vocab *v) {
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    ck_assert_int_eq(tu_make_model_dir(path, "hello, w\xC3\xB6rld!\n", 6, 8, 2, 5), 0);
    ck_assert_int_eq(artefacts_load(path, m, v, NULL, err), 0);
}

static void expect_load_error(const char *sub, const char *fragment) {
    char path[4096], err[ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    Model m;
    Vocab v;
    ModelInfo info;
    ck_assert_msg(artefacts_load(path, &m, &v, &info, err) == -1, "%s loaded", path);
    ck_assert_msg(strstr(err, fragment) != NULL, "message '%s' lacks '%s'", err, fragment);
    ck_assert_ptr_null(m.params);
    ck_assert_ptr_null(v.chars);
}

START_TEST(test_artefacts_round_trip) {
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/m", dir);
    const char *text = "hello, w\xC3\xB6rld!\n";
    ck_assert_int_eq(tu_make_model_dir(path, text, 6, 8, 2, 5), 0);
    Model m, fresh;
    Vocab v;
    ModelInfo info;
    ck_assert_int_eq(artefacts_load(path, &m, &v, &info, err), 0);
    ck_assert_int_eq(v.size, 12);
    ck_assert_int_eq(m.config.vocab_size, 12);
    ck_assert_int_eq(m.config.embed, 6);
    ck_assert_int_eq(m.config.hidden, 8);
    ck_assert_int_eq(m.config.layers, 2);
    ck_assert_int_eq(info.steps, 0);
    ck_assert_double_eq_tol(info.best_val_loss, log(12.0), 1e-6);
    char sha[65];
    sha256_hex(text, strlen(text), sha);
    ck_assert_str_eq(info.corpus_sha256, sha);
    size_t vlen;
    snprintf(path, sizeof path, "%s/m/vocab.json", dir);
    char *vbytes = tu_read_file(path, &vlen);
    sha256_hex(vbytes, vlen, sha);
    ck_assert_str_eq(info.vocab_sha256, sha);
    free(vbytes);
    ck_assert_int_eq(model_init(&fresh, &m.config, 5, err), 0);
    ck_assert_mem_eq(m.params, fresh.params, m.num_params * sizeof(float));

    // Saving into the folder with an explicit hash gives the same file again.
    snprintf(path, sizeof path, "%s/m/model.safetensors", dir);
    size_t len1, len2;
    char *before = tu_read_file(path, &len1);
    ck_assert_int_eq(artefacts_save_model(path, &m, &info, err), 0);
    char *after = tu_read_file(path, &len2);
    ck_assert_uint_eq(len1, len2);
    ck_assert_mem_eq(before, after, len1);
    free(before), free(after);
    model_free(&m);
    model_free(&fresh);
    vocab_free(&v);
}
END_TEST

START_TEST(test_artefacts_missing) {
    char path[4096], err[ERR_LEN];
    Model m;
    Vocab v;
    ModelInfo info;
    snprintf(path, sizeof path, "%s/nope", dir);
    ck_assert_int_eq(artefacts_load(path, &m, &v, &info, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "nope: No such file or directory"));
    snprintf(path, sizeof path, "%s/empty", dir);
    ck_assert_int_eq(dir_ensure(path, err), 0);
    ck_assert_int_eq(artefacts_load(path, &m, &v, &info, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "empty/vocab.json: No such file or directory"));
    make_dir("m", &m, &v);
    snprintf(path, sizeof path, "%s/m/model.safetensors", dir);
    ck_assert_int_eq(remove(path), 0);
    expect_load_error("m", "m/model.safetensors: No such file or directory");
    model_free(&m);
    vocab_free(&v);
}
END_TEST

static char *write_text(const char *d, const char *name, const char *text) {
    return tu_write_file(d, name, text, strlen(text));
}

START_TEST(test_vocab_mismatch) {
    Model m;
    Vocab v;
    make_dir("m", &m, &v);
    // Same size, different characters: only the hash can tell.
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/m", dir);
    char *p =
        write_text(sub, "vocab.json",
                   "{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"\\n\", "
                   "\" \", \"!\", \",\", \"d\", \"e\", \"h\", \"l\", \"o\", \"r\", \"w\", \"x\"]}");
    ck_assert_ptr_nonnull(p);
    expect_load_error("m", "vocab mismatch");
    expect_load_error("m", "was trained with a vocab.json of sha256");
    expect_load_error("m", "m/model.safetensors");
    expect_load_error("m", "m/vocab.json");
    free(p);
    // A different size is caught before the hash.
    p = write_text(sub, "vocab.json",
                   "{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"a\", \"b\"]}");
    expect_load_error("m", "vocab_size 12 but");
    free(p);
    model_free(&m);
    vocab_free(&v);
}
END_TEST

// Rewrites <dir>/m/model.safetensors from m with tensor `skip` left out, tensor `reshape`
// given shape (r0, r1), and an optional extra tensor.
static void rewrite_model(const Model *m, const char *skip, const char *reshape, int64_t r0,
                          int64_t r1, const char *extra, const char *embed_meta) {
    ModelTensor t[MODEL_MAX_TENSORS];
    StTensorOut out[MODEL_MAX_TENSORS + 1];
    int n = model_tensors(&m->config, t), k = 0;
    for (int i = 0; i < n; i++) {
        if (skip && strcmp(t[i].name, skip) == 0) continue;
        out[k] = (StTensorOut){
            t[i].name, t[i].ndim, {t[i].shape[0], t[i].shape[1]}, m->params + t[i].offset};
        if (reshape && strcmp(t[i].name, reshape) == 0) out[k].shape[0] = r0, out[k].shape[1] = r1;
        k++;
    }
    if (extra) out[k++] = (StTensorOut){extra, 1, {4}, m->params};
    char path[4096], vsha[65], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/m/vocab.json", dir);
    size_t vlen;
    char *vbytes = tu_read_file(path, &vlen);
    sha256_hex(vbytes, vlen, vsha);
    free(vbytes);
    char V[16], E[16], H[16], L[16];
    snprintf(V, sizeof V, "%d", m->config.vocab_size);
    snprintf(E, sizeof E, "%d", m->config.embed);
    snprintf(H, sizeof H, "%d", m->config.hidden);
    snprintf(L, sizeof L, "%d", m->config.layers);
    StMeta meta[] = {{"vocab_size", V},
                     {"embed", embed_meta ? embed_meta : E},
                     {"hidden", H},
                     {"layers", L},
                     {"vocab_sha256", vsha}};
    snprintf(path, sizeof path, "%s/m/model.safetensors", dir);
    ck_assert_int_eq(st_write(path, out, k, meta, 5, err), 0);
}

START_TEST(test_tensor_checks) {
    Model m;
    Vocab v;
    make_dir("m", &m, &v);
    rewrite_model(&m, NULL, NULL, 0, 0, NULL, NULL);
    Model m2;
    Vocab v2;
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/m", dir);
    ck_assert_int_eq(artefacts_load(path, &m2, &v2, NULL, err), 0); // the control
    model_free(&m2);
    vocab_free(&v2);

    rewrite_model(&m, "fc.bias", NULL, 0, 0, NULL, NULL);
    expect_load_error("m", "model.safetensors: missing tensor fc.bias");
    // Same byte count, transposed: caught by the shape check against the metadata.
    rewrite_model(&m, NULL, "lstm.weight_hh_l1", 8, 32, NULL, NULL);
    expect_load_error("m", "model.safetensors: tensor lstm.weight_hh_l1 has shape [8, 32], "
                           "expected [32, 8]");
    rewrite_model(&m, NULL, NULL, 0, 0, "lstm.weight_ih_l2", NULL);
    expect_load_error("m", "unexpected tensor lstm.weight_ih_l2");
    rewrite_model(&m, NULL, NULL, 0, 0, NULL, "six");
    expect_load_error("m", "metadata \"embed\" = \"six\" is not an integer");
    rewrite_model(&m, NULL, NULL, 0, 0, NULL, "5000");
    expect_load_error("m", "metadata \"embed\" = 5000 is out of range");
    rewrite_model(&m, NULL, NULL, 0, 0, NULL, "7");
    expect_load_error("m", "tensor embedding.weight has shape [12, 6], expected [12, 7]");
    model_free(&m);
    vocab_free(&v);
}
END_TEST

START_TEST(test_foreign_layout_loads) {
    // As another tool might write it: keys sorted by name, metadata last, data stored in
    // a different order from ours, loose whitespace, no padding.
    Model m;
    Vocab v;
    make_dir("m", &m, &v);
    ModelTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&m.config, t);
    int order[MODEL_MAX_TENSORS]; // data order: reversed
    for (int i = 0; i < n; i++) order[i] = n - 1 - i;
    size_t offs[MODEL_MAX_TENSORS], off = 0;
    float *data = malloc(m.num_params * sizeof(float));
    for (int j = 0; j < n; j++) {
        int i = order[j];
        offs[i] = off;
        memcpy((char *)data + off, m.params + t[i].offset, t[i].count * sizeof(float));
        off += t[i].count * sizeof(float);
    }
    int idx[MODEL_MAX_TENSORS]; // header order: by name
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(t[idx[j]].name, t[idx[i]].name) < 0) {
                int s = idx[i];
                idx[i] = idx[j], idx[j] = s;
            }
    char header[8192], sha[65], path[4096];
    size_t h = (size_t)snprintf(header, sizeof header, "{ ");
    for (int k = 0; k < n; k++) {
        const ModelTensor *x = &t[idx[k]];
        char shape[64];
        if (x->ndim == 2)
            snprintf(shape, sizeof shape, "[%ld, %ld]", (long)x->shape[0], (long)x->shape[1]);
        else
            snprintf(shape, sizeof shape, "[%ld]", (long)x->shape[0]);
        h +=
            (size_t)snprintf(header + h, sizeof header - h,
                             "\"%s\": {\"data_offsets\": [%zu, %zu], \"shape\": %s, \"dtype\": "
                             "\"F32\"}, ",
                             x->name, offs[idx[k]], offs[idx[k]] + x->count * sizeof(float), shape);
    }
    snprintf(path, sizeof path, "%s/m/vocab.json", dir);
    size_t vlen;
    char *vbytes = tu_read_file(path, &vlen);
    sha256_hex(vbytes, vlen, sha);
    free(vbytes);
    snprintf(header + h, sizeof header - h,
             "\"__metadata__\": {\"format\": \"pt\", \"layers\": \"2\", \"hidden\": \"8\", "
             "\"embed\": \"6\", \"vocab_size\": \"12\", \"vocab_sha256\": \"%s\"} }",
             sha);
    char *p = write_raw("m/model.safetensors", header, data, off);
    free(p);
    free(data);

    Model m2;
    Vocab v2;
    ModelInfo info;
    char err[ERR_LEN];
    snprintf(path, sizeof path, "%s/m", dir);
    ck_assert_msg(artefacts_load(path, &m2, &v2, &info, err) == 0, "%s", err);
    ck_assert_uint_eq(m2.num_params, m.num_params);
    ck_assert_mem_eq(m2.params, m.params, m.num_params * sizeof(float));
    ck_assert_int_eq(info.steps, 0);
    ck_assert(isnan(info.best_val_loss));
    model_free(&m2);
    vocab_free(&v2);
    model_free(&m);
    vocab_free(&v);
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_truncated_and_length);
    tcase_add_test(tc, test_bad_json);
    tcase_add_test(tc, test_bad_entries);
    tcase_add_test(tc, test_artefacts_round_trip);
    tcase_add_test(tc, test_artefacts_missing);
    tcase_add_test(tc, test_vocab_mismatch);
    tcase_add_test(tc, test_tensor_checks);
    tcase_add_test(tc, test_foreign_layout_loads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
