/*
 * A nanoGPT checkpoint converted to charlm (tests/reference/nanogpt_converted, written by
 * tests/reference/make_nanogpt_ckpt.py with convert_nanogpt.py): the folder holds exactly
 * the GPT's tensor table (no lm_head.weight, no attn.bias buffers), and scores the fixture
 * text to the loss PyTorch computed by the context rule (expected.json), within 1e-5
 * relative, through gpt_forward on windows cut here, through artefacts_load and
 * evaluate_ids, and as `charlm-train eval` prints it. A copy whose model.safetensors also has
 * lm_head.weight loads when it equals transformer.wte.weight and is refused, naming
 * lm_head.weight, when one element differs.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "arch.h"
#include "artefacts.h"
#include "error.h"
#include "evaluate.h"
#include "gpt.h"
#include "safetensors.h"
#include "testutil.h"
#include "utf8.h"

#define FIXTURE_DIR CHARLM_SOURCE_DIR "/tests/reference/"
#define CONVERTED   FIXTURE_DIR "nanogpt_converted"
#define REL_TOL     1e-5

typedef struct {
    double loss;
    size_t predictions;
    char text[256]; // the text's file name, in tests/reference/
    int *ids;       // the text as token ids of the converted vocab
    size_t n;
} Expected;

static Expected expected_load(const Vocab *vocab) {
    Expected e;
    size_t len;
    char *json = tu_read_file(CONVERTED "/expected.json", &len);
    ck_assert_ptr_nonnull(json);
    cJSON *j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    cJSON *text = cJSON_GetObjectItem(j, "text"), *loss = cJSON_GetObjectItem(j, "loss"),
          *pred = cJSON_GetObjectItem(j, "predictions");
    ck_assert(cJSON_IsString(text) && cJSON_IsNumber(loss) && cJSON_IsNumber(pred));
    e.loss = loss->valuedouble;
    e.predictions = (size_t)pred->valuedouble;
    snprintf(e.text, sizeof e.text, "%s", text->valuestring);
    char path[512];
    snprintf(path, sizeof path, "%s%s", FIXTURE_DIR, e.text);
    cJSON_Delete(j);
    free(json);

    char *t = tu_read_file(path, &len);
    ck_assert_msg(t != NULL, "cannot read %s", path);
    e.ids = malloc(len * sizeof(int));
    e.n = 0;
    for (size_t at = 0; at < len;) {
        uint32_t cp;
        int used = utf8_decode_one((const unsigned char *)t + at, len - at, &cp);
        ck_assert_msg(used > 0, "%s: invalid UTF-8 at byte %zu", path, at);
        int id = vocab_id(vocab, cp);
        ck_assert_msg(id >= 0, "%s: U+%04X is not in the converted vocabulary", path, cp);
        e.ids[e.n++] = id;
        at += (size_t)used;
    }
    free(t);
    return e;
}

// Loads dir and scores the fixture text with it.
static double loss_of(const char *dir, Expected *e) {
    char err[ERR_LEN];
    Model model;
    Vocab vocab;
    ModelInfo info;
    ck_assert_msg(artefacts_load(dir, &model, &vocab, &info, err) == 0, "%s", err);
    *e = expected_load(&vocab);
    EvalResult res;
    ck_assert_msg(evaluate_ids(&model, e->ids, e->n, 1, &res, err) == 0, "%s", err);
    ck_assert_uint_eq(res.count, e->predictions);
    ck_assert_uint_eq(e->n - 1, e->predictions);
    arch_free(&model);
    vocab_free(&vocab);
    return res.loss;
}

static void check_loss(double got, double want) {
    double rel = fabs(got - want) / want;
    printf("converted nanoGPT: loss %.9f, PyTorch %.9f, relative difference %.3g\n", got, want,
           rel);
    ck_assert_msg(rel <= REL_TOL, "loss %.9f, PyTorch's %.9f (relative %.3g > %g)", got, want, rel,
                  REL_TOL);
}

static GptConfig fixture_config(const StFile *f) {
    ck_assert_str_eq(tu_fixture_meta(f, "arch"), "gpt");
    GptConfig c = {(int)tu_fixture_long(f, "vocab_size"),
                   (int)tu_fixture_long(f, "layers"),
                   (int)tu_fixture_long(f, "heads"),
                   (int)tu_fixture_long(f, "embed"),
                   (int)tu_fixture_long(f, "block"),
                   strcmp(tu_fixture_meta(f, "norm"), "rmsnorm") == 0 ? GPT_RMSNORM : GPT_LAYERNORM,
                   (int)tu_fixture_long(f, "bias")};
    char err[ERR_LEN];
    ck_assert_msg(gpt_config_check(&c, err) == 0, "%s", err);
    return c;
}

START_TEST(test_fixture_is_the_tensor_table) {
    char err[ERR_LEN];
    StFile f;
    ck_assert_msg(st_open(&f, CONVERTED "/model.safetensors", err) == 0, "%s", err);
    GptConfig c = fixture_config(&f);
    ck_assert_int_eq(c.norm, GPT_LAYERNORM); // nanoGPT has no other
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    int nt = gpt_tensors(&c, t);
    for (int i = 0; i < nt; i++)
        ck_assert_msg(st_read(&f, t[i].name, t[i].ndim, t[i].shape, NULL, err) == 0, "%s", err);
    ck_assert_int_eq(st_count(&f), nt); // so neither lm_head.weight nor attn.bias is there
    free(t);
    st_close(&f);
}
END_TEST

/* The context rule written out as windows, on gpt_forward directly: windows of block
 * inputs at a stride of block - floor(block/2), the first scoring all its predictions and
 * each later one its last stride. Independent of evaluate_ids, which must agree. */
