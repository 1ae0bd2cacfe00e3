#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api.h"
#include "chat.h"
#include "error.h"
#include "genparams.h"
#include "jsonscan.h"
#include "utf8.h"

// Copies at most cap-1 bytes of valid UTF-8 src without splitting a character.
static void copy_utf8(char *dst, size_t cap, const char *src) {
    size_t n = utf8_cut(src, strlen(src), cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int bad(ApiError *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(ApiError *e, const char *param, const char *fmt, ...) {
    e->status = 400;
    va_list ap;
    // A message cut to fit must not end inside a character of a field it quotes.
    char full[4 * sizeof(e->message)];
    va_start(ap, fmt);
    int n = vsnprintf(full, sizeof(full), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(full) ? (size_t)n : sizeof(full) - 1;
    len = utf8_cut(full, len, sizeof(e->message) - 1);
    memcpy(e->message, full, len);
    e->message[len] = '\0';
    e->param[0] = '\0';
    if (param) copy_utf8(e->param, sizeof(e->param), param);
    return -1;
}

// Not the request's fault: the handler answers 503 with Retry-After.
static int nomem(ApiError *e) {
    bad(e, NULL, "out of memory");
    e->status = 503;
    return -1;
}

// For the OpenAI fields that are not generation parameters. Integers may be written as
// 2.0 (JSON has one number type) but not as 1.5.
static int check_int(const cJSON *it, double lo, double hi, ApiError *e) {
    const char *k = it->string;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) ||
        it->valuedouble != floor(it->valuedouble))
        return bad(e, k, "%s must be an integer", k);
    if (it->valuedouble < lo || it->valuedouble > hi)
        return bad(e, k, "%s must be an integer from %.0f to %.0f", k, lo, hi);
    return 0;
}

// A row of core/genparams: its type here, its range there. The seed is read from the
// number's text (raw), since a double would round 2^53 + 1 to 2^53, inside the range.
static int parse_param(const cJSON *it, const JsonMember *raw, const GenParam *gp,
                       const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    if (!cJSON_IsNumber(it))
        return bad(e, gp->name, "%s must be %s", gp->name,
                   gp->type == GENPARAM_FLOAT ? "a number" : "an integer");
    double v = it->valuedouble;
    if (gp->type == GENPARAM_SEED && jsonscan_integer(raw->val, raw->val_end, &v))
        return bad(e, gp->name, "%s must be an integer", gp->name);
    // 0 scores the prompt without generating; api_parse checks that echo asks for that.
    if (gp->offset == offsetof(GenerateParams, max_tokens) && v == 0 && !r->chat) {
        r->gen.max_tokens = 0;
        return 0;
    }
    char err[ERR_LEN];
    if (genparams_set(&r->gen, gp, v, genparams_max(gp, cfg->max_tokens), err))
        return bad(e, gp->name, "%s", err);
    return 0;
}

static int parse_stop(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg;
    int n = 1;
    if (cJSON_IsArray(it)) {
        n = cJSON_GetArraySize(it);
        if (n > GEN_MAX_STOP)
            return bad(e, "stop", "stop takes at most %d sequences", GEN_MAX_STOP);
    } else if (!cJSON_IsString(it)) {
        return bad(e, "stop", "stop must be a string or an array of strings");
    }
    const cJSON *el = cJSON_IsArray(it) ? it->child : it;
    for (int i = 0; i < n; i++, el = el->next) {
        if (!cJSON_IsString(el))
            return bad(e, "stop", "stop must be a string or an array of strings");
        if (!el->valuestring[0]) return bad(e, "stop", "stop sequences must not be empty");
        if (strlen(el->valuestring) > GEN_MAX_STOP_BYTES)
            return bad(e, "stop", "stop sequences must be at most %d bytes", GEN_MAX_STOP_BYTES);
        char *s = strdup(el->valuestring);
        if (!s) return nomem(e);
        free(r->stop[i]);
        r->stop[i] = s;
        r->gen.stop[i] = s;
    }
    for (int i = n; i < r->gen.nstop; i++) {
        free(r->stop[i]);
        r->stop[i] = NULL;
        r->gen.stop[i] = NULL;
    }
    r->gen.nstop = n;
    return 0;
}

static int add_prompt(const char *text, size_t len, const ServerConfig *cfg, GenRequest *r,
                      ApiError *e) {
    size_t chars = utf8_count(text, len);
    if (chars > (size_t)cfg->max_prompt)
        return bad(e, "prompt", "prompt is %zu chars, more than the limit of %d", chars,
                   cfg->max_prompt);
    if (r->nprompts == API_MAX_CHOICES)
        return bad(e, "prompt", "at most %d prompts in one request", API_MAX_CHOICES);
    char *p = malloc(len + 1);
    if (!p) return nomem(e);
    memcpy(p, text, len);
    p[len] = '\0';
    r->prompts[r->nprompts] = p;
    r->prompt_lens[r->nprompts++] = len;
    return 0;
}

// OpenAI's token-id form of a prompt: our tokens are the vocabulary's chars.
static int add_prompt_ids(const cJSON *ids, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    int V = r->vocab ? r->vocab->size : 0, n = cJSON_GetArraySize(ids), k = 0;
    char *text = malloc((size_t)n * 4 + 1);
    int *list = malloc((size_t)(n ? n : 1) * sizeof(int));
    if (!text || !list) {
        free(text), free(list);
        return nomem(e);
    }
    for (const cJSON *id = ids->child; id; id = id->next) {
        if (!cJSON_IsNumber(id) || id->valuedouble != floor(id->valuedouble) ||
            !(id->valuedouble >= 0 && id->valuedouble < V)) {
            free(text), free(list);
            return bad(e, "prompt", "prompt token ids must be integers from 0 to %d", V - 1);
        }
        list[k++] = (int)id->valuedouble;
    }
    size_t len = vocab_decode(r->vocab, list, (size_t)k, text);
    free(list);
    int rc = add_prompt(text, len, cfg, r, e);
    free(text);
    return rc;
}

static int all_of(const cJSON *arr, cJSON_bool (*is)(const cJSON *)) {
    for (const cJSON *el = arr->child; el; el = el->next)
        if (!is(el)) return 0;
    return 1;
}

static cJSON_bool is_id_list(const cJSON *it) {
    return cJSON_IsArray(it) && all_of(it, cJSON_IsNumber);
}

// A string; on /v1/completions also OpenAI's other forms: a list of strings, a list of
// token ids, or a list of such lists. Each string or list is one prompt.
static int parse_prompt(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    for (int i = 0; i < r->nprompts; i++) free(r->prompts[i]);
    r->nprompts = 0;
    if (cJSON_IsString(it)) return add_prompt(it->valuestring, strlen(it->valuestring), cfg, r, e);
    if (!r->openai) return bad(e, "prompt", "prompt must be a string");
    const char *what = "prompt must be a string, a list of strings, a list of token ids or a "
                       "list of such lists";
    if (!cJSON_IsArray(it)) return bad(e, "prompt", "%s", what);
    int n = cJSON_GetArraySize(it);
    if (n == 0) return bad(e, "prompt", "prompt must not be an empty list");
    if (all_of(it, cJSON_IsNumber)) return add_prompt_ids(it, cfg, r, e);
    int strings = all_of(it, cJSON_IsString), lists = all_of(it, is_id_list);
    if (!strings && !lists) return bad(e, "prompt", "%s", what);
    if (n > API_MAX_CHOICES)
        return bad(e, "prompt", "at most %d prompts in one request", API_MAX_CHOICES);
    for (const cJSON *el = it->child; el; el = el->next) {
        int rc = strings ? add_prompt(el->valuestring, strlen(el->valuestring), cfg, r, e)
                         : add_prompt_ids(el, cfg, r, e);
        if (rc) return rc;
    }
    return 0;
}

static int parse_stream(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg;
    if (!cJSON_IsBool(it)) return bad(e, "stream", "stream must be true or false");
    r->stream = cJSON_IsTrue(it);
    return 0;
}

// OpenAI fields that change nothing in the output.
static int parse_string(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg, (void)r;
    if (!cJSON_IsString(it)) return bad(e, it->string, "%s must be a string", it->string);
    return 0;
}

static int parse_n(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg;
    if (check_int(it, 1, API_MAX_CHOICES, e)) return -1;
    r->n = (int)it->valuedouble;
    return 0;
}

// Checked against n once both are read: charlm returns every choice it draws, so there
// is nothing to pick the best of.
static int parse_best_of(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg;
    if (check_int(it, 1, API_MAX_CHOICES, e)) return -1;
    r->best_of = (int)it->valuedouble;
    return 0;
}

static int parse_echo(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg;
    if (!cJSON_IsBool(it)) return bad(e, "echo", "echo must be true or false");
    r->echo = cJSON_IsTrue(it);
    return 0;
}

static int parse_suffix(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg, (void)r;
    if (!cJSON_IsString(it)) return bad(e, "suffix", "suffix must be a string");
    if (it->valuestring[0]) return bad(e, "suffix", "suffix is not supported");
    return 0;
}

// Chat: true or false, the alternatives in top_logprobs. Completions: the number of
// alternatives, 0 to 5 as OpenAI allows; /generate: 0 to GEN_MAX_TOP.
static int parse_logprobs(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg;
    if (r->chat) {
        if (!cJSON_IsBool(it)) return bad(e, "logprobs", "logprobs must be true or false");
        r->gen.logprobs = cJSON_IsTrue(it);
        return 0;
    }
    if (check_int(it, 0, r->openai ? 5 : GEN_MAX_TOP, e)) return -1;
    r->gen.logprobs = 1;
    r->gen.top_logprobs = (int)it->valuedouble;
    return 0;
}

// A key of decimal digits as an id below V; -1 when it is not one.
static int parse_id(const char *k, int V) {
    long id = 0;
    if (!*k) return -1;
    for (const char *c = k; *c; c++) {
        if (*c < '0' || *c > '9') return -1;
        id = id * 10 + (*c - '0');
        if (id >= V) return -1;
    }
    return (int)id;
}

// {"<id>": bias, ...}: ids are vocabulary indices in decimal; /generate also takes a
// single char as a key (a key of digits is always an id, so a digit char goes by its id).
static int parse_logit_bias(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg;
    const char *k = "logit_bias";
    if (!cJSON_IsObject(it)) return bad(e, k, "logit_bias must be an object");
    int V = r->vocab ? r->vocab->size : 0, n = cJSON_GetArraySize(it);
    if (n > V) return bad(e, k, "logit_bias takes at most %d entries (one per char)", V);
    SamplerBias *bias = malloc((size_t)(n ? n : 1) * sizeof(*bias));
    if (!bias) return nomem(e);
    int nbias = 0, banned = 0, rc = 0;
    for (const cJSON *b = it->child; b && !rc; b = b->next) {
        char key[24];
        copy_utf8(key, sizeof(key), b->string);
        int id = parse_id(b->string, V);
        if (id < 0 && key[strspn(key, "0123456789")] == '\0' && key[0]) {
            rc = bad(e, k, "logit_bias: id %s is not in the vocabulary (0 to %d)", key, V - 1);
            break;
        }
        if (id < 0 && !r->openai) {
            uint32_t cp;
            size_t len = strlen(b->string);
            int used = len ? utf8_decode_one((const unsigned char *)b->string, len, &cp) : 0;
            if (used <= 0 || (size_t)used != len) {
                rc = bad(e, k, "logit_bias keys must be token ids or single chars, not '%s'", key);
                break;
            }
            id = r->vocab ? vocab_id(r->vocab, cp) : -1;
            if (id < 0) {
                rc = bad(e, k, "logit_bias: '%s' is not in the model's vocabulary", key);
                break;
            }
        }
        if (id < 0) {
            rc = bad(e, k, "logit_bias keys must be token ids (decimal strings), not '%s'", key);
            break;
        }
        if (!cJSON_IsNumber(b) || !(fabs(b->valuedouble) <= SAMPLER_BIAS_MAX)) {
            rc = bad(e, k, "logit_bias values must be numbers from -100 to 100");
            break;
        }
        for (int i = 0; i < nbias && !rc; i++)
            if (bias[i].id == id) rc = bad(e, k, "logit_bias names id %d twice", id);
        bias[nbias++] = (SamplerBias){id, (float)b->valuedouble};
        banned += b->valuedouble <= -SAMPLER_BIAS_MAX;
    }
    if (!rc && V > 0 && banned == V) rc = bad(e, k, "logit_bias bans every char");
    if (rc) {
        free(bias);
        return rc;
    }
    free(r->bias);
    r->bias = bias;
    r->gen.sampler.bias = bias;
    r->gen.sampler.nbias = nbias;
    return 0;
}

static int parse_stream_options(const cJSON *it, const ServerConfig *cfg, GenRequest *r,
                                ApiError *e) {
    (void)cfg;
    if (!cJSON_IsObject(it)) return bad(e, "stream_options", "stream_options must be an object");
    for (const cJSON *o = it->child; o; o = o->next) {
        if (strcmp(o->string, "include_usage") != 0 || !cJSON_IsBool(o))
            return bad(e, "stream_options",
                       "stream_options takes only include_usage (true or false)");
        r->include_usage = cJSON_IsTrue(o);
    }
    return 0;
}

// ---- /v1/chat/completions: messages, the template, and the fields only OpenAI's chat has.

static int parse_messages(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    char err[ERR_LEN], *prompt;
    size_t len;
    int rc = chat_prompt(it, cfg->chat_template, &prompt, &len, err);
    if (rc == CHAT_NOMEM) return nomem(e);
    if (rc) return bad(e, "messages", "%s", err);
    size_t chars = utf8_count(prompt, len);
    if (chars > (size_t)cfg->max_prompt) {
        free(prompt);
        return bad(e, "messages",
                   "the messages make a prompt of %zu chars, more than the limit of %d", chars,
                   cfg->max_prompt);
    }
    for (int i = 0; i < r->nprompts; i++) free(r->prompts[i]);
    r->prompts[0] = prompt;
    r->prompt_lens[0] = len;
    r->nprompts = 1;
    return 0;
}

// Unless the request names its own stops, a reply ends where the user's next turn starts.
static int default_stop(const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    char stop[GEN_MAX_STOP_BYTES + 1];
    if (r->gen.nstop > 0 || !chat_default_stop(cfg->chat_template, stop, sizeof(stop))) return 0;
    char *s = strdup(stop);
    if (!s) return nomem(e);
    r->stop[0] = s;
    r->gen.stop[0] = s;
    r->gen.nstop = 1;
    return 0;
}

// max_completion_tokens is chat's newer name for max_tokens.
static int parse_max_completion_tokens(const cJSON *it, const ServerConfig *cfg, GenRequest *r,
                                       ApiError *e) {
    if (parse_param(it, NULL, genparams_find("max_tokens"), cfg, r, e) == 0) return 0;
    char msg[sizeof(e->message)];
    const char *rest = strncmp(e->message, "max_tokens", 10) == 0 ? e->message + 10 : NULL;
    snprintf(msg, sizeof(msg), "max_completion_tokens%s", rest ? rest : "");
    return bad(e, "max_completion_tokens", "%s", rest ? msg : e->message);
}

// Asks for something charlm cannot do (tools, audio, ...): any value but null is refused.
static int parse_refused(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg, (void)r;
    return bad(e, it->string, "%s is not supported", it->string);
}

// No effect on the output, so accepting it ignores nothing a client would notice.
static int parse_noop(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)it, (void)cfg, (void)r, (void)e;
    return 0;
}

static int parse_response_format(const cJSON *it, const ServerConfig *cfg, GenRequest *r,
                                 ApiError *e) {
    (void)cfg, (void)r;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
    if (cJSON_IsObject(it) && cJSON_GetArraySize(it) == 1 && cJSON_IsString(type) &&
        strcmp(type->valuestring, "text") == 0)
        return 0;
    return bad(e, "response_format", "only response_format {\"type\": \"text\"} is supported");
}

static int parse_modalities(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    (void)cfg, (void)r;
    if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 1 && cJSON_IsString(it->child) &&
        strcmp(it->child->valuestring, "text") == 0)
        return 0;
    return bad(e, "modalities", "only modalities [\"text\"] is supported");
}

