/*
 * GPT inference (core/gpt_infer): the decode step agrees with the training forward (on a
 * tiny model and, several streams side by side, on the PyTorch fixtures' weights); a
 * stream's logits and KV cache are the same bits alone and batched with 1, 3 or 7 others
 * at other positions, and prefilled in chunks of 1, 2, 3, 5 or T or step by step; the
 * context rule leaves a stream exactly as a fresh one fed the kept half. Each for both
 * norms, with and without biases, on a tiny model whose sizes leave partial strips
 * (V 13, C 20, 3C 60, 4C 80 against strips of 24), its weights livened up as test_gpt's.
 * Agreement with the training forward (an sgemm, another order of sums) is within 1e-5
 * relative (of the logit, or 1 when it is smaller); everything else is bit for bit.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "gpt_infer.h"
#include "safetensors.h"

#define V     13
#define BLOCK 12

static const int NORMS[4] = {GPT_LAYERNORM, GPT_LAYERNORM, GPT_RMSNORM, GPT_RMSNORM};
static const int BIASES[4] = {1, 0, 1, 0};

static GptConfig tiny_config(int variant) {
    GptConfig c = {V, 2, 4, 20, BLOCK, NORMS[variant], BIASES[variant]};
    return c;
}

// A model far from GPT-2's near-zero init, so that every path moves the logits.
static void tiny_model(Gpt *m, GptInfer *gi, int variant) {
    GptConfig c = tiny_config(variant);
    char err[512];
    ck_assert_msg(gpt_init(m, &c, 31 + variant, err) == 0, "%s", err);
    for (size_t k = 0; k < m->num_params; k++) m->params[k] *= 4.0f;
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    int nt = gpt_tensors(&c, t);
    for (int i = 0; i < nt; i++) // norm weights and biases off their 1 and 0
        if (t[i].ndim == 1)
            for (size_t k = 0; k < t[i].count; k++)
                m->params[t[i].offset + k] += 0.3f * sinf((float)(7 * k + i));
    free(t);
    memset(gi, 0, sizeof *gi);
    ck_assert_msg(gpt_infer_prepare(gi, m, err) == 0, "%s", err);
}

static void sequence(int *ids, int n, int salt) {
    for (int t = 0; t < n; t++) ids[t] = (t * 5 + 3 * salt + t * t * salt) % V;
}

static GptStream new_stream(const GptConfig *c) {
    GptStream st;
    char err[512];
    ck_assert_msg(gpt_stream_alloc(&st, c, err) == 0, "%s", err);
    return st;
}

static GptScratch new_scratch(const GptConfig *c, int rows) {
    GptScratch s;
    char err[512];
    ck_assert_msg(gpt_scratch_alloc(&s, c, rows, err) == 0, "%s", err);
    return s;
}

static void step_one(const GptInfer *gi, GptScratch *s, GptStream *st, int id, float *logits) {
    gpt_infer_step(gi, s, 1, &id, &st, logits);
}

// The filled part of two streams' caches are the same bits, and so are their positions.
static void assert_same_cache(const GptConfig *c, const GptStream *a, const GptStream *b,
                              const char *what) {
    ck_assert_msg(a->pos == b->pos, "%s: positions %d and %d", what, a->pos, b->pos);
    size_t row = (size_t)c->embed, plane = (size_t)c->block * row;
    for (size_t p = 0; p < 2 * (size_t)c->layers; p++)
        ck_assert_msg(memcmp(a->kv + p * plane, b->kv + p * plane, a->pos * row * sizeof(float)) ==
                          0,
                      "%s: caches differ in plane %zu", what, p);
}

START_TEST(test_step_matches_training_forward) {
    Gpt m;
    GptInfer gi;
    tiny_model(&m, &gi, _i);
    GptConfig c = m.config;
    int ids[BLOCK];
    sequence(ids, BLOCK, 1);
    GptWorkspace ws;
    char err[512];
    ck_assert_msg(gpt_workspace_alloc(&ws, &c, BLOCK, 1, err) == 0, "%s", err);
    gpt_forward(&m, &ws, ids, NULL, NULL, 1.0f);

    GptScratch s = new_scratch(&c, 1);
    GptStream st = new_stream(&c);
    float logits[V], worst = 0.0f, scale = 0.0f;
    for (int t = 0; t < BLOCK; t++) {
        step_one(&gi, &s, &st, ids[t], logits);
        for (int v = 0; v < V; v++) {
            float want = ws.logits[t * V + v], d = fabsf(logits[v] - want);
            ck_assert_msg(d <= 1e-5f * fmaxf(1.0f, fabsf(want)),
                          "position %d logit %d: %.9g vs training forward %.9g", t, v, logits[v],
                          want);
            worst = fmaxf(worst, d / fmaxf(1.0f, fabsf(want)));
            scale = fmaxf(scale, fabsf(want));
        }
    }
    ck_assert_int_eq(st.pos, BLOCK);
    printf("gpt_infer variant %d: step vs training forward, worst %.3g relative (logits up to "
           "%.3g)\n",
           _i, worst, scale);
    gpt_stream_free(&st);
    gpt_scratch_free(&s);
    gpt_workspace_free(&ws);
    gpt_infer_free(&gi);
    gpt_free(&m);
}
END_TEST

/* Eight streams at positions 1 .. 8 (each fed its own sequence), stepped alone, then in
 * batches of 2, 4 and 8 from the same states (so rows take the four-row and the
 * one-to-three-row paths of the kernel): every row's logits and cache the same bits. */
