#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "api.h"
#include "buf.h"
#include "error.h"
#include "fileio.h"
#include "genparams.h"
#include "utf8.h"

// Copies at most cap-1 bytes of valid UTF-8 src without splitting a character.
static void copy_utf8(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
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

// cJSON keeps neither the text of a number nor where a string held a \u0000, so the
// members of the top-level object are also walked in the raw body, in the same order as
// cJSON's children. The body is JSON that cJSON accepted, so the walk only has to find
// the bounds of each key and value; it never reads past end all the same.
typedef struct {
    const char *key, *key_end; // the key with its quotes
    const char *val, *val_end; // the value's text
} RawMember;

// cJSON takes every byte up to ' ' as whitespace.
static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (unsigned char)*p <= ' ') p++;
    return p;
}

static const char *skip_string(const char *p, const char *end) {
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\') p++;
    return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end) {
    if (p < end && *p == '"') return skip_string(p, end);
    if (p < end && (*p == '{' || *p == '[')) {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
            p++;
        }
        return end;
    }
    while (p < end && (unsigned char)*p > ' ' && *p != ',' && *p != '}' && *p != ']') p++;
    return p;
}

// The next member after *cursor (which starts just inside the object); 0 at its end.
static int raw_next(const char **cursor, const char *end, RawMember *m) {
    const char *p = skip_ws(*cursor, end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
    if (p >= end || *p != '"') return 0;
    m->key = p;
    p = m->key_end = skip_string(p, end);
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return 0;
    m->val = p = skip_ws(p + 1, end);
    *cursor = m->val_end = skip_value(p, end);
    return 1;
}

// Whether JSON text (a string, or a container of them) decodes to something holding a
// NUL. Outside strings there are no backslashes.
static int raw_has_nul(const char *p, const char *end) {
    for (; p < end; p++) {
        if (*p != '\\') continue;
        if (end - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) return 1;
        p++;
    }
    return 0;
}

// The exact value of a JSON number's text when it is an integer from 0 to max (-0 is
// 0): 0, or -1 when it is not an integer, -2 when it is one outside the range. 7.0, 7e0
// and 70e-1 are 7; 9007199254740993 is itself, not the double next to it.
static int raw_uint(const char *p, const char *end, uint64_t max, uint64_t *out) {
    int neg = p < end && *p == '-';
    p += neg;
    char digits[24]; // the significant digits, leading zeros dropped
    int nd = 0, dropped = 0, seen = 0;
    long scale = 0; // value = digits * 10^scale
    for (int frac = 0; p < end; p++) {
        if (*p == '.' && !frac) {
            frac = 1;
            continue;
        }
        if (*p < '0' || *p > '9') break;
        seen = 1;
        if (frac) scale--;
        if (nd == 0 && *p == '0') continue;
        if (nd < (int)sizeof(digits))
            digits[nd++] = *p;
        else if (*p != '0')
            dropped = 1; // too many digits for any integer in range, unless they are zeros
        else
            scale++;
    }
    if (!seen) return -1;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = p < end && *p == '-';
        p += p < end && (*p == '-' || *p == '+');
        long e = 0;
        if (p >= end || *p < '0' || *p > '9') return -1;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            if (e < 100000) e = e * 10 + (*p - '0');
        scale += eneg ? -e : e;
    }
    if (p != end) return -1;
    while (nd > 0 && digits[nd - 1] == '0') nd--, scale++;
    if (nd == 0) {
        *out = 0;
        return 0;
    }
    if (scale < 0 || dropped) return scale < 0 ? -1 : -2;
    if (neg || nd + scale > 20) return -2;
    uint64_t v = 0;
    for (int i = 0; i < nd + scale; i++) {
        int d = i < nd ? digits[i] - '0' : 0;
        if (v > (UINT64_MAX - (uint64_t)d) / 10) return -2;
        v = v * 10 + (uint64_t)d;
    }
    if (v > max) return -2;
    *out = v;
    return 0;
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
// number's text (raw), since a double would round 2^53 + 1 to 2^53.
static int parse_param(const cJSON *it, const RawMember *raw, const GenParam *gp,
                       const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    if (!cJSON_IsNumber(it))
        return bad(e, gp->name, "%s must be %s", gp->name,
                   gp->type == GENPARAM_FLOAT ? "a number" : "an integer");
    double hi = genparams_max(gp, cfg->max_tokens), v = it->valuedouble;
    if (gp->type == GENPARAM_SEED) {
        uint64_t u;
        int rc = raw_uint(raw->val, raw->val_end, (uint64_t)hi, &u);
        if (rc == -1) return bad(e, gp->name, "%s must be an integer", gp->name);
        if (rc == -2) {
            char range[64];
            genparams_range_text(gp, hi, range, sizeof(range));
            return bad(e, gp->name, "%s must be an integer from %s", gp->name, range);
        }
        v = (double)u; // exact: hi is at most 2^53
    }
    // 0 scores the prompt without generating; api_parse checks that echo asks for that.
    if (gp->offset == offsetof(GenerateParams, max_tokens) && v == 0 && !r->chat) {
        r->gen.max_tokens = 0;
        return 0;
    }
    char err[ERR_LEN];
    if (genparams_set(&r->gen, gp, v, hi, err)) return bad(e, gp->name, "%s", err);
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
        if (!s) return bad(e, NULL, "out of memory");
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
    if (!p) return bad(e, NULL, "out of memory");
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
        return bad(e, NULL, "out of memory");
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
    if (!bias) return bad(e, NULL, "out of memory");
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

static const char *const chat_roles[3] = {"system", "user", "assistant"};
static const char *const chat_placeholders[3] = {"{system}", "{user}", "{assistant}"};

// The built-in template: plain prose turns a char-level model can continue.
static const ChatTemplate chat_builtin = {NULL, {"", "User: ", "Assistant: "}, {"", "", ""}};

#define CHAT_TEMPLATE_MAX_BYTES 65536

static int template_fail(ChatTemplate *t, char *copy) {
    free(copy);
    memset(t, 0, sizeof(*t));
    return -1;
}

int chat_template_parse(const char *text, size_t len, ChatTemplate *t, char *err) {
    memset(t, 0, sizeof(*t));
    if (memchr(text, '\0', len)) return err_set(err, "the template contains a NUL byte");
    if (utf8_find_invalid(text, len) >= 0) return err_set(err, "the template is not valid UTF-8");
    if (len > 0 && text[len - 1] == '\n') len--; // the last line's newline is optional
    char *copy = malloc(len + 1);
    if (!copy) return err_set(err, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    char *line = copy;
    for (int n = 0; line; n++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (n == 3) {
            err_set(err, "the template must be exactly three lines, one per role");
            return template_fail(t, copy);
        }
        int role = -1;
        char *at = NULL;
        for (int k = 0; k < 3; k++) {
            char *p = strstr(line, chat_placeholders[k]);
            if (!p) continue;
            if (role >= 0 || strstr(p + 1, chat_placeholders[k])) {
                err_set(err, "line %d holds more than one placeholder", n + 1);
                return template_fail(t, copy);
            }
            role = k, at = p;
        }
        if (role < 0) {
            err_set(err, "line %d holds none of {system}, {user}, {assistant}", n + 1);
            return template_fail(t, copy);
        }
        if (t->pre[role]) {
            err_set(err, "line %d repeats a role's placeholder", n + 1);
            return template_fail(t, copy);
        }
        *at = '\0';
        t->pre[role] = line;
        t->post[role] = at + strlen(chat_placeholders[role]);
        line = nl ? nl + 1 : NULL;
    }
    for (int k = 0; k < 3; k++)
        if (!t->pre[k]) {
            err_set(err, "the template has no line with %s", chat_placeholders[k]);
            return template_fail(t, copy);
        }
    t->text = copy;
    return 0;
}

int chat_template_load(const char *path, ChatTemplate *t, char *err) {
    char *data = NULL;
    size_t len = 0;
    if (file_read_all(path, CHAT_TEMPLATE_MAX_BYTES, &data, &len, err)) return -1;
    int rc = chat_template_parse(data, len, t, err);
    free(data);
    return rc;
}

void chat_template_free(ChatTemplate *t) {
    free(t->text);
    memset(t, 0, sizeof(*t));
}

// One message's content: a string, or an array of text parts joined as they are.
static int chat_content(const cJSON *c, int i, Buf *b, ApiError *e) {
    if (cJSON_IsString(c)) {
        buf_adds(b, c->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(c))
        return bad(e, "messages", "messages[%d].content must be a string or an array of text parts",
                   i);
    for (const cJSON *part = c->child; part; part = part->next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
            !cJSON_IsString(text) || cJSON_GetArraySize(part) != 2)
            return bad(e, "messages",
                       "messages[%d].content: only parts {\"type\": \"text\", \"text\": ...} "
                       "are supported",
                       i);
        buf_adds(b, text->valuestring);
    }
    return 0;
}

static int parse_messages(const cJSON *it, const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    const ChatTemplate *t = cfg->chat_template ? cfg->chat_template : &chat_builtin;
    if (!cJSON_IsArray(it) || !it->child)
        return bad(e, "messages", "messages must be a non-empty array of messages");
    Buf b = {0};
    int i = 0;
    for (const cJSON *m = it->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) {
            buf_free(&b);
            return bad(e, "messages", "messages[%d] must be an object", i);
        }
        const cJSON *role = NULL, *content = NULL;
        for (const cJSON *f = m->child; f; f = f->next) {
            if (strcmp(f->string, "role") == 0)
                role = f;
            else if (strcmp(f->string, "content") == 0)
                content = f;
            else if (!(strcmp(f->string, "name") == 0 && cJSON_IsNull(f))) {
                buf_free(&b);
                char key[48];
                copy_utf8(key, sizeof(key), f->string);
                return bad(e, "messages", "messages[%d]: the field '%s' is not supported", i, key);
            }
        }
        int k = -1;
        for (int j = 0; j < 3 && cJSON_IsString(role); j++)
            if (strcmp(role->valuestring, chat_roles[j]) == 0) k = j;
        if (k < 0) {
            buf_free(&b);
            return bad(e, "messages", "messages[%d].role must be system, user or assistant", i);
        }
        buf_adds(&b, t->pre[k]);
        if (!content || chat_content(content, i, &b, e)) {
            buf_free(&b);
            if (!content) return bad(e, "messages", "messages[%d] has no content", i);
            return -1;
        }
        buf_adds(&b, t->post[k]);
        buf_adds(&b, "\n");
    }
    buf_adds(&b, t->pre[2]);
    if (b.failed) {
        buf_free(&b);
        return bad(e, NULL, "out of memory");
    }
    size_t chars = utf8_count(b.s, b.len);
    if (chars > (size_t)cfg->max_prompt) {
        buf_free(&b);
        return bad(e, "messages",
                   "the messages make a prompt of %zu chars, more than the limit of %d", chars,
                   cfg->max_prompt);
    }
    for (int i = 0; i < r->nprompts; i++) free(r->prompts[i]);
    r->prompts[0] = b.s;
    r->prompt_lens[0] = b.len;
    r->nprompts = 1;
    return 0;
}

// Unless the request names its own stops, a reply ends where the model starts the user's
// next turn: "\n" and the user line's text before {user}, trailing spaces dropped.
static int chat_default_stop(const ServerConfig *cfg, GenRequest *r, ApiError *e) {
    const ChatTemplate *t = cfg->chat_template ? cfg->chat_template : &chat_builtin;
    size_t n = strlen(t->pre[1]);
    while (n > 0 && t->pre[1][n - 1] == ' ') n--;
    if (r->gen.nstop > 0 || n == 0 || n + 1 > GEN_MAX_STOP_BYTES) return 0;
    char *s = malloc(n + 2);
    if (!s) return bad(e, NULL, "out of memory");
    s[0] = '\n';
    memcpy(s + 1, t->pre[1], n);
    s[n + 1] = '\0';
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

// cJSON rejects NaN and Infinity as malformed JSON. When that is what it stopped at, name
// the field: walk back from the bad value over ':' to the key's closing quote.
static int nonfinite_field(const char *body, size_t len, const char *at, char *key, size_t cap) {
    if (at < body || at >= body + len) return 0;
    const char *p = at;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p == '-' || *p == '+') p++;
    if (strncasecmp(p, "nan", 3) != 0 && strncasecmp(p, "inf", 3) != 0) return 0;
    const char *q = at - 1;
    while (q > body && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q--;
    if (q <= body || *q != ':') return 0;
    q--;
    while (q > body && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q--;
    if (q <= body || *q != '"') return 0;
    const char *end = q;
    q--;
    while (q >= body && *q != '"') {
        if (*q == '\\') return 0; // escaped keys are not worth decoding for a message
        q--;
    }
    if (q < body || (size_t)(end - q - 1) >= cap) return 0;
    memcpy(key, q + 1, (size_t)(end - q - 1));
    key[end - q - 1] = '\0';
    return 1;
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

    // body[len] is the NUL the caller keeps after the bytes; counting it makes cJSON
    // reject anything after the value.
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len + 1, &end, 1);
    if (!root) {
        char key[64];
        if (nonfinite_field(body, len, end, key, sizeof(key)))
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
    const char *cursor = skip_ws(body, body + len) + 1; // just inside the '{'
    for (const cJSON *it = root->child; it && !rc; it = it->next) {
        RawMember raw;
        if (!raw_next(&cursor, body + len, &raw)) {
            rc = bad(e, NULL, "malformed JSON"); // cJSON accepted what the walk cannot read
            break;
        }
        // cJSON would cut the name or the string at the NUL and carry on.
        if (raw_has_nul(raw.key, raw.key_end)) {
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
        if (raw_has_nul(raw.val, raw.val_end)) {
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
    if (!rc && r->chat) rc = chat_default_stop(cfg, r, e);
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

const cJSON *api_member(const cJSON *o, const char *name) {
    const cJSON *last = NULL;
    for (const cJSON *it = cJSON_IsObject(o) ? o->child : NULL; it; it = it->next)
        if (strcmp(it->string, name) == 0) last = it;
    return last;
}

int api_model_field(const char *body, size_t len, char *out, size_t cap) {
    if (utf8_find_invalid(body, len) >= 0) return 0;
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *m = api_member(o, "model");
    int named = cJSON_IsString(m);
    if (named) copy_utf8(out, cap, m->valuestring);
    cJSON_Delete(o);
    return named;
}
