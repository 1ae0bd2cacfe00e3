// libFuzzer target: the JSON bodies of POST /generate, /v1/completions and
// /v1/chat/completions (server/api.c). The first byte picks the route (even: /generate;
// odd: /v1/completions, or chat when bit 1 is set too), the rest is the body. A body is
// either a request within the limits below or a 400 whose message and param are valid
// UTF-8, in an error reply (http_error_json) that is UTF-8 JSON saying the same; never
// anything else. The model name read for selection is UTF-8 too (a 404 quotes it), and an
// error reply quoting any bytes at all (a URL's) is UTF-8 JSON.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "genparams.h"
#include "http.h"
#include "utf8.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

// The defaults of charlm-server's flag rows (server/main.c).
static const ServerConfig cfg = {
    .host = "127.0.0.1",
    .port = 8080,
    .threads = 2,
    .max_tokens = 2000,
    .max_prompt = 8192,
    .max_body = 65536,
    .max_concurrent = 64,
};

// The shipped model's kind of vocabulary: newline and printable ASCII.
static const Vocab *fuzz_vocab(void) {
    static Vocab v;
    if (!v.size) {
        char text[96];
        int n = 0;
        text[n++] = '\n';
        for (char c = ' '; c <= '~'; c++) text[n++] = c;
        CHECK(vocab_build(&v, text, (size_t)n, NULL) == 0);
    }
    return &v;
}

static int utf8_ok(const char *s) {
    return utf8_find_invalid(s, strlen(s)) < 0;
}

/* The error reply for message and param: UTF-8 JSON with them in it (as they are when they
 * were UTF-8). */
static void check_error_reply(int status, const char *message, const char *param) {
    char *json = http_error_json(status, message, param);
    CHECK(json && utf8_ok(json));
    cJSON *o = cJSON_Parse(json);
    CHECK(o);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "param");
    CHECK(cJSON_IsString(m) && (!utf8_ok(message) || strcmp(m->valuestring, message) == 0));
    CHECK(param && param[0] ? cJSON_IsString(p) : !p);
    CHECK(!p || !utf8_ok(param) || strcmp(p->valuestring, param) == 0);
    cJSON_Delete(o);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int openai = data[0] & 1 ? (data[0] & 2 ? API_CHAT : API_COMPLETIONS) : API_NATIVE;
    size_t len = size - 1;
    if (len > (size_t)cfg.max_body) return 0; // http.c answers 413 before parsing
    // http.c keeps a NUL after the body's bytes; api_parse relies on it.
    char *body = malloc(len + 1);
    if (!body) return 0;
    memcpy(body, data + 1, len);
    body[len] = '\0';

    // The model's name is read before the body is parsed (gen.c): it must be a string cut
    // to the buffer, whatever the body.
    char id[129];
    if (api_model_field(body, len, id, sizeof(id))) CHECK(strlen(id) < sizeof(id) && utf8_ok(id));
    check_error_reply(404, body, NULL);

    GenRequest r;
    ApiError e;
    int rc = api_parse(body, len, openai, &cfg, fuzz_vocab(), &r, &e);
    if (rc == 0) {
        CHECK(e.status == 0);
        CHECK(r.openai == (openai != API_NATIVE) && r.chat == (openai == API_CHAT));
        CHECK(r.nprompts >= 1 && r.n >= 1 && r.nprompts * r.n <= API_MAX_CHOICES);
        for (int i = 0; i < r.nprompts; i++) {
            CHECK(r.prompts[i] && utf8_find_invalid(r.prompts[i], r.prompt_lens[i]) < 0);
            CHECK(utf8_count(r.prompts[i], r.prompt_lens[i]) <= (size_t)cfg.max_prompt);
        }
        CHECK(r.gen.max_tokens >= (r.echo ? 0 : 1) && r.gen.max_tokens <= cfg.max_tokens);
        CHECK(r.gen.top_logprobs >= 0 && r.gen.top_logprobs <= GEN_MAX_TOP);
        CHECK(r.gen.seed <= (uint64_t)GEN_SEED_MAX);
        const SamplerParams *sp = &r.gen.sampler;
        CHECK(isfinite(sp->temperature) && sp->temperature >= 0);
        CHECK(sp->top_k >= 0 && sp->repetition_window >= 0);
        CHECK(sp->top_p > 0 && sp->top_p <= 1);
        CHECK(isfinite(sp->repetition_penalty) && sp->repetition_penalty > 0);
        CHECK(sp->presence_penalty >= -2 && sp->presence_penalty <= 2);
        CHECK(sp->frequency_penalty >= -2 && sp->frequency_penalty <= 2);
        CHECK(sp->min_p >= 0 && sp->min_p <= 1);
        CHECK(sp->nbias >= 0 && sp->nbias <= fuzz_vocab()->size && sp->bias == r.bias);
        for (int i = 0; i < sp->nbias; i++) {
            CHECK(sp->bias[i].id >= 0 && sp->bias[i].id < fuzz_vocab()->size);
            CHECK(sp->bias[i].bias >= -100 && sp->bias[i].bias <= 100);
            for (int j = 0; j < i; j++) CHECK(sp->bias[j].id != sp->bias[i].id);
        }
        CHECK(r.gen.nstop >= 0 && r.gen.nstop <= GEN_MAX_STOP);
        for (int i = 0; i < r.gen.nstop; i++) {
            CHECK(r.gen.stop[i] == r.stop[i] && r.stop[i][0] && utf8_ok(r.stop[i]));
        }
        CHECK(!r.include_usage || r.stream);
        gen_request_free(&r);
    } else {
        // A bad request, or (never here, with inputs this small) memory running out.
        CHECK(rc == -1 &&
              (e.status == 400 || (e.status == 503 && !strcmp(e.message, "out of memory"))));
        CHECK(e.message[0] && utf8_ok(e.message) && utf8_ok(e.param));
        check_error_reply(e.status, e.message, e.param);
        // A failed parse owns nothing.
        CHECK(!r.prompts[0] && r.nprompts == 0);
        for (int i = 0; i < GEN_MAX_STOP; i++) CHECK(!r.stop[i]);
        CHECK(!r.bias);
    }
    free(body);
    return 0;
}
