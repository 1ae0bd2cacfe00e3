#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "utf8.h"

// Bytes of a long string (a choice's text, unknown_chars) encoded per unit: at most six
// times that once escaped.
#define SEGMENT 4096

enum {
    STEP_HEAD,
    STEP_CHOICE,     // a choice's start, up to its text
    STEP_STRING,     // the next piece of a long string, then step `after`
    STEP_AFTER_TEXT, // what follows the text, up to the first log probability entry
    STEP_ENTRY,      // the next entry (of column col, for completions)
    STEP_CHOICE_END, // the choice's last members
    STEP_TAIL,       // after the choices, up to unknown_chars (/generate) or the end
    STEP_AFTER_UNKNOWN,
    STEP_END
};

const char *reply_char(const Vocab *v, int id, char buf[5]) {
    buf[utf8_encode(v->chars[id], buf)] = '\0';
    return buf;
}

void reply_init(Reply *r, const ReplySpec *spec) {
    memset(r, 0, sizeof(*r));
    r->spec = *spec;
    if (r->spec.nchoices > API_MAX_CHOICES) r->spec.nchoices = API_MAX_CHOICES;
    memcpy(r->choice, spec->choices, (size_t)r->spec.nchoices * sizeof(*r->choice));
    r->spec.choices = r->choice;
}

void reply_free(Reply *r) {
    free(r->buf);
    r->buf = NULL;
    r->len = r->pos = r->cap = 0;
}

size_t reply_buffer_bytes(const Reply *r) {
    return r->cap;
}

int reply_complete(const Reply *r) {
    return r->step == STEP_END;
}

// Room for n more bytes and a NUL; what was read is dropped first.
static char *room(Reply *r, size_t n) {
    if (r->failed) return NULL;
    if (r->pos) {
        memmove(r->buf, r->buf + r->pos, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1) cap *= 2;
        char *b = realloc(r->buf, cap);
        if (!b) {
            r->failed = 1;
            return NULL;
        }
        r->buf = b;
        r->cap = cap;
    }
    return r->buf + r->len;
}

static void put(Reply *r, const char *s) {
    size_t n = strlen(s);
    char *p = room(r, n);
    if (!p) return;
    memcpy(p, s, n + 1);
    r->len += n;
}

// One leaf as cJSON prints it, into room for `need` bytes.
static void put_leaf(Reply *r, cJSON *leaf, size_t need) {
    char *p = room(r, need);
    if (!p) return;
    if (!cJSON_PrintPreallocated(leaf, p, (int)need, 0)) {
        r->failed = 1;
        return;
    }
    r->len += strlen(p);
}

static void put_number(Reply *r, double d) {
    cJSON n = {.type = cJSON_Number};
    cJSON_SetNumberHelper(&n, d); // valueint too, which cJSON's printer reads
    put_leaf(r, &n, 64);
}

// A short string: a char, a key, an id.
static void put_string(Reply *r, const char *s) {
    cJSON v = {.type = cJSON_String, .valuestring = (char *)s};
    put_leaf(r, &v, 6 * strlen(s) + 8); // each byte escapes to at most 6
}

static void put_logprob(Reply *r, float lp) {
    if (isnan(lp))
        put(r, "null");
    else
        put_number(r, lp);
}

static void put_seed(Reply *r, uint64_t seed) {
    // Raw digits: cJSON's numbers near 2^53 have only 15 significant digits.
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)seed);
    put(r, buf);
}

// Starts the string a then b (cut at its first NUL, as cJSON reads a C string), written
// SEGMENT bytes a unit; step `after` follows.
static void string_begin(Reply *r, const char *a, size_t alen, const char *b, size_t blen,
                         int after) {
    r->str[0] = a;
    r->str_len[0] = alen;
    r->str[1] = b;
    r->str_len[1] = blen;
    r->str_part = 0;
    r->str_off = 0;
    r->after = after;
    r->step = STEP_STRING;
    put(r, "\"");
}

