/*
 * api.h — the JSON bodies of POST /generate and POST /v1/completions, parsed and checked
 * into a generation request. Pure: no I/O, no server state beyond the limits passed in.
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

typedef struct {
    int openai; // parsed as /v1/completions
    char *prompt;
    size_t prompt_len;
    GenerateParams gen;
    char *stop[GEN_MAX_STOP]; // owned; gen.stop points here
    SamplerBias *bias;        // owned; gen.sampler.bias points here
    const Vocab *vocab;       // borrowed: the ids and chars logit_bias is checked against
    int stream;
    int include_usage; // OpenAI stream_options.include_usage
} GenRequest;

/* vocab: the loaded model's, for logit_bias (ids below its size; chars on /generate);
 * NULL refuses every logit_bias key. */
int api_parse(const char *body, size_t len, int openai, const ServerConfig *cfg, const Vocab *vocab,
              GenRequest *r, ApiError *e);
void gen_request_free(GenRequest *r);

#endif