START_TEST(test_stream_is_bit_identical_alone_and_batched) {
    enum { N = 8, STEPS = 3 };
    Gpt m;
    GptInfer gi;
    tiny_model(&m, &gi, _i);
    GptConfig c = m.config;
    GptScratch s = new_scratch(&c, N);
    GptStream start[N], alone[N], batched[N];
    int ids[N][BLOCK];
    for (int i = 0; i < N; i++) {
        sequence(ids[i], BLOCK, i + 2);
        start[i] = new_stream(&c);
        alone[i] = new_stream(&c);
        batched[i] = new_stream(&c);
        gpt_infer_prefill(&gi, &s, i + 1, ids[i], &start[i], NULL, 0);
    }
    size_t kv = gpt_stream_floats(&c) * sizeof(float);
    float want[STEPS][N][V], got[N * V];
    for (int i = 0; i < N; i++) {
        memcpy(alone[i].kv, start[i].kv, kv);
        alone[i].pos = start[i].pos;
        for (int k = 0; k < STEPS; k++)
            step_one(&gi, &s, &alone[i], ids[i][alone[i].pos], want[k][i]);
    }
    static const int widths[] = {2, 4, 8};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        int n = widths[w];
        for (int i = 0; i < N; i++) {
            memcpy(batched[i].kv, start[i].kv, kv);
            batched[i].pos = start[i].pos;
        }
        for (int k = 0; k < STEPS; k++)
            for (int first = 0; first < N; first += n) {
                GptStream *ps[N];
                int feed[N];
                for (int r = 0; r < n; r++) {
                    ps[r] = &batched[first + r];
                    feed[r] = ids[first + r][ps[r]->pos];
                }
                gpt_infer_step(&gi, &s, n, feed, ps, got);
                for (int r = 0; r < n; r++)
                    ck_assert_msg(memcmp(got + r * V, want[k][first + r], sizeof want[k][0]) == 0,
                                  "variant %d, batch of %d, step %d: stream %d's logits differ "
                                  "from alone",
                                  _i, n, k, first + r);
            }
        for (int i = 0; i < N; i++) assert_same_cache(&c, &alone[i], &batched[i], "batched");
    }
    for (int i = 0; i < N; i++) {
        gpt_stream_free(&start[i]);
        gpt_stream_free(&alone[i]);
        gpt_stream_free(&batched[i]);
    }
    gpt_scratch_free(&s);
    gpt_infer_free(&gi);
    gpt_free(&m);
}
END_TEST

/* A whole block prefilled in chunks of 1, 2, 3, 5 and T (each chunk asking for all its
 * logits, then for none but the last) against steps: the same bits. */
