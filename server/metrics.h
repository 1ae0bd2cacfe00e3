/*
 * metrics.h — Prometheus counters, lock-free, and GET /metrics to read them.
 */
#ifndef CHARLM_METRICS_H
#define CHARLM_METRICS_H

#include "generate.h"
#include "http.h"

#define METRICS_MAX_LABELS 16

/* The `route` labels; requests are counted by index into them. The strings must outlive
 * the server. Before the first request. */
int metrics_init(const char *const *labels, int n, char *err);
void metrics_request(int label, int status, double seconds);
/* The slot of a model id for metrics_generation (the same slot for the same id over the
 * server's life, reloads included), or -1 past MODELS_MAX ids: those are not counted. */
int metrics_model(const char *id);
void metrics_generation(int slot, int prompt_chars, int generated_chars, FinishReason finish);
enum MHD_Result metrics_handle(struct MHD_Connection *conn, Request *rq);

#endif