static void string_unit(Reply *r) {
    char seg[SEGMENT + 1];
    size_t n = 0;
    int end = 0;
    while (n < SEGMENT && r->str_part < 2 && !end) {
        size_t left = r->str_len[r->str_part] - r->str_off;
        if (!left) {
            r->str_part++;
            r->str_off = 0;
            continue;
        }
        size_t k = left < SEGMENT - n ? left : SEGMENT - n;
        const char *src = r->str[r->str_part] + r->str_off;
        const char *nul = memchr(src, '\0', k);
        if (nul) {
            k = (size_t)(nul - src);
            end = 1;
        }
        memcpy(seg + n, src, k);
        n += k;
        r->str_off += k;
    }
    seg[n] = '\0';
    // cJSON's escaping is byte by byte, so pieces escape as the whole does: print the
    // piece as a string and drop its quotes.
    size_t at = r->len - r->pos;
    put_string(r, seg);
    if (r->failed) return;
    char *q = r->buf + at;
    size_t w = r->len - at;
    memmove(q, q + 1, w - 2);
    r->len -= 2;
    r->buf[r->len] = '\0';
    if (end || r->str_part == 2) {
        put(r, "\"");
        r->step = r->after;
    }
}

// ---- log probability entries, in the three shapes

static int alternatives(const Generation *g) {
    return g->params.top_logprobs;
}

// /generate: {"char", "logprob", "top": [{"char", "logprob"}]}.
static void native_entry(Reply *r, const Generation *g, int i) {
    const TokenLogprob *e = &g->lp[i];
    int K = alternatives(g);
    char buf[5];
    put(r, "{\"char\":");
    put_string(r, reply_char(g->vocab, e->id, buf));
    put(r, ",\"logprob\":");
    put_logprob(r, e->logprob);
    put(r, ",\"top\":[");
    for (int k = 0; k < K && !isnan(e->logprob); k++) {
        put(r, k ? ",{\"char\":" : "{\"char\":");
        put_string(r, reply_char(g->vocab, g->top_id[(size_t)i * K + k], buf));
        put(r, ",\"logprob\":");
        put_number(r, g->top_lp[(size_t)i * K + k]);
        put(r, "}");
    }
    put(r, "]}");
}

// Chat's token object without its closing brace: {"token", "logprob", "bytes".
static void chat_token(Reply *r, const Vocab *v, int id, float lp) {
    char buf[5];
    put(r, "{\"token\":");
    put_string(r, reply_char(v, id, buf));
    put(r, ",\"logprob\":");
    put_logprob(r, lp);
    put(r, ",\"bytes\":[");
    for (const unsigned char *b = (const unsigned char *)buf; *b; b++) {
        if (b != (const unsigned char *)buf) put(r, ",");
        put_number(r, *b);
    }
    put(r, "]");
}

static void chat_entry(Reply *r, const Generation *g, int i) {
    const TokenLogprob *e = &g->lp[i];
    int K = alternatives(g);
    chat_token(r, g->vocab, e->id, e->logprob);
    put(r, ",\"top_logprobs\":[");
    for (int k = 0; k < K; k++) {
        if (k) put(r, ",");
        chat_token(r, g->vocab, g->top_id[(size_t)i * K + k], g->top_lp[(size_t)i * K + k]);
        put(r, "}");
    }
    put(r, "]}");
}

/* Code points before byte `offset` of the prompt or of the text: counted on from the
 * last entry's, since an entry's offset only grows within each of the two. */
static size_t code_points(Reply *r, const char *s, int prompt, size_t offset) {
    if (prompt != r->cp_prompt || offset < r->cp_bytes) {
        r->cp_prompt = prompt;
        r->cp_bytes = r->cp_count = 0;
    }
    r->cp_count += utf8_count(s + r->cp_bytes, offset - r->cp_bytes);
    r->cp_bytes = offset;
    return r->cp_count;
}

