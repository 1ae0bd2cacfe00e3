/*
 * reply.h — the JSON reply to a generation request whose generations are done, encoded a
 * bounded piece at a time instead of built whole; and a streamed request's events.
 *
 * One request may ask for 16 choices of 2000 chars with 20 alternatives each: some 39 MB
 * of JSON. Built as one cJSON tree it took millions of nodes, a gigabyte and seconds on the
 * HTTP thread, during which every other connection waited. A Reply is a cursor over the
 * generations instead: each reply_fill encodes the next units (the head, a piece of a
 * choice's text, one log probability entry, a choice's end) until the bytes asked for are
 * there, so the work per call is about the bytes it returns and the memory is the
 * generations' own data and one buffer of about that size.
 *
 * Every number and string is printed by cJSON itself (cJSON_PrintPreallocated on one leaf),
 * the structure between them written as cJSON writes it, so the bytes are exactly those of
 * cJSON_PrintUnformatted on the whole tree.
 *
 * A stream's events are written by the same code (reply_event_*), so each shape (a head, a
 * choice, a log probability entry, the usage, /generate's summary) is encoded in one place
 * and an event's objects are byte for byte those of the reply.
 */
#ifndef CHARLM_REPLY_H
#define CHARLM_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "buf.h"
#include "generate.h"

typedef struct {
    const Generation *gen; // done: read only, by one thread
    int prompt;            // index into req->prompts
    int index;             // OpenAI's choice index
    uint64_t seed;         // the seed its generator was drawn from
} ReplyChoice;

typedef struct {
    const GenRequest *req; // the shape (req->openai, req->chat), echo, logprobs, n, seed
    const ReplyChoice *choices;
    int nchoices;
    const char *id; // OpenAI's completion id
    long long created;
    const char *model;
    double elapsed_ms; // /generate's reply's (a stream's end is given its own)
} ReplySpec;

/* What a stream's events have carried of one choice (reply_event_next). */
typedef struct {
    size_t sent;    // gen->text[0 .. sent)
    int lp_sent;    // gen->lp[0 .. lp_sent)
    int echo_sent;  // the echoed prompt
    int final_sent; // its closing event (OpenAI)
    int complete;   // released and every event of it queued
} ReplyEventCursor;

/* The encoder's state; its fields are reply.c's. Everything spec points to must outlive it. */
typedef struct {
    ReplySpec spec;
    ReplyChoice choice[API_MAX_CHOICES];
    ReplyEventCursor ev[API_MAX_CHOICES];
    Buf out; // out.s[pos .. out.len) encoded and not yet read; out.failed: out of memory
    size_t pos;
    int step, c, col, i;
    // A string written a piece a unit: parts str[0], then str[1], up to its first NUL.
    const char *str[2];
    size_t str_len[2], str_off;
    int str_part, after;
    // text_offset's code point count so far: cp_count code points in cp_bytes bytes of
    // the prompt (cp_prompt) or of the text.
    size_t cp_bytes, cp_count, prompt_cp;
    int cp_prompt;
} Reply;

/* Copies spec (at most API_MAX_CHOICES choices). */
void reply_init(Reply *r, const ReplySpec *spec);
/* Encodes units until at least `want` bytes wait to be read or the reply is complete.
 * Returns -1 when out of memory (the reply is then lost), else 0. */
int reply_fill(Reply *r, size_t want);
/* 1 once every byte of the reply is encoded (some may wait to be read). */
int reply_complete(const Reply *r);
/* Copies up to max bytes of the reply to out, encoding about that much first; returns the
 * count, 0 once the reply has been read whole, -1 when out of memory. */
long reply_read(Reply *r, char *out, size_t max);
/* Hands over the bytes waiting (malloc'd, NUL-terminated) and their count in *len; the
 * Reply is left empty. NULL when out of memory. */
char *reply_take(Reply *r, size_t *len);
/* Bytes of the buffer the encoder holds. */
size_t reply_buffer_bytes(const Reply *r);
void reply_free(Reply *r);

/* ---- A stream's server-sent events
 * A Reply started with reply_init_events encodes no reply of its own (reply_fill adds
 * nothing): each reply_event_* appends one or two whole events, "data: JSON\n\n", read
 * with reply_read. An event holds what its caller gives it (a slice of text, a range of
 * entries), so the caller bounds its size and cost; the generations may still be running,
 * so the caller also keeps the generation from changing while its event is written. Each
 * returns -1 when out of memory (the stream is then lost), else 0. The choice c is an
 * index into spec->choices. */
void reply_init_events(Reply *r, const ReplySpec *spec);
/* Bytes of events waiting to be read. */
size_t reply_pending(const Reply *r);
/* Chat: choice c's first chunk, naming the speaker. */
int reply_event_role(Reply *r, int c);
/* What is new in choice c: its prompt first when `echo`, then bytes [from, to) of its
 * text; and its log probability entries [lp_from, lp_to) when the request asks for them. */
int reply_event_delta(Reply *r, int c, int echo, size_t from, size_t to, int lp_from, int lp_to);
/* OpenAI: choice c's last chunk, with its finish_reason and seed. */
int reply_event_final(Reply *r, int c);
/* An event carries at most this many generated chars with log probabilities, or bytes of
 * generated text without: a stream whose reader fell behind its generation catches up in
 * bounded events, none of which its writer (holding the worker's lock) spends long on. */
#define REPLY_EVENT_ENTRIES 64
#define REPLY_EVENT_TEXT    4096
/* What is new in choice c since its last event, as one reply_event_delta: the echoed
 * prompt first (once the prompt has been read; with its entries), then the text and its
 * entries emitted since, at most REPLY_EVENT_ENTRIES generated chars with log
 * probabilities (an event's text is exactly its entries' chars, which the page relies on)
 * or else REPLY_EVENT_TEXT bytes, never cutting a char. Once `released` (its generation is
 * done) and everything has gone out: OpenAI's closing event (reply_event_final) and the
 * choice is complete (and has no more events). Returns 1 when it queued an event; a
 * failure to (out of memory) shows in the next reply_read. */
int reply_event_next(Reply *r, int c, int released);
/* 1 once reply_event_next has completed choice c. */
int reply_event_complete(const Reply *r, int c);
/* The stream's end, once every generation is done: OpenAI's usage chunk (include_usage)
 * and [DONE]; /generate's summary of the request, with elapsed_ms. */
int reply_event_end(Reply *r, double elapsed_ms);

#endif
