/*
 * The model seam: architectures by name, the "arch" metadata key (an LSTM's file is written
 * without it and a file without it is an LSTM; an unknown one is refused), the LSTM's
 * table giving the bits of the LSTM's own functions, and a conformance suite over every
 * architecture.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "artefacts.h"
#include "error.h"
#include "evaluate.h"
#include "generate.h"
#include "gpt.h"
#include "infer.h"
#include "lstm.h"
#include "safetensors.h"
#include "testutil.h"

static const char *TEXT = "the cat sat on the mat.\nthe dog ran to the cat!\n";

START_TEST(test_find) {
    ck_assert_ptr_eq(arch_find("lstm"), &arch_lstm);
    ck_assert_ptr_eq(arch_find(ARCH_DEFAULT), &arch_lstm);
    ck_assert_str_eq(arch_lstm.name, "lstm");
    ck_assert_ptr_eq(arch_find("gpt"), &arch_gpt);
    ck_assert_ptr_null(arch_find("LSTM"));
    ck_assert_ptr_null(arch_find(""));
    ck_assert_ptr_null(arch_find("transformer"));
}
END_TEST

// A model folder in tu_dir/m, loaded.
static void make_model(Model *m, Vocab *v) {
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/m", tu_dir);
    ck_assert_int_eq(tu_make_model_dir(path, TEXT, 6, 8, 2, 5), 0);
    ck_assert_int_eq(artefacts_load(path, m, v, NULL, err), 0);
}

// Writes m's tensors again with the metadata of the file there, plus "arch" = arch.
static void rewrite_with_arch(const Model *m, const char *arch) {
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/m/model.safetensors", tu_dir);
    StFile f;
    ck_assert_int_eq(st_open(&f, path, err), 0);
    static const char *keys[] = {"embed", "hidden", "layers", "vocab_size", "vocab_sha256"};
    StMeta meta[6];
    char *vals[5];
    for (int i = 0; i < 5; i++) {
        ck_assert_ptr_nonnull(st_meta(&f, keys[i]));
        vals[i] = strdup(st_meta(&f, keys[i]));
        meta[i] = (StMeta){keys[i], vals[i]};
    }
    meta[5] = (StMeta){"arch", arch};
    st_close(&f);
    ModelTensor t[ARCH_MAX_TENSORS];
    StTensorOut out[ARCH_MAX_TENSORS];
    int n = m->arch->tensors(m, t);
    for (int i = 0; i < n; i++)
        out[i] = (StTensorOut){
            t[i].name, t[i].ndim, {t[i].shape[0], t[i].shape[1]}, m->arch->tensor(m, i)};
    ck_assert_int_eq(st_write(path, out, n, meta, 6, err), 0);
    for (int i = 0; i < 5; i++) free(vals[i]);
}

START_TEST(test_arch_key) {
    Model m;
    Vocab v;
    make_model(&m, &v);
    ck_assert_ptr_eq(m.arch, &arch_lstm);
    char path[4096], dir[4096], err[ERR_LEN] = "";
    snprintf(dir, sizeof dir, "%s/m", tu_dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    // An LSTM is written without the key: its bytes are those of before the seam.
    StFile f;
    ck_assert_int_eq(st_open(&f, path, err), 0);
    ck_assert_ptr_null(st_meta(&f, "arch"));
    st_close(&f);

    // Named explicitly, it loads the same.
    rewrite_with_arch(&m, "lstm");
    Model m2;
    Vocab v2;
    ck_assert_int_eq(artefacts_load(dir, &m2, &v2, NULL, err), 0);
    ck_assert_ptr_eq(m2.arch, &arch_lstm);
    ck_assert_uint_eq(m2.num_params, m.num_params);
    arch_free(&m2);
    vocab_free(&v2);

    // An architecture charlm does not know is refused, not read as an LSTM.
    rewrite_with_arch(&m, "transformer");
    ck_assert_int_eq(artefacts_load(dir, &m2, &v2, NULL, err), -1);
    ck_assert_msg(strstr(err, "metadata \"arch\" = \"transformer\" is not an architecture "
                              "charlm knows") != NULL,
                  "message: %s", err);
    ck_assert_ptr_null(m2.arch);
    ck_assert_ptr_null(v2.chars);
    arch_free(&m);
    vocab_free(&v);
}
END_TEST

START_TEST(test_lstm_fields) {
    Model m;
    Vocab v;
    make_model(&m, &v);
    ArchField f[ARCH_MAX_FIELDS];
    int n = m.arch->fields(&m, f);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(f[0].name, "embed");
    ck_assert_int_eq(f[0].number, 6);
    ck_assert_str_eq(f[1].name, "hidden");
    ck_assert_int_eq(f[1].number, 8);
    ck_assert_str_eq(f[2].name, "layers");
    ck_assert_int_eq(f[2].number, 2);
    ck_assert_int_eq(arch_field(&m, "hidden"), 8);
    ck_assert_int_eq(arch_field(&m, "heads"), 0);
    ck_assert_int_eq(m.arch->context(&m), 0); // the LSTM has no longest context
    char err[ERR_LEN];
    ck_assert_int_eq(m.arch->config_check(&m, err), 0);
    arch_free(&m);
    vocab_free(&v);
}
END_TEST

// The table's step and prefill are the LSTM's infer_step and infer_prefill, bit for bit.
START_TEST(test_lstm_inference_same_bits) {
    Model m;
    Vocab v;
    make_model(&m, &v);
    char err[ERR_LEN];
    int V = m.config.vocab_size, ids[5] = {1, 4, 2, 0, 3};
    InferScratch is;
    StreamState ref;
    ck_assert_int_eq(infer_scratch_alloc(&is, &m.config, 2, err), 0);
    ck_assert_int_eq(stream_state_alloc(&ref, &m.config, err), 0);
    void *sc = m.arch->scratch_alloc(&m, 2, err), *st = m.arch->state_alloc(&m, err);
    void *pre = m.arch->prefill_alloc(&m, 5, err), *st2 = m.arch->state_alloc(&m, err);
    ck_assert(sc && st && pre && st2);
    ck_assert(m.arch->scratch_fits(&m, sc) && m.arch->prefill_fits(&m, pre));
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    float *c = malloc((size_t)V * sizeof(float));
    StreamState *pr = &ref;
    for (int i = 0; i < 5; i++) {
        infer_step(&m, &is, 1, &ids[i], &pr, a);
        m.arch->step(&m, sc, 1, &ids[i], &st, b);
        ck_assert_mem_eq(a, b, (size_t)V * sizeof(float));
    }
    m.arch->prefill(&m, pre, 5, ids, st2, c, 1);
    ck_assert_mem_eq(a, c, (size_t)V * sizeof(float));
    free(a);
    free(b);
    free(c);
    m.arch->state_free(st);
    m.arch->state_free(st2);
    m.arch->scratch_free(sc);
    m.arch->prefill_free(pre);
    stream_state_free(&ref);
    infer_scratch_free(&is);
    arch_free(&m);
    vocab_free(&v);
}
END_TEST

// The table's forward over chunks with carry is lstm_forward's, as evaluate_ids uses it.
START_TEST(test_lstm_forward_same_bits) {
    Model m;
    Vocab v;
    make_model(&m, &v);
    char err[ERR_LEN];
    int in[6] = {1, 4, 2, 0, 3, 5}, tg[6] = {4, 2, 0, 3, 5, 1};
    LstmWorkspace ws;
    ck_assert_int_eq(lstm_workspace_alloc(&ws, &m.config, 3, 2, 0, err), 0);
    void *w = m.arch->workspace_alloc(&m, 3, 2, NULL, err);
    ck_assert_ptr_nonnull(w);
    lstm_state_reset(&ws);
    m.arch->reset(w);
    for (int k = 0; k < 2; k++) {
        ws.T = 3 - k; // the second chunk shorter, as a text's last one is
        float a = lstm_forward(&m, &ws, in, tg, 0.0f, NULL, 1.0f);
        float b = m.arch->forward(&m, w, 3 - k, in, tg, NULL, 1.0f);
        ck_assert_mem_eq(&a, &b, sizeof a);
        lstm_state_carry(&ws);
        m.arch->carry(w);
    }
    lstm_workspace_free(&ws);
    m.arch->workspace_free(w);
    arch_free(&m);
    vocab_free(&v);
}
END_TEST

/* The conformance suite: what every architecture's table must do, run over each (loop
 * tests, _i the case), as ggml runs one suite over every backend. */
