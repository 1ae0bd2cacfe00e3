/* server/reply.c: a generation request's JSON reply, encoded a piece at a time. One row
 * per shape and option; each reply must be exactly what cJSON prints for its own parse
 * (so, what the whole tree printed at once gave), read whole or in pieces of any size,
 * with the members each shape has; and a reply of tens of MB is read through a bounded
 * buffer. A stream's events, written in slices by the same code, put together give the
 * reply's text, entries and summary; and reply_event_next, following generations as they
 * grow, writes bounded events that are the reply. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "utf8.h"

// Control chars, quotes and backslashes escape; the others are 1 to 4 bytes of UTF-8.
static const uint32_t chars[] = {0x01, '\n', '"', '\\', 'a', 'b', 0xE9, 0x20AC, 0x1F600};
#define V (int)(sizeof(chars) / sizeof(*chars))
static Vocab vocab = {V, (uint32_t *)chars};

typedef struct {
    const char *name;
    int openai, chat, echo, logprobs, top, nprompts, n, tokens;
} Case;

static const Case cases[] = {
    {"generate", 0, 0, 0, 0, 0, 1, 1, 30},
    {"generate logprobs", 0, 0, 0, 1, 3, 1, 1, 30},
    {"generate echo scored", 0, 0, 1, 1, 5, 1, 1, 12},
    {"generate n 3", 0, 0, 0, 1, 2, 1, 3, 20},
    {"generate n 2 plain", 0, 0, 1, 0, 0, 1, 2, 20},
    {"generate nothing generated", 0, 0, 1, 1, 1, 1, 1, 0},
    {"completions", 1, 0, 0, 0, 0, 1, 1, 30},
    {"completions logprobs", 1, 0, 0, 1, 5, 1, 2, 25},
    {"completions top 0", 1, 0, 0, 1, 0, 1, 1, 10},
    {"completions echo scored, 2 prompts", 1, 0, 1, 1, 3, 2, 2, 15},
    {"chat", 1, 1, 0, 0, 0, 1, 1, 30},
    {"chat logprobs", 1, 1, 0, 1, 4, 1, 3, 25},
    {"chat top 0", 1, 1, 0, 1, 0, 1, 1, 8},
};

static uint32_t lcg = 1;
static int draw(int n) {
    lcg = lcg * 1103515245u + 12345u;
    return (int)((lcg >> 16) % (unsigned)n);
}

typedef struct {
    GenRequest req;
    Generation gen[API_MAX_CHOICES];
    ReplyChoice choice[API_MAX_CHOICES];
    ReplySpec spec;
} Fixture;

// A prompt of `chars` vocabulary chars and one unknown char ('z') first.
static char *make_prompt(int nchars, size_t *len) {
    char *p = malloc((size_t)nchars * 4 + 2);
    size_t n = 0;
    p[n++] = 'z';
    for (int i = 0; i < nchars; i++) n += (size_t)utf8_encode(chars[draw(V)], p + n);
    p[n] = '\0';
    *len = n;
    return p;
}

// A done generation of `tokens` chars, scored like the server scores them: the prompt's
// entries first when echo and logprobs (the first without a logprob), then one per char.
static void make_generation(Generation *g, const GenRequest *q, int prompt, int tokens) {
    memset(g, 0, sizeof(*g));
    g->vocab = &vocab;
    g->params.logprobs = q->gen.logprobs;
    g->params.top_logprobs = q->gen.top_logprobs;
    int K = g->params.top_logprobs;
    const char *p = q->prompts[prompt];
    size_t plen = q->prompt_lens[prompt];
    int pchars = (int)utf8_count(p, plen) - 1; // the unknown 'z' has no entry
    int cap = (q->echo ? pchars : 0) + tokens + 1;
    g->lp = calloc((size_t)cap, sizeof(*g->lp));
    g->top_id = calloc((size_t)cap * (K ? K : 1), sizeof(int));
    g->top_lp = calloc((size_t)cap * (K ? K : 1), sizeof(float));
    g->text = malloc((size_t)tokens * 4 + 1);
    g->unknown_chars = strdup("z");
    g->prompt_tokens = pchars;
    g->tokens = tokens;
    g->finish = tokens % 2 ? FINISH_STOP : FINISH_LENGTH;
    if (!q->gen.logprobs) {
        g->n_lp = 0;
    } else if (q->echo) {
        size_t off = 1; // after 'z'
        for (int i = 0; i < pchars; i++) {
            uint32_t cp;
            int nb = utf8_decode_one((const unsigned char *)p + off, plen - off, &cp);
            TokenLogprob *e = &g->lp[g->n_lp++];
            e->id = vocab_id(&vocab, cp);
            e->prompt = 1;
            e->offset = off;
            e->logprob = i == 0 ? NAN : -(float)draw(1000) / 97.0f;
            off += (size_t)nb;
        }
    }
    for (int i = 0; i < tokens; i++) {
        int id = draw(V);
        if (q->gen.logprobs) {
            TokenLogprob *e = &g->lp[g->n_lp++];
            e->id = id;
            e->offset = g->len;
            e->logprob = -(float)draw(100000) / 977.0f;
        }
        g->len += (size_t)utf8_encode(chars[id], g->text + g->len);
    }
    g->text[g->len] = '\0';
    for (int i = 0; i < g->n_lp; i++)
        for (int k = 0; k < K; k++) {
            g->top_id[i * K + k] = (i + k) % V; // sometimes the chosen char, sometimes not
            g->top_lp[i * K + k] = -(float)k * 0.3f - (float)draw(1000) / 1e4f;
        }
    g->done = 1;
}

static void fixture_make(Fixture *f, const Case *c, uint64_t seed) {
    memset(f, 0, sizeof(*f));
    GenRequest *q = &f->req;
    q->openai = c->openai;
    q->chat = c->chat;
    q->echo = c->echo;
    q->gen.logprobs = c->logprobs;
    q->gen.top_logprobs = c->top;
    q->gen.seed = seed;
    q->n = c->n;
    q->nprompts = c->nprompts;
    for (int p = 0; p < c->nprompts; p++)
        q->prompts[p] = make_prompt(6 + 3 * p, &q->prompt_lens[p]);
    int nchoices = c->nprompts * c->n;
    for (int i = 0; i < nchoices; i++) {
        make_generation(&f->gen[i], q, i / c->n, c->tokens + i);
        f->choice[i] = (ReplyChoice){&f->gen[i], i / c->n, i, 1000 + (uint64_t)i};
    }
    f->spec =
        (ReplySpec){q, f->choice, nchoices, "chatcmpl-0123\"x", 1700000000, "m\\odel", 12.345};
}

static void fixture_free(Fixture *f) {
    for (int i = 0; i < f->spec.nchoices; i++) {
        Generation *g = &f->gen[i];
        free(g->lp);
        free(g->top_id);
        free(g->top_lp);
        free(g->text);
        free(g->unknown_chars);
    }
    for (int p = 0; p < f->req.nprompts; p++) free(f->req.prompts[p]);
}

static char *whole(const ReplySpec *spec, size_t *len) {
    Reply r;
    reply_init(&r, spec);
    ck_assert_int_eq(reply_fill(&r, SIZE_MAX), 0);
    ck_assert(reply_complete(&r));
    char *s = reply_take(&r, len);
    ck_assert_ptr_nonnull(s);
    reply_free(&r);
    return s;
}

// The reply read `piece` bytes at a time.
static char *in_pieces(const ReplySpec *spec, size_t piece, size_t *len, size_t *most_buffer) {
    Reply r;
    reply_init(&r, spec);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    *most_buffer = 0;
    for (;;) {
        if (n + piece + 1 > cap) out = realloc(out, cap = 2 * (n + piece + 1));
        long k = reply_read(&r, out + n, piece);
        ck_assert_int_ge(k, 0);
        ck_assert_uint_le((size_t)k, piece);
        if (reply_buffer_bytes(&r) > *most_buffer) *most_buffer = reply_buffer_bytes(&r);
        if (k == 0) break;
        n += (size_t)k;
    }
    out[n] = '\0';
    reply_free(&r);
    *len = n;
    return out;
}

START_TEST(test_reply_is_what_cjson_prints) {
    const Case *c = &cases[_i];
    Fixture f;
    fixture_make(&f, c, 4242);
    size_t len;
    char *s = whole(&f.spec, &len);
    ck_assert_uint_eq(len, strlen(s));
    cJSON *o = cJSON_Parse(s);
    ck_assert_msg(o != NULL, "%s: not JSON: %.200s", c->name, s);
    char *again = cJSON_PrintUnformatted(o);
    ck_assert_msg(strcmp(again, s) == 0, "%s: differs from cJSON's print: %.300s", c->name, s);
    free(again);

    // The members of each shape, and every entry.
    int nchoices = f.spec.nchoices;
    const cJSON *choices = cJSON_GetObjectItem(o, "choices");
    if (c->openai || nchoices > 1) ck_assert_int_eq(cJSON_GetArraySize(choices), nchoices);
    for (int i = 0; i < nchoices; i++) {
        const cJSON *ch = choices ? cJSON_GetArrayItem(choices, i) : o;
        const cJSON *text = c->chat
                                ? cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")
                                : cJSON_GetObjectItem(ch, "text");
        ck_assert(cJSON_IsString(text));
        const char *p = f.req.prompts[f.choice[i].prompt];
        size_t pl = c->echo ? f.req.prompt_lens[f.choice[i].prompt] : 0;
        ck_assert_uint_eq(strlen(text->valuestring), pl + f.gen[i].len);
        ck_assert_int_eq(strncmp(text->valuestring, p, pl), 0);
        ck_assert_str_eq(text->valuestring + pl, f.gen[i].text);
        const cJSON *lp = cJSON_GetObjectItem(ch, "logprobs");
        if (!c->logprobs) {
            ck_assert(c->openai ? cJSON_IsNull(lp) : lp == NULL);
            continue;
        }
        int n_lp = f.gen[i].n_lp;
        if (c->chat) {
            ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(lp, "content")), n_lp);
            ck_assert(cJSON_IsNull(cJSON_GetObjectItem(lp, "refusal")));
        } else if (c->openai) {
            const char *cols[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
            for (int k = 0; k < 4; k++)
                ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(lp, cols[k])), n_lp);
            // text_offset counts code points of the text as returned (prompt first).
            const cJSON *offs = cJSON_GetObjectItem(lp, "text_offset");
            for (int e = 0; e < n_lp; e++) {
                const TokenLogprob *t = &f.gen[i].lp[e];
                size_t want = t->prompt ? utf8_count(p, t->offset)
                                        : utf8_count(p, pl) + utf8_count(f.gen[i].text, t->offset);
                ck_assert_int_eq((int)cJSON_GetArrayItem(offs, e)->valuedouble, (int)want);
            }
        } else {
            ck_assert_int_eq(cJSON_GetArraySize(lp), n_lp);
        }
    }
    if (c->openai) {
        ck_assert(cJSON_IsObject(cJSON_GetObjectItem(o, "usage")));
        ck_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, "chatcmpl-0123\"x");
    } else {
        ck_assert_str_eq(cJSON_GetObjectItem(o, "unknown_chars")->valuestring, "z");
        ck_assert_str_eq(cJSON_GetObjectItem(o, "model")->valuestring, "m\\odel");
    }
    cJSON_Delete(o);

    // The same bytes whatever the reader asks for at a time.
    size_t pieces[] = {1, 7, 4096, 32768};
    for (size_t k = 0; k < sizeof(pieces) / sizeof(*pieces); k++) {
        size_t plen, most;
        char *p = in_pieces(&f.spec, pieces[k], &plen, &most);
        ck_assert_uint_eq(plen, len);
        ck_assert_msg(memcmp(p, s, len) == 0, "%s: read %zu at a time differs", c->name, pieces[k]);
        free(p);
    }
    free(s);
    fixture_free(&f);

    // A seed over 2^53 goes out exactly, as its digits (cJSON would print 15 of them).
    fixture_make(&f, c, 9007199254740993ull);
    s = whole(&f.spec, &len);
    ck_assert_ptr_nonnull(strstr(s, "\"seed\":9007199254740993"));
    free(s);
    fixture_free(&f);
}
END_TEST

// The entries of a logprobs member (column col for completions) appended to `into`.
static void entries_add(cJSON *into, const cJSON *lp, const Case *c, int col) {
    static const char *cols[] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
    const cJSON *arr = c->chat     ? cJSON_GetObjectItem(lp, "content")
                       : c->openai ? cJSON_GetObjectItem(lp, cols[col])
                                   : lp;
    ck_assert(cJSON_IsArray(arr));
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) cJSON_AddItemToArray(into, cJSON_Duplicate(e, 1));
}

/* A stream's events checked against the reply: each what cJSON prints for its own parse;
 * their text and entries, put together, are the reply's, and the last ones carry its
 * finish_reason, seeds and summary. bounded: each event also holds whole chars, at most
 * REPLY_EVENT_ENTRIES generated ones with log probabilities (and exactly one entry per
 * char) or REPLY_EVENT_TEXT bytes without. Consumes events. */