START_TEST(test_gpt_forward_scores_as_pytorch) {
    char err[ERR_LEN];
    StFile f;
    ck_assert_msg(st_open(&f, CONVERTED "/model.safetensors", err) == 0, "%s", err);
    GptConfig c = fixture_config(&f);
    Gpt gpt;
    ck_assert_msg(gpt_alloc(&gpt, &c, err) == 0, "%s", err);
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    int nt = gpt_tensors(&c, t);
    for (int i = 0; i < nt; i++)
        ck_assert_msg(
            st_read(&f, t[i].name, t[i].ndim, t[i].shape, gpt.params + t[i].offset, err) == 0, "%s",
            err);
    st_close(&f);
    Vocab vocab;
    ck_assert_msg(vocab_load(&vocab, CONVERTED "/vocab.json", NULL, err) == 0, "%s", err);
    Expected e = expected_load(&vocab);
    GptWorkspace ws;
    ck_assert_msg(gpt_workspace_alloc(&ws, &c, c.block, 1, err) == 0, "%s", err);

    int keep = c.block / 2, stride = c.block - keep, V = c.vocab_size;
    double nll = 0.0;
    size_t count = 0;
    for (size_t s = 0;; s += (size_t)stride) {
        size_t end = s + (size_t)c.block < e.n - 1 ? s + (size_t)c.block : e.n - 1;
        ws.T = (int)(end - s);
        gpt_forward(&gpt, &ws, e.ids + s, NULL, NULL, 1.0f);
        for (int p = s == 0 ? 0 : keep; p < ws.T; p++) {
            const float *l = ws.logits + (size_t)p * V;
            double max = l[0], sum = 0.0;
            for (int v = 1; v < V; v++) max = fmax(max, l[v]);
            for (int v = 0; v < V; v++) sum += exp(l[v] - max);
            nll += log(sum) + max - l[e.ids[s + (size_t)p + 1]];
            count++;
        }
        if (end == e.n - 1) break;
    }
    ck_assert_uint_eq(count, e.predictions);
    check_loss(nll / (double)count, e.loss);
    gpt_workspace_free(&ws);
    gpt_free(&gpt);
    vocab_free(&vocab);
    free(t);
    free(e.ids);
}
END_TEST

START_TEST(test_converted_scores_as_pytorch) {
    Expected e;
    double got = loss_of(CONVERTED, &e);
    check_loss(got, e.loss);
    free(e.ids);
}
END_TEST