static int parse_top_logprobs(const cJSON *it, const ServerConfig *cfg, GenRequest *r,
                              ApiError *e) {
    (void)cfg;
    if (check_int(it, 0, GEN_MAX_TOP, e)) return -1;
    r->gen.top_logprobs = (int)it->valuedouble;
    return 0;
}

typedef struct {
    const char *name;
    int chat_only;
    int (*parse)(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e);
} OpenAIField;

// OpenAI's fields beyond the completions ones: refused when they would change what is
// generated and charlm cannot do it, accepted when they change nothing.
static const OpenAIField openai_fields[] = {
    {"messages", 1, parse_messages},
    {"max_completion_tokens", 1, parse_max_completion_tokens},
    {"response_format", 0, parse_response_format},
    {"modalities", 0, parse_modalities},
    {"top_logprobs", 1, parse_top_logprobs},
    {"tools", 0, parse_refused},
    {"tool_choice", 0, parse_refused},
    {"functions", 0, parse_refused},
    {"function_call", 0, parse_refused},
    {"audio", 0, parse_refused},
    {"prediction", 0, parse_refused},
    {"web_search_options", 0, parse_refused},
    {"reasoning_effort", 0, parse_refused},
    {"store", 0, parse_noop},
    {"metadata", 0, parse_noop},
    {"service_tier", 0, parse_noop},
    {"parallel_tool_calls", 0, parse_noop},
};