// /v1/completions: entry i of column col (tokens, token_logprobs, top_logprobs, text_offset).
static void completion_entry(Reply *r, const ReplyChoice *c, int col, int i) {
    const Generation *g = c->gen;
    const TokenLogprob *e = &g->lp[i];
    int K = alternatives(g);
    char buf[5];
    if (col == 0) {
        put_string(r, reply_char(g->vocab, e->id, buf));
    } else if (col == 1) {
        put_logprob(r, e->logprob);
    } else if (col == 2) {
        if (isnan(e->logprob)) {
            put(r, "null");
            return;
        }
        // The k most likely, and the chosen one when it is not among them.
        const int *ti = g->top_id + (size_t)i * K;
        const float *tl = g->top_lp + (size_t)i * K;
        int chosen_listed = 0;
        put(r, "{");
        for (int k = 0; k < K; k++) {
            if (k) put(r, ",");
            put_string(r, reply_char(g->vocab, ti[k], buf));
            put(r, ":");
            put_number(r, tl[k]);
            chosen_listed |= ti[k] == e->id;
        }
        if (!chosen_listed) {
            if (K) put(r, ",");
            put_string(r, reply_char(g->vocab, e->id, buf));
            put(r, ":");
            put_number(r, e->logprob);
        }
        put(r, "}");
    } else {
        size_t off = e->prompt ? code_points(r, r->spec.req->prompts[c->prompt], 1, e->offset)
                               : r->prompt_cp + code_points(r, g->text, 0, e->offset);
        put_number(r, (double)off);
    }
}

// ---- the units

static int native_multi(const Reply *r) {
    return !r->spec.req->openai && r->spec.nchoices > 1;
}

static void head(Reply *r) {
    const ReplySpec *s = &r->spec;
    if (!s->req->openai) {
        put(r, native_multi(r) ? "{\"choices\":[" : "{");
        return;
    }
    put(r, "{\"id\":");
    put_string(r, s->id);
    put(r, s->req->chat ? ",\"object\":\"chat.completion\",\"created\":"
                        : ",\"object\":\"text_completion\",\"created\":");
    put_number(r, (double)s->created);
    put(r, ",\"model\":");
    put_string(r, s->model);
    put(r, ",\"choices\":[");
}

static void choice_start(Reply *r) {
    const GenRequest *q = r->spec.req;
    const ReplyChoice *c = &r->choice[r->c];
    if (r->c) put(r, ",");
    if (q->openai || native_multi(r)) {
        put(r, "{\"index\":");
        put_number(r, c->index);
    }
    if (q->chat)
        put(r, ",\"message\":{\"role\":\"assistant\",\"content\":");
    else
        put(r, q->openai || native_multi(r) ? ",\"text\":" : "\"text\":");
    const char *prompt = q->prompts[c->prompt];
    size_t pl = q->echo ? q->prompt_lens[c->prompt] : 0;
    r->prompt_cp = q->echo ? utf8_count(prompt, pl) : 0;
    string_begin(r, prompt, pl, c->gen->text, c->gen->len, STEP_AFTER_TEXT);
}

static void after_text(Reply *r) {
    const GenRequest *q = r->spec.req;
    const ReplyChoice *c = &r->choice[r->c];
    if (native_multi(r)) {
        put(r, ",\"finish_reason\":");
        put_string(r, finish_reason_name(c->gen->finish));
        put(r, ",\"tokens\":");
        put_number(r, c->gen->tokens);
        put(r, ",\"seed\":");
        put_seed(r, c->seed);
    }
    if (q->chat) put(r, "}");
    r->step = STEP_CHOICE_END;
    if (!q->gen.logprobs) {
        if (q->openai) put(r, ",\"logprobs\":null");
        return;
    }
    put(r, q->chat     ? ",\"logprobs\":{\"content\":["
           : q->openai ? ",\"logprobs\":{\"tokens\":["
                       : ",\"logprobs\":[");
    r->step = STEP_ENTRY;
    r->col = r->i = 0;
    r->cp_prompt = -1;
}