static const ModelConfig LSTM_CASE = {.embed = 6, .hidden = 8, .layers = 2};
static const GptConfig GPT_LN = {
    .layers = 2, .heads = 2, .embed = 8, .block = 6, .norm = GPT_LAYERNORM, .bias = 1};
static const GptConfig GPT_RMS = {
    .layers = 1, .heads = 4, .embed = 8, .block = 7, .norm = GPT_RMSNORM, .bias = 0};
static const struct {
    const char *arch;
    const void *hyper;
} CASES[] = {{"lstm", &LSTM_CASE}, {"gpt", &GPT_LN}, {"gpt", &GPT_RMS}};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static void make_case(int i, const char *name, Model *m, Vocab *v) {
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof path, "%s/%s", tu_dir, name);
    ck_assert_int_eq(tu_make_arch_dir(path, TEXT, CASES[i].arch, CASES[i].hyper, 11), 0);
    ck_assert_msg(artefacts_load(path, m, v, NULL, err) == 0, "%s", err);
    ck_assert_str_eq(m->arch->name, CASES[i].arch);
}

// A model saved, loaded and saved again is the same file; "arch" only for a non-default one.
START_TEST(test_save_load_round_trip) {
    Model m;
    Vocab v;
    make_case(_i, "a", &m, &v);
    char a[4096], b[4096], err[ERR_LEN];
    snprintf(a, sizeof a, "%s/a/model.safetensors", tu_dir);
    snprintf(b, sizeof b, "%s/a/again.safetensors", tu_dir);
    ModelInfo info;
    Model m2;
    Vocab v2;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/a", tu_dir);
    ck_assert_int_eq(artefacts_load(dir, &m2, &v2, &info, err), 0);
    ck_assert_int_eq(artefacts_save_model(b, &m2, &info, err), 0);
    size_t la, lb;
    char *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
    ck_assert(la == lb && memcmp(x, y, la) == 0);
    StFile f;
    ck_assert_int_eq(st_open(&f, a, err), 0);
    const char *key = st_meta(&f, "arch");
    if (strcmp(CASES[_i].arch, ARCH_DEFAULT) == 0)
        ck_assert_ptr_null(key);
    else
        ck_assert_str_eq(key, CASES[_i].arch);
    // Every hyperparameter is in the metadata as fields lists it.
    ArchField fl[ARCH_MAX_FIELDS];
    int nf = m.arch->fields(&m, fl);
    for (int k = 0; k < nf; k++) {
        char num[32];
        snprintf(num, sizeof num, "%ld", fl[k].number);
        ck_assert_str_eq(st_meta(&f, fl[k].name), fl[k].text ? fl[k].text : num);
    }
    st_close(&f);
    free(x);
    free(y);
    arch_free(&m2);
    vocab_free(&v2);
    arch_free(&m);
    vocab_free(&v);
}
END_TEST

