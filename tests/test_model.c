#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

START_TEST(test_config_check) {
    char err[ERR_LEN];
    ModelConfig ok = {.vocab_size = 65, .embed = 64, .hidden = 256, .layers = 1};
    ck_assert_int_eq(model_config_check(&ok, err), 0);
    ModelConfig edge = {
        .vocab_size = 65536, .embed = 4096, .hidden = 4096, .layers = MODEL_MAX_LAYERS};
    ck_assert_int_eq(model_config_check(&edge, err), 0);

    ModelConfig c = ok;
    c.vocab_size = 0;
    ck_assert_int_eq(model_config_check(&c, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "vocab_size"));
    c = ok, c.vocab_size = 65537;
    ck_assert_int_eq(model_config_check(&c, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "vocab_size"));
    c = ok, c.embed = 4097;
    ck_assert_int_eq(model_config_check(&c, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "embed"));
    c = ok, c.hidden = -3;
    ck_assert_int_eq(model_config_check(&c, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "hidden"));
    c = ok, c.layers = MODEL_MAX_LAYERS + 1;
    ck_assert_int_eq(model_config_check(&c, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "layers"));
    c = ok, c.layers = 0;
    ck_assert_int_eq(model_config_check(&c, err), -1);
}
END_TEST

START_TEST(test_param_count) {
    // nn.Embedding(65, 64) + nn.LSTM(64, 256, 1) + nn.Linear(256, 65):
    // 4160 + (65536 + 262144 + 2048) + (16640 + 65), as sum(p.numel()) reports it.
    ModelConfig c = {.vocab_size = 65, .embed = 64, .hidden = 256, .layers = 1};
    size_t want = 65 * 64 + (1024 * 64 + 1024 * 256 + 2048) + (65 * 256 + 65);
    ck_assert_uint_eq(want, 350593);
    ck_assert_uint_eq(model_param_count(&c), want);
    ModelConfig c2 = {.vocab_size = 10, .embed = 3, .hidden = 5, .layers = 3};
    // layer 0: 20*3 + 20*5 + 40; layers 1, 2: 20*5 + 20*5 + 40 each.
    ck_assert_uint_eq(model_param_count(&c2), 30 + 200 + 240 + 240 + 50 + 10);
}
END_TEST

START_TEST(test_tensor_table) {
    ModelConfig c = {.vocab_size = 7, .embed = 3, .hidden = 5, .layers = 2};
    ModelTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&c, t);
    ck_assert_int_eq(n, 3 + 4 * 2);
    const char *names[] = {"embedding.weight",
                           "lstm.weight_ih_l0",
                           "lstm.weight_hh_l0",
                           "lstm.bias_ih_l0",
                           "lstm.bias_hh_l0",
                           "lstm.weight_ih_l1",
                           "lstm.weight_hh_l1",
                           "lstm.bias_ih_l1",
                           "lstm.bias_hh_l1",
                           "fc.weight",
                           "fc.bias"};
    const int64_t shapes[][2] = {{7, 3},  {20, 3}, {20, 5}, {20, 0}, {20, 0}, {20, 5},
                                 {20, 5}, {20, 0}, {20, 0}, {7, 5},  {7, 0}};
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(t[i].name, names[i]);
        int ndim = shapes[i][1] ? 2 : 1;
        ck_assert_int_eq(t[i].ndim, ndim);
        ck_assert_int_eq(t[i].shape[0], shapes[i][0]);
        if (ndim == 2) ck_assert_int_eq(t[i].shape[1], shapes[i][1]);
        ck_assert_uint_eq(t[i].count, (size_t)(shapes[i][0] * (ndim == 2 ? shapes[i][1] : 1)));
        ck_assert_uint_eq(t[i].offset, offset); // contiguous, in order
        offset += t[i].count;
    }
    ck_assert_uint_eq(offset, model_param_count(&c)); // and covering the whole buffer
}
END_TEST

