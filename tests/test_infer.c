/*
 * Inference step: agrees with the training forward pass, and a stream's numbers are
 * bit-identical whether it is stepped alone or in a batch (rows 0-3 of a batch of 7 take
 * the four-row path, rows 4-6 the single-row one).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "lstm.h"
#include "model.h"

#define STEPS 12

START_TEST(test_step_matches_training_forward) {
    ModelConfig c = {13, 6, 20, 2};
    Model m;
    char err[512];
    ck_assert_int_eq(model_init(&m, &c, 9, err), 0);
    ck_assert_int_eq(infer_prepare(&m, err), 0);
    int ids[STEPS];
    for (int t = 0; t < STEPS; t++) ids[t] = (t * 5 + 2) % c.vocab_size;

    LstmWorkspace ws;
    ck_assert_int_eq(lstm_workspace_alloc(&ws, &c, STEPS, 1, 0, err), 0);
    lstm_state_reset(&ws);
    lstm_forward(&m, &ws, ids, NULL, 0.0f, NULL, 1.0f);

    InferScratch s;
    StreamState st;
    ck_assert_int_eq(infer_scratch_alloc(&s, &c, 1, err), 0);
    ck_assert_int_eq(stream_state_alloc(&st, &c, err), 0);
    StreamState *ps = &st;
    float logits[13];
    for (int t = 0; t < STEPS; t++) {
        infer_step(&m, &s, 1, &ids[t], &ps, logits);
        for (int v = 0; v < c.vocab_size; v++) {
            float want = ws.logits[t * c.vocab_size + v];
            ck_assert_msg(fabsf(logits[v] - want) <= 1e-5f * fmaxf(1.0f, fabsf(want)),
                          "step %d logit %d: %.9g vs training forward %.9g", t, v, logits[v], want);
        }
    }
    stream_state_free(&st);
    infer_scratch_free(&s);
    lstm_workspace_free(&ws);
    model_free(&m);
}
END_TEST

START_TEST(test_stream_is_bit_identical_alone_and_batched) {
    ModelConfig c = {17, 8, 36, 2};
    Model m;
    char err[512];
    ck_assert_int_eq(model_init(&m, &c, 4, err), 0);
    ck_assert_int_eq(infer_prepare(&m, err), 0);
    enum { N = 7 };
    InferScratch alone_s, batch_s;
    ck_assert_int_eq(infer_scratch_alloc(&alone_s, &c, 1, err), 0);
    ck_assert_int_eq(infer_scratch_alloc(&batch_s, &c, N, err), 0);
    StreamState alone[N], batch[N];
    StreamState *pb[N];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(stream_state_alloc(&alone[i], &c, err), 0);
        ck_assert_int_eq(stream_state_alloc(&batch[i], &c, err), 0);
        pb[i] = &batch[i];
    }
    float la[17], lb[N * 17];
    for (int t = 0; t < STEPS; t++) {
        int ids[N];
        for (int i = 0; i < N; i++) ids[i] = (t * 3 + i * 7) % c.vocab_size;
        infer_step(&m, &batch_s, N, ids, pb, lb);
        for (int i = 0; i < N; i++) {
            StreamState *pa = &alone[i];
            infer_step(&m, &alone_s, 1, &ids[i], &pa, la);
            ck_assert_msg(memcmp(la, lb + i * 17, sizeof(la)) == 0,
                          "stream %d differs alone and in a batch of %d at step %d", i, N, t);
            ck_assert(memcmp(alone[i].h, batch[i].h, 2 * 36 * sizeof(float)) == 0);
            ck_assert(memcmp(alone[i].c, batch[i].c, 2 * 36 * sizeof(float)) == 0);
        }
    }
    for (int i = 0; i < N; i++) {
        stream_state_free(&alone[i]);
        stream_state_free(&batch[i]);
    }
    infer_scratch_free(&alone_s);
    infer_scratch_free(&batch_s);
    model_free(&m);
}
END_TEST

// A prompt fed as a sequence, cut into chunks of any size, leaves the state and the
// logits that stepping it char by char leaves, bit for bit (so the state within any
// tolerance, 0 here): where the scheduler cuts a prompt cannot change a text.
START_TEST(test_prefill_equals_stepping) {
    ModelConfig c = {19, 8, 40, 3};
    Model m;
    char err[512];
    ck_assert_int_eq(model_init(&m, &c, 6, err), 0);
    ck_assert_int_eq(infer_prepare(&m, err), 0);
    enum { T = 203 };
    int ids[T];
    for (int t = 0; t < T; t++) ids[t] = (t * t * 7 + t * 3 + 1) % c.vocab_size;
    InferScratch is;
    StreamState ref;
    ck_assert_int_eq(infer_scratch_alloc(&is, &c, 1, err), 0);
    ck_assert_int_eq(stream_state_alloc(&ref, &c, err), 0);
    StreamState *pr = &ref;
    static float step_logits[T * 19];
    for (int t = 0; t < T; t++) infer_step(&m, &is, 1, &ids[t], &pr, step_logits + t * 19);
    size_t state_bytes = (size_t)c.layers * c.hidden * sizeof(float);

    static const int chunks[] = {1, 2, 4, 5, 64, T};
    for (size_t k = 0; k < sizeof(chunks) / sizeof(*chunks); k++) {
        PrefillScratch ps;
        StreamState st;
        ck_assert_int_eq(prefill_scratch_alloc(&ps, &c, chunks[k], err), 0);
        ck_assert_int_eq(stream_state_alloc(&st, &c, err), 0);
        static float logits[T * 19];
        for (int at = 0; at < T; at += chunks[k]) {
            int n = T - at < chunks[k] ? T - at : chunks[k];
            // Every position's logits for odd chunk sizes, the last one only otherwise.
            int nl = chunks[k] % 2 ? n : 1;
            infer_prefill(&m, &ps, n, ids + at, &st, logits + (at + n - nl) * 19, nl);
        }
        int from = chunks[k] % 2 ? 0 : T - 1;
        ck_assert_msg(memcmp(logits + from * 19, step_logits + from * 19,
                             (size_t)(T - from) * 19 * sizeof(float)) == 0,
                      "chunks of %d: logits differ from stepping", chunks[k]);
        ck_assert_msg(memcmp(st.h, ref.h, state_bytes) == 0, "chunks of %d: h differs", chunks[k]);
        ck_assert_msg(memcmp(st.c, ref.c, state_bytes) == 0, "chunks of %d: c differs", chunks[k]);
        stream_state_free(&st);
        prefill_scratch_free(&ps);
    }
    // No logits asked: the state alone.
    PrefillScratch ps;
    StreamState st;
    ck_assert_int_eq(prefill_scratch_alloc(&ps, &c, T, err), 0);
    ck_assert_int_eq(stream_state_alloc(&st, &c, err), 0);
    infer_prefill(&m, &ps, T, ids, &st, NULL, 0);
    ck_assert(memcmp(st.h, ref.h, state_bytes) == 0 && memcmp(st.c, ref.c, state_bytes) == 0);
    stream_state_free(&st);
    prefill_scratch_free(&ps);
    stream_state_free(&ref);
    infer_scratch_free(&is);
    model_free(&m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("infer");
    TCase *tc = tcase_create("infer");
    tcase_add_test(tc, test_step_matches_training_forward);
    tcase_add_test(tc, test_stream_is_bit_identical_alone_and_batched);
    tcase_add_test(tc, test_prefill_equals_stepping);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
