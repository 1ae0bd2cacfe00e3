#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "api.h"
#include "utf8.h"

#define SEED_MAX 9007199254740992.0 // 2^53: every integer up to it is exact in JSON numbers

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
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    e->param[0] = '\0';
    if (param) copy_utf8(e->param, sizeof(e->param), param);
    return -1;
}

static int get_number(const cJSON *it, ApiError *e, double *out) {
    if (!cJSON_IsNumber(it)) return bad(e, it->string, "%s must be a number", it->string);
    if (!isfinite(it->valuedouble))
        return bad(e, it->string, "%s must be a finite number", it->string);
    *out = it->valuedouble;
    return 0;
}

// Integers may be written as 2.0 (JSON has one number type) but not as 1.5.
static int get_int(const cJSON *it, double lo, double hi, ApiError *e, double *out) {
    double v = 0;
    if (!cJSON_IsNumber(it)) return bad(e, it->string, "%s must be an integer", it->string);
    if (get_number(it, e, &v)) return -1;
    if (v != floor(v)) return bad(e, it->string, "%s must be an integer", it->string);
    if (v < lo || v > hi)
        return bad(e, it->string, "%s must be between %.0f and %.0f", it->string, lo, hi);
    *out = v;
    return 0;
}

// A float parameter from a double that passed range checks: keep it inside float's
// range and away from 0 where 0 would mean something else.
static float to_float_pos(double v) {
    if (v > FLT_MAX) return FLT_MAX;
    if (v > 0 && v < FLT_MIN) return FLT_MIN;
    return (float)v;
}