static void events_check(const Case *c, const Fixture *f, const cJSON *reply, char *events,
                         int bounded) {
    int nchoices = f->spec.nchoices;
    cJSON *text[API_MAX_CHOICES], *entries[API_MAX_CHOICES][4];
    int finals = 0, roles = 0, ends = 0, deltas[API_MAX_CHOICES] = {0};
    for (int i = 0; i < nchoices; i++) {
        text[i] = cJSON_CreateString("");
        for (int col = 0; col < 4; col++) entries[i][col] = cJSON_CreateArray();
    }
    const cJSON *reply_choices = cJSON_GetObjectItem(reply, "choices");
    for (char *ev = events; *ev;) {
        ck_assert_int_eq(strncmp(ev, "data: ", 6), 0);
        char *end = strstr(ev, "\n\n");
        ck_assert_ptr_nonnull(end);
        *end = '\0';
        char *data = ev + 6;
        ev = end + 2;
        if (strcmp(data, "[DONE]") == 0) {
            ck_assert(c->openai && *ev == '\0');
            ends++;
            continue;
        }
        cJSON *o = cJSON_Parse(data);
        ck_assert_msg(o != NULL, "%s: not JSON: %.200s", c->name, data);
        char *again = cJSON_PrintUnformatted(o);
        ck_assert_msg(strcmp(again, data) == 0, "%s: differs from cJSON's print: %.300s", c->name,
                      data);
        free(again);
        const cJSON *choices = cJSON_GetObjectItem(o, "choices");
        if (c->openai) {
            ck_assert_str_eq(cJSON_GetObjectItem(o, "object")->valuestring,
                             c->chat ? "chat.completion.chunk" : "text_completion");
            ck_assert_str_eq(cJSON_GetObjectItem(o, "id")->valuestring, "chatcmpl-0123\"x");
        }
        if (c->openai && cJSON_GetArraySize(choices) == 0) { // the usage chunk
            ck_assert(cJSON_Compare(cJSON_GetObjectItem(o, "usage"),
                                    cJSON_GetObjectItem(reply, "usage"), 1));
            ends++;
        } else if (!c->openai && cJSON_GetObjectItem(o, "done")) { // the summary
            const char *same[] = {"model", "finish_reason", "tokens",    "prompt_tokens",
                                  "seed",  "unknown_chars", "elapsed_ms"};
            for (size_t m = 0; m < sizeof(same) / sizeof(*same); m++)
                ck_assert(
                    cJSON_Compare(cJSON_GetObjectItem(o, same[m]),
                                  cJSON_GetObjectItem(reply, same[m]), 1) ||
                    (!cJSON_GetObjectItem(o, same[m]) && !cJSON_GetObjectItem(reply, same[m])));
            for (int i = 0; nchoices > 1 && i < nchoices; i++) {
                const cJSON *a = cJSON_GetArrayItem(choices, i);
                const cJSON *b = cJSON_GetArrayItem(reply_choices, i);
                const char *counts[] = {"index", "finish_reason", "tokens", "seed"};
                for (int m = 0; m < 4; m++)
                    ck_assert(cJSON_Compare(cJSON_GetObjectItem(a, counts[m]),
                                            cJSON_GetObjectItem(b, counts[m]), 1));
            }
            ends++;
        } else {
            const cJSON *ch = c->openai ? cJSON_GetArrayItem(choices, 0) : o;
            ck_assert(c->openai ? cJSON_GetArraySize(choices) == 1 : choices == NULL);
            const cJSON *index = cJSON_GetObjectItem(ch, "index");
            int i = index ? index->valueint : 0;
            ck_assert_int_lt(i, nchoices);
            const cJSON *delta = cJSON_GetObjectItem(ch, "delta");
            const cJSON *finish = cJSON_GetObjectItem(ch, "finish_reason");
            const cJSON *lp = cJSON_GetObjectItem(ch, "logprobs");
            const cJSON *t =
                c->chat ? cJSON_GetObjectItem(delta, "content") : cJSON_GetObjectItem(ch, "text");
            if (c->chat && cJSON_GetObjectItem(delta, "role")) {
                ck_assert_str_eq(cJSON_GetObjectItem(delta, "role")->valuestring, "assistant");
                roles++;
            } else if (c->openai && !cJSON_IsNull(finish)) {
                const cJSON *want = cJSON_GetArrayItem(reply_choices, i);
                ck_assert(cJSON_Compare(finish, cJSON_GetObjectItem(want, "finish_reason"), 1));
                ck_assert(cJSON_GetObjectItem(o, "seed")->valuedouble == (double)f->choice[i].seed);
                ck_assert(cJSON_IsNull(lp));
                finals++;
            } else {
                ck_assert(cJSON_IsString(t));
                size_t a = strlen(text[i]->valuestring), b = strlen(t->valuestring);
                if (bounded) {
                    size_t pl = c->echo && !deltas[i] ? f->req.prompt_lens[f->choice[i].prompt] : 0;
                    ck_assert_int_lt(utf8_find_invalid(t->valuestring, b), 0);
                    ck_assert_uint_ge(b, pl);
                    if (c->logprobs) {
                        cJSON *mine = cJSON_CreateArray();
                        entries_add(mine, lp, c, 0);
                        ck_assert_uint_le(utf8_count(t->valuestring + pl, b - pl),
                                          REPLY_EVENT_ENTRIES);
                        // One entry per char, but for the prompt's unknown 'z'.
                        ck_assert_int_eq(cJSON_GetArraySize(mine),
                                         (int)utf8_count(t->valuestring, b) - (pl ? 1 : 0));
                        cJSON_Delete(mine);
                    } else {
                        ck_assert_uint_le(b - pl, REPLY_EVENT_TEXT);
                    }
                }
                deltas[i]++;
                char *joined = malloc(a + b + 1);
                memcpy(joined, text[i]->valuestring, a);
                memcpy(joined + a, t->valuestring, b + 1);
                cJSON_SetValuestring(text[i], joined);
                free(joined);
                if (!c->logprobs)
                    ck_assert(c->openai ? cJSON_IsNull(lp) : lp == NULL);
                else
                    for (int col = 0; col < (c->openai && !c->chat ? 4 : 1); col++)
                        entries_add(entries[i][col], lp, c, col);
            }
        }
        cJSON_Delete(o);
    }
    ck_assert_int_eq(roles, c->chat ? nchoices : 0);
    ck_assert_int_eq(finals, c->openai ? nchoices : 0);
    ck_assert_int_eq(ends, c->openai ? 1 + f->req.include_usage : 1);
    for (int i = 0; i < nchoices; i++) {
        const cJSON *ch = reply_choices ? cJSON_GetArrayItem(reply_choices, i) : reply;
        const cJSON *t = c->chat
                             ? cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")
                             : cJSON_GetObjectItem(ch, "text");
        ck_assert_str_eq(text[i]->valuestring, t->valuestring);
        for (int col = 0; c->logprobs && col < (c->openai && !c->chat ? 4 : 1); col++) {
            cJSON *want = cJSON_CreateArray();
            entries_add(want, cJSON_GetObjectItem(ch, "logprobs"), c, col);
            char *a = cJSON_PrintUnformatted(entries[i][col]), *b = cJSON_PrintUnformatted(want);
            ck_assert_msg(strcmp(a, b) == 0, "%s: choice %d column %d: the events' entries differ",
                          c->name, i, col);
            free(a);
            free(b);
            cJSON_Delete(want);
        }
        cJSON_Delete(text[i]);
        for (int col = 0; col < 4; col++) cJSON_Delete(entries[i][col]);
    }
}

