/* charlm-server's model ids where they are shown, over real HTTP: every reply is valid
 * UTF-8 JSON, whatever bytes a URL, a method or a field holds; a `model` given twice
 * selects by its last value; ids over 127 bytes or not UTF-8 are refused (exit 2 at
 * startup, a failure entry at a reload); a --models subfolder that is a symlink is named
 * by the link (a --model by its resolved path); ids holding '"', '\' or a newline make valid
 * /metrics text (promtool) and cannot forge log lines; the metrics' model series follow the models
 * served, past 16 ids over a server's life. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "server_harness.h"
#include "testutil.h"
#include "utf8.h"

static char second[4096];

static void suite_setup(void) {
    suite_model_make(2000, 8, 32, 1, 5);
    snprintf(second, sizeof(second), "%s/poe", root);
    ck_assert_int_eq(
        tu_make_model_dir(second, "Once upon a midnight dreary, quoth: nevermore!\n", 8, 24, 1, 99),
        0);
}

static void suite_teardown(void) {
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

/* The reply is UTF-8 and JSON; returns the parsed body. */
static cJSON *utf8_json(const Resp *r, const char *what) {
    ck_assert_msg(utf8_find_invalid(r->body, r->len) < 0, "%s: not UTF-8 at byte %ld: %s", what,
                  utf8_find_invalid(r->body, r->len), r->body);
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    ck_assert_msg(j, "%s: not JSON: %s", what, r->body);
    return j;
}

static const char *error_message(const cJSON *j) {
    return json_str(cJSON_GetObjectItemCaseSensitive(j, "error"), "message");
}

#define FFFD "\xEF\xBF\xBD"

START_TEST(test_replies_are_utf8) {
    // Names from a URL can be any bytes once percent-decoded.
    const char *const gets[] = {"/v1/models/%ff", "/model?model=%ff", "/v1/models/a%e2%82"};
    for (size_t i = 0; i < sizeof(gets) / sizeof(*gets); i++) {
        Resp r = http_get(s.port, gets[i]);
        ck_assert_int_eq(r.status, 404);
        cJSON *j = utf8_json(&r, gets[i]);
        ck_assert_msg(strstr(error_message(j), FFFD), "%s: %s", gets[i], r.body);
        cJSON_Delete(j);
        resp_free(&r);
    }
    // A method is echoed in a 405, cut to 15 bytes: inside a character here, none there.
    const char *const methods[] = {"\xC3\x89\xC3\x89\xC3\x89\xC3\x89\xC3\x89\xC3\x89\xC3\x89\xC3"
                                   "\x89",
                                   "G\xFF\xFET"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(*methods); i++) {
        Resp r = http_req(s.port, methods[i], "/health", NULL, NULL, 0, 0);
        ck_assert_msg(r.status == 405, "%ld %s", r.status, r.body);
        cJSON *j = utf8_json(&r, "a 405");
        ck_assert_msg(strstr(error_message(j), i ? "G" FFFD FFFD "T" : "\xC3\x89\xC3\x89" FFFD),
                      "%s", r.body);
        cJSON_Delete(j);
        resp_free(&r);
    }
    // Long names quoted in messages are cut between characters ("x" and 3-byte chars: a
    // cut at 48 or 64 bytes would fall inside one).
    char name[160] = "x";
    for (int i = 0; i < 40; i++) strcat(name, "\xE2\x82\xAC");
    char body[512];
    const char *const posts[][2] = {
        {"/generate", "{\"prompt\": \"a\", \"model\": \"%s\"}"},
        {"/v1/chat/completions",
         "{\"model\": \"%s\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}"},
        {"/tokenize", "{\"content\": \"a\", \"model\": \"%s\"}"},
        {"/tokenize", "{\"content\": \"a\", \"%s\": 1}"},
        {"/generate", "{\"prompt\": \"a\", \"%s\": 1}"},
    };
    for (size_t i = 0; i < sizeof(posts) / sizeof(*posts); i++) {
        snprintf(body, sizeof(body), posts[i][1], name);
        Resp r = http_post(s.port, posts[i][0], body);
        ck_assert_msg(r.status == 404 || r.status == 400, "%ld %s", r.status, r.body);
        cJSON_Delete(utf8_json(&r, body));
        resp_free(&r);
    }
}
END_TEST