// What a user runs: charlm-train eval prints the loss with 6 decimals.
START_TEST(test_eval_command_scores_as_pytorch) {
    char err[ERR_LEN], cmd[2048], *so, *se;
    Vocab vocab;
    ck_assert_msg(vocab_load(&vocab, CONVERTED "/vocab.json", NULL, err) == 0, "%s", err);
    Expected e = expected_load(&vocab);
    snprintf(cmd, sizeof cmd, "%s eval --model '%s' --corpus '%s%s'", tu_bin("charlm-train"),
             CONVERTED, FIXTURE_DIR, e.text);
    ck_assert_msg(tu_run(cmd, &so, &se) == 0, "%s", se);
    cJSON *j = cJSON_Parse(so);
    ck_assert_msg(j != NULL, "not JSON: %s", so);
    cJSON *loss = cJSON_GetObjectItem(j, "loss"), *chars = cJSON_GetObjectItem(j, "chars"),
          *skipped = cJSON_GetObjectItem(j, "skipped");
    ck_assert(cJSON_IsNumber(loss) && cJSON_IsNumber(chars) && cJSON_IsNumber(skipped));
    ck_assert_uint_eq((size_t)chars->valuedouble, e.predictions);
    ck_assert_int_eq((int)skipped->valuedouble, 0);
    ck_assert_msg(fabs(loss->valuedouble - e.loss) <= 5e-7 + REL_TOL * e.loss,
                  "charlm-train eval: %s, PyTorch %.9f", so, e.loss);
    cJSON_Delete(j);
    free(so);
    free(se);
    free(e.ids);
    vocab_free(&vocab);
}
END_TEST

/* tu_dir/<name>: vocab.json copied, model.safetensors rewritten with the fixture's tensors
 * and metadata plus lm_head.weight = wte, whose element 5 is then moved by delta. */
static const char *with_lm_head(const char *name, float delta) {
    static char dir[512];
    char err[ERR_LEN], path[600];
    snprintf(dir, sizeof dir, "%s/%s", tu_dir, name);
    size_t len;
    char *vocab = tu_read_file(CONVERTED "/vocab.json", &len);
    ck_assert_ptr_nonnull(vocab);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    free(tu_write_file(dir, "vocab.json", vocab, len));
    free(vocab);

    StFile f;
    ck_assert_msg(st_open(&f, CONVERTED "/model.safetensors", err) == 0, "%s", err);
    GptConfig c = fixture_config(&f);
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    int nt = gpt_tensors(&c, t);
    StTensorOut *out = calloc((size_t)nt + 1, sizeof *out);
    float **data = calloc((size_t)nt + 1, sizeof *data);
    for (int i = 0; i < nt; i++) {
        data[i] = malloc(t[i].count * sizeof(float));
        ck_assert_msg(st_read(&f, t[i].name, t[i].ndim, t[i].shape, data[i], err) == 0, "%s", err);
        out[i] = (StTensorOut){t[i].name, t[i].ndim, {t[i].shape[0], t[i].shape[1]}, data[i]};
    }
    ck_assert_str_eq(t[0].name, "transformer.wte.weight");
    data[nt] = malloc(t[0].count * sizeof(float));
    memcpy(data[nt], data[0], t[0].count * sizeof(float));
    data[nt][5] += delta;
    out[nt] = (StTensorOut){"lm_head.weight", 2, {t[0].shape[0], t[0].shape[1]}, data[nt]};

    static const char *keys[] = {"arch",  "vocab_size",    "layers",       "heads",
                                 "embed", "block",         "norm",         "bias",
                                 "steps", "best_val_loss", "vocab_sha256", "corpus_sha256"};
    StMeta meta[sizeof keys / sizeof keys[0]];
    int nmeta = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = st_meta(&f, keys[k]);
        if (v) meta[nmeta++] = (StMeta){keys[k], v};
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(st_write(path, out, nt + 1, meta, nmeta, err) == 0, "%s", err);
    st_close(&f);
    for (int i = 0; i <= nt; i++) free(data[i]);
    free(data);
    free(out);
    free(t);
    return dir;
}

START_TEST(test_tied_lm_head_loads) {
    Expected e;
    double got = loss_of(with_lm_head("tied", 0.0f), &e);
    check_loss(got, e.loss);
    free(e.ids);
}
END_TEST

START_TEST(test_untied_lm_head_refused) {
    char err[ERR_LEN];
    Model model;
    Vocab vocab;
    ModelInfo info;
    int rc = artefacts_load(with_lm_head("untied", 0.25f), &model, &vocab, &info, err);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(err, "lm_head.weight") != NULL, "message without lm_head.weight: %s", err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("nanogpt");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_add_test(tc, test_fixture_is_the_tensor_table);
    tcase_add_test(tc, test_gpt_forward_scores_as_pytorch);
    tcase_add_test(tc, test_converted_scores_as_pytorch);
    tcase_add_test(tc, test_eval_command_scores_as_pytorch);
    tcase_add_test(tc, test_tied_lm_head_loads);
    tcase_add_test(tc, test_untied_lm_head_refused);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
