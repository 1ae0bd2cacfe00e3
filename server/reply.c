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

void reply_init(Reply *r, const ReplySpec *spec) {
    memset(r, 0, sizeof(*r));
    r->spec = *spec;
    if (r->spec.nchoices > API_MAX_CHOICES) r->spec.nchoices = API_MAX_CHOICES;
    memcpy(r->choice, spec->choices, (size_t)r->spec.nchoices * sizeof(*r->choice));
    r->spec.choices = r->choice;
}

void reply_free(Reply *r) {
    buf_free(&r->out);
    r->pos = 0;
}

size_t reply_buffer_bytes(const Reply *r) {
    return r->out.cap;
}

int reply_complete(const Reply *r) {
    return r->step == STEP_END;
}

// Room for n more bytes and a NUL; what was read is dropped first.
static char *room(Reply *r, size_t n) {
    if (r->out.failed) return NULL;
    buf_drop(&r->out, r->pos);
    r->pos = 0;
    return buf_room(&r->out, n);
}

static void put(Reply *r, const char *s) {
    size_t n = strlen(s);
    char *p = room(r, n);
    if (!p) return;
    memcpy(p, s, n + 1);
    r->out.len += n;
}

// One leaf as cJSON prints it, into room for `need` bytes.
static void put_leaf(Reply *r, cJSON *leaf, size_t need) {
    char *p = room(r, need);
    if (!p) return;
    if (!cJSON_PrintPreallocated(leaf, p, (int)need, 0)) {
        r->out.failed = 1;
        return;
    }
    r->out.len += strlen(p);
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

// Starts the string a then b (cut at its first NUL, as cJSON reads a C string).
static void string_start(Reply *r, const char *a, size_t alen, const char *b, size_t blen) {
    r->str[0] = a;
    r->str_len[0] = alen;
    r->str[1] = b;
    r->str_len[1] = blen;
    r->str_part = 0;
    r->str_off = 0;
    put(r, "\"");
}

// Writes the string's next SEGMENT bytes; 1 once it is written whole (or lost).
static int string_piece(Reply *r) {
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
    size_t at = r->out.len - r->pos;
    put_string(r, seg);
    if (r->out.failed) return 1;
    char *q = r->out.s + at;
    size_t w = r->out.len - at;
    memmove(q, q + 1, w - 2);
    r->out.len -= 2;
    r->out.s[r->out.len] = '\0';
    if (!end && r->str_part < 2) return 0;
    put(r, "\"");
    return 1;
}

// The string written SEGMENT bytes a unit; step `after` follows.
static void string_begin(Reply *r, const char *a, size_t alen, const char *b, size_t blen,
                         int after) {
    string_start(r, a, alen, b, blen);
    r->after = after;
    r->step = STEP_STRING;
}

static void string_unit(Reply *r) {
    if (string_piece(r)) r->step = r->after;
}

// The string written whole (into an event, whose caller bounds it).
static void put_text(Reply *r, const char *a, size_t alen, const char *b, size_t blen) {
    string_start(r, a, alen, b, blen);
    while (!string_piece(r)) {
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
    put_string(r, vocab_char(g->vocab, e->id, buf));
    put(r, ",\"logprob\":");
    put_logprob(r, e->logprob);
    put(r, ",\"top\":[");
    for (int k = 0; k < K && !isnan(e->logprob); k++) {
        put(r, k ? ",{\"char\":" : "{\"char\":");
        put_string(r, vocab_char(g->vocab, g->top_id[(size_t)i * K + k], buf));
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
    put_string(r, vocab_char(v, id, buf));
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
        put_string(r, vocab_char(g->vocab, e->id, buf));
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
            put_string(r, vocab_char(g->vocab, ti[k], buf));
            put(r, ":");
            put_number(r, tl[k]);
            chosen_listed |= ti[k] == e->id;
        }
        if (!chosen_listed) {
            if (K) put(r, ",");
            put_string(r, vocab_char(g->vocab, e->id, buf));
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

// Entry i of a choice (of column col, for completions).
static void entry_put(Reply *r, const ReplyChoice *c, int col, int i) {
    const GenRequest *q = r->spec.req;
    if (q->chat)
        chat_entry(r, c->gen, i);
    else if (q->openai)
        completion_entry(r, c, col, i);
    else
        native_entry(r, c->gen, i);
}

// The logprobs member up to its first entry.
static void logprobs_open(Reply *r) {
    const GenRequest *q = r->spec.req;
    put(r, q->chat     ? ",\"logprobs\":{\"content\":["
           : q->openai ? ",\"logprobs\":{\"tokens\":["
                       : ",\"logprobs\":[");
    r->cp_prompt = -1;
}

// What follows column col's last entry; 1 when that ends the member.
static int logprobs_close(Reply *r, int col) {
    const GenRequest *q = r->spec.req;
    static const char *const next[] = {"],\"token_logprobs\":[", "],\"top_logprobs\":[",
                                       "],\"text_offset\":[", "]}"};
    if (!q->openai)
        put(r, "]");
    else if (q->chat)
        put(r, "],\"refusal\":null}");
    else
        put(r, next[col]);
    return !q->openai || q->chat || col == 3;
}

// The logprobs member with entries [from, to) of choice c, written whole.
static void logprobs_put(Reply *r, const ReplyChoice *c, int from, int to) {
    const GenRequest *q = r->spec.req;
    if (!q->gen.logprobs) {
        if (q->openai) put(r, ",\"logprobs\":null");
        return;
    }
    logprobs_open(r);
    for (int col = 0;; col++) {
        for (int i = from; i < to; i++) {
            if (i > from) put(r, ",");
            entry_put(r, c, col, i);
        }
        if (logprobs_close(r, col)) return;
    }
}

// ---- the members the reply and the stream's events share

static int native_multi(const Reply *r) {
    return !r->spec.req->openai && r->spec.nchoices > 1;
}

// An OpenAI object up to its first choice: a stream's (chunk) or the reply's.
static void openai_head(Reply *r, int chunk) {
    const ReplySpec *s = &r->spec;
    put(r, "{\"id\":");
    put_string(r, s->id);
    put(r, ",\"object\":");
    put_string(r, !s->req->chat ? "text_completion"
                  : chunk       ? "chat.completion.chunk"
                                : "chat.completion");
    put(r, ",\"created\":");
    put_number(r, (double)s->created);
    put(r, ",\"model\":");
    put_string(r, s->model);
    put(r, ",\"choices\":[");
}

// A choice's start, before its text: {"index".
static void choice_open(Reply *r, const ReplyChoice *c) {
    put(r, "{\"index\":");
    put_number(r, c->index);
}

// An OpenAI choice's end: its finish_reason (null while it goes on, c NULL).
static void choice_finish(Reply *r, const ReplyChoice *c) {
    put(r, ",\"finish_reason\":");
    if (c)
        put_string(r, finish_reason_name(c->gen->finish));
    else
        put(r, "null");
    put(r, "}");
}

// A /generate choice's counts, when there are several.
static void native_counts(Reply *r, const ReplyChoice *c) {
    put(r, ",\"finish_reason\":");
    put_string(r, finish_reason_name(c->gen->finish));
    put(r, ",\"tokens\":");
    put_number(r, c->gen->tokens);
    put(r, ",\"seed\":");
    put_seed(r, c->seed);
}

static void usage(Reply *r) {
    const ReplySpec *s = &r->spec;
    int prompt = 0, completion = 0;
    for (int i = 0; i < s->nchoices; i++) {
        const ReplyChoice *c = &s->choices[i];
        if (c->index % s->req->n == 0) prompt += c->gen->prompt_tokens; // once per prompt
        completion += c->gen->tokens;
    }
    put(r, "\"usage\":{\"prompt_tokens\":");
    put_number(r, prompt);
    put(r, ",\"completion_tokens\":");
    put_number(r, completion);
    put(r, ",\"total_tokens\":");
    put_number(r, prompt + completion);
    put(r, "}");
}

// /generate's summary of the request, up to its unknown_chars' value.
static void native_summary(Reply *r) {
    const ReplySpec *s = &r->spec;
    const Generation *g0 = s->choices[0].gen;
    put(r, "\"model\":");
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
    put_seed(r, s->req->gen.seed);
    put(r, ",\"unknown_chars\":");
}

static void native_elapsed(Reply *r, double ms) {
    put(r, ",\"elapsed_ms\":");
    put_number(r, ms);
}

// ---- the reply's units

static void head(Reply *r) {
    if (r->spec.req->openai)
        openai_head(r, 0);
    else
        put(r, native_multi(r) ? "{\"choices\":[" : "{");
}

static void choice_start(Reply *r) {
    const GenRequest *q = r->spec.req;
    const ReplyChoice *c = &r->choice[r->c];
    if (r->c) put(r, ",");
    if (q->openai || native_multi(r)) choice_open(r, c);
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
    if (native_multi(r)) native_counts(r, &r->choice[r->c]);
    if (q->chat) put(r, "}");
    r->step = STEP_CHOICE_END;
    if (!q->gen.logprobs) {
        logprobs_put(r, &r->choice[r->c], 0, 0); // its null
        return;
    }
    logprobs_open(r);
    r->step = STEP_ENTRY;
    r->col = r->i = 0;
}

static void entry(Reply *r) {
    const ReplyChoice *c = &r->choice[r->c];
    if (r->i < c->gen->n_lp) {
        if (r->i) put(r, ",");
        entry_put(r, c, r->col, r->i);
        r->i++;
        return;
    }
    if (logprobs_close(r, r->col)) {
        r->step = STEP_CHOICE_END;
        return;
    }
    r->col++;
    r->i = 0;
}

static void choice_end(Reply *r) {
    const GenRequest *q = r->spec.req;
    if (q->openai)
        choice_finish(r, &r->choice[r->c]);
    else if (native_multi(r))
        put(r, "}");
    r->step = ++r->c < r->spec.nchoices ? STEP_CHOICE : STEP_TAIL;
}

static void tail(Reply *r) {
    const ReplySpec *s = &r->spec;
    if (s->req->openai) {
        put(r, "],");
        usage(r);
        put(r, ",\"seed\":");
        put_seed(r, s->req->gen.seed);
        put(r, "}");
        r->step = STEP_END;
        return;
    }
    const Generation *g0 = s->choices[0].gen;
    put(r, native_multi(r) ? "]," : ",");
    native_summary(r);
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
        native_elapsed(r, r->spec.elapsed_ms);
        put(r, "}");
        r->step = STEP_END;
        break;
    default:
        break;
    }
}

int reply_fill(Reply *r, size_t want) {
    while (!r->out.failed && r->step != STEP_END && r->out.len - r->pos < want) unit(r);
    return r->out.failed ? -1 : 0;
}

long reply_read(Reply *r, char *out, size_t max) {
    if (reply_fill(r, max)) return -1;
    size_t n = r->out.len - r->pos;
    if (n > max) n = max;
    if (n) memcpy(out, r->out.s + r->pos, n); // a stream's buffer may not be there yet
    r->pos += n;
    return (long)n;
}

char *reply_take(Reply *r, size_t *len) {
    if (r->out.failed || !room(r, 0)) return NULL;
    char *b = r->out.s;
    *len = r->out.len;
    r->out = (Buf){0};
    r->pos = 0;
    return b;
}

// ---- a stream's events

void reply_init_events(Reply *r, const ReplySpec *spec) {
    reply_init(r, spec);
    r->step = STEP_END; // no reply of its own
}

size_t reply_pending(const Reply *r) {
    return r->out.len - r->pos;
}

static int event_end(Reply *r) {
    put(r, "\n\n");
    return r->out.failed ? -1 : 0;
}

int reply_event_role(Reply *r, int c) {
    put(r, "data: ");
    openai_head(r, 1);
    choice_open(r, &r->choice[c]);
    put(r, ",\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null");
    choice_finish(r, NULL);
    put(r, "]}");
    return event_end(r);
}

int reply_event_delta(Reply *r, int c, int echo, size_t from, size_t to, int lp_from, int lp_to) {
    const GenRequest *q = r->spec.req;
    const ReplyChoice *ch = &r->choice[c];
    const char *prompt = q->prompts[ch->prompt];
    put(r, "data: ");
    if (q->openai) {
        openai_head(r, 1);
        choice_open(r, ch);
        put(r, q->chat ? ",\"delta\":{\"content\":" : ",\"text\":");
    } else if (native_multi(r)) {
        put(r, "{\"index\":");
        put_number(r, ch->index);
        put(r, ",\"text\":");
    } else {
        put(r, "{\"text\":");
    }
    put_text(r, prompt, echo ? q->prompt_lens[ch->prompt] : 0, ch->gen->text + from, to - from);
    if (q->chat) put(r, "}");
    if (q->openai && !q->chat && q->gen.logprobs)
        r->prompt_cp = q->echo ? utf8_count(prompt, q->prompt_lens[ch->prompt]) : 0;
    logprobs_put(r, ch, lp_from, lp_to);
    if (q->openai) {
        choice_finish(r, NULL);
        put(r, "]}");
    } else {
        put(r, "}");
    }
    return event_end(r);
}

int reply_event_final(Reply *r, int c) {
    const ReplyChoice *ch = &r->choice[c];
    put(r, "data: ");
    openai_head(r, 1);
    choice_open(r, ch);
    put(r,
        r->spec.req->chat ? ",\"delta\":{},\"logprobs\":null" : ",\"text\":\"\",\"logprobs\":null");
    choice_finish(r, ch);
    put(r, "],\"seed\":");
    put_seed(r, ch->seed);
    put(r, "}");
    return event_end(r);
}

int reply_event_next(Reply *r, int c, int released) {
    const GenRequest *q = r->spec.req;
    const ReplyChoice *ch = &r->choice[c];
    ReplyEventCursor *cur = &r->ev[c];
    const Generation *g = ch->gen;
    if (cur->complete) return 0;
    int echo = q->echo && !cur->echo_sent && (g->prompt_pos >= g->n_prompt || g->done);
    size_t pl = echo ? q->prompt_lens[ch->prompt] : 0;
    size_t fresh = g->emitted - cur->sent;
    int lp_ready = q->gen.logprobs ? generation_logprobs_ready(g) : 0;
    if (lp_ready < cur->lp_sent) lp_ready = cur->lp_sent;
    int lp_to = lp_ready;
    if (q->gen.logprobs) {
        // The prompt's entries go with the echoed prompt, then at most REPLY_EVENT_ENTRIES
        // generated chars with theirs.
        int from = cur->lp_sent;
        while (from < lp_ready && g->lp[from].prompt) from++;
        if (lp_ready - from > REPLY_EVENT_ENTRIES) {
            lp_to = from + REPLY_EVENT_ENTRIES;
            fresh = g->lp[lp_to].offset > cur->sent ? g->lp[lp_to].offset - cur->sent : 0;
        }
    } else if (fresh > REPLY_EVENT_TEXT) {
        fresh = REPLY_EVENT_TEXT;
        while ((g->text[cur->sent + fresh] & 0xC0) == 0x80) fresh--; // not inside a char
    }
    int queued = 0;
    if (pl + fresh > 0 || lp_to > cur->lp_sent) {
        if (reply_event_delta(r, c, echo, cur->sent, cur->sent + fresh, cur->lp_sent, lp_to))
            return 0; // the stream is lost; its reader sees that
        cur->echo_sent |= echo;
        cur->sent += fresh;
        cur->lp_sent = lp_to;
        queued = 1;
    }
    if (!released || cur->sent < g->emitted || cur->lp_sent < lp_ready ||
        (q->echo && !cur->echo_sent))
        return queued;
    if (q->openai && !cur->final_sent) {
        reply_event_final(r, c);
        cur->final_sent = 1;
        queued = 1;
    }
    cur->complete = 1;
    return queued;
}

int reply_event_complete(const Reply *r, int c) {
    return r->ev[c].complete;
}

int reply_event_end(Reply *r, double elapsed_ms) {
    const ReplySpec *s = &r->spec;
    if (s->req->openai) {
        if (s->req->include_usage) {
            put(r, "data: ");
            openai_head(r, 1);
            put(r, "],");
            usage(r);
            put(r, "}");
            event_end(r);
        }
        put(r, "data: [DONE]");
        return event_end(r);
    }
    put(r, "data: {");
    if (native_multi(r)) {
        put(r, "\"choices\":[");
        for (int i = 0; i < s->nchoices; i++) {
            if (i) put(r, ",");
            choice_open(r, &r->choice[i]);
            native_counts(r, &r->choice[i]);
            put(r, "}");
        }
        put(r, "],");
    }
    native_summary(r);
    const char *unknown = s->choices[0].gen->unknown_chars;
    put_text(r, unknown, strlen(unknown), NULL, 0);
    native_elapsed(r, elapsed_ms);
    put(r, ",\"done\":true}");
    return event_end(r);
}