static int parse_stop(const cJSON *it, GenRequest *r, ApiError *e) {
    const cJSON *one[1] = {it};
    int n = 1;
    if (cJSON_IsArray(it)) {
        n = cJSON_GetArraySize(it);
        if (n > GEN_MAX_STOP)
            return bad(e, "stop", "stop takes at most %d sequences", GEN_MAX_STOP);
    } else if (!cJSON_IsString(it)) {
        return bad(e, "stop", "stop must be a string or an array of strings");
    }
    const cJSON *el = cJSON_IsArray(it) ? it->child : one[0];
    for (int i = 0; i < n; i++, el = el->next) {
        if (!cJSON_IsString(el))
            return bad(e, "stop", "stop must be a string or an array of strings");
        if (!el->valuestring[0]) return bad(e, "stop", "stop sequences must not be empty");
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

static int parse_prompt(const cJSON *it, int openai, const ServerConfig *cfg, GenRequest *r,
                        ApiError *e) {
    // OpenAI also takes a list of prompts; one is all that n = 1 can answer.
    if (openai && cJSON_IsArray(it) && cJSON_GetArraySize(it) == 1 && cJSON_IsString(it->child))
        it = it->child;
    if (!cJSON_IsString(it)) return bad(e, "prompt", "prompt must be a string");
    size_t len = strlen(it->valuestring);
    size_t chars = utf8_count(it->valuestring, len);
    if (chars > (size_t)cfg->max_prompt)
        return bad(e, "prompt", "prompt is %zu chars, more than the limit of %d", chars,
                   cfg->max_prompt);
    char *p = strdup(it->valuestring);
    if (!p) return bad(e, NULL, "out of memory");
    free(r->prompt);
    r->prompt = p;
    r->prompt_len = len;
    return 0;
}

// Fields common to both endpoints. Returns 1 when the key is not one of them.
static int parse_common(const cJSON *it, int openai, const ServerConfig *cfg, GenRequest *r,
                        ApiError *e, int *rc) {
    const char *k = it->string;
    SamplerParams *sp = &r->gen.sampler;
    double v = 0;
    *rc = 0;
    if (strcmp(k, "prompt") == 0) {
        *rc = parse_prompt(it, openai, cfg, r, e);
    } else if (strcmp(k, "max_tokens") == 0) {
        if (!(*rc = get_int(it, 1, cfg->max_tokens, e, &v))) r->gen.max_tokens = (int)v;
    } else if (strcmp(k, "temperature") == 0) {
        if (!(*rc = get_number(it, e, &v))) {
            if (v < 0)
                *rc = bad(e, k, "temperature must be >= 0 (0 means greedy)");
            else
                sp->temperature = v > 0 ? to_float_pos(v) : 0.0f;
        }
    } else if (strcmp(k, "top_k") == 0) {
        if (!(*rc = get_int(it, 0, 2147483647.0, e, &v))) sp->top_k = (int)v;
    } else if (strcmp(k, "top_p") == 0) {
        if (!(*rc = get_number(it, e, &v))) {
            if (!(v > 0 && v <= 1))
                *rc = bad(e, k, "top_p must be in (0, 1]");
            else
                sp->top_p = to_float_pos(v);
        }
    } else if (strcmp(k, "repetition_penalty") == 0) {
        if (!(*rc = get_number(it, e, &v))) {
            if (!(v > 0))
                *rc = bad(e, k, "repetition_penalty must be > 0 (1 disables it)");
            else
                sp->repetition_penalty = to_float_pos(v);
        }
    } else if (strcmp(k, "repetition_window") == 0) {
        if (!(*rc = get_int(it, 0, 2147483647.0, e, &v))) sp->repetition_window = (int)v;
    } else if (strcmp(k, "seed") == 0) {
        if (!(*rc = get_int(it, 0, SEED_MAX, e, &v))) r->gen.seed = (uint64_t)v;
    } else if (strcmp(k, "stop") == 0) {
        *rc = parse_stop(it, r, e);
    } else if (strcmp(k, "stream") == 0) {
        if (!cJSON_IsBool(it))
            *rc = bad(e, k, "stream must be true or false");
        else
            r->stream = cJSON_IsTrue(it);
    } else {
        return 1;
    }
    return 0;
}

// OpenAI fields that have no meaning here: accepted when they ask for nothing we would
// have to ignore silently (n = 1, echo false, no suffix), ignored otherwise.
static int parse_openai_extra(const cJSON *it, GenRequest *r, ApiError *e, int *rc) {
    const char *k = it->string;
    double v = 0;
    *rc = 0;
    if (strcmp(k, "model") == 0 || strcmp(k, "user") == 0) {
        if (!cJSON_IsString(it)) *rc = bad(e, k, "%s must be a string", k);
    } else if (strcmp(k, "n") == 0 || strcmp(k, "best_of") == 0) {
        if (!(*rc = get_int(it, 1, 1, e, &v))) return 0;
        *rc = bad(e, k, "only %s = 1 is supported", k);
    } else if (strcmp(k, "echo") == 0) {
        if (!cJSON_IsBool(it))
            *rc = bad(e, k, "echo must be true or false");
        else if (cJSON_IsTrue(it))
            *rc = bad(e, k, "echo is not supported");
    } else if (strcmp(k, "suffix") == 0) {
        if (!cJSON_IsString(it))
            *rc = bad(e, k, "suffix must be a string");
        else if (it->valuestring[0])
            *rc = bad(e, k, "suffix is not supported");
    } else if (strcmp(k, "logprobs") == 0) {
        *rc = get_int(it, 0, 5, e, &v);
    } else if (strcmp(k, "presence_penalty") == 0 || strcmp(k, "frequency_penalty") == 0) {
        if (!(*rc = get_number(it, e, &v)) && (v < -2 || v > 2))
            *rc = bad(e, k, "%s must be between -2 and 2", k);
    } else if (strcmp(k, "logit_bias") == 0) {
        if (!cJSON_IsObject(it)) *rc = bad(e, k, "logit_bias must be an object");
    } else if (strcmp(k, "stream_options") == 0) {
        if (!cJSON_IsObject(it)) {
            *rc = bad(e, k, "stream_options must be an object");
            return 0;
        }
        for (const cJSON *o = it->child; o; o = o->next) {
            if (strcmp(o->string, "include_usage") != 0 || !cJSON_IsBool(o)) {
                *rc = bad(e, k, "stream_options takes only include_usage (true or false)");
                return 0;
            }
            r->include_usage = cJSON_IsTrue(o);
        }
    } else {
        return 1;
    }
    return 0;
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

static uint64_t random_seed(void) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        s = (uint64_t)t.tv_nsec * 6364136223846793005ull ^ (uint64_t)t.tv_sec;
    }
    return s & ((1ull << 53) - 1);
}

int api_parse(const char *body, size_t len, int openai, const ServerConfig *cfg, GenRequest *r,
              ApiError *e) {
    memset(r, 0, sizeof(*r));
    memset(e, 0, sizeof(*e));
    r->openai = openai;
    r->gen.max_tokens = openai ? 16 : 200;
    if (r->gen.max_tokens > cfg->max_tokens) r->gen.max_tokens = cfg->max_tokens;
    r->gen.sampler = (SamplerParams){.temperature = openai ? 1.0f : 0.8f,
                                     .top_k = openai ? 0 : 40,
                                     .top_p = 1.0f,
                                     .repetition_penalty = 1.0f,
                                     .repetition_window = 64};
    int have_seed = 0, have_prompt = 0;

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
    for (const cJSON *it = root->child; it && !rc; it = it->next) {
        // OpenAI clients send null for "use the default".
        if (openai && cJSON_IsNull(it) && strcmp(it->string, "prompt") != 0) {
            static const char *known[] = {"model",
                                          "user",
                                          "n",
                                          "best_of",
                                          "echo",
                                          "suffix",
                                          "logprobs",
                                          "presence_penalty",
                                          "frequency_penalty",
                                          "logit_bias",
                                          "stream_options",
                                          "max_tokens",
                                          "temperature",
                                          "top_k",
                                          "top_p",
                                          "repetition_penalty",
                                          "repetition_window",
                                          "seed",
                                          "stop",
                                          "stream"};
            int found = 0;
            for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
                found |= strcmp(it->string, known[i]) == 0;
            if (found) continue;
        }
        if (!parse_common(it, openai, cfg, r, e, &rc)) {
            have_seed |= strcmp(it->string, "seed") == 0;
            have_prompt |= strcmp(it->string, "prompt") == 0;
            continue;
        }
        if (openai && !parse_openai_extra(it, r, e, &rc)) continue;
        char key[48];
        copy_utf8(key, sizeof(key), it->string);
        rc = bad(e, it->string, "unknown field '%s'", key);
    }
    if (!rc && !have_prompt) rc = bad(e, "prompt", "prompt is required");
    if (!rc && !have_seed) r->gen.seed = random_seed();
    if (!rc && r->include_usage && !r->stream)
        rc = bad(e, "stream_options", "stream_options is only allowed with stream: true");
done:
    cJSON_Delete(root);
    if (rc) gen_request_free(r);
    return rc;
}

void gen_request_free(GenRequest *r) {
    free(r->prompt);
    for (int i = 0; i < GEN_MAX_STOP; i++) free(r->stop[i]);
    memset(r, 0, sizeof(*r));
}
