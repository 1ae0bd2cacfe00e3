/*
 * api.h — the JSON bodies of POST /generate, POST /v1/completions and POST
 * /v1/chat/completions, parsed and checked into a generation request. Pure: no I/O, no
 * server state beyond the limits (and chat template) passed in.
 */
#ifndef CHARLM_API_H
#define CHARLM_API_H

#include <stddef.h>

#include "generate.h"
#include "server.h"

typedef struct {
    int status;
    char message[256];
    char param[64]; // empty when no single field is at fault
} ApiError;

/* api_parse's kind of body. */
enum { API_NATIVE = 0, API_COMPLETIONS = 1, API_CHAT = 2 };

/* How chat messages become a prompt. A template is three lines, one per role, each
 * holding its placeholder ({system}, {user}, {assistant}) once. A message is its role's
 * line with the placeholder replaced by its content, then "\n"; the prompt is the
 * messages in order, then the assistant line's text before {assistant}. docs/API.md
 * states the built-in one. */
typedef struct ChatTemplate {
    char *text;                   // owned (NULL for the built-in); pre/post point into it
    const char *pre[3], *post[3]; // by role: system, user, assistant
} ChatTemplate;

/* Checks and splits a template's text. */
int chat_template_parse(const char *text, size_t len, ChatTemplate *t, char *err);
int chat_template_load(const char *path, ChatTemplate *t, char *err);
void chat_template_free(ChatTemplate *t);

// Generations one request may ask for: prompts x n.
#define API_MAX_CHOICES 16

typedef struct {
    int openai; // parsed as /v1/completions or /v1/chat/completions
    int chat;   // parsed as /v1/chat/completions
    int nprompts;
    char *prompts[API_MAX_CHOICES]; // owned, UTF-8
    size_t prompt_lens[API_MAX_CHOICES];
    int n;                    // choices per prompt; choice j draws with rng_child_seed(gen.seed, j)
    int best_of;              // 0 when not given; else must equal n
    int echo;                 // the reply's text starts with the prompt
    GenerateParams gen;       // gen.logprobs etc. as asked; gen.score_prompt = echo && logprobs
    char *stop[GEN_MAX_STOP]; // owned; gen.stop points here
    SamplerBias *bias;        // owned; gen.sampler.bias points here
    const Vocab *vocab;       // borrowed: the ids and chars logit_bias is checked against
    int stream;
    int include_usage; // OpenAI stream_options.include_usage
} GenRequest;

/* kind is API_NATIVE, API_COMPLETIONS or API_CHAT; chat uses cfg->chat_template, or the
 * built-in one when it is NULL. vocab: the loaded model's, for logit_bias (ids below its
 * size; chars on /generate); NULL refuses every logit_bias key. */
int api_parse(const char *body, size_t len, int kind, const ServerConfig *cfg, const Vocab *vocab,
              GenRequest *r, ApiError *e);
void gen_request_free(GenRequest *r);

/* The member of a request's object o named name: the last one, since a field given twice
 * takes its last value (api_parse reads them in order, so the last one stays). NULL when
 * there is none or o is not an object. */
struct cJSON;
const struct cJSON *api_member(const struct cJSON *o, const char *name);

/* The body's `model` member (api_member's) into out, cut to cap at a character boundary:
 * 1 when there is one and it is a string in a UTF-8 body, else 0 (api_parse then explains
 * what is wrong with the body). */
int api_model_field(const char *body, size_t len, char *out, size_t cap);

#endif
