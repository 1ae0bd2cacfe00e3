/*
 * metrics.h — Prometheus counters, lock-free, and GET /metrics to read them.
 */
#ifndef CHARLM_METRICS_H
#define CHARLM_METRICS_H

#include "generate.h"
#include "http.h"

#define METRICS_MAX_LABELS 24

/* The `route` labels; requests are counted by index into them. The strings must outlive
 * the server. Before the first request. */
int metrics_init(const char *const *labels, int n, char *err);
void metrics_request(int label, int status, double seconds);
/* A model id's generation counters: one series per id while a model of that id is loaded
 * (served, or finishing requests after a reload took it away). A reload that keeps the id
 * keeps the counts; an id no model has any more drops its series. */
typedef struct MetricsModel MetricsModel;
/* A reference to id's counters, made at zero when no loaded model has the id; NULL when
 * out of memory (that model's generations are then not counted). params is the model's
 * parameter count, the charlm_model_parameters gauge of the id: the latest model loaded
 * under an id is the one served (a reload swaps in every model it loads). */
MetricsModel *metrics_model_get(const char *id, size_t params);
void metrics_model_put(MetricsModel *mm);
void metrics_generation(MetricsModel *mm, int prompt_chars, int generated_chars,
                        FinishReason finish);
enum MHD_Result metrics_handle(struct MHD_Connection *conn, Request *rq);

#endif
