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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "artefacts.h"
#include "error.h"
#include "fileio.h"
#include "infer.h"
#include "safetensors.h"
#include "testutil.h"

// Every tensor of a equals b's, wherever each model keeps them.
static void expect_same_weights(const Model *a, const Model *b) {
    ModelTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&a->config, t);
    ck_assert_uint_eq(a->num_params, b->num_params);
    for (int i = 0; i < n; i++)
        ck_assert_mem_eq(model_tensor(a, i), model_tensor(b, i), t[i].count * sizeof(float));
}

// Saves a model folder from text; returns the model, loaded, then copied into a buffer of
// its own that the test may change (a loaded model's weights are the file's bytes, read-only).
static void make_dir(const char *sub, Model *m, Vocab *v, ModelInfo *info) {
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", tu_dir, sub);
    ck_assert_int_eq(tu_make_model_dir(path, "hello, w\xC3\xB6rld!\n", 6, 8, 2, 5), 0);
    Model loaded;
    ck_assert_int_eq(artefacts_load(path, &loaded, v, info, err), 0);
    ck_assert_int_eq(model_alloc(m, &loaded.config, err), 0);
    ModelTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&m->config, t);
    for (int i = 0; i < n; i++)
        memcpy(m->params + t[i].offset, model_tensor(&loaded, i), t[i].count * sizeof(float));
    model_free(&loaded);
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
    ck_assert_ptr_null(m.map);
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
    expect_same_weights(&m, &fresh);
    // The weights are the file's bytes as read (read-only): no buffer of parameters, every
    // tensor inside them.
    ck_assert_ptr_null(m.params);
    ck_assert_ptr_nonnull(m.map);
    ModelTensor mt[MODEL_MAX_TENSORS];
    int nt = model_tensors(&m.config, mt);
    for (int i = 0; i < nt; i++) {
        const char *p = (const char *)model_tensor(&m, i), *base = m.map;
        ck_assert(p >= base && p + mt[i].count * sizeof(float) <= base + m.map_len);
    }

    // Saving into the folder with an explicit hash gives the same file again.
    snprintf(path, sizeof path, "%s/m/model.safetensors", tu_dir);
    size_t len1, len2;
    char *before = tu_read_file(path, &len1);
    ck_assert_int_eq(artefacts_save_model(path, &m, &info, err), 0);
    char *after = tu_read_file(path, &len2);
    ck_assert_uint_eq(len1, len2);
    ck_assert_mem_eq(before, after, len1);
    free(before), free(after);

    // Without its weights in training layout the model infers as before, from its copy.
    InferScratch scratch;
    StreamState a, b;
    ck_assert_int_eq(infer_scratch_alloc(&scratch, &m.config, 1, err), 0);
    ck_assert_int_eq(stream_state_alloc(&a, &m.config, err), 0);
    ck_assert_int_eq(stream_state_alloc(&b, &m.config, err), 0);
    float before_drop[12], after_drop[12];
    int id = 3;
    StreamState *sa = &a, *sb = &b;
    infer_step(&m, &scratch, 1, &id, &sa, before_drop);
    model_drop_weights(&m);
    ck_assert_ptr_null(m.map);
    ck_assert_ptr_null(m.w.embedding);
    ck_assert_int_eq(m.config.hidden, 8);
    ck_assert_uint_eq(m.num_params, fresh.num_params);
    infer_step(&m, &scratch, 1, &id, &sb, after_drop);
    ck_assert_mem_eq(before_drop, after_drop, sizeof before_drop);
    stream_state_free(&a);
    stream_state_free(&b);
    infer_scratch_free(&scratch);
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
    make_dir("m", &m, &v, NULL);
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
    make_dir("m", &m, &v, NULL);
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
    make_dir("m", &m, &v, NULL);
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
    make_dir("m", &m, &v, NULL);
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
    expect_same_weights(&m2, &m);
    ck_assert_int_eq(info.steps, 0);
    ck_assert(isnan(info.best_val_loss));
    model_free(&m2);
    vocab_free(&v2);
    model_free(&m);
    vocab_free(&v);
}
END_TEST

// Rewrites <tu_dir>/m/model.safetensors through f(bytes, len, data_start).
static void mangle_model(void (*f)(char *bytes, size_t *len, size_t data_start)) {
    char path[4096];
    snprintf(path, sizeof path, "%s/m/model.safetensors", tu_dir);
    size_t len;
    char *bytes = tu_read_file(path, &len);
    ck_assert_ptr_nonnull(bytes);
    uint64_t hlen;
    memcpy(&hlen, bytes, 8);
    f(bytes, &len, 8 + (size_t)hlen);
    char *p = tu_write_file(tu_dir, "m/model.safetensors", bytes, len);
    free(p), free(bytes);
}

static void all_ff(char *b, size_t *len, size_t start) {
    memset(b + start, 0xFF, *len - start);
}
static void flip_one(char *b, size_t *len, size_t start) {
    b[start + (*len - start) / 2] ^= 0x01;
}
// Renames the checksum key (same length, so the header stays valid): a file without one.
static void drop_sum(char *b, size_t *len, size_t start) {
    char *k = memmem(b, start, ST_DATA_SHA256, strlen(ST_DATA_SHA256));
    ck_assert_ptr_nonnull(k);
    k[0] = 'D';
    (void)len;
}
static void drop_sum_all_ff(char *b, size_t *len, size_t start) {
    drop_sum(b, len, start);
    all_ff(b, len, start);
}
static void cut_4(char *b, size_t *len, size_t start) {
    (void)b, (void)start;
    *len -= 4;
}