/* A stream's events, each what cJSON prints for its own parse; their text and entries,
 * put together, are the reply's, and the last ones carry its finish_reason, seeds and
 * summary. Every choice is sent in slices: entries 5 at a time with log probabilities,
 * text 7 bytes (whole chars) at a time without. */
START_TEST(test_events_are_the_reply_in_slices) {
    const Case *c = &cases[_i];
    Fixture f;
    fixture_make(&f, c, 4242);
    size_t len;
    char *s = whole(&f.spec, &len);
    cJSON *reply = cJSON_Parse(s);
    int nchoices = f.spec.nchoices;
    f.req.include_usage = _i % 2;

    Reply r;
    reply_init_events(&r, &f.spec);
    char none[8];
    ck_assert_int_eq(reply_read(&r, none, sizeof(none)), 0); // nothing yet, no buffer yet
    for (int i = 0; c->chat && i < nchoices; i++) ck_assert_int_eq(reply_event_role(&r, i), 0);
    for (int i = 0; i < nchoices; i++) {
        const Generation *g = &f.gen[i];
        size_t sent = 0;
        int lp = 0, first = 1;
        while (first || sent < g->len || lp < g->n_lp) {
            size_t to = sent + 7 < g->len ? sent + 7 : g->len;
            int lp_to = lp;
            if (c->logprobs) {
                while (lp_to < g->n_lp && g->lp[lp_to].prompt) lp_to++; // the prompt's go first
                lp_to = lp_to + 5 < g->n_lp ? lp_to + 5 : g->n_lp;
                to = lp_to < g->n_lp ? g->lp[lp_to].offset : g->len;
            } else {
                while (to < g->len && (g->text[to] & 0xC0) == 0x80) to++;
            }
            ck_assert_int_eq(reply_event_delta(&r, i, first && c->echo, sent, to, lp, lp_to), 0);
            sent = to;
            lp = lp_to;
            first = 0;
        }
        if (c->openai) ck_assert_int_eq(reply_event_final(&r, i), 0);
    }
    ck_assert_int_eq(reply_event_end(&r, 12.345), 0);
    ck_assert(reply_complete(&r)); // no reply of its own
    size_t cap = reply_pending(&r) + 1, n = 0;
    char *events = malloc(cap);
    long k;
    while ((k = reply_read(&r, events + n, 1000)) > 0) n += (size_t)k;
    ck_assert_int_eq(k, 0);
    events[n] = '\0';
    reply_free(&r);

    events_check(c, &f, reply, events, 0);
    free(events);
    cJSON_Delete(reply);
    free(s);
    fixture_free(&f);
}
END_TEST

