/* charlm-server over real HTTP with two models loaded (--model twice, --model-id each):
 * each answers by id with the text it gives when served alone, for the same seed; the
 * default is the first; an unknown id is OpenAI's 404 model_not_found on every route that
 * takes one; /v1/models and /model?model=ID describe each; the metrics count per model;
 * two models with one id do not start. (Reloads: test_server_reload.c.) */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_harness.h"
#include "testutil.h"

static char second[4096];
// What each model answers alone: the references the two-model server must reproduce.
static char *alone_text[2][2], *alone_tokens[2]; // [path][model], [model]
static const char *const paths[2] = {"/generate", "/v1/completions"};

#define GEN_BODY "{\"prompt\": \"The \", \"max_tokens\": 40, \"seed\": 7%s}"

static char *text_of(int port, const char *path, const char *model_member) {
    char body[256];
    snprintf(body, sizeof(body), GEN_BODY, model_member);
    Resp r = http_post(port, path, body);
    ck_assert_msg(r.status == 200, "%s: %ld %s", path, r.status, r.body);
    cJSON *j = resp_json(&r);
    const cJSON *src = strcmp(path, "/generate") == 0
                           ? j
                           : cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    char *t = strdup(json_str(src, "text"));
    cJSON_Delete(j);
    resp_free(&r);
    return t;
}

static char *tokens_of(int port, const char *model_member) {
    char body[256];
    snprintf(body, sizeof(body), "{\"content\": \"The raven, 1845!\"%s}", model_member);
    Resp r = http_post(port, "/tokenize", body);
    ck_assert_int_eq(r.status, 200);
    char *t = strdup(r.body);
    resp_free(&r);
    return t;
}

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 2, 13);
    snprintf(second, sizeof(second), "%s/poe", root);
    ck_assert_int_eq(tu_make_model_dir(second,
                                       "Once upon a midnight dreary, while I pondered, weak and "
                                       "weary, 1845 RAVEN; quoth: nevermore!\n",
                                       8, 24, 1, 99),
                     0);
    const char *dirs[2] = {model_dir, second};
    for (int m = 0; m < 2; m++) {
        Srv s;
        ck_assert_int_eq(srv_start(&s, dirs[m], NULL), 0);
        for (int p = 0; p < 2; p++) alone_text[p][m] = text_of(s.port, paths[p], "");
        alone_tokens[m] = tokens_of(s.port, "");
        ck_assert_int_eq(srv_stop(&s), 0);
    }
    for (int p = 0; p < 2; p++) ck_assert_str_ne(alone_text[p][0], alone_text[p][1]);
    ck_assert_str_ne(alone_tokens[0], alone_tokens[1]);
}

static void suite_teardown(void) {
    for (int m = 0; m < 2; m++)
        free(alone_text[0][m]), free(alone_text[1][m]), free(alone_tokens[m]);
    suite_model_remove();
}

static Srv s;