START_TEST(test_prefill_chunks_equal_steps) {
    Gpt m;
    GptInfer gi;
    tiny_model(&m, &gi, _i);
    GptConfig c = m.config;
    int ids[BLOCK];
    sequence(ids, BLOCK, 5);
    GptScratch s = new_scratch(&c, BLOCK);
    GptStream stepped = new_stream(&c), filled = new_stream(&c);
    float want[BLOCK * V], got[BLOCK * V];
    for (int t = 0; t < BLOCK; t++) step_one(&gi, &s, &stepped, ids[t], want + t * V);
    static const int chunks[] = {1, 2, 3, 5, BLOCK};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++)
        for (int all = 0; all < 2; all++) {
            filled.pos = 0;
            memset(got, 0, sizeof got);
            for (int t = 0; t < BLOCK; t += chunks[k]) {
                int T = BLOCK - t < chunks[k] ? BLOCK - t : chunks[k], nl = all ? T : 1;
                gpt_infer_prefill(&gi, &s, T, ids + t, &filled, got + (t + T - nl) * V, nl);
            }
            for (int t = 0; t < BLOCK; t++) {
                int computed = all || (t + 1) % chunks[k] == 0 || t == BLOCK - 1;
                if (computed)
                    ck_assert_msg(memcmp(got + t * V, want + t * V, V * sizeof(float)) == 0,
                                  "variant %d, chunks of %d: position %d's logits differ from "
                                  "steps",
                                  _i, chunks[k], t);
            }
            assert_same_cache(&c, &stepped, &filled, "prefilled");
        }
    gpt_stream_free(&stepped);
    gpt_stream_free(&filled);
    gpt_scratch_free(&s);
    gpt_infer_free(&gi);
    gpt_free(&m);
}
END_TEST

/* A stream fed a whole block, shifted by the context rule and fed more, against a fresh
 * stream fed the kept half and the same more: the same bits throughout (the shift's
 * prefill done in chunks of 4 and 1, the fresh one by steps). */
START_TEST(test_context_shift_equals_fresh_stream_of_kept_half) {
    enum { MORE = 4 };
    Gpt m;
    GptInfer gi;
    tiny_model(&m, &gi, _i);
    GptConfig c = m.config;
    int ids[BLOCK + MORE];
    sequence(ids, BLOCK + MORE, 7);
    static const int rows[] = {4, 1};
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        GptScratch s = new_scratch(&c, rows[k]);
        GptStream full = new_stream(&c), fresh = new_stream(&c);
        float got[V], want[V];
        for (int t = 0; t < BLOCK; t++) step_one(&gi, &s, &full, ids[t], got);
        ck_assert_int_eq(full.pos, BLOCK);
        // The rule as the seam applies it: the state reset (pos 0, the cache overwritten
        // as positions are fed again), then the kept half prefilled in chunks of rows[k].
        full.pos = 0;
        for (int t = BLOCK - BLOCK / 2; t < BLOCK; t += rows[k]) {
            int T = BLOCK - t < rows[k] ? BLOCK - t : rows[k];
            gpt_infer_prefill(&gi, &s, T, ids + t, &full, NULL, 0);
        }
        ck_assert_int_eq(full.pos, BLOCK / 2);
        for (int t = BLOCK - BLOCK / 2; t < BLOCK; t++) step_one(&gi, &s, &fresh, ids[t], want);
        assert_same_cache(&c, &fresh, &full, "shifted");
        for (int t = BLOCK; t < BLOCK + MORE; t++) {
            step_one(&gi, &s, &full, ids[t], got);
            step_one(&gi, &s, &fresh, ids[t], want);
            ck_assert_msg(memcmp(got, want, sizeof got) == 0,
                          "variant %d: after the shift, position %d's logits differ from a "
                          "fresh stream's",
                          _i, t);
        }
        gpt_stream_free(&full);
        gpt_stream_free(&fresh);
        gpt_scratch_free(&s);
    }
    gpt_infer_free(&gi);
    gpt_free(&m);
}
END_TEST

/* The PyTorch fixtures' weights (tests/reference/make_gpt_fixture.py) and batch: the
 * fixture's B sequences decoded side by side, one step a position, against the training
 * forward of the whole batch without dropout. */
