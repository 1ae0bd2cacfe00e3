/* core/genparams: the table of generation parameters, looked up, checked, shown and
 * defaulted. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "genparams.h"

// The field a row describes, read back as a double.
static double field(const GenerateParams *p, const GenParam *gp) {
    const char *f = (const char *)p + gp->offset;
    switch (gp->type) {
    case GENPARAM_INT:
        return *(const int *)f;
    case GENPARAM_FLOAT:
        return *(const float *)f;
    case GENPARAM_SEED:
        return (double)*(const uint64_t *)f;
    }
    return NAN;
}

static const GenParam *row(const char *name) {
    const GenParam *gp = genparams_find(name);
    ck_assert_msg(gp != NULL, "no row %s", name);
    return gp;
}

START_TEST(test_find) {
    static const struct {
        const char *query, *found; // found NULL: no row
    } cases[] = {
        {"max_tokens", "max_tokens"},
        {"max-tokens", "max_tokens"},
        {"temperature", "temperature"},
        {"top_k", "top_k"},
        {"top-p", "top_p"},
        {"repetition-penalty", "repetition_penalty"},
        {"repetition_window", "repetition_window"},
        {"seed", "seed"},
        {"max_token", NULL},
        {"max_tokens_", NULL},
        {"max_tokensx", NULL},
        {"MAX_TOKENS", NULL},
        {"max tokens", NULL},
        {"stop", NULL}, // not a number: the server's parser handles it
        {"prompt", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const GenParam *gp = genparams_find(cases[i].query);
        if (!cases[i].found) {
            ck_assert_msg(gp == NULL, "%s found %s", cases[i].query, gp ? gp->name : "");
        } else {
            ck_assert_msg(gp != NULL, "%s not found", cases[i].query);
            ck_assert_str_eq(gp->name, cases[i].found);
        }
    }
    // Every row by its own name, and names are JSON spellings.
    for (int i = 0; i < genparams_count; i++) {
        ck_assert_ptr_eq(genparams_find(genparams[i].name), &genparams[i]);
        ck_assert_ptr_null(strchr(genparams[i].name, '-'));
        ck_assert(genparams[i].help && genparams[i].help[0]);
    }
}
END_TEST

START_TEST(test_set) {
    static const struct {
        const char *name;
        double v, cap;
        double want;     // stored value; NAN: refused
        const char *msg; // refused: the whole message
    } cases[] = {
        {"max_tokens", 1, 0, 1, NULL},
        {"max_tokens", 0, 0, NAN, "max_tokens must be an integer from 1 to 1000000"},
        {"max_tokens", GEN_MAX_TOKENS_LIMIT, 0, GEN_MAX_TOKENS_LIMIT, NULL},
        {"max_tokens", GEN_MAX_TOKENS_LIMIT + 1, 0, NAN,
         "max_tokens must be an integer from 1 to 1000000"},
        {"max_tokens", 50, 50, 50, NULL},
        {"max_tokens", 51, 50, NAN, "max_tokens must be an integer from 1 to 50"},
        {"max_tokens", 2e6, 2e6, NAN, "max_tokens must be an integer from 1 to 1000000"},
        {"max_tokens", 2.0, 0, 2, NULL},
        {"max_tokens", 1.5, 0, NAN, "max_tokens must be an integer"},
        {"max_tokens", INFINITY, 0, NAN, "max_tokens must be a finite number"},
        {"max_tokens", NAN, 0, NAN, "max_tokens must be a finite number"},
        {"temperature", 0, 0, 0, NULL},
        {"temperature", 0.8, 0, 0.8f, NULL},
        {"temperature", -0.1, 0, NAN, "temperature must be >= 0"},
        {"temperature", 1e300, 0, FLT_MAX, NULL},  // kept inside float's range
        {"temperature", 1e-300, 0, FLT_MIN, NULL}, // and not rounded to 0 (greedy)
        {"temperature", -INFINITY, 0, NAN, "temperature must be a finite number"},
        {"top_k", 0, 0, 0, NULL},
        {"top_k", -1, 0, NAN, "top_k must be an integer from 0 to 2147483647"},
        {"top_k", INT32_MAX, 0, INT32_MAX, NULL},
        {"top_k", 2147483648.0, 0, NAN, "top_k must be an integer from 0 to 2147483647"},
        {"top_k", 2.5, 0, NAN, "top_k must be an integer"},
        {"top_k", 11, 10, NAN, "top_k must be an integer from 0 to 10"}, // cap is any row's
        {"top_p", 0, 0, NAN, "top_p must be in (0, 1]"},
        {"top_p", 1e-9, 0, 1e-9f, NULL},
        {"top_p", 1, 0, 1, NULL},
        {"top_p", 1.01, 0, NAN, "top_p must be in (0, 1]"},
        {"repetition_penalty", 0, 0, NAN, "repetition_penalty must be > 0"},
        {"repetition_penalty", -1, 0, NAN, "repetition_penalty must be > 0"},
        {"repetition_penalty", 1e-40, 0, FLT_MIN, NULL},
        {"repetition_penalty", 1e40, 0, FLT_MAX, NULL},
        {"repetition_window", 0, 0, 0, NULL},
        {"repetition_window", -1, 0, NAN,
         "repetition_window must be an integer from 0 to 2147483647"},
        {"repetition_window", INT32_MAX, 0, INT32_MAX, NULL},
        {"seed", 0, 0, 0, NULL},
        {"seed", GEN_SEED_MAX, 0, GEN_SEED_MAX, NULL},
        {"seed", GEN_SEED_MAX + 2, 0, NAN, "seed must be an integer from 0 to 9007199254740992"},
        {"seed", -1, 0, NAN, "seed must be an integer from 0 to 9007199254740992"},
        {"seed", 0.5, 0, NAN, "seed must be an integer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const GenParam *gp = row(cases[i].name);
        GenerateParams p;
        genparams_defaults(&p, 0, 0);
        GenerateParams before = p;
        char err[ERR_LEN] = "";
        int rc = genparams_set(&p, gp, cases[i].v, cases[i].cap, err);
        if (isnan(cases[i].want)) {
            ck_assert_msg(rc == -1, "%s = %g accepted", cases[i].name, cases[i].v);
            ck_assert_str_eq(err, cases[i].msg);
            ck_assert_msg(memcmp(&p, &before, sizeof(p)) == 0, "%s: refused but stored",
                          cases[i].name);
        } else {
            ck_assert_msg(rc == 0, "%s = %g refused: %s", cases[i].name, cases[i].v, err);
            ck_assert_msg(field(&p, gp) == cases[i].want, "%s = %g stored %.17g", cases[i].name,
                          cases[i].v, field(&p, gp));
        }
    }
    // The seed keeps every bit up to 2^53.
    GenerateParams p;
    genparams_defaults(&p, 0, 0);
    ck_assert_int_eq(genparams_set(&p, row("seed"), 9007199254740991.0, 0, NULL), 0);
    ck_assert_uint_eq(p.seed, 9007199254740991ull);
}
END_TEST

START_TEST(test_range_text) {
    static const struct {
        const char *name;
        double cap;
        const char *text;
    } cases[] = {
        {"max_tokens", 0, "1 to 1000000"},
        {"max_tokens", 2000, "1 to 2000"},
        {"max_tokens", 5e6, "1 to 1000000"},
        {"temperature", 0, ">= 0"},
        {"top_k", 0, "0 to 2147483647"},
        {"top_p", 0, "(0, 1]"},
        {"top_p", 0.5, "(0, 0.5]"},
        {"repetition_penalty", 0, "> 0"},
        {"repetition_window", 0, "0 to 2147483647"},
        {"seed", 0, "0 to 9007199254740992"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char buf[64];
        genparams_range_text(row(cases[i].name), cases[i].cap, buf, sizeof(buf));
        ck_assert_str_eq(buf, cases[i].text);
    }
    // Truncated, never overrun.
    char small[4];
    genparams_range_text(row("seed"), 0, small, sizeof(small));
    ck_assert_str_eq(small, "0 t");
}
END_TEST

START_TEST(test_max_and_default) {
    static const struct {
        const char *name;
        int openai, cap;
        double max, def;
    } cases[] = {
        {"max_tokens", 0, 0, GEN_MAX_TOKENS_LIMIT, 200},
        {"max_tokens", 0, 2000, 2000, 200},
        {"max_tokens", 0, 50, 50, 50},
        {"max_tokens", 1, 50, 50, 16},
        {"max_tokens", 1, 10, 10, 10},
        {"max_tokens", 0, 2000000, GEN_MAX_TOKENS_LIMIT, 200},
        {"temperature", 0, 50, INFINITY, 0.8},
        {"temperature", 1, 0, INFINITY, 1.0},
        {"top_k", 0, 10, INT32_MAX, 40}, // --max-tokens bounds max_tokens only
        {"top_k", 1, 0, INT32_MAX, 0},
        {"top_p", 0, 0, 1, 1},
        {"top_p", 1, 0, 1, 1},
        {"repetition_penalty", 0, 0, INFINITY, 1},
        {"repetition_penalty", 1, 0, INFINITY, 1},
        {"repetition_window", 0, 0, INT32_MAX, 64},
        {"repetition_window", 1, 0, INT32_MAX, 64},
        {"seed", 0, 0, GEN_SEED_MAX, NAN},
        {"seed", 1, 0, GEN_SEED_MAX, NAN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const GenParam *gp = row(cases[i].name);
        double max = genparams_max(gp, cases[i].cap);
        double def = genparams_default(gp, cases[i].openai, cases[i].cap);
        ck_assert_msg(max == cases[i].max, "%s cap %d: max %g", cases[i].name, cases[i].cap, max);
        if (isnan(cases[i].def))
            ck_assert_msg(isnan(def), "%s: default %g, expected none", cases[i].name, def);
        else
            ck_assert_msg(def == cases[i].def, "%s openai %d cap %d: default %g", cases[i].name,
                          cases[i].openai, cases[i].cap, def);
    }
    // Every default is a value genparams_set accepts.
    for (int i = 0; i < genparams_count; i++) {
        for (int openai = 0; openai <= 1; openai++) {
            double def = genparams_default(&genparams[i], openai, 0);
            if (isnan(def)) continue;
            GenerateParams p;
            char err[ERR_LEN];
            ck_assert_msg(genparams_set(&p, &genparams[i], def, 0, err) == 0, "%s", err);
        }
    }
}
END_TEST

START_TEST(test_defaults) {
    static const struct {
        int openai, cap;
        GenerateParams want;
    } cases[] = {
        {0, 0, {{0.8f, 40, 1.0f, 1.0f, 64, 0, 0, 0, 0, NULL}, 200, 0, 0, {0}, 0, 0, 0}},
        {0, 2000, {{0.8f, 40, 1.0f, 1.0f, 64, 0, 0, 0, 0, NULL}, 200, 0, 0, {0}, 0, 0, 0}},
        {0, 50, {{0.8f, 40, 1.0f, 1.0f, 64, 0, 0, 0, 0, NULL}, 50, 0, 0, {0}, 0, 0, 0}},
        {1, 0, {{1.0f, 0, 1.0f, 1.0f, 64, 0, 0, 0, 0, NULL}, 16, 0, 0, {0}, 0, 0, 0}},
        {1, 5, {{1.0f, 0, 1.0f, 1.0f, 64, 0, 0, 0, 0, NULL}, 5, 0, 0, {0}, 0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        GenerateParams p;
        memset(&p, 0xAB, sizeof(p)); // whatever was there goes
        genparams_defaults(&p, cases[i].openai, cases[i].cap);
        const GenerateParams *w = &cases[i].want;
        ck_assert_int_eq(p.max_tokens, w->max_tokens);
        ck_assert_float_eq(p.sampler.temperature, w->sampler.temperature);
        ck_assert_int_eq(p.sampler.top_k, w->sampler.top_k);
        ck_assert_float_eq(p.sampler.top_p, w->sampler.top_p);
        ck_assert_float_eq(p.sampler.repetition_penalty, w->sampler.repetition_penalty);
        ck_assert_int_eq(p.sampler.repetition_window, w->sampler.repetition_window);
        ck_assert_float_eq(p.sampler.presence_penalty, 0);
        ck_assert_float_eq(p.sampler.frequency_penalty, 0);
        ck_assert_float_eq(p.sampler.min_p, 0);
        ck_assert_int_eq(p.sampler.nbias, 0);
        ck_assert_ptr_null(p.sampler.bias);
        ck_assert_uint_eq(p.seed, 0);
        ck_assert_int_eq(p.nstop, 0);
        for (int s = 0; s < GEN_MAX_STOP; s++) ck_assert_ptr_null(p.stop[s]);
    }
}
END_TEST

// Writes v into the field a row describes, unchecked, as code that fills GenerateParams
// by hand would.
static void put(GenerateParams *p, const GenParam *gp, double v) {
    char *f = (char *)p + gp->offset;
    switch (gp->type) {
    case GENPARAM_INT:
        *(int *)f = (int)v;
        break;
    case GENPARAM_FLOAT:
        *(float *)f = (float)v;
        break;
    case GENPARAM_SEED:
        *(uint64_t *)f = (uint64_t)v;
        break;
    }
}

// genparams_check on a whole GenerateParams: the same verdict and message as
// genparams_set on the one value, but for max_tokens 0 and any seed.
START_TEST(test_check) {
    static const struct {
        const char *name;
        double v;
        const char *msg; // NULL: passes
    } cases[] = {
        {"max_tokens", 0, NULL}, // scores the prompt
        {"max_tokens", 1, NULL},
        {"max_tokens", -1, "max_tokens must be an integer from 1 to 1000000"},
        {"max_tokens", GEN_MAX_TOKENS_LIMIT + 1, "max_tokens must be an integer from 1 to 1000000"},
        {"temperature", 0, NULL},
        {"temperature", -0.5, "temperature must be >= 0"},
        {"temperature", INFINITY, "temperature must be a finite number"},
        {"temperature", NAN, "temperature must be a finite number"},
        {"top_k", -1, "top_k must be an integer from 0 to 2147483647"},
        {"top_p", 0, "top_p must be in (0, 1]"},
        {"top_p", 1, NULL},
        {"top_p", 1.5, "top_p must be in (0, 1]"},
        {"repetition_penalty", 0, "repetition_penalty must be > 0"},
        {"repetition_penalty", 1e30, NULL},
        {"repetition_window", -1, "repetition_window must be an integer from 0 to 2147483647"},
        {"presence_penalty", 2.5, "presence_penalty must be in [-2, 2]"},
        {"frequency_penalty", -2.5, "frequency_penalty must be in [-2, 2]"},
        {"frequency_penalty", -2, NULL},
        {"min_p", 1.5, "min_p must be in [0, 1]"},
        {"min_p", -0.1, "min_p must be in [0, 1]"},
        {"seed", 0, NULL},
        {"seed", 18446744073709551615.0 / 2, NULL}, // a child seed: past the row, still a seed
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const GenParam *gp = row(cases[i].name);
        GenerateParams p;
        genparams_defaults(&p, 0, 0);
        put(&p, gp, cases[i].v);
        char err[ERR_LEN] = "";
        int rc = genparams_check(&p, err);
        if (cases[i].msg) {
            ck_assert_msg(rc == -1, "%s = %g passed", cases[i].name, cases[i].v);
            ck_assert_str_eq(err, cases[i].msg);
            GenerateParams q;
            char set_err[ERR_LEN];
            ck_assert_int_eq(genparams_set(&q, gp, cases[i].v, 0, set_err), -1);
            ck_assert_str_eq(set_err, err);
        } else {
            ck_assert_msg(rc == 0, "%s = %g: %s", cases[i].name, cases[i].v, err);
        }
    }
    // Every endpoint's defaults pass.
    for (int openai = 0; openai <= 1; openai++) {
        GenerateParams p;
        genparams_defaults(&p, openai, 0);
        ck_assert_int_eq(genparams_check(&p, NULL), 0);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("genparams");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_set);
    tcase_add_test(tc, test_range_text);
    tcase_add_test(tc, test_max_and_default);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_check);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