// Longer generations, so that the events' bounds cut them.
static const Case grow_cases[] = {
    {"generate logprobs 300", 0, 0, 0, 1, 3, 1, 1, 300},
    {"generate n 2 plain 3000", 0, 0, 1, 0, 0, 1, 2, 3000},
    {"generate echo scored 150", 0, 0, 1, 1, 2, 1, 1, 150},
    {"completions echo scored 200, 2 prompts", 1, 0, 1, 1, 2, 2, 1, 200},
    {"completions plain 2500", 1, 0, 1, 0, 0, 1, 1, 2500},
    {"chat logprobs 150", 1, 1, 0, 1, 4, 1, 2, 150},
    {"chat plain 5000", 1, 1, 0, 0, 0, 1, 1, 5000},
};

// The byte after `chars` more chars of g's text from `at`.
static size_t chars_on(const Generation *g, size_t at, int chars) {
    while (chars-- > 0 && at < g->len) do
            at++;
        while (at < g->len && (g->text[at] & 0xC0) == 0x80);
    return at;
}

// Queues every event reply_event_next has for choice c now; returns how many.
static int events_take(Reply *r, int c, int released) {
    int n = 0;
    while (reply_event_next(r, c, released)) ck_assert_int_lt(++n, 100000);
    return n;
}