static void entry(Reply *r) {
    const GenRequest *q = r->spec.req;
    const ReplyChoice *c = &r->choice[r->c];
    if (r->i < c->gen->n_lp) {
        if (r->i) put(r, ",");
        if (q->chat)
            chat_entry(r, c->gen, r->i);
        else if (q->openai)
            completion_entry(r, c, r->col, r->i);
        else
            native_entry(r, c->gen, r->i);
        r->i++;
        return;
    }
    if (!q->openai) {
        put(r, "]");
    } else if (q->chat) {
        put(r, "],\"refusal\":null}");
    } else {
        static const char *const next[] = {"],\"token_logprobs\":[", "],\"top_logprobs\":[",
                                           "],\"text_offset\":[", "]}"};
        put(r, next[r->col]);
        if (++r->col < 4) {
            r->i = 0;
            return;
        }
    }
    r->step = STEP_CHOICE_END;
}

static void choice_end(Reply *r) {
    const GenRequest *q = r->spec.req;
    if (q->openai) {
        put(r, ",\"finish_reason\":");
        put_string(r, finish_reason_name(r->choice[r->c].gen->finish));
        put(r, "}");
    } else if (native_multi(r)) {
        put(r, "}");
    }
    r->step = ++r->c < r->spec.nchoices ? STEP_CHOICE : STEP_TAIL;
}

static void tail(Reply *r) {
    const ReplySpec *s = &r->spec;
    const GenRequest *q = s->req;
    if (q->openai) {
        int prompt = 0, completion = 0;
        for (int i = 0; i < s->nchoices; i++) {
            const ReplyChoice *c = &s->choices[i];
            if (c->index % q->n == 0) prompt += c->gen->prompt_tokens; // once per prompt
            completion += c->gen->tokens;
        }
        put(r, "],\"usage\":{\"prompt_tokens\":");
        put_number(r, prompt);
        put(r, ",\"completion_tokens\":");
        put_number(r, completion);
        put(r, ",\"total_tokens\":");
        put_number(r, prompt + completion);
        put(r, "},\"seed\":");
        put_seed(r, q->gen.seed);
        put(r, "}");
        r->step = STEP_END;
        return;
    }
    const Generation *g0 = s->choices[0].gen;
    put(r, native_multi(r) ? "],\"model\":" : ",\"model\":");
    put_string(r, s->model);
    if (s->nchoices == 1) {
        put(r, ",\"finish_reason\":");
        put_string(r, finish_reason_name(g0->finish));
        put(r, ",\"tokens\":");
        put_number(r, g0->tokens);
    }
    put(r, ",\"prompt_tokens\":");
    put_number(r, g0->prompt_tokens);
    put(r, ",\"seed\":");
    put_seed(r, q->gen.seed);
    put(r, ",\"unknown_chars\":");
    string_begin(r, g0->unknown_chars, strlen(g0->unknown_chars), NULL, 0, STEP_AFTER_UNKNOWN);
}

static void unit(Reply *r) {
    switch (r->step) {
    case STEP_HEAD:
        head(r);
        r->c = 0;
        r->step = r->spec.nchoices ? STEP_CHOICE : STEP_TAIL;
        break;
    case STEP_CHOICE:
        choice_start(r);
        break;
    case STEP_STRING:
        string_unit(r);
        break;
    case STEP_AFTER_TEXT:
        after_text(r);
        break;
    case STEP_ENTRY:
        entry(r);
        break;
    case STEP_CHOICE_END:
        choice_end(r);
        break;
    case STEP_TAIL:
        tail(r);
        break;
    case STEP_AFTER_UNKNOWN:
        put(r, ",\"elapsed_ms\":");
        put_number(r, r->spec.elapsed_ms);
        put(r, "}");
        r->step = STEP_END;
        break;
    default:
        break;
    }
}

int reply_fill(Reply *r, size_t want) {
    while (!r->failed && r->step != STEP_END && r->len - r->pos < want) unit(r);
    return r->failed ? -1 : 0;
}

long reply_read(Reply *r, char *out, size_t max) {
    if (reply_fill(r, max)) return -1;
    size_t n = r->len - r->pos;
    if (n > max) n = max;
    memcpy(out, r->buf + r->pos, n);
    r->pos += n;
    return (long)n;
}

char *reply_take(Reply *r, size_t *len) {
    if (r->failed || !room(r, 0)) return NULL;
    char *b = r->buf;
    *len = r->len;
    r->buf = NULL;
    r->len = r->pos = r->cap = 0;
    return b;
}
