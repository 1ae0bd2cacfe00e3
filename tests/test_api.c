/* server/api.c: request JSON -> GenRequest, called directly, one table row per case; and
 * GET /model's defaults and limits checked against what the parser does. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "genparams.h"
#include "api.h"
#include "card.h"
#include "chat.h"
#include "server.h"
#include "testutil.h"

enum { G = 0, O = 1 }; // /generate, /v1/completions

// A body with a prompt and the given fields.
#define B(fields) "{\"prompt\": \"a\", " fields "}"
#define X16       "0123456789abcdef"
#define X64       X16 X16 X16 X16

typedef struct {
    int openai;
    const char *body;
    int cap;           // --max-tokens; 0: 2000
    const char *want;  // accepted: "field=value ..." to check (see check_fields)
    const char *param; // refused with 400 naming this field; "" when it names none
    const char *msg;   // refused: text the message contains (optional)
} Case;

static const Case cases[] = {
    // Each endpoint's defaults, and --max-tokens lowering max_tokens' default.
    {G, "{\"prompt\": \"a\"}",
     .want = "prompt=a max_tokens=200 temperature=0.8 top_k=40 top_p=1 repetition_penalty=1 "
             "repetition_window=64 nstop=0 stream=0 usage=0"},
    {O, "{\"prompt\": \"a\"}",
     .want = "prompt=a max_tokens=16 temperature=1 top_k=0 top_p=1 repetition_penalty=1 "
             "repetition_window=64 nstop=0 stream=0 usage=0"},
    {G, "{\"prompt\": \"a\"}", .cap = 50, .want = "max_tokens=50"},
    {O, "{\"prompt\": \"a\"}", .cap = 50, .want = "max_tokens=16"},
    {O, "{\"prompt\": \"a\"}", .cap = 10, .want = "max_tokens=10"},

    // Every parameter at its bounds and just outside.
    {G, B("\"max_tokens\": 1"), .want = "max_tokens=1"},
    {G, B("\"max_tokens\": 0"), .param = "max_tokens", .msg = "only with echo"},
    {G, B("\"max_tokens\": -1"), .param = "max_tokens", .msg = "from 1 to 2000"},
    {G, B("\"max_tokens\": 2000"), .want = "max_tokens=2000"},
    {G, B("\"max_tokens\": 2001"), .param = "max_tokens", .msg = "from 1 to 2000"},
    {G, B("\"max_tokens\": 50"), .cap = 50, .want = "max_tokens=50"},
    {G, B("\"max_tokens\": 51"), .cap = 50, .param = "max_tokens", .msg = "from 1 to 50"},
    {O, B("\"max_tokens\": 51"), .cap = 50, .param = "max_tokens"},
    {G, B("\"max_tokens\": 1000000"), .cap = 1000000, .want = "max_tokens=1000000"},
    {G, B("\"max_tokens\": 1000001"), .cap = 1000000, .param = "max_tokens"},
    {G, B("\"temperature\": 0"), .want = "temperature=0"},
    {G, B("\"temperature\": -0.1"), .param = "temperature", .msg = "temperature must be >= 0"},
    {G, B("\"temperature\": 1e300"), .want = "temperature=3.40282347e38"},
    {G, B("\"temperature\": 1e-300"), .want = "temperature=1.17549435e-38"},
    {G, B("\"top_k\": 0"), .want = "top_k=0"},
    {G, B("\"top_k\": -1"), .param = "top_k"},
    {G, B("\"top_k\": 2147483647"), .want = "top_k=2147483647"},
    {G, B("\"top_k\": 2147483648"), .param = "top_k"},
    {G, B("\"top_p\": 0"), .param = "top_p", .msg = "top_p must be in (0, 1]"},
    {G, B("\"top_p\": 1e-9"), .want = "top_p=1e-9"},
    {G, B("\"top_p\": 1"), .want = "top_p=1"},
    {G, B("\"top_p\": 1.01"), .param = "top_p", .msg = "top_p must be in (0, 1]"},
    {G, B("\"repetition_penalty\": 0"), .param = "repetition_penalty", .msg = "> 0"},
    {G, B("\"repetition_penalty\": -1"), .param = "repetition_penalty"},
    {G, B("\"repetition_penalty\": 1e-9"), .want = "repetition_penalty=1e-9"},
    {G, B("\"repetition_window\": 0"), .want = "repetition_window=0"},
    {G, B("\"repetition_window\": -1"), .param = "repetition_window"},
    {G, B("\"repetition_window\": 2147483647"), .want = "repetition_window=2147483647"},
    {G, B("\"seed\": 0"), .want = "seed=0"},
    {G, B("\"seed\": -1"), .param = "seed"},
    {G, B("\"seed\": 9007199254740991"), .want = "seed=9007199254740991"},
    {G, B("\"seed\": 9007199254740992"), .want = "seed=9007199254740992"},
    {G, B("\"seed\": 9007199254740994"), .param = "seed"},
    {O, B("\"seed\": 9007199254740992"), .want = "seed=9007199254740992"},

    // Integers may be written as 2.0, not as 1.5.
    {G, B("\"max_tokens\": 3.0, \"top_k\": 2e1, \"seed\": 7.0"),
     .want = "max_tokens=3 top_k=20 seed=7"},
    {G, B("\"max_tokens\": 1.5"), .param = "max_tokens", .msg = "integer"},
    {G, B("\"repetition_window\": 2.5"), .param = "repetition_window"},
    {G, B("\"seed\": 0.5"), .param = "seed"},

    // The seed is read exactly from its text: doubles would take 2^53 + 1 for 2^53.
    {G, B("\"seed\": 9007199254740993"), .param = "seed", .msg = "from 0 to 9007199254740992"},
    {O, B("\"seed\": 9007199254740993"), .param = "seed"},
    {G, B("\"seed\": 90071992547409930e-1"), .param = "seed"},
    {G, B("\"seed\": 18446744073709551617"), .param = "seed"},
    {G, B("\"seed\": 1e99999999999999999999"), .param = "seed"},
    {G, B("\"seed\": 9007199254740992.0"), .want = "seed=9007199254740992"},
    {G, B("\"seed\": 0.9007199254740992e16"), .want = "seed=9007199254740992"},
    {G, B("\"seed\": 9007199254740992.5"), .param = "seed", .msg = "seed must be an integer"},
    {G, B("\"seed\": 1e3"), .want = "seed=1000"},
    {G, B("\"seed\": 1.0"), .want = "seed=1"},
    {G, B("\"seed\": 100E-2"), .want = "seed=1"},
    {G, B("\"seed\": 1e-1"), .param = "seed", .msg = "seed must be an integer"},
    {G, B("\"seed\": -0"), .want = "seed=0"},
    {G, B("\"seed\": -0.0e7"), .want = "seed=0"},
    {G, B("\"seed\": -1e0"), .param = "seed"},
    // The raw walk pairs each field with its text: repeated keys, nested objects, escaped
    // names and odd whitespace.
    {G, "{\"seed\": 9007199254740993, \"prompt\": \"a\", \"seed\": 9007199254740991}",
     .param = "seed"},
    {G, "{\"seed\": 1, \"prompt\": \"a\", \"seed\": 9007199254740991}",
     .want = "seed=9007199254740991"},
    {O,
     B("\"logit_bias\": {\"1\": -1e0, \"2\": 1}, \"stop\": [\"}\", \"\\\"seed\\\": "
       "9007199254740993\"], \"seed\": 3"),
     .want = "seed=3 bias=1:-1,2:1"},
    {G, "{ \"pro\\u006dpt\" :\t\"a\\\"}{,\" ,\n\"se\\u0065d\"\r: 9007199254740992 }",
     .want = "seed=9007199254740992 prompt_len=5"},

    // cJSON would cut a string at \u0000; such a field is refused, naming it.
    {G, "{\"prompt\": \"ab\\u0000cd\"}", .param = "prompt", .msg = "\\u0000"},
    {O, "{\"prompt\": [\"\\u0000\"]}", .param = "prompt"},
    {G, B("\"stop\": \"x\\u0000\""), .param = "stop"},
    {G, B("\"stop\": [\"x\", \"\\u0000y\"]"), .param = "stop"},
    {O, B("\"user\": \"\\u0000\""), .param = "user"},
    {O, B("\"logit_bias\": {\"\\u0000\": 1}"), .param = "logit_bias"},
    {G, "{\"prompt\\u0000x\": \"a\"}", .param = "", .msg = "field name"},
    {G, "{\"prompt\": \"a\\\\u0000\"}", .want = "prompt=a\\u0000"}, // an escaped backslash
    {G, "{\"prompt\": \"a\\u0001\"}", .want = "prompt_len=2"},

    // presence_penalty, frequency_penalty and min_p: genparams rows on both endpoints.
    {G, "{\"prompt\": \"a\"}", .want = "presence_penalty=0 frequency_penalty=0 min_p=0 bias="},
    {O, "{\"prompt\": \"a\"}", .want = "presence_penalty=0 frequency_penalty=0 min_p=0 bias="},
    {G, B("\"presence_penalty\": -2, \"frequency_penalty\": 2, \"min_p\": 1"),
     .want = "presence_penalty=-2 frequency_penalty=2 min_p=1"},
    {O, B("\"presence_penalty\": 2, \"frequency_penalty\": -2, \"min_p\": 0.05"),
     .want = "presence_penalty=2 frequency_penalty=-2 min_p=0.05"},
    {G, B("\"presence_penalty\": -2.01"), .param = "presence_penalty", .msg = "[-2, 2]"},
    {G, B("\"frequency_penalty\": 2.5"), .param = "frequency_penalty", .msg = "[-2, 2]"},
    {O, B("\"frequency_penalty\": -3"), .param = "frequency_penalty"},
    {G, B("\"min_p\": -0.01"), .param = "min_p", .msg = "[0, 1]"},
    {O, B("\"min_p\": 1.01"), .param = "min_p", .msg = "[0, 1]"},
    {G, B("\"min_p\": \"0.1\""), .param = "min_p", .msg = "must be a number"},
    {G, B("\"presence_penalty\": null"), .param = "presence_penalty"},

    // logit_bias: {"<id>": value}; the test vocabulary is "\n", " ", "7", "a", "b", "c", "é".
    {G, B("\"logit_bias\": {}"), .want = "bias="},
    {O, B("\"logit_bias\": {\"0\": -100, \"6\": 100, \"3\": 0.5}"),
     .want = "bias=0:-100,6:100,3:0.5"},
    {G, B("\"logit_bias\": {\"2\": 1.5}"), .want = "bias=2:1.5"},
    {O, B("\"logit_bias\": {\"007\": 1}"), .param = "logit_bias", .msg = "not in the vocabulary"},
    {G, B("\"logit_bias\": {\"7\": 1}"), .param = "logit_bias", .msg = "0 to 6"}, // an id, not '7'
    {O, B("\"logit_bias\": {\"99999999999999999999\": 1}"), .param = "logit_bias"},
    {O, B("\"logit_bias\": {\"-1\": 1}"), .param = "logit_bias", .msg = "token ids"},
    {O, B("\"logit_bias\": {\"\": 1}"), .param = "logit_bias"},
    {O, B("\"logit_bias\": {\" 1\": 1}"), .param = "logit_bias"},
    {O, B("\"logit_bias\": {\"1.0\": 1}"), .param = "logit_bias"},
    // Chars as keys on /generate only.
    {G, B("\"logit_bias\": {\"a\": -100, \" \": -100, \"\xc3\xa9\": 2}"),
     .want = "bias=3:-100,1:-100,6:2"},
    {G, B("\"logit_bias\": {\"\\n\": 3}"), .want = "bias=0:3"},
    {O, B("\"logit_bias\": {\"a\": -100}"), .param = "logit_bias", .msg = "token ids"},
    {G, B("\"logit_bias\": {\"z\": 1}"), .param = "logit_bias", .msg = "vocabulary"},
    {G, B("\"logit_bias\": {\"ab\": 1}"), .param = "logit_bias", .msg = "single chars"},
    {G, B("\"logit_bias\": {\"a\": 1, \"3\": 2}"), .param = "logit_bias", .msg = "twice"},
    {O, B("\"logit_bias\": {\"1\": 1, \"01\": 2}"), .param = "logit_bias", .msg = "twice"},
    // Values: numbers from -100 to 100.
    {O, B("\"logit_bias\": {\"1\": 100.5}"), .param = "logit_bias", .msg = "-100 to 100"},
    {O, B("\"logit_bias\": {\"1\": -101}"), .param = "logit_bias"},
    {O, B("\"logit_bias\": {\"1\": \"5\"}"), .param = "logit_bias"},
    {O, B("\"logit_bias\": {\"1\": null}"), .param = "logit_bias"},
    {O, B("\"logit_bias\": {\"1\": 1e400}"), .param = "logit_bias"}, // infinite
    // At most one entry per char, and not every char banned.
    {O,
     B("\"logit_bias\": {\"0\": -100, \"1\": -100, \"2\": -100, \"3\": -100, \"4\": -100, "
       "\"5\": -100}"),
     .want = "bias=0:-100,1:-100,2:-100,3:-100,4:-100,5:-100"},
    {O,
     B("\"logit_bias\": {\"0\": -100, \"1\": -100, \"2\": -100, \"3\": -100, \"4\": -100, "
       "\"5\": -100, \"6\": -100}"),
     .param = "logit_bias", .msg = "bans every char"},
    {O,
     B("\"logit_bias\": {\"0\": 1, \"1\": 1, \"2\": 1, \"3\": 1, \"4\": 1, \"5\": 1, \"6\": "
       "1, \"0\": 1}"),
     .param = "logit_bias", .msg = "at most 7"},
    {G, B("\"logit_bias\": null"), .param = "logit_bias"},
    {G, B("\"logit_bias\": [1]"), .param = "logit_bias", .msg = "object"},
    {G, B("\"logit_bias\": {\"1\": 1}, \"logit_bias\": {\"2\": 2}"), .want = "bias=2:2"},

    // Stop sequences of at most GEN_MAX_STOP_BYTES bytes.
    {G, B("\"stop\": \"" X64 "\""), .want = "nstop=1"},
    {G, B("\"stop\": [\"a\", \"" X64 "x\"]"), .param = "stop", .msg = "at most 64 bytes"},

    // Other types where numbers belong; null is not a default for /generate.
    {G, B("\"max_tokens\": \"5\""), .param = "max_tokens", .msg = "max_tokens must be an integer"},
    {G, B("\"temperature\": \"hot\""), .param = "temperature", .msg = "must be a number"},
    {O, B("\"temperature\": \"hot\""), .param = "temperature"},
    {G, B("\"temperature\": true"), .param = "temperature"},
    {G, B("\"top_p\": [1]"), .param = "top_p"},
    {G, B("\"seed\": \"1\""), .param = "seed"},
    {G, B("\"max_tokens\": null"), .param = "max_tokens"},
    {G, B("\"stop\": null"), .param = "stop"},

    // OpenAI clients send null for "use the default", except for the prompt.
    {O,
     B("\"max_tokens\": null, \"temperature\": null, \"top_k\": null, \"top_p\": null, "
       "\"repetition_penalty\": null, \"repetition_window\": null, \"seed\": null, \"stop\": "
       "null, \"stream\": null, \"model\": null, \"user\": null, \"n\": null, \"best_of\": "
       "null, \"echo\": null, \"suffix\": null, \"logprobs\": null, \"presence_penalty\": null, "
       "\"frequency_penalty\": null, \"logit_bias\": null, \"stream_options\": null, "
       "\"min_p\": null"),
     .want = "max_tokens=16 temperature=1 top_k=0 nstop=0 stream=0 presence_penalty=0 min_p=0 "
             "bias="},
    {O, "{\"prompt\": null}", .param = "prompt"},
    {O, B("\"wat\": null"), .param = "wat", .msg = "unknown field 'wat'"},

    // Stop sequences.
    {G, B("\"stop\": \"x\""), .want = "nstop=1 stop=x"},
    {G, B("\"stop\": [\"a\", \"bc\"]"), .want = "nstop=2 stop=a|bc"},
    {G, B("\"stop\": [\"1\", \"2\", \"3\", \"4\"]"), .want = "nstop=4 stop=1|2|3|4"},
    {G, B("\"stop\": []"), .want = "nstop=0"},
    {G, B("\"stop\": [\"a\", \"b\"], \"stop\": \"c\""), .want = "nstop=1 stop=c"},
    {G, B("\"stop\": [\"1\", \"2\", \"3\", \"4\", \"5\"]"), .param = "stop", .msg = "at most 4"},
    {G, B("\"stop\": \"\""), .param = "stop", .msg = "empty"},
    {G, B("\"stop\": [\"a\", \"\"]"), .param = "stop"},
    {G, B("\"stop\": [\"a\", 1]"), .param = "stop"},
    {G, B("\"stop\": 5"), .param = "stop"},
    {G, B("\"stop\": {}"), .param = "stop"},

    // The prompt: a string, of at most --max-prompt chars (10 here), required.
    {G, "{\"prompt\": \"\"}", .want = "prompt= prompt_len=0"},
    {G, "{\"prompt\": \"0123456789\"}", .want = "prompt=0123456789"},
    {G,
     "{\"prompt\": \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
     "\xa9\"}",
     .want = "prompt_len=20"},
    {G, "{\"prompt\": \"01234567890\"}", .param = "prompt", .msg = "11 chars"},
    {G, "{\"max_tokens\": 5}", .param = "prompt", .msg = "prompt is required"},
    {G, "{\"prompt\": 5}", .param = "prompt"},
    {G, "{\"prompt\": [\"a\"]}", .param = "prompt"},
    {O, "{\"prompt\": [\"the\"]}", .want = "prompt=the"},
    // /v1/completions also takes OpenAI's lists: of strings, of ids, of lists of ids.
    {O, "{\"prompt\": [\"a\", \"b\"]}", .want = "nprompts=2 prompts=a|b"},
    {O, "{\"prompt\": []}", .param = "prompt"},
    {O, "{\"prompt\": [4, 3, 6]}", .want = "nprompts=1 prompts=ba\xc3\xa9"},
    {O, "{\"prompt\": [[4], [3, 3], []]}", .want = "nprompts=3 prompts=b|aa|"},
    {O, "{\"prompt\": [1, \"a\"]}", .param = "prompt"},
    {O, "{\"prompt\": [[1], \"a\"]}", .param = "prompt"},
    {O, "{\"prompt\": [99]}", .param = "prompt", .msg = "token ids"},
    {O, "{\"prompt\": [1.5]}", .param = "prompt", .msg = "token ids"},
    {O, "{\"prompt\": [\"01234567890\"]}", .param = "prompt", .msg = "11 chars"},
    {O,
     "{\"prompt\": [\"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\", \"9\", \"0\", \"1\", "
     "\"2\", \"3\", \"4\", \"5\", \"6\", \"7\"]}",
     .param = "prompt", .msg = "at most 16"},
    {O, "{\"model\": \"charlm\"}", .param = "prompt"},

    // Unknown fields, OpenAI's fields at /generate, and the flag spelling.
    {G, B("\"bogus\": 1"), .param = "bogus", .msg = "unknown field 'bogus'"},
    {G, B("\"n\": 3"), .want = "n=3"},
    {G, B("\"user\": \"u\""), .param = "user"},
    {G, B("\"model\": 3"), .param = "model"},
    {G, B("\"max-tokens\": 5"), .param = "max-tokens"},
    {O, B("\"max-tokens\": 5"), .param = "max-tokens"},

    // Bodies that are not JSON objects. NaN and Infinity name their field.
    {G, "", .param = "", .msg = "empty"},
    {G, "{\"prompt\": \"a\",", .param = "", .msg = "malformed JSON"},
    {G, "{\"prompt\": \"a\"} x", .param = ""},
    {G, "[1]", .param = "", .msg = "JSON object"},
    {G, "{\"prompt\": \"\xff\"}", .param = "", .msg = "UTF-8"},
    {G, B("\"temperature\": NaN"), .param = "temperature", .msg = "finite"},
    {G, B("\"top_p\" : -Infinity"), .param = "top_p"},
    {O, B("\"seed\": nan"), .param = "seed"},
    {G, B("\"max_tokens\": 1e400"), .param = "max_tokens", .msg = "finite"},

    // stream, and OpenAI's fields that ask for nothing we would ignore.
    {G, B("\"stream\": true"), .want = "stream=1"},
    {G, B("\"stream\": 1"), .param = "stream"},
    {G, B("\"stream\": \"true\""), .param = "stream"},
    {O,
     B("\"model\": \"x\", \"user\": \"u\", \"n\": 1, \"best_of\": 1.0, \"echo\": false, "
       "\"suffix\": \"\", \"logprobs\": 0, \"presence_penalty\": -2, \"frequency_penalty\": 2, "
       "\"logit_bias\": {\"1\": 5}"),
     .want = "max_tokens=16 presence_penalty=-2 frequency_penalty=2 bias=1:5"},
    // n, best_of, echo, logprobs; max_tokens 0 scores the prompt, so it needs echo.
    {O, B("\"n\": 2"), .want = "n=2 nprompts=1"},
    {O, B("\"n\": 16"), .want = "n=16"},
    {O, B("\"n\": 17"), .param = "n"},
    {O, B("\"n\": 0"), .param = "n"},
    {O, B("\"n\": \"1\""), .param = "n"},
    {O, "{\"prompt\": [\"a\", \"b\"], \"n\": 8}", .want = "n=8 nprompts=2"},
    {O, "{\"prompt\": [\"a\", \"b\"], \"n\": 9}", .param = "n", .msg = "18"},
    {O, B("\"best_of\": 3"), .param = "best_of"},
    {O, B("\"best_of\": 3, \"n\": 3"), .want = "n=3"},
    {O, B("\"echo\": true"), .want = "echo=1 score_prompt=0"},
    {O, B("\"echo\": 0"), .param = "echo"},
    {O, B("\"echo\": true, \"logprobs\": 0, \"max_tokens\": 0"),
     .want = "echo=1 logprobs=1 top_logprobs=0 score_prompt=1 max_tokens=0"},
    {O, B("\"max_tokens\": 0"), .param = "max_tokens", .msg = "echo"},
    {G, B("\"max_tokens\": 0, \"echo\": true"), .want = "max_tokens=0 echo=1"},
    {G, B("\"logprobs\": 20"), .want = "logprobs=1 top_logprobs=20"},
    {G, B("\"logprobs\": 21"), .param = "logprobs"},
    {G, B("\"logprobs\": true"), .param = "logprobs"},
    {O, B("\"suffix\": \"x\""), .param = "suffix"},
    {O, B("\"model\": 3"), .param = "model"},
    {O, B("\"logprobs\": 5"), .want = "logprobs=1 top_logprobs=5 score_prompt=0"},
    {O, B("\"logprobs\": null"), .want = "logprobs=0"},
    {O, B("\"logprobs\": 6"), .param = "logprobs"},
    {O, B("\"logprobs\": -1"), .param = "logprobs"},
    {O, B("\"presence_penalty\": 2.5"), .param = "presence_penalty"},
    {O, B("\"frequency_penalty\": \"1\""), .param = "frequency_penalty"},
    {O, B("\"logit_bias\": []"), .param = "logit_bias"},
    {O, B("\"stream\": true, \"stream_options\": {\"include_usage\": true}"),
     .want = "stream=1 usage=1"},
    {O, B("\"stream_options\": {\"include_usage\": true}"), .param = "stream_options"},
    {O, B("\"stream\": true, \"stream_options\": {\"x\": true}"), .param = "stream_options"},
    {O, B("\"stream\": true, \"stream_options\": 1"), .param = "stream_options"},
};

static ServerConfig config(int cap) {
    return (ServerConfig){.max_tokens = cap ? cap : 2000, .max_prompt = 10, .max_body = 65536};
}

// "\n", " ", "7", "a", "b", "c", "é": ids 0 to 6. A digit char shows that a key of digits
// is an id.
static const Vocab *test_vocab(void) {
    static Vocab v;
    if (!v.size) {
        const char text[] = "cab 7\n\xc3\xa9";
        ck_assert_int_eq(vocab_build(&v, text, strlen(text), NULL), 0);
        ck_assert_int_eq(v.size, 7);
    }
    return &v;
}

// The field a genparams row describes, read back as a double.
static double param_value(const GenerateParams *p, const GenParam *gp) {
    const char *f = (const char *)p + gp->offset;
    switch (gp->type) {
    case GENPARAM_INT:
        return *(const int *)f;
    case GENPARAM_FLOAT:
        return *(const float *)f;
    case GENPARAM_SEED:
        return (double)*(const uint64_t *)f;
    }
    return NAN;
}

// want: space-separated name=value; names are genparams rows (floats compared as float,
// the seed exactly) or prompt, prompt_len, nstop, stop (joined with '|'), stream, usage,
// n, nprompts, echo, logprobs, top_logprobs, score_prompt, prompts (joined with '|').
static void check_fields(const Case *c, const GenRequest *r) {
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", c->want);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        char *v = strchr(tok, '=');
        ck_assert_msg(v != NULL, "bad want %s", tok);
        *v++ = '\0';
        const GenParam *gp = genparams_find(tok);
        char got[512] = "";
        int ok;
        if (gp && gp->type == GENPARAM_SEED) {
            ok = r->gen.seed == strtoull(v, NULL, 10);
            snprintf(got, sizeof(got), "%llu", (unsigned long long)r->gen.seed);
        } else if (gp) {
            double want = strtod(v, NULL), have = param_value(&r->gen, gp);
            ok = gp->type == GENPARAM_FLOAT ? (float)want == (float)have : want == have;
            snprintf(got, sizeof(got), "%.9g", have);
        } else if (strcmp(tok, "prompt") == 0) {
            ok = strcmp(r->prompts[0], v) == 0;
            snprintf(got, sizeof(got), "%s", r->prompts[0]);
        } else if (strcmp(tok, "prompts") == 0) {
            for (int i = 0; i < r->nprompts; i++)
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "|" : "",
                         r->prompts[i]);
            ok = strcmp(got, v) == 0;
        } else if (strcmp(tok, "bias") == 0) {
            for (int i = 0; i < r->gen.sampler.nbias; i++)
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%d:%g", i ? "," : "",
                         r->gen.sampler.bias[i].id, r->gen.sampler.bias[i].bias);
            ok = strcmp(got, v) == 0 && r->gen.sampler.bias == r->bias;
        } else if (strcmp(tok, "stop") == 0) {
            for (int i = 0; i < r->gen.nstop; i++)
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "|" : "",
                         r->gen.stop[i]);
            ok = strcmp(got, v) == 0;
        } else {
            long have = strcmp(tok, "prompt_len") == 0     ? (long)r->prompt_lens[0]
                        : strcmp(tok, "nstop") == 0        ? r->gen.nstop
                        : strcmp(tok, "stream") == 0       ? r->stream
                        : strcmp(tok, "usage") == 0        ? r->include_usage
                        : strcmp(tok, "n") == 0            ? r->n
                        : strcmp(tok, "nprompts") == 0     ? r->nprompts
                        : strcmp(tok, "echo") == 0         ? r->echo
                        : strcmp(tok, "logprobs") == 0     ? r->gen.logprobs
                        : strcmp(tok, "top_logprobs") == 0 ? r->gen.top_logprobs
                        : strcmp(tok, "score_prompt") == 0 ? r->gen.score_prompt
                                                           : -999;
            ck_assert_msg(have != -999, "bad want %s", tok);
            ok = have == strtol(v, NULL, 10);
            snprintf(got, sizeof(got), "%ld", have);
        }
        ck_assert_msg(ok, "%s: %s is %s, expected %s", c->body, tok, got, v);
    }
}

START_TEST(test_parse_table) {
    const Case *c = &cases[_i];
    ServerConfig cfg = config(c->cap);
    GenRequest r;
    ApiError e;
    // The caller keeps a NUL after the body; the parser counts on it.
    int rc = api_parse(c->body, strlen(c->body), c->openai, &cfg, test_vocab(), &r, &e);
    if (c->param) {
        ck_assert_msg(rc == -1, "%s: accepted", c->body);
        ck_assert_int_eq(e.status, 400);
        ck_assert_msg(strcmp(e.param, c->param) == 0, "%s: param '%s', expected '%s' (%s)", c->body,
                      e.param, c->param, e.message);
        ck_assert_msg(e.message[0], "%s: no message", c->body);
        if (c->msg)
            ck_assert_msg(strstr(e.message, c->msg), "%s: message '%s' lacks '%s'", c->body,
                          e.message, c->msg);
        ck_assert_ptr_null(r.prompts[0]); // nothing left to free
    } else {
        ck_assert_msg(rc == 0, "%s: refused: %s (%s)", c->body, e.message, e.param);
        ck_assert_int_eq(r.openai, c->openai);
        ck_assert_uint_eq(r.prompt_lens[0], strlen(r.prompts[0]));
        for (int i = 0; i < r.gen.nstop; i++) ck_assert_ptr_eq(r.gen.stop[i], r.stop[i]);
        check_fields(c, &r);
        gen_request_free(&r);
    }
}
END_TEST

// Without a seed the server picks one, exact in JSON, different each time.
START_TEST(test_random_seed) {
    ServerConfig cfg = config(0);
    GenRequest a, b;
    ApiError e;
    const char *body = "{\"prompt\": \"a\"}";
    ck_assert_int_eq(api_parse(body, strlen(body), 0, &cfg, test_vocab(), &a, &e), 0);
    ck_assert_int_eq(api_parse(body, strlen(body), 1, &cfg, test_vocab(), &b, &e), 0);
    ck_assert_uint_lt(a.gen.seed, 1ull << 53);
    ck_assert_uint_lt(b.gen.seed, 1ull << 53);
    ck_assert_uint_ne(a.gen.seed, b.gen.seed);
    gen_request_free(&a);
    gen_request_free(&b);
}
END_TEST

static int parse_with(const char *body, int openai, const ServerConfig *cfg, GenRequest *r) {
    ApiError e;
    int rc = api_parse(body, strlen(body), openai, cfg, test_vocab(), r, &e);
    if (!rc) return 0;
    ck_assert_int_eq(e.status, 400);
    return -1;
}

// Accepts a body with one field set to v; 0 when accepted.
static int try_value(const char *name, double v, int openai, const ServerConfig *cfg) {
    char body[128];
    snprintf(body, sizeof(body), "{\"prompt\": \"a\", \"%s\": %.17g}", name, v);
    GenRequest r;
    int rc = parse_with(body, openai, cfg, &r);
    if (!rc) gen_request_free(&r);
    return rc;
}

// GET /model's defaults and limits say what api_parse does, for two --max-tokens.
START_TEST(test_card_matches_parser) {
    static const int caps[] = {2000, 50};
    ServerConfig cfg = config(caps[_i]);
    srv.cfg = cfg;
    char err[ERR_LEN];
    Model model = {.arch = &arch_lstm}; // an empty LSTM: the card needs an architecture
    Vocab vocab = {0};
    ModelInfo info = {0};
    char *text = card_build("m", "/nonexistent", &model, &vocab, &info, err);
    ck_assert_ptr_nonnull(text);
    cJSON *card = cJSON_Parse(text);
    ck_assert_ptr_nonnull(card);
    free(text);

    for (int openai = 0; openai <= 1; openai++) {
        const cJSON *defs =
            cJSON_GetObjectItemCaseSensitive(card, openai ? "openai_defaults" : "defaults");
        ck_assert_int_eq(cJSON_GetArraySize(defs), genparams_count + 1);
        GenRequest r;
        ck_assert_int_eq(parse_with("{\"prompt\": \"a\"}", openai, &cfg, &r), 0);
        for (int i = 0; i < genparams_count; i++) {
            const GenParam *gp = &genparams[i];
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(defs, gp->name);
            if (gp->type == GENPARAM_SEED) {
                ck_assert(cJSON_IsNull(d)); // random
                continue;
            }
            ck_assert_msg(cJSON_IsNumber(d), "%s", gp->name);
            ck_assert_msg((float)d->valuedouble == (float)param_value(&r.gen, gp),
                          "%s: card %g, parser %g", gp->name, d->valuedouble,
                          param_value(&r.gen, gp));
        }
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(defs, "stop");
        ck_assert(cJSON_IsArray(stop) && cJSON_GetArraySize(stop) == 0);
        gen_request_free(&r);
    }
    ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(card, "defaults"), "max_tokens")
                         ->valuedouble,
                     caps[_i] < 200 ? caps[_i] : 200);

    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(card, "limits");
    for (int i = 0; i < genparams_count; i++) {
        const GenParam *gp = &genparams[i];
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(limits, gp->name);
        ck_assert_msg(cJSON_IsObject(l), "no limits.%s", gp->name);
        const cJSON *min = cJSON_GetObjectItemCaseSensitive(l, "min");
        const cJSON *max = cJSON_GetObjectItemCaseSensitive(l, "max");
        int excl = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "min_exclusive"));
        ck_assert(cJSON_IsNumber(min));
        for (int openai = 0; openai <= 1; openai++) {
            double lo = min->valuedouble;
            ck_assert_msg(try_value(gp->name, lo, openai, &cfg) == (excl ? -1 : 0), "%s = %g",
                          gp->name, lo);
            ck_assert_msg(try_value(gp->name, lo - 1, openai, &cfg) == -1, "%s", gp->name);
            if (max) {
                double hi = max->valuedouble, above = hi + 1 > hi ? hi + 1 : nextafter(hi, 1e300);
                ck_assert_msg(try_value(gp->name, hi, openai, &cfg) == 0, "%s = %.17g", gp->name,
                              hi);
                ck_assert_msg(try_value(gp->name, above, openai, &cfg) == -1, "%s = %.17g",
                              gp->name, above);
            } else {
                ck_assert_msg(try_value(gp->name, 1e30, openai, &cfg) == 0, "%s", gp->name);
            }
        }
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(limits, "max_tokens");
    ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(mt, "max")->valuedouble, caps[_i]);

    // The limits that are not generation parameters.
#define LIMIT_MAX(name)                                                                            \
    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(limits, name), "max")        \
        ->valuedouble
    ck_assert_int_eq((int)LIMIT_MAX("prompt_chars"), cfg.max_prompt);
    ck_assert_int_eq((int)LIMIT_MAX("stop"), GEN_MAX_STOP);
    ck_assert_int_eq((int)LIMIT_MAX("stop_bytes"), GEN_MAX_STOP_BYTES);
    ck_assert_int_eq((long)LIMIT_MAX("body_bytes"), cfg.max_body);
    ck_assert_int_eq((int)LIMIT_MAX("n"), API_MAX_CHOICES);
    ck_assert_int_eq((int)LIMIT_MAX("logprobs"), GEN_MAX_TOP);
#undef LIMIT_MAX
    GenRequest r;
    ck_assert_int_eq(parse_with("{\"prompt\": \"0123456789\"}", 0, &cfg, &r), 0);
    gen_request_free(&r);
    ck_assert_int_eq(parse_with("{\"prompt\": \"0123456789a\"}", 0, &cfg, &r), -1);
    ck_assert_int_eq(parse_with(B("\"stop\": [\"1\", \"2\", \"3\", \"4\"]"), 0, &cfg, &r), 0);
    gen_request_free(&r);
    ck_assert_int_eq(parse_with(B("\"stop\": [\"1\", \"2\", \"3\", \"4\", \"5\"]"), 0, &cfg, &r),
                     -1);
    char body[256], stop[GEN_MAX_STOP_BYTES + 2];
    memset(stop, 'x', sizeof(stop) - 1);
    stop[GEN_MAX_STOP_BYTES] = '\0';
    snprintf(body, sizeof(body), B("\"stop\": \"%s\""), stop);
    ck_assert_int_eq(parse_with(body, 0, &cfg, &r), 0);
    gen_request_free(&r);
    stop[GEN_MAX_STOP_BYTES] = 'x';
    stop[GEN_MAX_STOP_BYTES + 1] = '\0';
    snprintf(body, sizeof(body), B("\"stop\": \"%s\""), stop);
    ck_assert_int_eq(parse_with(body, 0, &cfg, &r), -1);
    cJSON_Delete(card);
}
END_TEST

// Without a vocabulary every logit_bias key is refused, an empty object is not.
START_TEST(test_no_vocab) {
    ServerConfig cfg = config(0);
    GenRequest r;
    ApiError e;
    const char *body = B("\"logit_bias\": {\"0\": 1}");
    ck_assert_int_eq(api_parse(body, strlen(body), 1, &cfg, NULL, &r, &e), -1);
    ck_assert_str_eq(e.param, "logit_bias");
    body = B("\"logit_bias\": {}");
    ck_assert_int_eq(api_parse(body, strlen(body), 0, &cfg, NULL, &r, &e), 0);
    ck_assert_int_eq(r.gen.sampler.nbias, 0);
    gen_request_free(&r);
}
END_TEST

// /v1/chat/completions: the prompt the messages make, its default stop, and refusals.
typedef struct {
    const char *tpl; // template text; NULL: the built-in one
    const char *body;
    const char *prompt, *stop; // accepted: the prompt and stop[0] ("" for none)
    const char *param;         // refused with 400 naming this field
} ChatCase;

#define U(s) "{\"role\": \"user\", \"content\": \"" s "\"}"

static const ChatCase chat_cases[] = {
    {NULL, "{\"messages\": [" U("hi") "]}", "User: hi\nAssistant: ", "\nUser:", NULL},
    {NULL,
     "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, " U(
         "a") ", "
              "{\"role\": \"assistant\", \"content\": [{\"type\": \"text\", \"text\": \"b\"}, "
              "{\"type\": "
              "\"text\", \"text\": \"c\"}]}, " U("d") "], \"stop\": [\"x\"]}",
     "S\nUser: a\nAssistant: bc\nUser: d\nAssistant: ", "x", NULL},
    {"<{assistant}>\n{system}\n> {user}", "{\"messages\": [" U("q") "]}", "> q\n<", "\n>", NULL},
    {"{user}\n{system}\n{assistant}", "{\"messages\": [" U("q") "]}", "q\n", "", NULL},
    {NULL, "{\"messages\": [" U("hi") "], \"max_completion_tokens\": 0}",
     .param = "max_completion_tokens"},
    {NULL, "{\"messages\": [" U("hi") "], \"prompt\": \"x\"}", .param = "prompt"},
    {NULL, "{\"messages\": [" U("hi") "], \"suffix\": \"\"}", .param = "suffix"},
    {NULL, "{\"messages\": [" U("hi") "], \"logprobs\": 0}", .param = "logprobs"},
    {NULL, "{\"messages\": [" U("hi") "], \"top_logprobs\": 21, \"logprobs\": true}",
     .param = "top_logprobs"},
    {NULL, "{\"messages\": [" U("hi") "], \"top_logprobs\": 2}", .param = "top_logprobs"},
    {NULL, "{\"messages\": [" U("hi") "], \"echo\": true}", .param = "echo"},
    {NULL, "{\"messages\": [" U("hi") "], \"tools\": [], \"store\": true}", .param = "tools"},
    {NULL, "{\"messages\": [" U("01234567890123456789012345678901234567890123456789") "]}",
     .param = "messages"},
    {NULL, "{\"messages\": [{\"content\": \"x\"}]}", .param = "messages"},
    {NULL, "{\"messages\": [{\"role\": \"developer\", \"content\": \"x\"}]}", .param = "messages"},
    {NULL, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]}",
     .param = "messages"},
    {NULL, "{\"stream\": true}", .param = "messages"},
};

START_TEST(test_chat_table) {
    const ChatCase *c = &chat_cases[_i];
    ServerConfig cfg = config(0);
    cfg.max_prompt = 50;
    ChatTemplate t;
    char err[ERR_LEN];
    if (c->tpl) {
        ck_assert_msg(chat_template_parse(c->tpl, strlen(c->tpl), &t, err) == 0, "%s", err);
        cfg.chat_template = &t;
    }
    GenRequest r;
    ApiError e;
    int rc = api_parse(c->body, strlen(c->body), API_CHAT, &cfg, test_vocab(), &r, &e);
    if (c->param) {
        ck_assert_msg(rc == -1, "%s: accepted", c->body);
        ck_assert_msg(strcmp(e.param, c->param) == 0, "%s: param '%s' (%s)", c->body, e.param,
                      e.message);
    } else {
        ck_assert_msg(rc == 0, "%s: %s", c->body, e.message);
        ck_assert(r.openai && r.chat);
        ck_assert_str_eq(r.prompts[0], c->prompt);
        ck_assert_uint_eq(r.prompt_lens[0], strlen(c->prompt));
        ck_assert_str_eq(r.gen.nstop ? r.gen.stop[0] : "", c->stop);
        ck_assert_int_eq(r.gen.max_tokens, 16);
        gen_request_free(&r);
    }
    if (c->tpl) chat_template_free(&t);
}
END_TEST

// What model selection reads from a body (api_model_field): the last `model`, as api_parse
// keeps the last value of any field; nothing from a body that is not UTF-8; a long name
// cut between characters.
static const struct {
    const char *body;
    int named;
    const char *id;
} model_cases[] = {
    {"{\"model\": \"a\", \"prompt\": \"x\"}", 1, "a"},
    {"{\"model\": \"a\", \"prompt\": \"x\", \"model\": \"b\"}", 1, "b"},
    {"{\"model\": \"a\", \"model\": 3}", 0, ""},
    {"{\"model\": 3, \"model\": \"b\"}", 1, "b"},
    {"{\"prompt\": \"x\"}", 0, ""},
    {"{\"model\": \"\xff\"}", 0, ""},
    {"{\"model\": \"a\", \"prompt\": \"\xC3\"}", 0, ""},
    {"[\"model\", \"a\"]", 0, ""},
    {"{\"model\": \"abcdefg\xE2\x82\xAC\"}", 1, "abcdefg"}, // cut at 9 bytes: not inside the €
    {"{\"model\": \"abcde\xE2\x82\xAC\"}", 1, "abcde\xE2\x82\xAC"},
};

START_TEST(test_model_field) {
    char id[9] = "";
    const char *body = model_cases[_i].body;
    ck_assert_int_eq(api_model_field(body, strlen(body), id, sizeof(id)), model_cases[_i].named);
    if (model_cases[_i].named) ck_assert_str_eq(id, model_cases[_i].id);
}
END_TEST

// Running out of memory while parsing is the server's trouble, not the request's: 503
// (the handler adds Retry-After), never 400. An address-space limit just above what the
// process holds makes a large prompt's allocations fail: with half the prompt's size to
// spare, cJSON's copy of the string; with one and a half, the parser's own copy after
// it (of the prompt, or of the prompt the messages make). With the limit lifted the same
// body parses.
static const struct {
    int kind;
    double room; // address space to spare, in prompt sizes
} oom_cases[] = {
    {API_COMPLETIONS, 0.5}, {API_COMPLETIONS, 1.5}, {API_NATIVE, 1.5},
    {API_CHAT, 0.5},        {API_CHAT, 1.5},
};

START_TEST(test_out_of_memory) {
    enum { P = 8 << 20 };
    int chat = oom_cases[_i].kind == API_CHAT;
    char *body = malloc(P + 128);
    ck_assert_ptr_nonnull(body);
    int n = sprintf(body, chat ? "{\"messages\": [{\"role\": \"user\", \"content\": \""
                               : "{\"prompt\": \"");
    memset(body + n, 'a', P);
    n += P;
    n += sprintf(body + n, chat ? "\"}]}" : "\"}");
    ServerConfig cfg = config(0);
    cfg.max_prompt = 2 * P;
    GenRequest r;
    ApiError e;
    tu_limit_memory((size_t)(oom_cases[_i].room * P));
    int rc = api_parse(body, (size_t)n, oom_cases[_i].kind, &cfg, test_vocab(), &r, &e);
    tu_unlimit_memory();
    ck_assert_msg(rc == -1, "parsed within the limit");
    ck_assert_int_eq(e.status, 503);
    ck_assert_str_eq(e.message, "out of memory");
    ck_assert_str_eq(e.param, "");
    ck_assert_ptr_null(r.prompts[0]);

    ck_assert_int_eq(api_parse(body, (size_t)n, oom_cases[_i].kind, &cfg, test_vocab(), &r, &e), 0);
    ck_assert_uint_ge(r.prompt_lens[0], P);
    gen_request_free(&r);
    free(body);
}
END_TEST

int main(void) {
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_parse_table, 0, (int)(sizeof(cases) / sizeof(*cases)));
    tcase_add_test(tc, test_random_seed);
    tcase_add_test(tc, test_no_vocab);
    tcase_add_loop_test(tc, test_out_of_memory, 0, (int)(sizeof(oom_cases) / sizeof(*oom_cases)));
    tcase_add_loop_test(tc, test_card_matches_parser, 0, 2);
    tcase_add_loop_test(tc, test_chat_table, 0, (int)(sizeof(chat_cases) / sizeof(*chat_cases)));
    tcase_add_loop_test(tc, test_model_field, 0, (int)(sizeof(model_cases) / sizeof(*model_cases)));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