// Weights that are not what the trainer wrote never load: corrupt bytes (the checksum),
// non-finite values (even with a matching checksum, or none), a cut file.
START_TEST(test_corrupt_weights) {
    Model m;
    Vocab v;
    ModelInfo info;
    char path[4096], err[ERR_LEN];
    // A copy of its own: the file it was loaded from is about to be overwritten in place.
    make_dir("m", &m, &v, &info);
    snprintf(path, sizeof path, "%s/m/model.safetensors", tu_dir);

    mangle_model(all_ff);
    expect_load_error("m", "m/model.safetensors: tensor data checksum mismatch (file corrupt?)");
    ck_assert_int_eq(artefacts_save_model(path, &m, &info, err), 0);
    mangle_model(flip_one);
    expect_load_error("m", "m/model.safetensors: tensor data checksum mismatch (file corrupt?)");

    // Every byte 0xFF is NaN; the first element of the first tensor is named.
    ck_assert_int_eq(artefacts_save_model(path, &m, &info, err), 0);
    mangle_model(drop_sum_all_ff);
    expect_load_error("m", "m/model.safetensors: tensor embedding.weight: element 0 is NaN");
    // Written by the trainer with a good checksum, an infinity is still refused.
    ModelTensor t[MODEL_MAX_TENSORS];
    model_tensors(&m.config, t);
    float keep = m.params[t[3].offset + 5];
    m.params[t[3].offset + 5] = -INFINITY;
    ck_assert_int_eq(artefacts_save_model(path, &m, &info, err), 0);
    expect_load_error("m", "tensor lstm.bias_ih_l0: element 5 is infinite");
    m.params[t[3].offset + 5] = keep;

    ck_assert_int_eq(artefacts_save_model(path, &m, &info, err), 0);
    mangle_model(cut_4);
    expect_load_error("m", "tensor fc.bias: data_offsets");
    expect_load_error("m", "lie outside the data area");

    // Put back, it loads (with or without the checksum).
    ck_assert_int_eq(artefacts_save_model(path, &m, &info, err), 0);
    Model m2;
    Vocab v2;
    snprintf(path, sizeof path, "%s/m", tu_dir);
    ck_assert_msg(artefacts_load(path, &m2, &v2, NULL, err) == 0, "%s", err);
    model_free(&m2), vocab_free(&v2);
    mangle_model(drop_sum);
    ck_assert_msg(artefacts_load(path, &m2, &v2, NULL, err) == 0, "%s", err);
    expect_same_weights(&m2, &m);
    model_free(&m2), vocab_free(&v2);
    model_free(&m);
    vocab_free(&v);
}
END_TEST

// Replaces <tu_dir>/m/<name> with a special file; kind: 'f' FIFO, 'z' symlink to
// /dev/zero, 'd' directory, 's' socket.
static void make_special(const char *name, char kind) {
    char path[4096];
    snprintf(path, sizeof path, "%s/m/%s", tu_dir, name);
    ck_assert_int_eq(unlink(path), 0);
    if (kind == 'f') ck_assert_int_eq(mkfifo(path, 0644), 0);
    if (kind == 'z') ck_assert_int_eq(symlink("/dev/zero", path), 0);
    if (kind == 'd') ck_assert_int_eq(mkdir(path, 0755), 0);
    if (kind == 's') {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        close(fd);
    }
}

// A model folder of special files: refused at once with the file named, no hang (check's
// timeout fails the test if a FIFO blocks) and no endless read of /dev/zero.
START_TEST(test_special_files_refused) {
    static const struct {
        const char *file;
        char kind;
        const char *msg;
    } cases[] = {
        {"model.safetensors", 'f', "m/model.safetensors: not a regular file"},
        {"model.safetensors", 'z', "m/model.safetensors: not a regular file"},
        {"model.safetensors", 'd', "m/model.safetensors: is a directory"},
        {"model.safetensors", 's', "m/model.safetensors: not a regular file"},
        {"vocab.json", 'f', "m/vocab.json: not a regular file"},
        {"vocab.json", 'z', "m/vocab.json: not a regular file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/m", tu_dir);
        tu_rmtree(path);
        Model m;
        Vocab v;
        make_dir("m", &m, &v, NULL);
        model_free(&m), vocab_free(&v);
        make_special(cases[i].file, cases[i].kind);
        expect_load_error("m", cases[i].msg);
    }
}
END_TEST

// vocab.json is bounded before it is read.
START_TEST(test_vocab_size_cap) {
    Model m;
    Vocab v;
    make_dir("m", &m, &v, NULL);
    model_free(&m), vocab_free(&v);
    char path[4096];
    snprintf(path, sizeof path, "%s/m/vocab.json", tu_dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, (5L << 20) - 1, SEEK_SET), 0); // sparse: nothing to write
    ck_assert_int_eq(fputc(' ', f), ' ');
    ck_assert_int_eq(fclose(f), 0);
    expect_load_error("m", "m/vocab.json: larger than 4194304 bytes");
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
    tcase_add_test(tc, test_corrupt_weights);
    tcase_add_test(tc, test_vocab_size_cap);
    suite_add_tcase(s, tc);
    // Special files: a FIFO that blocked would fail here, not after ctest's 300 s.
    TCase *special = tcase_create("special");
    tcase_add_checked_fixture(special, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(special, 20);
    tcase_add_test(special, test_special_files_refused);
    suite_add_tcase(s, special);
    return tu_run_suite(s);
}
