/*
 * Model folders: a model.safetensors and its vocab.json load as a pair, checked against
 * each other (vocab size and sha256) and against the hyperparameters in the metadata
 * (every tensor present, none extra, each of the expected shape).
 */
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

// Saves a model folder from text; returns the model for comparison.
static void make_dir(const char *sub, Model *m, Vocab *v) {
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", tu_dir, sub);
    ck_assert_int_eq(tu_make_model_dir(path, "hello, w\xC3\xB6rld!\n", 6, 8, 2, 5), 0);
    ck_assert_int_eq(artefacts_load(path, m, v, NULL, err), 0);
}

static void expect_load_error(const char *sub, const char *fragment) {
    char path[4096], err[ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/%s", tu_dir, sub);
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
    snprintf(path, sizeof path, "%s/m", tu_dir);
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
    snprintf(path, sizeof path, "%s/m/vocab.json", tu_dir);
    char *vbytes = tu_read_file(path, &vlen);
    sha256_hex(vbytes, vlen, sha);
    ck_assert_str_eq(info.vocab_sha256, sha);
    free(vbytes);
    ck_assert_int_eq(model_init(&fresh, &m.config, 5, err), 0);
    ck_assert_mem_eq(m.params, fresh.params, m.num_params * sizeof(float));

    // Saving into the folder with an explicit hash gives the same file again.
    snprintf(path, sizeof path, "%s/m/model.safetensors", tu_dir);
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
    snprintf(path, sizeof path, "%s/nope", tu_dir);
    ck_assert_int_eq(artefacts_load(path, &m, &v, &info, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "nope: No such file or directory"));
    snprintf(path, sizeof path, "%s/empty", tu_dir);
    ck_assert_int_eq(dir_ensure(path, err), 0);
    ck_assert_int_eq(artefacts_load(path, &m, &v, &info, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "empty/vocab.json: No such file or directory"));
    make_dir("m", &m, &v);
    snprintf(path, sizeof path, "%s/m/model.safetensors", tu_dir);
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
    snprintf(sub, sizeof sub, "%s/m", tu_dir);
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

// Rewrites <tu_dir>/m/model.safetensors from m with tensor `skip` left out, tensor `reshape`
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
    snprintf(path, sizeof path, "%s/m/vocab.json", tu_dir);
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
    snprintf(path, sizeof path, "%s/m/model.safetensors", tu_dir);
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
    snprintf(path, sizeof path, "%s/m", tu_dir);
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
    snprintf(path, sizeof path, "%s/m/vocab.json", tu_dir);
    size_t vlen;
    char *vbytes = tu_read_file(path, &vlen);
    sha256_hex(vbytes, vlen, sha);
    free(vbytes);
    snprintf(header + h, sizeof header - h,
             "\"__metadata__\": {\"format\": \"pt\", \"layers\": \"2\", \"hidden\": \"8\", "
             "\"embed\": \"6\", \"vocab_size\": \"12\", \"vocab_sha256\": \"%s\"} }",
             sha);
    char *p = tu_write_safetensors(tu_dir, "m/model.safetensors", header, data, off);
    free(p);
    free(data);

    Model m2;
    Vocab v2;
    ModelInfo info;
    char err[ERR_LEN];
    snprintf(path, sizeof path, "%s/m", tu_dir);
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
    Suite *s = suite_create("artefacts");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_add_test(tc, test_artefacts_round_trip);
    tcase_add_test(tc, test_artefacts_missing);
    tcase_add_test(tc, test_vocab_mismatch);
    tcase_add_test(tc, test_tensor_checks);
    tcase_add_test(tc, test_foreign_layout_loads);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