/* A stream's logits are the same bits stepped alone, batched with other streams, fed in
 * prefill chunks of any size, and after drop_weights; state_reset makes it a fresh stream
 * again. */
START_TEST(test_inference_same_bits_however_fed) {
    Model m;
    Vocab v;
    make_case(_i, "a", &m, &v);
    const Arch *a = m.arch;
    char err[ERR_LEN];
    int V = m.vocab_size, ctx = a->context(&m), n = ctx > 0 ? ctx : 9;
    int ids[3][9] = {
        {1, 4, 2, 0, 3, 5, 2, 1, 6}, {0, 0, 3, 2, 2, 1, 4, 4, 5}, {5, 1, 1, 0, 6, 3, 2, 0, 1}};
    float *alone = malloc((size_t)n * V * sizeof(float)); // [n, V] stream 0 alone
    float *out = malloc((size_t)3 * V * sizeof(float));   // [3, V]
    void *sc = a->scratch_alloc(&m, 3, err), *pre = a->prefill_alloc(&m, n, err);
    void *st[3] = {a->state_alloc(&m, err), a->state_alloc(&m, err), a->state_alloc(&m, err)};
    ck_assert(sc && pre && st[0] && st[1] && st[2]);
    for (int t = 0; t < n; t++) a->step(&m, sc, 1, &ids[0][t], st, alone + (size_t)t * V);
    for (int s = 0; s < 3; s++) a->state_reset(st[s]);
    for (int t = 0; t < n; t++) {
        int col[3] = {ids[0][t], ids[1][t], ids[2][t]};
        a->step(&m, sc, 3, col, st, out);
        ck_assert_mem_eq(out, alone + (size_t)t * V, (size_t)V * sizeof(float));
    }
    for (int chunk = 1; chunk <= n; chunk++) {
        a->state_reset(st[0]);
        for (int t = 0; t < n; t += chunk) {
            int T = n - t < chunk ? n - t : chunk;
            float *logits = malloc((size_t)T * V * sizeof(float));
            a->prefill(&m, pre, T, ids[0] + t, st[0], logits, T);
            ck_assert_mem_eq(logits, alone + (size_t)t * V, (size_t)T * V * sizeof(float));
            free(logits);
        }
    }
    // A server's model keeps only what inference reads: the same bits.
    a->drop_weights(&m);
    a->state_reset(st[0]);
    for (int t = 0; t < n; t++) {
        a->step(&m, sc, 1, &ids[0][t], st, out);
        ck_assert_mem_eq(out, alone + (size_t)t * V, (size_t)V * sizeof(float));
    }
    ck_assert_uint_ge(a->state_bytes(&m), (size_t)1);
    for (int s = 0; s < 3; s++) a->state_free(st[s]);
    a->scratch_free(sc);
    a->prefill_free(pre);
    free(alone);
    free(out);
    arch_free(&m);
    vocab_free(&v);
}
END_TEST