// The completions fields chat does not have.
static int chat_lacks(const char *name) {
    static const char *const names[] = {"prompt", "suffix", "echo", "best_of"};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        if (strcmp(names[i], name) == 0) return 1;
    return 0;
}

static const OpenAIField *openai_field_find(const char *name, int chat) {
    for (size_t i = 0; i < sizeof(openai_fields) / sizeof(*openai_fields); i++)
        if ((chat || !openai_fields[i].chat_only) && strcmp(openai_fields[i].name, name) == 0)
            return &openai_fields[i];
    return NULL;
}

// The request fields that are not generation parameters (those are core/genparams rows).
typedef struct {
    const char *name;
    int openai_only;
    int required; // has no default, so null does not stand for one (the prompt)
    int (*parse)(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e);
} Field;

static const Field fields[] = {
    {"prompt", 0, 1, parse_prompt},         {"stop", 0, 0, parse_stop},
    {"stream", 0, 0, parse_stream},         {"model", 0, 0, parse_string},
    {"user", 1, 0, parse_string},           {"n", 0, 0, parse_n},
    {"best_of", 1, 0, parse_best_of},       {"echo", 0, 0, parse_echo},
    {"suffix", 1, 0, parse_suffix},         {"logprobs", 0, 0, parse_logprobs},
    {"logit_bias", 0, 0, parse_logit_bias}, {"stream_options", 1, 0, parse_stream_options},
};