static void check_fixture(const char *file) {
    char err[512], path[512];
    snprintf(path, sizeof path, "%s/tests/reference/%s", CHARLM_SOURCE_DIR, file);
    StFile f;
    ck_assert_msg(st_open(&f, path, err) == 0, "%s", err);
    const char *key[] = {"vocab_size", "layers", "heads", "embed", "block", "bias", "seq", "batch"};
    long val[8];
    for (int i = 0; i < 8; i++) {
        const char *v = st_meta(&f, key[i]);
        ck_assert_msg(v != NULL, "%s: metadata '%s' missing", file, key[i]);
        val[i] = strtol(v, NULL, 10);
    }
    const char *norm = st_meta(&f, "norm");
    ck_assert_ptr_nonnull(norm);
    GptConfig c = {(int)val[0], (int)val[1],
                   (int)val[2], (int)val[3],
                   (int)val[4], strcmp(norm, "rmsnorm") == 0 ? GPT_RMSNORM : GPT_LAYERNORM,
                   (int)val[5]};
    int T = (int)val[6], B = (int)val[7];
    Gpt m;
    ck_assert_msg(gpt_alloc(&m, &c, err) == 0, "%s", err);
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    int nt = gpt_tensors(&c, t);
    for (int i = 0; i < nt; i++)
        ck_assert_msg(st_read(&f, t[i].name, t[i].ndim, t[i].shape, m.params + t[i].offset, err) ==
                          0,
                      "%s", err);
    free(t);
    int64_t bt[2] = {B, T};
    float *in = malloc((size_t)B * T * sizeof(float));
    ck_assert_msg(st_read(&f, "inputs", 2, bt, in, err) == 0, "%s", err);
    int *ids = malloc((size_t)B * T * sizeof(int));
    for (int i = 0; i < B * T; i++) ids[i] = (int)in[i];
    GptWorkspace ws;
    ck_assert_msg(gpt_workspace_alloc(&ws, &c, T, B, err) == 0, "%s", err);
    gpt_forward(&m, &ws, ids, NULL, NULL, 1.0f);

    GptInfer gi = {0};
    ck_assert_msg(gpt_infer_prepare(&gi, &m, err) == 0, "%s", err);
    GptScratch s = new_scratch(&c, B);
    GptStream *st = malloc(B * sizeof *st), **ps = malloc(B * sizeof *ps);
    int *feed = malloc(B * sizeof(int)), nv = c.vocab_size;
    float *logits = malloc((size_t)B * nv * sizeof(float)), worst = 0.0f;
    for (int b = 0; b < B; b++) {
        st[b] = new_stream(&c);
        ps[b] = &st[b];
    }
    for (int p = 0; p < T; p++) {
        for (int b = 0; b < B; b++) feed[b] = ids[b * T + p];
        gpt_infer_step(&gi, &s, B, feed, ps, logits);
        for (int b = 0; b < B; b++)
            for (int v = 0; v < nv; v++) {
                float want = ws.logits[((size_t)b * T + p) * nv + v];
                float d = fabsf(logits[b * nv + v] - want) / fmaxf(1.0f, fabsf(want));
                ck_assert_msg(d <= 1e-5f, "%s: sequence %d position %d logit %d: %.9g vs %.9g",
                              file, b, p, v, logits[b * nv + v], want);
                worst = fmaxf(worst, d);
            }
    }
    printf("gpt_infer %s: %d streams stepped vs training forward, worst %.3g relative\n", file, B,
           worst);
    for (int b = 0; b < B; b++) gpt_stream_free(&st[b]);
    free(st);
    free(ps);
    free(feed);
    free(logits);
    free(ids);
    free(in);
    gpt_scratch_free(&s);
    gpt_infer_free(&gi);
    gpt_workspace_free(&ws);
    gpt_free(&m);
    st_close(&f);
}

START_TEST(test_fixture_batch_stepped_matches_training_forward) {
    check_fixture("gpt_layernorm.safetensors");
    check_fixture("gpt_rmsnorm.safetensors");
}
END_TEST

START_TEST(test_stream_holds_two_by_layers_by_block_by_embed) {
    GptConfig c = {65, 4, 4, 256, 128, GPT_LAYERNORM, 0};
    ck_assert_uint_eq(gpt_stream_floats(&c), 2u * 4 * 128 * 256); // 1 MB, as issue 20 says
}
END_TEST

int main(void) {
    Suite *s = suite_create("gpt_infer");
    TCase *tc = tcase_create("gpt_infer");
    tcase_set_timeout(tc, 120);
    // Each loop runs the four variants: LayerNorm and RMSNorm, with and without biases.
    tcase_add_loop_test(tc, test_step_matches_training_forward, 0, 4);
    tcase_add_loop_test(tc, test_stream_is_bit_identical_alone_and_batched, 0, 4);
    tcase_add_loop_test(tc, test_prefill_chunks_equal_steps, 0, 4);
    tcase_add_loop_test(tc, test_context_shift_equals_fresh_stream_of_kept_half, 0, 4);
    tcase_add_test(tc, test_fixture_batch_stepped_matches_training_forward);
    tcase_add_test(tc, test_stream_holds_two_by_layers_by_block_by_embed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
