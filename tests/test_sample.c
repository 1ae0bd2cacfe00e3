/*
 * test_sample — charlm-train sample --prompt-file end to end, over an LSTM and a GPT whose
 * context (16 chars) is far shorter than the generations: every output line must be what
 * one `charlm-train sample --prompt` gives for that prompt, parameters and seed, for a file
 * of text lines and one of JSON lines with parameters of their own; stop sequences cut
 * the text there; a bad line is exit 2 naming it, with nothing on stdout.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gpt.h"
#include "model.h"
#include "testutil.h"

static const ModelConfig LSTM_HYPER = {.embed = 16, .hidden = 32, .layers = 2};
static const GptConfig GPT_HYPER = {
    .layers = 2, .heads = 2, .embed = 16, .block = 16, .norm = GPT_LAYERNORM, .bias = 1};
static struct {
    const char *arch;
    const void *hyper;
    char dir[4096];
} MODELS[] = {{"lstm", &LSTM_HYPER, ""}, {"gpt", &GPT_HYPER, ""}};
#define NMODELS ((int)(sizeof MODELS / sizeof MODELS[0]))

static char *root, *text;

static void suite_setup(void) {
    root = tu_tmpdir();
    text = tu_sample_text(2000);
    for (int m = 0; m < NMODELS; m++) {
        snprintf(MODELS[m].dir, sizeof MODELS[m].dir, "%s/%s", root, MODELS[m].arch);
        ck_assert_int_eq(tu_make_arch_dir(MODELS[m].dir, text, MODELS[m].arch, MODELS[m].hyper, 5),
                         0);
    }
}

static void suite_teardown(void) {
    tu_rmtree(root);
    free(root);
    free(text);
}

#define NPROMPTS 7

/* Prompt i: a cut of the text (no newline, no quote), of a length of its own; 0 is empty. */
static void prompt_at(int i, char *out, size_t cap) {
    size_t len = (size_t)(i * 7) % 40, at = (size_t)i * 97;
    snprintf(out, cap, "%.*s", (int)len, text + at);
    for (char *c = out; *c; c++)
        if (*c == '\n') *c = ' ';
}

/* charlm-train sample with these flags: the continuation (stdout less the prompt and the
 * newline after it), the count and seed its stderr line gives. */
static char *sample_one(const char *dir, const char *prompt, const char *flags, int *tokens,
                        unsigned long long *seed) {
    char cmd[8192], *out, *err;
    snprintf(cmd, sizeof cmd, "%s sample --model '%s' --prompt '%s' %s", tu_bin("charlm-train"),
             dir, prompt, flags);
    ck_assert_msg(tu_run(cmd, &out, &err) == 0, "%s: %s", cmd, err);
    size_t plen = strlen(prompt), olen = strlen(out);
    ck_assert_msg(olen > plen && strncmp(out, prompt, plen) == 0 && out[olen - 1] == '\n', "%s",
                  out);
    ck_assert_msg(sscanf(err, "charlm-train: %d chars, finish length, seed %llu", tokens, seed) ==
                      2,
                  "%s", err);
    char *cont = strndup(out + plen, olen - plen - 1);
    free(out);
    free(err);
    return cont;
}

/* Runs --prompt-file on the file and returns its output lines parsed (n of them). */
static cJSON **run_file(const char *dir, const char *path, const char *flags, int *n) {
    char cmd[8192], *out, *err;
    snprintf(cmd, sizeof cmd, "%s sample --model '%s' --prompt-file '%s' %s",
             tu_bin("charlm-train"), dir, path, flags);
    ck_assert_msg(tu_run(cmd, &out, &err) == 0, "%s: %s", cmd, err);
    cJSON **lines = calloc(64, sizeof(*lines));
    *n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        ck_assert_int_lt(*n, 64);
        lines[*n] = cJSON_Parse(line);
        ck_assert_msg(lines[*n] != NULL, "not JSON: %s", line);
        (*n)++;
    }
    free(out);
    free(err);
    return lines;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsString(v), "no string %s", k);
    return v->valuestring;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "no number %s", k);
    return v->valuedouble;
}

static void check_line(const cJSON *got, const char *dir, const char *prompt, const char *flags) {
    int tokens;
    unsigned long long seed;
    char *want = sample_one(dir, prompt, flags, &tokens, &seed);
    ck_assert_msg(strcmp(str(got, "text"), want) == 0, "prompt '%s' %s:\n got '%s'\nwant '%s'",
                  prompt, flags, str(got, "text"), want);
    ck_assert_str_eq(str(got, "finish_reason"), "length");
    ck_assert_int_eq((int)num(got, "tokens"), tokens);
    ck_assert_int_eq((unsigned long long)num(got, "seed"), seed);
    free(want);
}

START_TEST(test_text_lines_equal_sample) {
    const char *dir = MODELS[_i].dir, *flags = "--max-tokens 45 --temperature 0.9 --seed 11";
    char file[8192] = "", prompt[64];
    for (int i = 0; i < NPROMPTS; i++) {
        prompt_at(i, prompt, sizeof prompt);
        strcat(file, prompt);
        strcat(file, "\n");
    }
    char *path = tu_write_file(root, "prompts.txt", file, strlen(file));
    int n;
    cJSON **lines = run_file(dir, path, flags, &n);
    ck_assert_int_eq(n, NPROMPTS);
    for (int i = 0; i < NPROMPTS; i++) {
        prompt_at(i, prompt, sizeof prompt);
        check_line(lines[i], dir, prompt, flags);
        cJSON_Delete(lines[i]);
    }
    free(lines);
    free(path);
}
END_TEST

