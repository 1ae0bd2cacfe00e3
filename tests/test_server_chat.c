/* charlm-server over real HTTP: /v1/chat/completions (shapes, the template, streaming),
 * the OpenAI parameters refused or accepted, /tokenize and /detokenize, and the model's
 * identity. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 2, 11);
}

static cJSON *post_ok(int port, const char *path, const char *body) {
    Resp r = http_post(port, path, body);
    ck_assert_msg(r.status == 200, "%s %s: %ld %s", path, body, r.status, r.body);
    cJSON *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static const cJSON *choice0(const cJSON *j) {
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    ck_assert_ptr_nonnull(c);
    return c;
}

static char *chat_content(int port, const char *body) {
    cJSON *j = post_ok(port, "/v1/chat/completions", body);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(choice0(j), "message");
    char *s = strdup(json_str(m, "content"));
    cJSON_Delete(j);
    return s;
}

static char *completion_text(int port, const char *body) {
    cJSON *j = post_ok(port, "/v1/completions", body);
    char *s = strdup(json_str(choice0(j), "text"));
    cJSON_Delete(j);
    return s;
}

// How many chars of text the model knows: what prompt_tokens counts.
static int known_chars(int port, const char *text) {
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "content", text);
    char *body = cJSON_PrintUnformatted(in);
    cJSON_Delete(in);
    cJSON *j = post_ok(port, "/tokenize", body);
    free(body);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "tokens"));
    cJSON_Delete(j);
    return n;
}

#define MSGS                                                                                       \
    "\"messages\": [{\"role\": \"system\", \"content\": \"the sun\"}, "                            \
    "{\"role\": \"user\", \"content\": \"a cat sat\"}, "                                           \
    "{\"role\": \"assistant\", \"content\": \"on a mat\"}, "                                       \
    "{\"role\": \"user\", \"content\": \"and a dog\"}]"
// What MSGS makes with the built-in template.
#define MSGS_PROMPT "the sun\nUser: a cat sat\nAssistant: on a mat\nUser: and a dog\nAssistant: "

START_TEST(test_chat_reply) {
    cJSON *j = post_ok(S.port, "/v1/chat/completions",
                       "{\"model\": \"gpt-4o\", " MSGS ", \"max_tokens\": 40, \"seed\": 5}");
    ck_assert_str_eq(json_str(j, "object"), "chat.completion");
    ck_assert_int_eq(strncmp(json_str(j, "id"), "chatcmpl-", 9), 0);
    ck_assert_int_eq(strlen(json_str(j, "id")), 9 + 24);
    ck_assert_str_eq(json_str(j, "model"), "charlm");
    ck_assert(json_num(j, "created") > 1.7e9);
    const cJSON *c = choice0(j);
    ck_assert_int_eq((int)json_num(c, "index"), 0);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c, "logprobs")));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "message");
    ck_assert_str_eq(json_str(m, "role"), "assistant");
    const char *content = json_str(m, "content");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    // The template applied: the prompt is exactly MSGS_PROMPT.
    ck_assert_int_eq((int)json_num(u, "prompt_tokens"), known_chars(S.port, MSGS_PROMPT));
    ck_assert_int_eq((int)json_num(u, "total_tokens"),
                     (int)json_num(u, "prompt_tokens") + (int)json_num(u, "completion_tokens"));
    // The same generation as a completion of that prompt, with the default stop.
    char *ref = completion_text(S.port, "{\"prompt\": \""
                                        "the sun\\nUser: a cat sat\\nAssistant: "
                                        "on a mat\\nUser: and a dog\\nAssistant: \", "
                                        "\"stop\": \"\\nUser:\", \"max_tokens\": 40, \"seed\": 5}");
    ck_assert_str_eq(content, ref);
    const char *finish = json_str(c, "finish_reason");
    ck_assert(strcmp(finish, "length") == 0 || strcmp(finish, "stop") == 0);
    ck_assert_ptr_null(strstr(content, "\nUser:"));
    free(ref);

    // Content as text parts is the same message.
    char *parts = chat_content(
        S.port,
        "{\"messages\": [{\"role\": \"system\", \"content\": [{\"type\": \"text\", \"text\": "
        "\"the \"}, {\"type\": \"text\", \"text\": \"sun\"}]}, {\"role\": \"user\", "
        "\"content\": \"a cat sat\"}, {\"role\": \"assistant\", \"content\": [{\"type\": "
        "\"text\", \"text\": \"on a mat\"}]}, {\"role\": \"user\", \"content\": \"and a "
        "dog\", \"name\": null}], \"max_tokens\": 40, \"seed\": 5}");
    ck_assert_str_eq(parts, content);
    free(parts);
    // max_completion_tokens is max_tokens.
    cJSON *k = post_ok(S.port, "/v1/chat/completions",
                       "{" MSGS ", \"max_completion_tokens\": 3, \"stop\": \"zzz\", \"seed\": 5}");
    ck_assert_int_eq(
        (int)json_num(cJSON_GetObjectItemCaseSensitive(k, "usage"), "completion_tokens"), 3);
    cJSON_Delete(k);
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_chat_stream) {
    const char *body = "{" MSGS ", \"max_tokens\": 60, \"stop\": \"zzz\", \"seed\": 9";
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s}", body);
    char *want = chat_content(S.port, buf);
    snprintf(buf, sizeof(buf),
             "%s, \"stream\": true, \"stream_options\": {\"include_usage\": true}}", body);
    Resp r = http_post(S.port, "/v1/chat/completions", buf);
    ck_assert_int_eq(r.status, 200);
    char *ev[256];
    int n = sse_events(r.body, ev, 256);
    ck_assert_int_ge(n, 5);
    ck_assert_str_eq(ev[n - 1], "[DONE]");
    char got[4096] = "";
    const char *id = NULL;
    cJSON *first = NULL;
    for (int i = 0; i < n - 1; i++) {
        cJSON *e = cJSON_Parse(ev[i]);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(json_str(e, "object"), "chat.completion.chunk");
        ck_assert_str_eq(json_str(e, "model"), "charlm");
        if (!id) {
            first = e;
            id = json_str(e, "id");
        } else {
            ck_assert_str_eq(json_str(e, "id"), id);
        }
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(e, "choices");
        if (i == n - 2) { // usage: no choices
            ck_assert_int_eq(cJSON_GetArraySize(choices), 0);
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(e, "usage");
            ck_assert_int_eq((int)json_num(u, "completion_tokens"), 60);
            ck_assert_int_eq((int)json_num(u, "prompt_tokens"), known_chars(S.port, MSGS_PROMPT));
        } else {
            const cJSON *c = choice0(e);
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "delta");
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(d, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(d, "content");
            const cJSON *fin = cJSON_GetObjectItemCaseSensitive(c, "finish_reason");
            if (i == 0) {
                ck_assert_str_eq(role->valuestring, "assistant");
                ck_assert_str_eq(content->valuestring, "");
                ck_assert(cJSON_IsNull(fin));
            } else if (i == n - 3) { // the end: empty delta, the reason
                ck_assert_int_eq(cJSON_GetArraySize(d), 0);
                ck_assert_str_eq(fin->valuestring, "length");
            } else {
                ck_assert_ptr_null(role);
                ck_assert(cJSON_IsNull(fin));
                strcat(got, content->valuestring);
            }
        }
        if (e != first) cJSON_Delete(e);
    }
    ck_assert_str_eq(got, want);
    cJSON_Delete(first);
    for (int i = 0; i < n; i++) free(ev[i]);
    free(want);
    resp_free(&r);
}
END_TEST

START_TEST(test_custom_template) {
    char *path = tu_write_file(root, "tpl.txt", "[{system}]\nq {user}\na {assistant}!\n", 35);
    const char *args[] = {"--chat-template", path, NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    const char *msgs =
        "\"messages\": [{\"role\": \"system\", \"content\": \"the\"}, "
        "{\"role\": \"user\", \"content\": \"a cat\"}, "
        "{\"role\": \"assistant\", \"content\": \"sat\"}, "
        "{\"role\": \"user\", \"content\": \"on\"}], \"max_tokens\": 30, \"seed\": 3";
    char body[1024];
    snprintf(body, sizeof(body), "{%s}", msgs);
    cJSON *j = post_ok(s.port, "/v1/chat/completions", body);
    const char *prompt = "[the]\nq a cat\na sat!\nq on\na ";
    ck_assert_int_eq((int)json_num(cJSON_GetObjectItemCaseSensitive(j, "usage"), "prompt_tokens"),
                     known_chars(s.port, prompt));
    char *ref = completion_text(s.port, "{\"prompt\": \"[the]\\nq a cat\\na sat!\\nq on\\na \", "
                                        "\"stop\": \"\\nq\", \"max_tokens\": 30, \"seed\": 3}");
    ck_assert_str_eq(json_str(cJSON_GetObjectItemCaseSensitive(choice0(j), "message"), "content"),
                     ref);
    free(ref);
    cJSON_Delete(j);
    // A stop of the request's own replaces the template's.
    snprintf(body, sizeof(body), "{%s, \"stop\": \"zzz\"}", msgs);
    char *a = chat_content(s.port, body);
    char *b = completion_text(s.port, "{\"prompt\": \"[the]\\nq a cat\\na sat!\\nq on\\na \", "
                                      "\"stop\": \"zzz\", \"max_tokens\": 30, \"seed\": 3}");
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    ck_assert_int_eq(srv_stop(&s), 0);
    free(path);
}
END_TEST

START_TEST(test_bad_template) {
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"{system}\nUser: {user}\n", "no line with {assistant}"},
        {"{system}\n{user}\n{assistant}\nmore\n", "three lines"},
        {"{system}\n{user} {assistant}\n{assistant}\n", "more than one placeholder"},
        {"{system}\n{user}\n{user}\n", "repeats"},
        {"{system}\nhello\n{assistant}\n", "line 2"},
        {"\xff{system}\n{user}\n{assistant}\n", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char *path = tu_write_file(root, "bad.txt", bad[i].text, strlen(bad[i].text));
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "%s --model %s --port 0 --chat-template %s",
                 tu_bin("charlm-server"), model_dir, path);
        char *out, *err;
        ck_assert_msg(tu_run(cmd, &out, &err) == 2, "%s", bad[i].text);
        ck_assert_msg(strstr(err, "--chat-template") && strstr(err, bad[i].why), "%s: %s",
                      bad[i].text, err);
        free(out);
        free(err);
        free(path);
    }
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "CHARLM_CHAT_TEMPLATE=%s/missing %s --model %s --port 0", root,
             tu_bin("charlm-server"), model_dir);
    char *out, *err;
    ck_assert_int_eq(tu_run(cmd, &out, &err), 2);
    free(out);
    free(err);
}
END_TEST

#define M1 "\"messages\": [{\"role\": \"user\", \"content\": \"the\"}]"

START_TEST(test_refused_and_accepted) {
    static const struct {
        const char *path, *fields, *param;
    } refused[] = {
        {"/v1/chat/completions", "\"tools\": []", "tools"},
        {"/v1/chat/completions", "\"tool_choice\": \"none\"", "tool_choice"},
        {"/v1/chat/completions", "\"functions\": []", "functions"},
        {"/v1/chat/completions", "\"function_call\": \"auto\"", "function_call"},
        {"/v1/chat/completions", "\"response_format\": {\"type\": \"json_object\"}",
         "response_format"},
        {"/v1/chat/completions", "\"audio\": {}", "audio"},
        {"/v1/chat/completions", "\"modalities\": [\"text\", \"audio\"]", "modalities"},
        {"/v1/chat/completions", "\"n\": 17", "n"},
        {"/v1/chat/completions", "\"logprobs\": 1", "logprobs"},
        {"/v1/chat/completions", "\"top_logprobs\": 3", "top_logprobs"},
        {"/v1/chat/completions", "\"top_logprobs\": 21, \"logprobs\": true", "top_logprobs"},
        {"/v1/chat/completions", "\"prompt\": \"the\"", "prompt"},
        {"/v1/chat/completions", "\"echo\": true", "echo"},
        {"/v1/completions", "\"logprobs\": 6", "logprobs"},
        {"/v1/completions", "\"max_tokens\": 0", "max_tokens"},
        {"/v1/completions", "\"n\": 9, \"prompt\": [\"a\", \"b\"]", "n"},
        {"/v1/completions", "\"suffix\": \"x\"", "suffix"},
        {"/v1/completions", "\"best_of\": 2", "best_of"},
        {"/v1/completions", "\"best_of\": 3, \"n\": 2", "best_of"},
        {"/v1/completions", "\"echo\": 1", "echo"},
        {"/v1/completions", "\"tools\": []", "tools"},
        {"/v1/completions", "\"response_format\": {\"type\": \"json_schema\"}", "response_format"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
        char body[512];
        int chat = strcmp(refused[i].path, "/v1/chat/completions") == 0;
        snprintf(body, sizeof(body), "{%s, %s}", chat ? M1 : "\"prompt\": \"the\"",
                 refused[i].fields);
        Resp r = http_post(S.port, refused[i].path, body);
        assert_error(&r, 400, refused[i].param);
        resp_free(&r);
    }
    const char *accepted =
        "{" M1
        ", \"model\": \"x\", \"user\": \"u\", \"store\": false, \"metadata\": {\"k\": \"v\"}, "
        "\"service_tier\": \"auto\", \"parallel_tool_calls\": true, \"n\": 1, \"logprobs\": false, "
        "\"top_logprobs\": 0, \"response_format\": {\"type\": \"text\"}, \"modalities\": "
        "[\"text\"], "
        "\"tools\": null, \"max_tokens\": 20, \"seed\": 4}";
    char *a = chat_content(S.port, accepted);
    char *b = chat_content(S.port, "{" M1 ", \"max_tokens\": 20, \"seed\": 4}");
    ck_assert_str_eq(a, b); // no effect on the output
    free(a);
    free(b);

    // Messages that are not text chat.
    static const char *bad_messages[] = {
        "{\"messages\": []}",
        "{\"messages\": \"hi\"}",
        "{\"messages\": null}",
        "{\"model\": \"x\"}",
        "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}",
        "{\"messages\": [{\"role\": \"user\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": null}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", "
        "\"image_url\": {\"url\": \"x\"}}]}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"tool_calls\": []}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"name\": \"bob\"}]}",
        "{\"messages\": [3]}",
    };
    for (size_t i = 0; i < sizeof(bad_messages) / sizeof(*bad_messages); i++) {
        Resp r = http_post(S.port, "/v1/chat/completions", bad_messages[i]);
        assert_error(&r, 400, "messages");
        resp_free(&r);
    }
}
END_TEST

START_TEST(test_tokenize) {
    cJSON *card = post_ok(S.port, "/tokenize", "{\"content\": \"the cat\\u20ac sat\"}");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(card, "tokens");
    ck_assert_int_eq(cJSON_GetArraySize(tokens), 11); // the euro sign is skipped
    ck_assert_str_eq(json_str(card, "unknown_chars"), "\xe2\x82\xac");
    // The ids are indices into /model's vocab.
    Resp m = http_get(S.port, "/model");
    cJSON *model = resp_json(&m);
    resp_free(&m);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    ck_assert_int_eq(cJSON_GetArraySize(vocab), (int)json_num(model, "vocab_size"));
    ck_assert_str_eq(cJSON_GetArrayItem(vocab, 0)->valuestring, "\n");
    char text[64] = "";
    for (const cJSON *t = tokens->child; t; t = t->next)
        strcat(text, cJSON_GetArrayItem(vocab, (int)t->valuedouble)->valuestring);
    ck_assert_str_eq(text, "the cat sat");
    // And back.
    char *ids = cJSON_PrintUnformatted(tokens);
    char body[512];
    snprintf(body, sizeof(body), "{\"tokens\": %s}", ids);
    free(ids);
    cJSON *back = post_ok(S.port, "/detokenize", body);
    ck_assert_str_eq(json_str(back, "content"), "the cat sat");
    cJSON_Delete(back);
    back = post_ok(S.port, "/detokenize", "{\"tokens\": []}");
    ck_assert_str_eq(json_str(back, "content"), "");
    cJSON_Delete(back);
    cJSON *empty = post_ok(S.port, "/tokenize", "{\"content\": \"\", \"add_special\": true}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(empty, "tokens")), 0);
    cJSON_Delete(empty);

    int v = (int)json_num(model, "vocab_size");
    char over[64], neg[64], frac[64];
    snprintf(over, sizeof(over), "{\"tokens\": [0, %d]}", v);
    snprintf(neg, sizeof(neg), "{\"tokens\": [-1]}");
    snprintf(frac, sizeof(frac), "{\"tokens\": [1.5]}");
    const struct {
        const char *path, *body, *param;
    } bad[] = {
        {"/detokenize", over, "tokens"},
        {"/detokenize", neg, "tokens"},
        {"/detokenize", frac, "tokens"},
        {"/detokenize", "{\"tokens\": [\"a\"]}", "tokens"},
        {"/detokenize", "{\"tokens\": 3}", "tokens"},
        {"/detokenize", "{}", "tokens"},
        {"/detokenize", "{\"tokens\": [1], \"x\": 1}", "x"},
        {"/tokenize", "{\"content\": 3}", "content"},
        {"/tokenize", "{}", "content"},
        {"/tokenize", "{\"content\": \"a\", \"with_pieces\": true}", "with_pieces"},
        {"/tokenize", "{\"content\": \"a\\u0000b\"}", NULL},
        {"/tokenize", "[1]", NULL},
        {"/tokenize", "{\"content\": \"a\"} x", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        Resp r = http_post(S.port, bad[i].path, bad[i].body);
        assert_error(&r, 400, bad[i].param);
        resp_free(&r);
    }
    cJSON_Delete(model);
    cJSON_Delete(card);
}
END_TEST

static void assert_ids(int port, const char *id) {
    Resp r = http_get(port, "/v1/models");
    cJSON *j = resp_json(&r);
    ck_assert_str_eq(
        json_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "data"), 0), "id"), id);
    cJSON_Delete(j);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof(path), "/v1/models/%s", id);
    r = http_get(port, path);
    j = resp_json(&r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_str(j, "id"), id);
    ck_assert_str_eq(json_str(j, "object"), "model");
    cJSON_Delete(j);
    resp_free(&r);
    r = http_get(port, "/v1/models/gpt-4");
    assert_error(&r, 404, "model");
    j = resp_json(&r);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    ck_assert_str_eq(json_str(e, "code"), "model_not_found");
    ck_assert_str_eq(json_str(e, "type"), "not_found_error");
    cJSON_Delete(j);
    resp_free(&r);
    const char *infos[] = {"/model", "/health"};
    for (int i = 0; i < 2; i++) {
        r = http_get(port, infos[i]);
        j = resp_json(&r);
        const cJSON *o = i ? cJSON_GetObjectItemCaseSensitive(j, "model") : j;
        ck_assert_str_eq(json_str(o, "id"), id);
        cJSON_Delete(j);
        resp_free(&r);
    }
    // Whatever model a request names, the loaded one answers with its id.
    j = post_ok(port, "/v1/completions",
                "{\"model\": \"gpt-3.5-turbo-instruct\", \"prompt\": \"the\", \"max_tokens\": 2}");
    ck_assert_str_eq(json_str(j, "model"), id);
    cJSON_Delete(j);
    j = post_ok(port, "/v1/chat/completions", "{\"model\": \"gpt-4o\", " M1 ", \"max_tokens\": 2}");
    ck_assert_str_eq(json_str(j, "model"), id);
    cJSON_Delete(j);
}

START_TEST(test_model_identity) {
    assert_ids(S.port, "charlm"); // the suite's model folder is named charlm
    const char *args[] = {"--model-id", "my-model.v2", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    assert_ids(s.port, "my-model.v2");
    ck_assert_int_eq(srv_stop(&s), 0);
    const char *env[] = {"CHARLM_MODEL_ID=from-env", NULL};
    ck_assert_int_eq(srv_start_env(&s, model_dir, NULL, env), 0);
    assert_ids(s.port, "from-env");
    ck_assert_int_eq(srv_stop(&s), 0);
    // The folder's name once resolved: a link's target, not the link; a trailing slash.
    char link[4096], slash[4096];
    snprintf(link, sizeof(link), "%s/another-name", root);
    ck_assert_int_eq(symlink(model_dir, link), 0);
    ck_assert_int_eq(srv_start(&s, link, NULL), 0);
    assert_ids(s.port, "charlm");
    ck_assert_int_eq(srv_stop(&s), 0);
    unlink(link);
    snprintf(slash, sizeof(slash), "%s/", model_dir);
    ck_assert_int_eq(srv_start(&s, slash, NULL), 0);
    assert_ids(s.port, "charlm");
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_chat");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_model_remove);
    tcase_add_checked_fixture(tc, start_default, stop_default);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_chat_reply);
    tcase_add_test(tc, test_chat_stream);
    tcase_add_test(tc, test_custom_template);
    tcase_add_test(tc, test_bad_template);
    tcase_add_test(tc, test_refused_and_accepted);
    tcase_add_test(tc, test_tokenize);
    tcase_add_test(tc, test_model_identity);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
