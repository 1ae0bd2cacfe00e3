/*
 * gen.h — the generation routes: parse the request (api.h), admit it within
 * --max-concurrent and --max-waiting-bytes (admit.h), make its generations and hand them to
 * the scheduler (job.h), and answer with one JSON reply or an SSE stream of events
 * (deliver.h, encoded by reply.h).
 */
#ifndef CHARLM_GEN_H
#define CHARLM_GEN_H

#include "http.h"

/* Starts and stops the thread that watches parked connections for clients that left
 * (watch.h). */
int gen_start(char *err);
void gen_stop(void);
/* The drain begins: from now on new generations get 503 and none is submitted. */
void gen_stop_admitting(void);

/* POST /generate: charlm's own request and reply shapes. */
enum MHD_Result gen_handle_native(struct MHD_Connection *conn, Request *rq);
/* POST /v1/completions: OpenAI's text completion shapes. */
enum MHD_Result gen_handle_openai(struct MHD_Connection *conn, Request *rq);
/* POST /v1/chat/completions: OpenAI's chat shapes, the prompt made by the chat template. */
enum MHD_Result gen_handle_chat(struct MHD_Connection *conn, Request *rq);

#endif