static const Field *field_find(const char *name, int openai) {
    if (openai == API_CHAT && chat_lacks(name)) return NULL;
    for (size_t i = 0; i < sizeof(fields) / sizeof(*fields); i++)
        if ((openai || !fields[i].openai_only) && strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

// genparams_find also takes the flag spelling (max-tokens); JSON has only the one.
static const GenParam *param_find(const char *name) {
    const GenParam *gp = genparams_find(name);
    return gp && strcmp(gp->name, name) == 0 ? gp : NULL;
}

// What no single field decides.
static int check_combination(GenRequest *r, ApiError *e) {
    if (r->best_of && r->best_of != r->n)
        return bad(e, "best_of", "best_of must equal n (%d): every choice drawn is returned", r->n);
    if (r->n * r->nprompts > API_MAX_CHOICES)
        return bad(e, "n", "n x prompts is %d, more than the limit of %d choices per request",
                   r->n * r->nprompts, API_MAX_CHOICES);
    if (r->gen.max_tokens == 0 && !r->echo)
        return bad(e, "max_tokens", "max_tokens 0 is allowed only with echo (scoring the prompt)");
    if (r->chat && r->gen.top_logprobs > 0 && !r->gen.logprobs)
        return bad(e, "top_logprobs", "top_logprobs needs logprobs: true");
    r->gen.score_prompt = r->echo && r->gen.logprobs;
    return 0;
}

static uint64_t random_seed(void) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        s = (uint64_t)t.tv_nsec * 6364136223846793005ull ^ (uint64_t)t.tv_sec;
    }
    return s & ((1ull << 53) - 1);
}

