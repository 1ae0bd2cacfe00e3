/* server/chat.c: templates checked and split, messages made into a prompt, the default
 * stop; one table row per case. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "error.h"
#include "testutil.h"

START_TEST(test_chat_template_errors) {
    static const char *bad[] = {"",
                                "{system}\n{user}",
                                "{system}\n{user}\n{assistant}\n\n",
                                "{system}{user}\n{user}\n{assistant}",
                                "{system}\n{user}{user}\n{assistant}",
                                "{system}\n{user}\n{system}",
                                "{system}\n\n{user}\n{assistant}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ChatTemplate t;
        char err[ERR_LEN] = "";
        ck_assert_msg(chat_template_parse(bad[i], strlen(bad[i]), &t, err) == -1, "%s", bad[i]);
        ck_assert_msg(err[0], "%s: no message", bad[i]);
        ck_assert_ptr_null(t.text);
    }
    ChatTemplate t;
    char err[ERR_LEN];
    ck_assert_int_eq(chat_template_parse("a{assistant}b\n{user}\n{system}\n", 30, &t, err), 0);
    ck_assert_str_eq(t.pre[2], "a");
    ck_assert_str_eq(t.post[2], "b");
    ck_assert_str_eq(t.pre[1], "");
    chat_template_free(&t);
}
END_TEST

// The bytes a template refuses before it looks at lines, and a file read whole.
START_TEST(test_template_bytes_and_file) {
    ChatTemplate t;
    char err[ERR_LEN];
    static const char nul[] = "{system}\n{user}\0\n{assistant}";
    ck_assert_int_eq(chat_template_parse(nul, sizeof(nul) - 1, &t, err), -1);
    ck_assert_str_eq(err, "the template contains a NUL byte");
    static const char bad[] = "{system}\n{user}\xff\n{assistant}";
    ck_assert_int_eq(chat_template_parse(bad, strlen(bad), &t, err), -1);
    ck_assert_str_eq(err, "the template is not valid UTF-8");

    char *dir = tu_tmpdir();
    const char *text = "[{system}]\nQ: {user}\nA: {assistant}!\n";
    char *path = tu_write_file(dir, "tpl.txt", text, strlen(text));
    ck_assert_msg(chat_template_load(path, &t, err) == 0, "%s", err);
    ck_assert_str_eq(t.pre[0], "[");
    ck_assert_str_eq(t.post[0], "]");
    ck_assert_str_eq(t.pre[1], "Q: ");
    ck_assert_str_eq(t.post[2], "!");
    chat_template_free(&t);
    ck_assert_ptr_null(t.text);
    free(path);
    path = tu_write_file(dir, "bad.txt", "{user}\n", 7);
    ck_assert_int_eq(chat_template_load(path, &t, err), -1);
    ck_assert_str_eq(err, "the template has no line with {system}");
    free(path);
    char missing[4096];
    snprintf(missing, sizeof(missing), "%s/none.txt", dir);
    ck_assert_int_eq(chat_template_load(missing, &t, err), -1);
    ck_assert(err[0]);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

#define U(s) "{\"role\": \"user\", \"content\": \"" s "\"}"

static const struct {
    const char *tpl;      // template text; NULL: the built-in one
    const char *messages; // the JSON of the request's messages
    const char *prompt;   // accepted: the prompt
    const char *err;      // refused (CHAT_BAD): the whole message
} prompt_cases[] = {
    {NULL, "[" U("hi") "]", "User: hi\nAssistant: ", NULL},
    {NULL, "[{\"role\": \"system\", \"content\": \"S\"}, " U("a") "]",
     "S\nUser: a\nAssistant: ", NULL},
    {NULL,
     "[{\"role\": \"assistant\", \"content\": [{\"type\": \"text\", \"text\": \"b\"}, "
     "{\"type\": \"text\", \"text\": \"c\"}]}]",
     "Assistant: bc\nAssistant: ", NULL},
    {NULL, "[{\"role\": \"user\", \"content\": \"\", \"name\": null}]",
     "User: \nAssistant: ", NULL},
    {NULL, "[{\"role\": \"user\", \"content\": []}]", "User: \nAssistant: ", NULL},
    {"<{assistant}>\n{system}\n> {user}",
     "[" U("q") ", {\"role\": \"assistant\", \"content\": \"r\"}]", "> q\n<r>\n<", NULL},
    {"{user}\n{system}\n{assistant}", "[" U("q") "]", "q\n", NULL},
    {NULL, "[]", NULL, "messages must be a non-empty array of messages"},
    {NULL, "{}", NULL, "messages must be a non-empty array of messages"},
    {NULL, "\"hi\"", NULL, "messages must be a non-empty array of messages"},
    {NULL, "[" U("a") ", 3]", NULL, "messages[1] must be an object"},
    {NULL, "[{\"content\": \"x\"}]", NULL, "messages[0].role must be system, user or assistant"},
    {NULL, "[{\"role\": \"developer\", \"content\": \"x\"}]", NULL,
     "messages[0].role must be system, user or assistant"},
    {NULL, "[{\"role\": 1, \"content\": \"x\"}]", NULL,
     "messages[0].role must be system, user or assistant"},
    {NULL, "[{\"role\": \"user\"}]", NULL, "messages[0] has no content"},
    {NULL, "[{\"role\": \"user\", \"content\": 5}]", NULL,
     "messages[0].content must be a string or an array of text parts"},
    {NULL, "[{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]", NULL,
     "messages[0].content: only parts {\"type\": \"text\", \"text\": ...} are supported"},
    {NULL, "[{\"role\": \"user\", \"content\": [{\"type\": \"image\", \"text\": \"x\"}]}]", NULL,
     "messages[0].content: only parts {\"type\": \"text\", \"text\": ...} are supported"},
    {NULL, "[{\"role\": \"user\", \"content\": \"x\", \"name\": \"bob\"}]", NULL,
     "messages[0]: the field 'name' is not supported"},
    {NULL, "[{\"role\": \"user\", \"content\": \"x\", \"tool_calls\": []}]", NULL,
     "messages[0]: the field 'tool_calls' is not supported"},
    // A long field name is quoted cut to 47 bytes, not inside a character.
    {NULL,
     "[{\"role\": \"user\", \"content\": \"x\", "
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9z\": 1}]",
     NULL,
     "messages[0]: the field 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is not "
     "supported"},
};

START_TEST(test_prompt_table) {
    ChatTemplate t;
    char err[ERR_LEN] = "";
    if (prompt_cases[_i].tpl) {
        const char *tpl = prompt_cases[_i].tpl;
        ck_assert_msg(chat_template_parse(tpl, strlen(tpl), &t, err) == 0, "%s", err);
    }
    cJSON *m = cJSON_Parse(prompt_cases[_i].messages);
    ck_assert_ptr_nonnull(m);
    char *prompt = NULL;
    size_t len = 0;
    int rc = chat_prompt(m, prompt_cases[_i].tpl ? &t : NULL, &prompt, &len, err);
    if (prompt_cases[_i].err) {
        ck_assert_int_eq(rc, CHAT_BAD);
        ck_assert_str_eq(err, prompt_cases[_i].err);
    } else {
        ck_assert_msg(rc == 0, "%s: %s", prompt_cases[_i].messages, err);
        ck_assert_str_eq(prompt, prompt_cases[_i].prompt);
        ck_assert_uint_eq(len, strlen(prompt_cases[_i].prompt));
        free(prompt);
    }
    cJSON_Delete(m);
    if (prompt_cases[_i].tpl) chat_template_free(&t);
}
END_TEST

static const struct {
    const char *tpl; // NULL: the built-in one
    size_t cap;
    const char *stop; // "": none
} stop_cases[] = {
    {NULL, 65, "\nUser:"},
    {"<{assistant}>\n{system}\n> {user}", 65, "\n>"},
    {"{assistant}\n{system}\nQ:   {user}", 65, "\nQ:"},
    {"{user}\n{system}\n{assistant}", 65, ""},
    {"   {user}\n{system}\n{assistant}", 65, ""},
    {NULL, 7, "\nUser:"}, // "\nUser:" and its NUL just fit
    {NULL, 6, ""},
};

START_TEST(test_default_stop_table) {
    ChatTemplate t;
    char err[ERR_LEN], out[128];
    if (stop_cases[_i].tpl) {
        const char *tpl = stop_cases[_i].tpl;
        ck_assert_msg(chat_template_parse(tpl, strlen(tpl), &t, err) == 0, "%s", err);
    }
    memset(out, 'x', sizeof(out));
    size_t n = chat_default_stop(stop_cases[_i].tpl ? &t : NULL, out, stop_cases[_i].cap);
    ck_assert_uint_eq(n, strlen(stop_cases[_i].stop));
    if (n) ck_assert_str_eq(out, stop_cases[_i].stop);
    if (stop_cases[_i].tpl) chat_template_free(&t);
}
END_TEST

int main(void) {
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("chat");
    tcase_add_test(tc, test_chat_template_errors);
    tcase_add_test(tc, test_template_bytes_and_file);
    tcase_add_loop_test(tc, test_prompt_table, 0,
                        (int)(sizeof(prompt_cases) / sizeof(*prompt_cases)));
    tcase_add_loop_test(tc, test_default_stop_table, 0,
                        (int)(sizeof(stop_cases) / sizeof(*stop_cases)));
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