static void start_two(void) {
    const char *args[] = {"--model-id", "alpha", "--model", second, "--model-id", "beta", NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
}

static void stop_two(void) {
    ck_assert_int_eq(srv_stop(&s), 0);
}

START_TEST(test_each_model_by_id) {
    for (int p = 0; p < 2; p++) {
        char *a = text_of(s.port, paths[p], ", \"model\": \"alpha\"");
        char *b = text_of(s.port, paths[p], ", \"model\": \"beta\"");
        char *d = text_of(s.port, paths[p], "");
        ck_assert_str_eq(a, alone_text[p][0]);
        ck_assert_str_eq(b, alone_text[p][1]);
        ck_assert_str_eq(d, alone_text[p][0]); // no model: the first one loaded
        free(a), free(b), free(d);
    }
    // The replies name the model that answered.
    Resp r = http_post(s.port, "/v1/chat/completions",
                       "{\"model\": \"beta\", \"max_tokens\": 5, \"seed\": 1, "
                       "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}");
    ck_assert_int_eq(r.status, 200);
    cJSON *j = resp_json(&r);
    ck_assert_str_eq(json_str(j, "model"), "beta");
    cJSON_Delete(j);
    resp_free(&r);
    r = http_post(s.port, "/generate",
                  "{\"prompt\": \"a\", \"max_tokens\": 2, \"model\": \"beta\"}");
    j = resp_json(&r);
    ck_assert_str_eq(json_str(j, "model"), "beta");
    cJSON_Delete(j);
    resp_free(&r);
    // Each model's own vocabulary.
    char *ta = tokens_of(s.port, ", \"model\": \"alpha\""),
         *tb = tokens_of(s.port, ", \"model\": \"beta\"");
    ck_assert_str_eq(ta, alone_tokens[0]);
    ck_assert_str_eq(tb, alone_tokens[1]);
    free(ta), free(tb);
}
END_TEST

START_TEST(test_unknown_model_is_404) {
    const char *const posts[][2] = {
        {"/generate", "{\"prompt\": \"a\", \"model\": \"gpt-4\"}"},
        {"/v1/completions", "{\"prompt\": \"a\", \"model\": \"gpt-4\"}"},
        {"/v1/chat/completions",
         "{\"model\": \"gpt-4\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}"},
        {"/tokenize", "{\"content\": \"a\", \"model\": \"gpt-4\"}"},
        {"/detokenize", "{\"tokens\": [1], \"model\": \"gpt-4\"}"},
    };
    for (size_t i = 0; i < sizeof(posts) / sizeof(*posts); i++) {
        Resp r = http_post(s.port, posts[i][0], posts[i][1]);
        assert_error(&r, 404, "model");
        cJSON *j = resp_json(&r);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        ck_assert_str_eq(json_str(e, "code"), "model_not_found");
        ck_assert_ptr_nonnull(strstr(json_str(e, "message"), "'alpha', 'beta'"));
        cJSON_Delete(j);
        resp_free(&r);
    }
    const char *const gets[] = {"/model?model=gpt-4", "/v1/models/gpt-4", "/v1/models/alph"};
    for (size_t i = 0; i < sizeof(gets) / sizeof(*gets); i++) {
        Resp r = http_get(s.port, gets[i]);
        assert_error(&r, 404, "model");
        resp_free(&r);
    }
    // A model that is not a string is the request's fault, whatever it names.
    Resp r = http_post(s.port, "/generate", "{\"prompt\": \"a\", \"model\": 3}");
    assert_error(&r, 400, "model");
    resp_free(&r);
}
END_TEST

START_TEST(test_models_listed_and_described) {
    Resp r = http_get(s.port, "/v1/models");
    ck_assert_int_eq(r.status, 200);
    cJSON *j = resp_json(&r);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    ck_assert_int_eq(cJSON_GetArraySize(data), 2);
    static const char *const ids[] = {"alpha", "beta"};
    static const int hidden[] = {48, 24}, layers[] = {2, 1}, embed[] = {16, 8};
    for (int m = 0; m < 2; m++) {
        const cJSON *o = cJSON_GetArrayItem(data, m);
        ck_assert_str_eq(json_str(o, "id"), ids[m]);
        ck_assert_str_eq(json_str(o, "object"), "model");
        ck_assert_int_eq((int)json_num(o, "hidden"), hidden[m]);
        ck_assert_int_eq((int)json_num(o, "layers"), layers[m]);
        ck_assert_int_eq((int)json_num(o, "embed"), embed[m]);
        ck_assert(json_num(o, "parameters") > 0);
        ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "steps")));
        ck_assert(json_num(o, "created") > 1.7e9);
        // /v1/models/{id} and /model?model=ID say the same of it.
        char path[64];
        snprintf(path, sizeof(path), "/v1/models/%s", ids[m]);
        Resp one = http_get(s.port, path);
        cJSON *oj = resp_json(&one);
        ck_assert_int_eq(one.status, 200);
        ck_assert_int_eq((int)json_num(oj, "hidden"), hidden[m]);
        cJSON_Delete(oj);
        resp_free(&one);
        snprintf(path, sizeof(path), "/model?model=%s", ids[m]);
        Resp card = http_get(s.port, path);
        cJSON *cj = resp_json(&card);
        ck_assert_int_eq(card.status, 200);
        ck_assert_str_eq(json_str(cj, "id"), ids[m]);
        ck_assert_int_eq((int)json_num(cj, "hidden"), hidden[m]);
        ck_assert_int_eq((int)json_num(cj, "parameters"), (int)json_num(o, "parameters"));
        cJSON_Delete(cj);
        resp_free(&card);
    }
    cJSON_Delete(j);
    resp_free(&r);
    // /model alone is the default's card; /health names the default and lists both.
    r = http_get(s.port, "/model");
    j = resp_json(&r);
    ck_assert_str_eq(json_str(j, "id"), "alpha");
    cJSON_Delete(j);
    resp_free(&r);
    r = http_get(s.port, "/health");
    j = resp_json(&r);
    ck_assert_str_eq(json_str(cJSON_GetObjectItemCaseSensitive(j, "model"), "id"), "alpha");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "models")), 2);
    cJSON_Delete(j);
    resp_free(&r);
}
END_TEST

START_TEST(test_metrics_per_model) {
    free(text_of(s.port, "/generate", ", \"model\": \"beta\""));
    free(text_of(s.port, "/generate", ", \"model\": \"beta\""));
    free(text_of(s.port, "/generate", ", \"model\": \"alpha\""));
    const char *want[] = {
        "charlm_generated_chars_total{model=\"alpha\"} 40\n",
        "charlm_generated_chars_total{model=\"beta\"} 80\n",
        "charlm_generations_total{model=\"beta\",finish_reason=\"length\"} 2\n",
        "charlm_model_parameters{model=\"alpha\"} ",
        "charlm_model_parameters{model=\"beta\"} ",
    };
    Resp r = http_get(s.port, "/metrics");
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
        ck_assert_msg(strstr(r.body, want[i]), "no %s in\n%s", want[i], r.body);
    resp_free(&r);
}
END_TEST

// Outside the fixture: these servers must not start.
START_TEST(test_bad_model_sets_refused) {
    const char *same[] = {"--model", second, "--model-id", "x", "--model-id", "x", NULL};
    const char *too_many[] = {"--model-id", "a", "--model-id", "b", NULL};
    const char *const *cases[] = {same, too_many};
    const char *why[] = {"two models with the id 'x'", "2 --model-id for 1 --model"};
    for (int i = 0; i < 2; i++) {
        Srv bad;
        ck_assert_int_ne(srv_start(&bad, model_dir, cases[i]), 0);
        char *log = tu_read_file(bad.log, NULL);
        ck_assert_msg(log && strstr(log, why[i]), "%s", log ? log : "(no log)");
        free(log);
        srv_stop(&bad);
    }
}
END_TEST

int main(void) {
    Suite *su = suite_create("server_models");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_two, stop_two);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_each_model_by_id);
    tcase_add_test(tc, test_unknown_model_is_404);
    tcase_add_test(tc, test_models_listed_and_described);
    tcase_add_test(tc, test_metrics_per_model);
    suite_add_tcase(su, tc);
    TCase *tb = tcase_create("startup");
    tcase_add_unchecked_fixture(tb, suite_setup, suite_teardown);
    tcase_set_timeout(tb, 120);
    tcase_add_test(tb, test_bad_model_sets_refused);
    suite_add_tcase(su, tb);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