START_TEST(test_point_matches_table) {
    ModelConfig c = {.vocab_size = 9, .embed = 4, .hidden = 6, .layers = 3};
    Model m;
    char err[ERR_LEN];
    ck_assert_int_eq(model_alloc(&m, &c, err), 0);
    ck_assert_uint_eq(m.num_params, model_param_count(&c));
    for (size_t i = 0; i < m.num_params; i++) ck_assert_float_eq(m.params[i], 0.0f);
    ModelTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&c, t);
    ck_assert_ptr_eq(m.w.embedding, m.params + t[0].offset);
    for (int k = 0; k < 3; k++) {
        ck_assert_ptr_eq(m.w.w_ih[k], m.params + t[1 + 4 * k].offset);
        ck_assert_ptr_eq(m.w.w_hh[k], m.params + t[2 + 4 * k].offset);
        ck_assert_ptr_eq(m.w.b_ih[k], m.params + t[3 + 4 * k].offset);
        ck_assert_ptr_eq(m.w.b_hh[k], m.params + t[4 + 4 * k].offset);
    }
    ck_assert_ptr_null(m.w.w_ih[3]);
    ck_assert_ptr_eq(m.w.fc_w, m.params + t[n - 2].offset);
    ck_assert_ptr_eq(m.w.fc_b, m.params + t[n - 1].offset);
    model_free(&m);
    ck_assert_ptr_null(m.params);

    ModelConfig bad = c;
    bad.layers = 0;
    ck_assert_int_eq(model_alloc(&m, &bad, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "layers"));
}
END_TEST

START_TEST(test_init_deterministic) {
    ModelConfig c = {.vocab_size = 11, .embed = 8, .hidden = 16, .layers = 2};
    Model a, b, d;
    char err[ERR_LEN];
    ck_assert_int_eq(model_init(&a, &c, 42, err), 0);
    ck_assert_int_eq(model_init(&b, &c, 42, err), 0);
    ck_assert_int_eq(model_init(&d, &c, 43, err), 0);
    ck_assert_mem_eq(a.params, b.params, a.num_params * sizeof(float));
    size_t differ = 0;
    for (size_t i = 0; i < a.num_params; i++) differ += a.params[i] != d.params[i];
    ck_assert_uint_gt(differ, a.num_params * 9 / 10);
    model_free(&a);
    model_free(&b);
    model_free(&d);
}
END_TEST

START_TEST(test_init_ranges) {
    ModelConfig c = {.vocab_size = 50, .embed = 40, .hidden = 64, .layers = 2};
    Model m;
    char err[ERR_LEN];
    ck_assert_int_eq(model_init(&m, &c, 7, err), 0);
    ModelTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&c, t);

    // Embedding ~ N(0, 1): 2000 draws, so mean within ~0.1 and variance near 1.
    double sum = 0, sq = 0, maxabs = 0;
    for (size_t i = 0; i < t[0].count; i++) {
        double x = m.w.embedding[i];
        sum += x, sq += x * x;
        if (fabs(x) > maxabs) maxabs = fabs(x);
    }
    double mean = sum / (double)t[0].count, var = sq / (double)t[0].count - mean * mean;
    ck_assert_double_lt(fabs(mean), 0.1);
    ck_assert_double_gt(var, 0.85);
    ck_assert_double_lt(var, 1.15);
    ck_assert_double_gt(maxabs, 2.0); // a normal, not a narrow uniform

    // Everything else ~ U(-1/sqrt(H), 1/sqrt(H)), spread over the whole interval.
    float bound = 1.0f / sqrtf(64.0f);
    for (int k = 1; k < n; k++) {
        const float *p = m.params + t[k].offset;
        float lo = 1, hi = -1;
        double s = 0;
        for (size_t i = 0; i < t[k].count; i++) {
            ck_assert_float_le(fabsf(p[i]), bound);
            if (p[i] < lo) lo = p[i];
            if (p[i] > hi) hi = p[i];
            s += p[i];
        }
        ck_assert_msg(lo < -0.8f * bound && hi > 0.8f * bound, "%s spans [%g, %g]", t[k].name, lo,
                      hi);
        ck_assert_double_lt(fabs(s / (double)t[k].count), 0.2 * bound);
    }
    model_free(&m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_config_check);
    tcase_add_test(tc, test_param_count);
    tcase_add_test(tc, test_tensor_table);
    tcase_add_test(tc, test_point_matches_table);
    tcase_add_test(tc, test_init_deterministic);
    tcase_add_test(tc, test_init_ranges);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
