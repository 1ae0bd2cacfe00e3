/* prompts.c — the lines of --prompt-file: see prompts.h. */
#include "prompts.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "generate.h"
#include "utf8.h"

void prompts_free(PromptLine *l) {
    free(l->prompt);
    for (int i = 0; i < GEN_MAX_STOP; i++) free(l->stops[i]);
    memset(l, 0, sizeof(*l));
}

void prompts_free_all(PromptLine *lines, int n) {
    for (int i = 0; i < n; i++) prompts_free(&lines[i]);
    free(lines);
}

static int add_stop(PromptLine *out, const cJSON *s, char *err) {
    if (!cJSON_IsString(s)) return err_set(err, "stop must be a string or an array of strings");
    if (out->params.nstop == GEN_MAX_STOP)
        return err_set(err, "stop takes at most %d sequences", GEN_MAX_STOP);
    if (utf8_find_invalid(s->valuestring, strlen(s->valuestring)) >= 0)
        return err_set(err, "stop is not valid UTF-8");
    char *copy = strdup(s->valuestring);
    if (!copy) return err_set(err, "out of memory");
    out->stops[out->params.nstop] = copy;
    out->params.stop[out->params.nstop++] = copy;
    return 0;
}

static int parse_member(PromptLine *out, const cJSON *m, char *err) {
    if (strcmp(m->string, "prompt") == 0) {
        if (!cJSON_IsString(m)) return err_set(err, "prompt must be a string");
        free(out->prompt);
        if (!(out->prompt = strdup(m->valuestring))) return err_set(err, "out of memory");
        out->prompt_len = strlen(out->prompt);
        return 0;
    }
    if (strcmp(m->string, "stop") == 0) {
        for (int i = 0; i < out->params.nstop; i++) free(out->stops[i]), out->stops[i] = NULL;
        out->params.nstop = 0;
        if (!cJSON_IsArray(m)) return add_stop(out, m, err);
        for (const cJSON *s = m->child; s; s = s->next)
            if (add_stop(out, s, err)) return -1;
        return 0;
    }
    const GenParam *gp = genparams_find(m->string);
    if (!gp || strcmp(gp->name, m->string) != 0)
        return err_set(err, "unknown field \"%.40s\" (prompt, stop or a generation parameter)",
                       m->string);
    if (!cJSON_IsNumber(m)) return err_set(err, "%s must be a number", gp->name);
    return genparams_set(&out->params, gp, m->valuedouble, 0, err);
}

static int parse_json(const char *line, size_t len, PromptLine *out, char *err) {
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!o) return err_set(err, "not a JSON object");
    while (end && end < line + len && strchr(" \t\r", *end)) end++;
    int rc = 0;
    if (!cJSON_IsObject(o) || end != line + len) rc = err_set(err, "not a JSON object");
    for (const cJSON *m = o->child; m && !rc; m = m->next) rc = parse_member(out, m, err);
    if (!rc && !out->prompt) rc = err_set(err, "no \"prompt\"");
    cJSON_Delete(o);
    return rc;
}

int prompts_parse(const char *line, size_t len, int json, const GenerateParams *base,
                  PromptLine *out, char *err) {
    memset(out, 0, sizeof(*out));
    out->params = *base;
    out->params.nstop = 0; // the flags give no stop sequences
    int rc;
    if (json) {
        rc = parse_json(line, len, out, err);
    } else if (memchr(line, '\0', len)) {
        rc = err_set(err, "a NUL byte in the prompt");
    } else {
        out->prompt = strndup(line, len);
        out->prompt_len = len;
        rc = out->prompt ? 0 : err_set(err, "out of memory");
    }
    if (!rc) {
        long bad = utf8_find_invalid(out->prompt, out->prompt_len);
        if (bad >= 0)
            rc = err_set(err, "the prompt is not valid UTF-8 (byte offset %ld)", bad);
        else
            rc = generation_params_check(&out->params, err);
    }
    if (rc) prompts_free(out);
    return rc ? -1 : 0;
}

static int blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r", s[i])) return 0;
    return 1;
}

static int grow(PromptLine **lines, int *cap) {
    int want = *cap ? 2 * *cap : 16;
    PromptLine *more = realloc(*lines, (size_t)want * sizeof(**lines));
    if (!more) return 0;
    *lines = more;
    *cap = want;
    return 1;
}

int prompts_read(FILE *f, const GenerateParams *base, PromptLine **out, int *n, char *err) {
    Buf text = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) buf_add(&text, chunk, got);
    if (text.failed || ferror(f)) {
        buf_free(&text);
        return err_set(err, text.failed ? "out of memory" : "cannot read the prompt file");
    }
    PromptLine *lines = NULL;
    int count = 0, cap = 0, rc = 0, json = text.len > 0 && text.s[0] == '{';
    const char *at = text.s, *end = text.s + text.len;
    for (int number = 1; at < end && !rc; number++) {
        const char *nl = memchr(at, '\n', (size_t)(end - at));
        size_t len = nl ? (size_t)(nl - at) : (size_t)(end - at);
        char why[ERR_LEN];
        if (json && blank(at, len)) {
            // JSON lines may be separated by blank lines
        } else if (count == cap && !grow(&lines, &cap)) {
            rc = err_set(err, "out of memory");
        } else if (prompts_parse(at, len, json, base, &lines[count], why)) {
            rc = err_set(err, "line %d: %s", number, why);
        } else {
            lines[count++].line = number;
        }
        at += len + (nl != NULL);
    }
    buf_free(&text);
    if (rc) {
        prompts_free_all(lines, count);
        return -1;
    }
    *out = lines;
    *n = count;
    return 0;
}