/* The model that answers body on path, by the reply's `model` (or, for /tokenize, by
 * which model's vocabulary the tokens come from). */
static char *answering(const char *path, const char *body) {
    Resp r = http_post(s.port, path, body);
    ck_assert_msg(r.status == 200, "%s: %ld %s", path, r.status, r.body);
    cJSON *j = resp_json(&r);
    char *id = strdup(json_str(j, "model"));
    cJSON_Delete(j);
    resp_free(&r);
    return id;
}

START_TEST(test_model_given_twice_takes_the_last) {
    const char *const shapes[][2] = {
        {"/generate",
         "{\"model\": \"%s\", \"prompt\": \"a\", \"max_tokens\": 2, \"model\": \"%s\"}"},
        {"/v1/completions",
         "{\"model\": \"%s\", \"prompt\": \"a\", \"max_tokens\": 2, \"model\": \"%s\"}"},
        {"/v1/chat/completions", "{\"model\": \"%s\", \"max_tokens\": 2, \"messages\": [{\"role\": "
                                 "\"user\", \"content\": \"Hi\"}], \"model\": \"%s\"}"},
    };
    const char *const order[2][2] = {{"alpha", "beta"}, {"beta", "alpha"}};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(*shapes); i++)
        for (int k = 0; k < 2; k++) {
            char body[512];
            snprintf(body, sizeof(body), shapes[i][1], order[k][0], order[k][1]);
            char *id = answering(shapes[i][0], body);
            ck_assert_msg(strcmp(id, order[k][1]) == 0, "%s: %s answered %s", shapes[i][0], body,
                          id);
            free(id);
        }
    // /tokenize by the same rule: "q" is in poe's (beta's) vocabulary only.
    Resp r = http_post(s.port, "/tokenize",
                       "{\"model\": \"alpha\", \"content\": \"q\", \"model\": \"beta\"}");
    ck_assert_int_eq(r.status, 200);
    cJSON *j = resp_json(&r);
    ck_assert_str_eq(json_str(j, "unknown_chars"), "");
    cJSON_Delete(j);
    resp_free(&r);
    // A string first and a number last is a 400: every value is checked, the last used.
    r = http_post(s.port, "/generate", "{\"model\": \"beta\", \"prompt\": \"a\", \"model\": 3}");
    assert_error(&r, 400, "model");
    resp_free(&r);
}
END_TEST

// ---- ids from the command line and from folder names

static char *zoo;

static void copy_file(const char *from_dir, const char *to_dir, const char *name) {
    char from[8192];
    snprintf(from, sizeof(from), "%s/%s", from_dir, name);
    size_t len;
    char *data = tu_read_file(from, &len);
    ck_assert_msg(data, "%s", from);
    free(tu_write_file(to_dir, name, data, len));
    free(data);
}

/* A copy of the suite's model as zoo/name (made aside, then renamed in whole). */
static void zoo_add(const char *name) {
    char aside[8192], to[8192];
    snprintf(aside, sizeof(aside), "%s/.new", zoo);
    snprintf(to, sizeof(to), "%s/%s", zoo, name);
    ck_assert_int_eq(mkdir(aside, 0755), 0);
    copy_file(model_dir, aside, "model.safetensors");
    copy_file(model_dir, aside, "vocab.json");
    ck_assert_msg(rename(aside, to) == 0, "rename to %s: %s", to, strerror(errno));
}

static void zoo_make(void) {
    zoo = malloc(strlen(root) + 8);
    sprintf(zoo, "%s/zoo", root);
    tu_rmtree(zoo);
    ck_assert_int_eq(mkdir(zoo, 0755), 0);
}

static void zoo_remove(void) {
    tu_rmtree(zoo);
    free(zoo);
    zoo = NULL;
}

/* Runs the server with args (a shell fragment) until it exits or listens; returns the
 * exit status (-1: it started) and its stderr in *err. */