int api_parse(const char *body, size_t len, int openai, const ServerConfig *cfg, const Vocab *vocab,
              GenRequest *r, ApiError *e) {
    memset(r, 0, sizeof(*r));
    memset(e, 0, sizeof(*e));
    r->openai = openai != API_NATIVE;
    r->chat = openai == API_CHAT;
    r->vocab = vocab;
    genparams_defaults(&r->gen, openai, cfg->max_tokens);
    r->n = 1;
    int have_seed = 0;

    if (len == 0) return bad(e, NULL, "request body is empty; expected a JSON object");
    if (memchr(body, '\0', len)) return bad(e, NULL, "request body contains a NUL byte");
    long badpos = utf8_find_invalid(body, len);
    if (badpos >= 0) return bad(e, NULL, "request body is not valid UTF-8 (byte %ld)", badpos);

    const char *end = NULL;
    int oom;
    cJSON *root = jsonscan_parse(body, len, &end, &oom);
    if (oom) return nomem(e);
    if (!root) {
        char key[64];
        if (jsonscan_nonfinite_key(body, len, end, key, sizeof(key)))
            return bad(e, key, "%s must be a finite number (NaN and Infinity are not JSON)", key);
        long at = end && end >= body && end <= body + len ? (long)(end - body) : -1;
        if (at >= 0) return bad(e, NULL, "malformed JSON near byte %ld", at);
        return bad(e, NULL, "malformed JSON");
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = bad(e, NULL, "request body must be a JSON object");
        goto done;
    }
    const char *cursor = jsonscan_begin(body, len);
    for (const cJSON *it = root->child; it && !rc; it = it->next) {
        JsonMember raw;
        if (!jsonscan_next(&cursor, body + len, &raw)) {
            rc = bad(e, NULL, "malformed JSON"); // cJSON accepted what the walk cannot read
            break;
        }
        // cJSON would cut the name or the string at the NUL and carry on.
        if (jsonscan_has_nul(raw.key, raw.key_end)) {
            rc = bad(e, NULL, "a field name contains \\u0000");
            break;
        }
        const GenParam *gp = param_find(it->string);
        const Field *f = gp ? NULL : field_find(it->string, openai);
        const OpenAIField *of =
            gp || f || !r->openai ? NULL : openai_field_find(it->string, r->chat);
        if (!gp && !f && !of) {
            char key[48];
            copy_utf8(key, sizeof(key), it->string);
            rc = bad(e, it->string, "unknown field '%s'", key);
            break;
        }
        if (jsonscan_has_nul(raw.val, raw.val_end)) {
            rc = bad(e, it->string, "%s must not contain \\u0000 (NUL)", it->string);
            break;
        }
        // OpenAI clients send null for "use the default".
        if (openai && cJSON_IsNull(it) && !(f && f->required) &&
            !(of && of->parse == parse_messages))
            continue;
        if (gp) {
            rc = parse_param(it, &raw, gp, cfg, r, e);
            have_seed |= gp->type == GENPARAM_SEED;
        } else if (of) {
            rc = of->parse(it, cfg, r, e);
        } else {
            rc = f->parse(it, cfg, r, e);
        }
    }
    if (!rc && r->nprompts == 0)
        rc = r->chat ? bad(e, "messages", "messages is required")
                     : bad(e, "prompt", "prompt is required");
    if (!rc && r->chat) rc = default_stop(cfg, r, e);
    if (!rc && !have_seed) r->gen.seed = random_seed();
    if (!rc && r->include_usage && !r->stream)
        rc = bad(e, "stream_options", "stream_options is only allowed with stream: true");
    if (!rc) rc = check_combination(r, e);
done:
    cJSON_Delete(root);
    if (rc) gen_request_free(r);
    return rc;
}

void gen_request_free(GenRequest *r) {
    for (int i = 0; i < r->nprompts; i++) free(r->prompts[i]);
    for (int i = 0; i < GEN_MAX_STOP; i++) free(r->stop[i]);
    free(r->bias);
    memset(r, 0, sizeof(*r));
}

int api_model_field(const char *body, size_t len, char *out, size_t cap) {
    if (utf8_find_invalid(body, len) >= 0) return 0;
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *m = jsonscan_member(o, "model");
    int named = cJSON_IsString(m);
    if (named) copy_utf8(out, cap, m->valuestring);
    cJSON_Delete(o);
    return named;
}
