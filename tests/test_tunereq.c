/*
 * test_tunereq — the body of POST /v1/fine_tuning/jobs, table-driven: what each field
 * takes, and the field (OpenAI's `param`) a refusal names.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "tunereq.h"

#define FILE_ID "file-0123456789abcdef01234567"
#define TF      "\"training_file\": \"" FILE_ID "\""

typedef struct {
    const char *body;
    const char *param; // the field refused; "" for the body as a whole; NULL: accepted
    const char *err;   // a part of the message
    // What an accepted body gives.
    const char *model;
    double n_epochs;
    long steps;
    int batch;
    double lr_mult, max_time;
    const char *suffix;
    int has_seed;
    unsigned long long seed;
} Case;

// A refusal: nothing but the body, the field and the message.
#define BAD(body, param, err)                                                                      \
    { body, param, err, NULL, 0, 0, 0, 0, 0, NULL, 0, 0 }

static const Case cases[] = {
    {"{" TF ", \"model\": \"lstm\"}", NULL, NULL, "lstm", 0, 0, 0, 0, 0, "", 0, 0},
    {"{" TF ", \"model\": \"gpt\", \"hyperparameters\": {\"n_epochs\": 3, \"batch_size\": 16, "
     "\"learning_rate_multiplier\": 0.5}, \"suffix\": \"my-poems.v2\", \"seed\": 7}",
     NULL, NULL, "gpt", 3, 0, 16, 0.5, 0, "my-poems.v2", 1, 7},
    {"{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"n_epochs\": \"auto\", "
     "\"batch_size\": \"auto\", \"learning_rate_multiplier\": \"auto\"}}",
     NULL, NULL, "lstm", 0, 0, 0, 0, 0, "", 0, 0},
    {"{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"steps\": 200, \"max_time\": 30.5}}",
     NULL, NULL, "lstm", 0, 200, 0, 0, 30.5, "", 0, 0},
    {"{" TF ", \"model\": \"ft:lstm:charlm::0a1b2c3d\", \"validation_file\": null, \"suffix\": "
     "null, \"seed\": null, \"metadata\": {\"k\": \"v\"}, \"integrations\": []}",
     NULL, NULL, "ft:lstm:charlm::0a1b2c3d", 0, 0, 0, 0, 0, "", 0, 0},
    // OpenAI's newer shape: the hyperparameters inside the method.
    {"{" TF ", \"model\": \"lstm\", \"method\": {\"type\": \"supervised\", \"supervised\": "
     "{\"hyperparameters\": {\"n_epochs\": 2}}}}",
     NULL, NULL, "lstm", 2, 0, 0, 0, 0, "", 0, 0},
    {"{" TF ", \"model\": \"lstm\", \"seed\": 2147483647}", NULL, NULL, "lstm", 0, 0, 0, 0, 0, "",
     1, 2147483647ULL},

    BAD("", "", "not valid JSON"),
    BAD("[1]", "", "a JSON object"),
    BAD("{\"model\": \"lstm\"}", "training_file", "training_file is required"),
    BAD("{\"training_file\": 3, \"model\": \"lstm\"}", "training_file", "must be a file id"),
    BAD("{\"training_file\": \"\", \"model\": \"lstm\"}", "training_file", "must be a file id"),
    BAD("{" TF ", \"validation_file\": 1, \"model\": \"lstm\"}", "validation_file", "file id"),
    BAD("{" TF "}", "model", "model is required"),
    BAD("{" TF ", \"model\": \"\"}", "model", "model is required"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": []}", "hyperparameters", "an object"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"n_epochs\": 0}}", "n_epochs",
        "\"auto\" or a number from 0.001 to 1000"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"n_epochs\": \"many\"}}", "n_epochs",
        "\"auto\" or a number"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"steps\": 1.5}}", "steps",
        "a whole number from 1 to 10000000"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"steps\": \"auto\"}}", "steps",
        "a whole number"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"batch_size\": 5000}}", "batch_size",
        "from 1 to 4096"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"learning_rate_multiplier\": -1}}",
        "learning_rate_multiplier", "a number from 0.0001 to 100"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"max_time\": 0}}", "max_time",
        "a number from 1 to 604800"),
    BAD("{" TF ", \"model\": \"lstm\", \"hyperparameters\": {\"steps\": 5, \"n_epochs\": 1}}",
        "steps", "not both"),
    BAD("{" TF ", \"model\": \"lstm\", \"method\": {\"type\": \"dpo\"}}", "method", "supervised"),
    BAD("{" TF ", \"model\": \"lstm\", \"suffix\": \"../../x\"}", "suffix", "A-Z a-z 0-9 . _ -"),
    BAD("{" TF ", \"model\": \"lstm\", \"suffix\": \"a23456789012345678901234567890123456789012\"}",
        "suffix", "at most 40"),
    BAD("{" TF ", \"model\": \"lstm\", \"seed\": -1}", "seed", "from 0 to 2147483647"),
    BAD("{" TF ", \"model\": \"lstm\", \"seed\": 1.5}", "seed", "whole number"),
};

START_TEST(test_parse_table) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        TuneRequest r;
        char err[256] = "";
        const char *param = "unset";
        int rc = tunereq_parse(c->body, strlen(c->body), &r, err, sizeof err, &param);
        if (c->param) {
            ck_assert_msg(rc == -1, "'%s' accepted", c->body);
            ck_assert_msg(strcmp(param ? param : "", c->param) == 0, "'%s': param %s, not %s",
                          c->body, param ? param : "(none)", c->param);
            ck_assert_msg(strstr(err, c->err), "'%s': '%s' lacks '%s'", c->body, err, c->err);
            continue;
        }
        ck_assert_msg(rc == 0, "'%s': %s", c->body, err);
        ck_assert_ptr_null(param);
        ck_assert_str_eq(r.training_file, FILE_ID);
        ck_assert_str_eq(r.validation_file, "");
        ck_assert_str_eq(r.model, c->model);
        ck_assert_double_eq(r.n_epochs, c->n_epochs);
        ck_assert_int_eq(r.steps, c->steps);
        ck_assert_int_eq(r.batch_size, c->batch);
        ck_assert_double_eq(r.lr_mult, c->lr_mult);
        ck_assert_double_eq(r.max_time, c->max_time);
        ck_assert_str_eq(r.suffix, c->suffix);
        ck_assert_int_eq(r.has_seed, c->has_seed);
        ck_assert_uint_eq(r.seed, c->seed);
    }
}
END_TEST

START_TEST(test_validation_file) {
    const char *body = "{" TF ", \"validation_file\": \"file-ffffffffffffffffffffffff\", "
                       "\"model\": \"lstm\"}";
    TuneRequest r;
    char err[256];
    const char *param;
    ck_assert_int_eq(tunereq_parse(body, strlen(body), &r, err, sizeof err, &param), 0);
    ck_assert_str_eq(r.validation_file, "file-ffffffffffffffffffffffff");
    // A body cut short is refused whole, never read past its length.
    ck_assert_int_eq(tunereq_parse(body, 20, &r, err, sizeof err, &param), -1);
    ck_assert_ptr_null(param);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tunereq");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_table);
    tcase_add_test(tc, test_validation_file);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
