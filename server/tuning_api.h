/*
 * tuning_api.h — OpenAI's fine-tuning API over tuning.h, routed only with --training-dir:
 *
 *   POST /v1/fine_tuning/jobs                    a new job (tunereq.h's body)
 *   GET  /v1/fine_tuning/jobs?limit&after        the jobs, newest first
 *   GET  /v1/fine_tuning/jobs/{id}               one job
 *   GET  /v1/fine_tuning/jobs/{id}/events        its events, newest first (limit, after);
 *                                                ?stream=true: Server-Sent Events
 *   GET  /v1/fine_tuning/jobs/{id}/checkpoints   its best model
 *   POST /v1/fine_tuning/jobs/{id}/cancel        stop it
 *   DELETE /v1/models/{id}                       remove a fine-tuned model
 */
#ifndef CHARLM_TUNING_API_H
#define CHARLM_TUNING_API_H

#include "http.h"

// A list's page size without `limit`, and the most one may ask for (OpenAI's).
#define TUNING_LIST_DEFAULT 20
#define TUNING_LIST_MAX     100

/* GET lists, POST creates. */
enum MHD_Result tuning_api_collection(struct MHD_Connection *conn, Request *rq);
/* rq->tail: "{id}", "{id}/events", "{id}/checkpoints" or "{id}/cancel". */
enum MHD_Result tuning_api_item(struct MHD_Connection *conn, Request *rq);

/* DELETE /v1/models/{id} (rq->tail): {"id", "object": "model", "deleted": true}. */
enum MHD_Result tuning_api_delete_model(struct MHD_Connection *conn, Request *rq);

#endif