/* Scoring a text (evaluate_ids, the training forward) and a generation fed the same text
 * (the inference step, with the context rule applied as it goes) give the same mean
 * loss: one rule for both, on a text several contexts long. */
START_TEST(test_scoring_agrees_with_generation) {
    Model m;
    Vocab v;
    make_case(_i, "a", &m, &v);
    char err[ERR_LEN];
    size_t n = strlen(TEXT);
    int *ids = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) ids[i] = vocab_id(&v, (unsigned char)TEXT[i]);
    EvalResult r;
    ck_assert_int_eq(evaluate_ids(&m, ids, n, 1, &r, err), 0);
    ck_assert_uint_eq(r.count, n - 1);

    GenerateParams p = {.sampler = {.temperature = 1, .top_p = 1, .repetition_penalty = 1},
                        .logprobs = 1,
                        .score_prompt = 1};
    Generation g;
    ck_assert_msg(generation_init(&g, &m, &v, TEXT, n, &p, err) == 0, "%s", err);
    void *sc = m.arch->scratch_alloc(&m, 1, err);
    ck_assert_int_eq(generate_run(&g, sc, NULL, NULL), 0);
    ck_assert_int_eq(g.n_lp, (int)n);
    double sum = 0;
    for (int i = 1; i < g.n_lp; i++) sum -= g.lp[i].logprob;
    double mean = sum / (double)(n - 1);
    ck_assert_msg(fabs(mean - r.loss) <= 1e-5 * r.loss, "generation %.9f vs eval %.9f", mean,
                  r.loss);
    generation_free(&g);
    m.arch->scratch_free(sc);
    free(ids);
    arch_free(&m);
    vocab_free(&v);
}
END_TEST

int main(void) {
    Suite *s = suite_create("arch");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_arch_key);
    tcase_add_test(tc, test_lstm_fields);
    tcase_add_test(tc, test_lstm_inference_same_bits);
    tcase_add_test(tc, test_lstm_forward_same_bits);
    suite_add_tcase(s, tc);
    TCase *every = tcase_create("every architecture");
    tcase_add_checked_fixture(every, tu_dir_setup, tu_dir_teardown);
    tcase_add_loop_test(every, test_save_load_round_trip, 0, NCASES);
    tcase_add_loop_test(every, test_inference_same_bits_however_fed, 0, NCASES);
    tcase_add_loop_test(every, test_scoring_agrees_with_generation, 0, NCASES);
    suite_add_tcase(s, every);
    return tu_run_suite(s);
}