static int startup(const char *args, char **err) {
    char cmd[16384];
    snprintf(cmd, sizeof(cmd), "timeout -s TERM 20 %s --port 0 %s", tu_bin("charlm-server"), args);
    return tu_run(cmd, NULL, err);
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

START_TEST(test_ids_over_127_bytes_are_refused) {
    char id[200], args[8192], *err;
    memset(id, 'i', 128);
    id[128] = '\0';
    // At startup: --model-id, then a --models folder's name; exit 2 with one line naming it.
    snprintf(args, sizeof(args), "--model '%s' --model-id %s", model_dir, id);
    ck_assert_int_eq(startup(args, &err), CLI_EXIT_BAD_INPUT);
    ck_assert_msg(lines(err) == 1 && strstr(err, id) && strstr(err, "127"), "%s", err);
    free(err);
    snprintf(args, sizeof(args), "--model '%s' --model-id \"$(printf 'a\\377b')\"", model_dir);
    ck_assert_int_eq(startup(args, &err), CLI_EXIT_BAD_INPUT);
    ck_assert_msg(lines(err) == 1 && strstr(err, "a\\xffb") && strstr(err, "UTF-8"), "%s", err);
    free(err);
    zoo_make();
    zoo_add(id);
    snprintf(args, sizeof(args), "--models '%s'", zoo);
    ck_assert_int_eq(startup(args, &err), CLI_EXIT_BAD_INPUT);
    ck_assert_msg(lines(err) == 1 && strstr(err, id), "%s", err);
    free(err);

    // 127 bytes is an id.
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", zoo, id);
    tu_rmtree(path);
    id[127] = '\0';
    zoo_add(id);
    const char *a[] = {"--models", zoo, NULL};
    Srv z;
    ck_assert_int_eq(srv_start(&z, NULL, a), 0);
    char want[300];
    snprintf(want, sizeof(want), "\"id\":\"%s\"", id);
    Resp r = http_get(z.port, "/v1/models");
    ck_assert_msg(strstr(r.body, want), "%s", r.body);
    resp_free(&r);

    // At a reload: a failure entry for the folder, the rest served.
    id[127] = 'j', id[128] = '\0';
    zoo_add(id);
    r = http_post(z.port, "/admin/reload", "{}");
    ck_assert_int_eq(r.status, 200);
    cJSON *j = utf8_json(&r, "the reload report");
    const cJSON *failed = cJSON_GetObjectItemCaseSensitive(j, "failed");
    ck_assert_msg(cJSON_GetArraySize(failed) == 1, "%s", r.body);
    ck_assert_str_eq(json_str(cJSON_GetArrayItem(failed, 0), "id"), id);
    ck_assert_msg(strstr(json_str(cJSON_GetArrayItem(failed, 0), "error"), "127"), "%s", r.body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "unchanged")), 1);
    cJSON_Delete(j);
    resp_free(&r);
    r = http_get(z.port, "/v1/models");
    cJSON *list = resp_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "data")), 1);
    cJSON_Delete(list);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&z), 0);
    zoo_remove();
}
END_TEST

START_TEST(test_folder_names) {
    zoo_make();
    zoo_add("target");
    char link[8192], alias[8192], slashed[8192], dotted[8192];
    snprintf(link, sizeof(link), "%s/link", zoo);
    ck_assert_int_eq(symlink("target", link), 0);
    // A --model is named once resolved: a symlink (with a trailing slash) by its target,
    // a path ending in "/." by the folder.
    snprintf(alias, sizeof(alias), "%s/alias", root);
    ck_assert_int_eq(symlink(second, alias), 0);
    snprintf(slashed, sizeof(slashed), "%s/", alias);
    snprintf(dotted, sizeof(dotted), "%s/.", model_dir);
    const char *args[] = {"--model", slashed, "--model", dotted, "--models", zoo, NULL};
    Srv z;
    ck_assert_int_eq(srv_start(&z, NULL, args), 0);
    Resp r = http_get(z.port, "/v1/models");
    cJSON *j = resp_json(&r);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    const char *const want[] = {"poe", "charlm", "link", "target"};
    ck_assert_msg(cJSON_GetArraySize(data) == 4, "%s", r.body);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(json_str(cJSON_GetArrayItem(data, i), "id"), want[i]);
    cJSON_Delete(j);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&z), 0);
    unlink(alias);
    zoo_remove();
}
END_TEST