/* reply_event_next on generations as they grow: nothing before the prompt is read, then
 * what is emitted, in small steps and in one large one (a reader that fell behind), an
 * entry whose char is held back (a partial stop sequence) kept until its char is emitted;
 * released (for every other one, right after the large step, so with events to go), the
 * rest and then the closing event. The events, bounded, are the reply. */
START_TEST(test_events_follow_a_growing_generation) {
    const Case *c = &grow_cases[_i];
    Fixture f;
    fixture_make(&f, c, 4242);
    size_t len;
    char *s = whole(&f.spec, &len);
    cJSON *reply = cJSON_Parse(s);
    int nchoices = f.spec.nchoices;

    Reply r;
    reply_init_events(&r, &f.spec);
    for (int i = 0; c->chat && i < nchoices; i++) ck_assert_int_eq(reply_event_role(&r, i), 0);
    for (int i = 0; i < nchoices; i++) {
        Generation *g = &f.gen[i];
        int n_lp = g->n_lp, n_prompt_lp = 0;
        while (n_prompt_lp < n_lp && g->lp[n_prompt_lp].prompt) n_prompt_lp++;
        g->done = 0;
        g->n_prompt = 2; // one prompt id still to feed
        g->prompt_pos = 1;
        g->n_lp = n_prompt_lp;
        g->emitted = 0;
        ck_assert_int_eq(events_take(&r, i, 0), 0);
        ck_assert(!reply_event_complete(&r, i));
        g->prompt_pos = 2;
        for (int step = 0; g->emitted < g->len; step++) {
            size_t was = g->emitted;
            int lp_was = g->n_lp;
            // Every other generation ends in its large step: released with events to go.
            int ends = step == 3 && (i + _i) % 2;
            g->emitted = chars_on(g, was,
                                  ends        ? c->tokens
                                  : step == 3 ? c->tokens / 2
                                              : 1 + draw(9));
            if (ends) break;
            // Entries of the chars emitted, and maybe one of a char held back.
            int k = n_prompt_lp;
            while (k < n_lp && g->lp[k].offset < g->emitted) k++;
            g->n_lp = k + (k < n_lp && draw(2));
            int events = events_take(&r, i, 0);
            ck_assert(!reply_event_complete(&r, i));
            // The large step is cut into as many events as the bounds need.
            int need = c->logprobs
                           ? (k - lp_was + REPLY_EVENT_ENTRIES - 1) / REPLY_EVENT_ENTRIES
                           : (int)((g->emitted - was + REPLY_EVENT_TEXT - 1) / REPLY_EVENT_TEXT);
            if (step == 3) ck_assert_int_ge(events, need);
        }
        g->n_lp = n_lp;
        g->done = 1;
        events_take(&r, i, 1);
        ck_assert(reply_event_complete(&r, i));
        ck_assert_int_eq(events_take(&r, i, 1), 0); // complete: nothing more
    }
    ck_assert_int_eq(reply_event_end(&r, 12.345), 0);
    size_t cap = reply_pending(&r) + 1, n = 0;
    char *events = malloc(cap);
    long k;
    while ((k = reply_read(&r, events + n, 1000)) > 0) n += (size_t)k;
    ck_assert_int_eq(k, 0);
    events[n] = '\0';
    reply_free(&r);
    events_check(c, &f, reply, events, 1);
    free(events);
    cJSON_Delete(reply);
    free(s);
    fixture_free(&f);
}
END_TEST

