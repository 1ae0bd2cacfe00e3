#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "metrics.h"
#include "models.h"
#include "server.h"

// Latency buckets in seconds: a static page is well under a millisecond, a long
// generation a few seconds.
static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10,   30};
#define NBUCKETS (int)(sizeof(buckets) / sizeof(*buckets))
#define NSTATUS  600

// Lock-free: every field is only ever incremented.
static struct {
    atomic_ulong requests[METRICS_MAX_LABELS][NSTATUS]; // by route and status
    atomic_ulong latency[METRICS_MAX_LABELS]
                        [NBUCKETS + 1];          // per bucket (not cumulative), +Inf last
    atomic_ulong latency_us[METRICS_MAX_LABELS]; // sum, in microseconds
    atomic_ulong generated_chars[MODELS_MAX], prompt_chars[MODELS_MAX]; // by model
    atomic_ulong generations[MODELS_MAX][FINISH_CANCELLED + 1];
} m;

// The `model` labels: a slot per id ever served, so that a reload keeps the counts.
static char model_ids[MODELS_MAX][MODEL_ID_MAX];
static atomic_int nmodels;
static pthread_mutex_t models_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const *labels; // [nlabels] route labels, from metrics_init
static int nlabels;

int metrics_init(const char *const *route_labels, int n, char *err) {
    if (n < 0 || n > METRICS_MAX_LABELS)
        return err_set(err, "%d route labels: metrics count at most %d", n, METRICS_MAX_LABELS);
    labels = route_labels;
    nlabels = n;
    return 0;
}

void metrics_request(int label, int status, double seconds) {
    if (label < 0 || label >= nlabels) return;
    if (status < 100 || status >= NSTATUS) status = 500;
    atomic_fetch_add(&m.requests[label][status], 1);
    int b = 0;
    while (b < NBUCKETS && seconds > buckets[b]) b++;
    atomic_fetch_add(&m.latency[label][b], 1);
    atomic_fetch_add(&m.latency_us[label], (unsigned long)(seconds * 1e6 + 0.5));
}

int metrics_model(const char *id) {
    pthread_mutex_lock(&models_mu);
    int n = atomic_load(&nmodels), slot = -1;
    for (int i = 0; i < n && slot < 0; i++)
        if (strcmp(model_ids[i], id) == 0) slot = i;
    if (slot < 0 && n < MODELS_MAX) {
        snprintf(model_ids[n], MODEL_ID_MAX, "%s", id);
        atomic_store(&nmodels, n + 1);
        slot = n;
    }
    pthread_mutex_unlock(&models_mu);
    return slot;
}

void metrics_generation(int slot, int prompt_chars, int generated_chars, FinishReason finish) {
    if (slot < 0 || slot >= MODELS_MAX) return;
    atomic_fetch_add(&m.prompt_chars[slot], (unsigned long)prompt_chars);
    atomic_fetch_add(&m.generated_chars[slot], (unsigned long)generated_chars);
    if ((unsigned)finish <= FINISH_CANCELLED) atomic_fetch_add(&m.generations[slot][finish], 1);
}

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} Buf;

