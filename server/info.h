/*
 * info.h — what the server says about itself: GET /health, /model, /v1/models and
 * /v1/models/{id}; and its vocabulary's mapping, POST /tokenize and /detokenize.
 */
#ifndef CHARLM_INFO_H
#define CHARLM_INFO_H

#include "http.h"

/* Builds the GET /model body (config, training summary and curve) once, at startup. */
int info_build_model_card(char *err);
enum MHD_Result info_health(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_models(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_model_card(struct MHD_Connection *conn, Request *rq);
/* GET /v1/models/<id>: the id taken from rq->tail. */
enum MHD_Result info_model(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_tokenize(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_detokenize(struct MHD_Connection *conn, Request *rq);

#endif