// The string finish reasons in o and in its choices, checked against want; how many.
static int finish_reasons(const cJSON *o, const char *want) {
    int n = 0;
    const cJSON *f = cJSON_GetObjectItem(o, "finish_reason");
    if (cJSON_IsString(f)) {
        ck_assert_str_eq(f->valuestring, want);
        n++;
    }
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItem(o, "choices")) n += finish_reasons(ch, want);
    return n;
}

/* Every finish reason, the error's included, named in every shape: the reply's choices
 * (or /generate's one), OpenAI's closing events and /generate's summary event. */
START_TEST(test_finish_reason_in_every_shape) {
    static const struct {
        FinishReason why;
        const char *name;
    } reasons[] = {{FINISH_LENGTH, "length"},
                   {FINISH_STOP, "stop"},
                   {FINISH_CANCELLED, "cancelled"},
                   {FINISH_ERROR, "error"}};
    const Case *c = &cases[_i];
    for (size_t k = 0; k < sizeof(reasons) / sizeof(*reasons); k++) {
        Fixture f;
        fixture_make(&f, c, 4242);
        int nchoices = f.spec.nchoices;
        for (int i = 0; i < nchoices; i++) {
            f.gen[i].finish = reasons[k].why;
            f.gen[i].emitted = f.gen[i].len;
        }
        size_t len;
        char *s = whole(&f.spec, &len);
        cJSON *o = cJSON_Parse(s);
        ck_assert_int_eq(finish_reasons(o, reasons[k].name), nchoices);
        cJSON_Delete(o);
        free(s);

        Reply r;
        reply_init_events(&r, &f.spec);
        for (int i = 0; i < nchoices; i++) events_take(&r, i, 1);
        ck_assert_int_eq(reply_event_end(&r, 1.0), 0);
        size_t n = 0;
        char *events = malloc(reply_pending(&r) + 1);
        long got;
        while ((got = reply_read(&r, events + n, 1000)) > 0) n += (size_t)got;
        events[n] = '\0';
        reply_free(&r);
        int named = 0;
        for (char *ev = strstr(events, "data: "); ev; ev = strstr(ev, "data: ")) {
            ev += 6;
            char *end = strstr(ev, "\n\n");
            *end = '\0';
            if (strcmp(ev, "[DONE]") != 0) {
                cJSON *e = cJSON_Parse(ev);
                ck_assert_ptr_nonnull(e);
                named += finish_reasons(e, reasons[k].name);
                cJSON_Delete(e);
            }
            ev = end + 2;
        }
        ck_assert_int_eq(named, nchoices);
        free(events);
        fixture_free(&f);
    }
}
END_TEST