static void put(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

enum MHD_Result metrics_handle(struct MHD_Connection *conn, Request *rq) {
    Buf b = {.cap = 8192};
    b.s = malloc(b.cap);
    if (!b.s) return respond_error(conn, rq, 503, "out of memory", NULL);

    put(&b, "# HELP charlm_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE charlm_requests_total counter\n");
    for (int r = 0; r < nlabels; r++)
        for (int s = 100; s < NSTATUS; s++) {
            unsigned long v = atomic_load(&m.requests[r][s]);
            if (v)
                put(&b, "charlm_requests_total{route=\"%s\",status=\"%d\"} %lu\n", labels[r], s, v);
        }

    put(&b, "# HELP charlm_request_duration_seconds Time from request to last byte, by route.\n"
            "# TYPE charlm_request_duration_seconds histogram\n");
    for (int r = 0; r < nlabels; r++) {
        unsigned long counts[NBUCKETS + 1], total = 0;
        for (int i = 0; i <= NBUCKETS; i++) total += counts[i] = atomic_load(&m.latency[r][i]);
        if (!total) continue;
        unsigned long cum = 0;
        for (int i = 0; i < NBUCKETS; i++) {
            cum += counts[i];
            put(&b, "charlm_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
                labels[r], buckets[i], cum);
        }
        put(&b, "charlm_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n", labels[r],
            total);
        put(&b, "charlm_request_duration_seconds_sum{route=\"%s\"} %.6f\n", labels[r],
            (double)atomic_load(&m.latency_us[r]) / 1e6);
        put(&b, "charlm_request_duration_seconds_count{route=\"%s\"} %lu\n", labels[r], total);
    }

    int nm = atomic_load(&nmodels);
    put(&b, "# HELP charlm_generated_chars_total Characters generated (stop sequences included), "
            "by model.\n"
            "# TYPE charlm_generated_chars_total counter\n");
    for (int i = 0; i < nm; i++)
        put(&b, "charlm_generated_chars_total{model=\"%s\"} %lu\n", model_ids[i],
            atomic_load(&m.generated_chars[i]));
    put(&b, "# HELP charlm_prompt_chars_total Prompt characters fed to the model, by model.\n"
            "# TYPE charlm_prompt_chars_total counter\n");
    for (int i = 0; i < nm; i++)
        put(&b, "charlm_prompt_chars_total{model=\"%s\"} %lu\n", model_ids[i],
            atomic_load(&m.prompt_chars[i]));
    put(&b, "# HELP charlm_generations_total Generations finished, by model and finish reason.\n"
            "# TYPE charlm_generations_total counter\n");
    for (int i = 0; i < nm; i++)
        for (int f = FINISH_LENGTH; f <= FINISH_CANCELLED; f++)
            put(&b, "charlm_generations_total{model=\"%s\",finish_reason=\"%s\"} %lu\n",
                model_ids[i], finish_reason_name((FinishReason)f),
                atomic_load(&m.generations[i][f]));
    put(&b, "# HELP charlm_model_parameters Parameters of each loaded model.\n"
            "# TYPE charlm_model_parameters gauge\n");
    ServedModel *all[MODELS_MAX];
    int n = models_all(all, MODELS_MAX);
    for (int i = 0; i < n; i++) {
        put(&b, "charlm_model_parameters{model=\"%s\"} %zu\n", all[i]->id,
            all[i]->model.num_params);
        models_put(all[i]);
    }
    put(&b,
        "# HELP charlm_generations_in_flight Generations admitted and not finished.\n"
        "# TYPE charlm_generations_in_flight gauge\n"
        "charlm_generations_in_flight %d\n"
        "# HELP charlm_generations_max_concurrent The --max-concurrent limit.\n"
        "# TYPE charlm_generations_max_concurrent gauge\n"
        "charlm_generations_max_concurrent %d\n"
        "# HELP charlm_replies_waiting Replies whose generations are done, not yet read whole "
        "by their clients.\n"
        "# TYPE charlm_replies_waiting gauge\n"
        "charlm_replies_waiting %d\n"
        "# HELP charlm_reply_bytes_waiting Memory those replies hold: their generations' text "
        "and log probabilities, and encoding buffers.\n"
        "# TYPE charlm_reply_bytes_waiting gauge\n"
        "charlm_reply_bytes_waiting %ld\n"
        "# HELP charlm_start_time_seconds Unix time the server started.\n"
        "# TYPE charlm_start_time_seconds gauge\n"
        "charlm_start_time_seconds %ld\n",
        atomic_load(&srv.in_flight), srv.cfg.max_concurrent, atomic_load(&srv.replies_waiting),
        atomic_load(&srv.reply_bytes_waiting), (long)srv.started);

    if (b.failed) {
        free(b.s);
        return respond_error(conn, rq, 503, "out of memory", NULL);
    }
    return respond(conn, rq, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.s, b.len);
}
