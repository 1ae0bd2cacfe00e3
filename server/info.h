/*
 * info.h — what the server says about itself: GET /health, /model (?model=ID),
 * /v1/models and /v1/models/{id}; and a model's vocabulary, POST /tokenize and
 * /detokenize (each with an optional `model`).
 */
#ifndef CHARLM_INFO_H
#define CHARLM_INFO_H

#include "http.h"
#include "models.h"

/* The registry's hooks for the card (models.h, wired by main.c): built from the pieces of
 * a model just loaded (card.h), and freed with the model. attach fails, err set, only when
 * out of memory. */
int info_card_attach(ServedModel *m, char *err);
void info_card_detach(ServedModel *m);
/* OpenAI's 404 for a model id this server does not have, listing the ones it has. */
enum MHD_Result info_model_not_found(struct MHD_Connection *conn, Request *rq, const char *id);
enum MHD_Result info_health(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_models(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_model_card(struct MHD_Connection *conn, Request *rq);
/* GET /v1/models/<id>: the id taken from rq->tail. */
enum MHD_Result info_model(struct MHD_Connection *conn, Request *rq);
/* POST /admin/reload: what SIGHUP does, answered with models_reload's report. */
enum MHD_Result info_reload(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_tokenize(struct MHD_Connection *conn, Request *rq);
enum MHD_Result info_detokenize(struct MHD_Connection *conn, Request *rq);

#endif
