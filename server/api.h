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
    int status; // 400: the request is wrong; 503: memory ran out (the handler adds Retry-After)
    char message[256];
    char param[64]; // empty when no single field is at fault
} ApiError;

/* api_parse's kind of body. */
enum { API_NATIVE = 0, API_COMPLETIONS = 1, API_CHAT = 2 };

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
 * built-in one when it is NULL (chat.h). vocab: the loaded model's, for logit_bias (ids
 * below its size; chars on /generate); NULL refuses every logit_bias key. On failure e
 * says why, with the status to answer. */
int api_parse(const char *body, size_t len, int kind, const ServerConfig *cfg, const Vocab *vocab,
              GenRequest *r, ApiError *e);
void gen_request_free(GenRequest *r);

/* The body's `model` member (the last one, as jsonscan_member finds it) into out, cut to
 * cap at a character boundary: 1 when there is one and it is a string in a UTF-8 body,
 * else 0 (api_parse then explains what is wrong with the body). */
int api_model_field(const char *body, size_t len, char *out, size_t cap);

#endif