// 16 chat choices of 2000 chars with alternatives, read as libmicrohttpd reads it.
START_TEST(test_large_reply_bounded_buffer) {
    Case c = {"chat 16 x 2000", 1, 1, 0, 1, V, 1, 16, 2000};
    Fixture f;
    fixture_make(&f, &c, 4242);
    size_t len, most;
    char *s = in_pieces(&f.spec, 32768, &len, &most);
    ck_assert_uint_gt(len, 10u << 20);
    ck_assert_uint_le(most, 128 * 1024);
    cJSON *o = cJSON_Parse(s);
    ck_assert_ptr_nonnull(o);
    const cJSON *choices = cJSON_GetObjectItem(o, "choices");
    ck_assert_int_eq(cJSON_GetArraySize(choices), 16);
    for (int i = 0; i < 16; i++) {
        const cJSON *lp = cJSON_GetObjectItem(cJSON_GetArrayItem(choices, i), "logprobs");
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(lp, "content")), 2000 + i);
    }
    cJSON_Delete(o);
    free(s);
    fixture_free(&f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("reply");
    TCase *tc = tcase_create("reply");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_reply_is_what_cjson_prints, 0,
                        (int)(sizeof(cases) / sizeof(*cases)));
    tcase_add_loop_test(tc, test_events_are_the_reply_in_slices, 0,
                        (int)(sizeof(cases) / sizeof(*cases)));
    tcase_add_loop_test(tc, test_events_follow_a_growing_generation, 0,
                        (int)(sizeof(grow_cases) / sizeof(*grow_cases)));
    tcase_add_loop_test(tc, test_finish_reason_in_every_shape, 0,
                        (int)(sizeof(cases) / sizeof(*cases)));
    tcase_add_test(tc, test_large_reply_bounded_buffer);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