/* /metrics once every want is in it (requests are counted as they complete). */
static Resp metrics_with(int port, const char *const *want, int n) {
    Resp r = {0};
    int missing = 0;
    for (int tries = 0; tries < 100; tries++) {
        if (tries) resp_free(&r), sleep_ms(20);
        r = http_get(port, "/metrics");
        ck_assert_int_eq(r.status, 200);
        for (missing = 0; missing < n; missing++)
            if (!strstr(r.body, want[missing])) break;
        if (missing == n) return r;
    }
    ck_abort_msg("no %s in /metrics:\n%.3000s", want[missing], r.body);
    return r;
}

static void promtool_check(const Resp *r) {
    if (access("/usr/bin/promtool", X_OK) != 0) {
        fprintf(stderr, "promtool not installed: the /metrics format check is skipped\n");
        return;
    }
    char *dir = tu_tmpdir();
    char *path = tu_write_file(dir, "metrics.txt", r->body, r->len);
    char cmd[4096], *out, *err;
    snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < '%s'", path);
    int rc = tu_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "promtool: %s %s\n%s", out, err, r->body);
    free(out), free(err), free(path);
    tu_rmtree(dir);
    free(dir);
}

static void generate(int port, const char *id_json) {
    char body[512];
    snprintf(body, sizeof(body), "{\"prompt\": \"the\", \"max_tokens\": 3, \"model\": %s}",
             id_json);
    Resp r = http_post(port, "/generate", body);
    ck_assert_msg(r.status == 200, "%s: %ld %s", body, r.status, r.body);
    resp_free(&r);
}

// A folder name that would end a label value and start a line of its own.
#define FORGED "q\"b\\s\ncharlm-server: forged"

START_TEST(test_odd_ids_in_metrics_and_logs) {
    zoo_make();
    zoo_add(FORGED);
    const char *args[] = {"--model-id", "say \"hi\" \\o/", "--models", zoo, NULL};
    Srv z;
    ck_assert_int_eq(srv_start(&z, model_dir, args), 0);
    generate(z.port, "\"say \\\"hi\\\" \\\\o/\"");
    generate(z.port, "\"q\\\"b\\\\s\\ncharlm-server: forged\"");
    const char *const want[] = {
        "charlm_generated_chars_total{model=\"say \\\"hi\\\" \\\\o/\"} 3\n",
        "charlm_generated_chars_total{model=\"q\\\"b\\\\s\\ncharlm-server: forged\"} 3\n",
        "charlm_model_parameters{model=\"q\\\"b\\\\s\\ncharlm-server: forged\"} ",
    };
    Resp r = metrics_with(z.port, want, 3);
    promtool_check(&r);
    resp_free(&r);

    // A reload that loads it again logs it too.
    char file[8192];
    snprintf(file, sizeof(file), "%s/" FORGED "/vocab.json", zoo);
    size_t len;
    char *data = tu_read_file(file, &len);
    unlink(file);
    snprintf(file, sizeof(file), "%s/" FORGED, zoo);
    free(tu_write_file(file, "vocab.json", data, len));
    free(data);
    r = http_post(z.port, "/admin/reload", "{}");
    ck_assert_msg(r.status == 200 && strstr(r.body, "\"reloaded\":[\"q\\\"b"), "%s", r.body);
    resp_free(&r);
    // The model loaded again under the same id counts on from where it was.
    generate(z.port, "\"q\\\"b\\\\s\\ncharlm-server: forged\"");
    const char *const after[] = {
        "charlm_generated_chars_total{model=\"q\\\"b\\\\s\\ncharlm-server: forged\"} 6\n"};
    r = metrics_with(z.port, after, 1);
    resp_free(&r);
    char *log = tu_read_file(z.log, NULL);
    ck_assert_msg(!strstr(log, "\ncharlm-server: forged"), "a forged line:\n%s", log);
    ck_assert_msg(strstr(log, "q\"b\\\\s\\ncharlm-server: forged: vocab"), "%s", log);
    ck_assert_msg(strstr(log, "reload: q\"b\\\\s\\ncharlm-server: forged: now step"), "%s", log);
    free(log);
    ck_assert_int_eq(srv_stop(&z), 0);
    zoo_remove();
}
END_TEST

