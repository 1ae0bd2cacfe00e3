/*
 * gen.h — the generation routes: parse the request (api.h), admit it within
 * --max-concurrent, hand it to the scheduler (sched.h), and answer with one JSON reply
 * or an SSE stream of events.
 */
#ifndef CHARLM_GEN_H
#define CHARLM_GEN_H

#include "http.h"

/* POST /generate: charlm's own request and reply shapes. */
enum MHD_Result gen_handle_native(struct MHD_Connection *conn, Request *rq);
/* POST /v1/completions: OpenAI's text completion shapes. */
enum MHD_Result gen_handle_openai(struct MHD_Connection *conn, Request *rq);

#endif