/* Line i's own parameters, as JSON members and as sample's flags. */
static void params_at(int i, char *json, size_t jcap, char *flags, size_t fcap) {
    int max_tokens = 10 + 9 * i, top_k = i % 3 == 0 ? 0 : 3 + i;
    double temperature = i % 4 == 1 ? 0 : 0.5 + 0.25 * i;
    snprintf(json, jcap,
             "\"max_tokens\": %d, \"temperature\": %g, \"top_k\": %d, \"seed\": %d, "
             "\"presence_penalty\": %g",
             max_tokens, temperature, top_k, 100 + i, 0.1 * i);
    snprintf(flags, fcap,
             "--max-tokens %d --temperature %g --top-k %d --seed %d --presence-penalty %g "
             "--min-p 0.01",
             max_tokens, temperature, top_k, 100 + i, 0.1 * i);
}

START_TEST(test_json_lines_equal_sample) {
    const char *dir = MODELS[_i].dir;
    char file[16384] = "", prompt[64], json[512], flags[512], line[1024];
    for (int i = 0; i < NPROMPTS; i++) {
        prompt_at(i, prompt, sizeof prompt);
        params_at(i, json, sizeof json, flags, sizeof flags);
        snprintf(line, sizeof line, "{\"prompt\": \"%s\", %s}\n%s", prompt, json,
                 i == 2 ? "\n" : ""); // a blank line between JSON lines is allowed
        strcat(file, line);
    }
    char *path = tu_write_file(root, "prompts.jsonl", file, strlen(file));
    int n;
    // The flags are every line's defaults: --min-p, which no line sets, applies to all.
    cJSON **lines = run_file(dir, path, "--min-p 0.01 --max-tokens 3", &n);
    ck_assert_int_eq(n, NPROMPTS);
    for (int i = 0; i < NPROMPTS; i++) {
        prompt_at(i, prompt, sizeof prompt);
        params_at(i, json, sizeof json, flags, sizeof flags);
        check_line(lines[i], dir, prompt, flags);
        cJSON_Delete(lines[i]);
    }
    free(lines);
    free(path);
}
END_TEST

/* A stop sequence ends the text where it first appears, without it. */
START_TEST(test_json_stop) {
    const char *dir = MODELS[_i].dir;
    int tokens;
    unsigned long long seed;
    char *full = sample_one(dir, "the cat", "--max-tokens 80 --seed 9", &tokens, &seed);
    const char *at = strstr(full, "a");
    ck_assert_msg(at != NULL, "no 'a' in '%s'", full);
    const char *file = "{\"prompt\": \"the cat\", \"max_tokens\": 80, \"seed\": 9, "
                       "\"stop\": [\"zz\", \"a\"]}\n";
    char *path = tu_write_file(root, "stop.jsonl", file, strlen(file));
    int n;
    cJSON **lines = run_file(dir, path, "", &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(strlen(str(lines[0], "text")), (size_t)(at - full));
    ck_assert_int_eq(strncmp(str(lines[0], "text"), full, (size_t)(at - full)), 0);
    ck_assert_str_eq(str(lines[0], "finish_reason"), "stop");
    cJSON_Delete(lines[0]);
    free(lines);
    free(path);
    free(full);
}
END_TEST

START_TEST(test_bad_line_names_it) {
    static const struct {
        const char *file, *err;
    } cases[] = {
        {"{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\", \"top_p\": 2}\n",
         "line 3: top_p must be in (0, 1]"},
        {"{\"prompt\": \"a\"}\n\n{\"prompt\": 1}\n", "line 3: prompt must be a string"},
        {"{\"prompt\": \"a\", \"temp\": 1}\n", "line 1: unknown field \"temp\""},
        {"{\"prompt\": \"a\"}\nnot json\n", "line 2: not a JSON object"},
        {"ok\nbad \xff\n", "line 2: the prompt is not valid UTF-8"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *path = tu_write_file(root, "bad.txt", cases[c].file, strlen(cases[c].file));
        char cmd[8192], *out, *err;
        snprintf(cmd, sizeof cmd, "%s sample --model '%s' --prompt-file '%s'",
                 tu_bin("charlm-train"), MODELS[0].dir, path);
        ck_assert_int_eq(tu_run(cmd, &out, &err), 2);
        ck_assert_msg(strstr(err, cases[c].err) != NULL, "%s: %s", cases[c].err, err);
        ck_assert_str_eq(out, "");
        free(out);
        free(err);
        free(path);
    }
    // From stdin, and --prompt with --prompt-file is bad input.
    char cmd[8192], *out, *err;
    snprintf(cmd, sizeof cmd,
             "printf 'the\\n{\\n' | %s sample --model '%s' --prompt-file - --seed 1",
             tu_bin("charlm-train"), MODELS[0].dir);
    ck_assert_int_eq(tu_run(cmd, &out, &err), 0);
    ck_assert_int_eq((int)(strchr(strchr(out, '\n') + 1, '\n') - out) + 1, (int)strlen(out));
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "%s sample --model '%s' --prompt a --prompt-file -",
             tu_bin("charlm-train"), MODELS[0].dir);
    ck_assert_int_eq(tu_run(cmd, &out, &err), 2);
    ck_assert_msg(strstr(err, "give one, not both") != NULL, "%s", err);
    free(out);
    free(err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("prompt-file");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_text_lines_equal_sample, 0, NMODELS);
    tcase_add_loop_test(tc, test_json_lines_equal_sample, 0, NMODELS);
    tcase_add_loop_test(tc, test_json_stop, 0, NMODELS);
    tcase_add_test(tc, test_bad_line_names_it);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