START_TEST(test_metrics_follow_the_models_served) {
    zoo_make();
    zoo_add("m0");
    const char *args[] = {"--models", zoo, NULL};
    Srv z;
    ck_assert_int_eq(srv_start(&z, model_dir, args), 0);
    // 20 ids one after the other: the folder renamed, then a reload.
    for (int i = 0; i <= 20; i++) {
        char id[16], json[32], from[8192], to[8192];
        if (i) {
            snprintf(from, sizeof(from), "%s/m%d", zoo, i - 1);
            snprintf(to, sizeof(to), "%s/m%d", zoo, i);
            ck_assert_int_eq(rename(from, to), 0);
            Resp r = http_post(z.port, "/admin/reload", "{}");
            ck_assert_msg(r.status == 200, "%s", r.body);
            resp_free(&r);
        }
        snprintf(id, sizeof(id), "m%d", i);
        snprintf(json, sizeof(json), "\"%s\"", id);
        generate(z.port, json);
        generate(z.port, "\"charlm\"");
    }
    // The served ids are counted; the one reloaded every time kept counting (21 x 3 chars);
    // the ids gone have no series any more.
    const char *const want[] = {
        "charlm_generated_chars_total{model=\"m20\"} 3\n",
        "charlm_generations_total{model=\"m20\",finish_reason=\"length\"} 1\n",
        "charlm_generated_chars_total{model=\"charlm\"} 63\n",
    };
    Resp r = metrics_with(z.port, want, 3);
    ck_assert_msg(!strstr(r.body, "{model=\"m19\"}"), "%s", r.body);
    promtool_check(&r);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&z), 0);
    zoo_remove();
}
END_TEST

START_TEST(test_long_ids_in_a_404) {
    // Five ids of forty euro signs (over 120 bytes each) do not all fit in a 404's list: it
    // names whole ones, then "...".
    zoo_make();
    for (int m = 0; m < 5; m++) {
        char name[160];
        // The first a byte longer, so that a cut at 511 bytes would split a character.
        static const char *const first[] = {"aa", "b", "c", "d", "e"};
        snprintf(name, sizeof(name), "%s", first[m]);
        for (int i = 0; i < 40; i++) strcat(name, "\xE2\x82\xAC");
        zoo_add(name);
    }
    const char *args[] = {"--models", zoo, NULL};
    Srv z;
    ck_assert_int_eq(srv_start(&z, NULL, args), 0);
    Resp r = http_get(z.port, "/v1/models/none");
    ck_assert_int_eq(r.status, 404);
    cJSON *j = utf8_json(&r, "a 404 listing long ids");
    const char *msg = error_message(j);
    ck_assert_msg(strstr(msg, "'d\xE2\x82\xAC") && !strstr(msg, "'e\xE2\x82\xAC"), "%s", msg);
    size_t len = strlen(msg);
    ck_assert_msg(len > 5 && strcmp(msg + len - 5, ", ...") == 0, "%s", msg);
    cJSON_Delete(j);
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&z), 0);
    zoo_remove();
}
END_TEST

int main(void) {
    Suite *su = suite_create("server_ids");
    TCase *tc = tcase_create("replies");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_two, stop_two);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_replies_are_utf8);
    tcase_add_test(tc, test_model_given_twice_takes_the_last);
    suite_add_tcase(su, tc);
    TCase *ti = tcase_create("ids");
    tcase_add_unchecked_fixture(ti, suite_setup, suite_teardown);
    tcase_set_timeout(ti, 180);
    tcase_add_test(ti, test_ids_over_127_bytes_are_refused);
    tcase_add_test(ti, test_folder_names);
    tcase_add_test(ti, test_long_ids_in_a_404);
    tcase_add_test(ti, test_odd_ids_in_metrics_and_logs);
    tcase_add_test(ti, test_metrics_follow_the_models_served);
    suite_add_tcase(su, ti);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
