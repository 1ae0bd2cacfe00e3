/*
 * info.h — what the server says about itself: GET /health, /model and /v1/models.
 */
#ifndef CHARLM_INFO_H
#define CHARLM_INFO_H

#include "http.h"

/* Builds the GET /model body (config, training summary and curve) once, at startup. */
int info_build_model_card(char *err);
enum MHD_Result info_health(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_models(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_model_card(struct MHD_Connection *conn, Request *rq);

#endif
