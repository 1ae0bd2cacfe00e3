#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "metrics.h"
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
} m;

struct MetricsModel {
    int refs;      // the loaded models with this id; under series_mu
    size_t params; // the latest loaded's parameter count; under series_mu
    atomic_ulong generated_chars, prompt_chars;
    atomic_ulong generations[FINISH_REASONS];
    MetricsModel *next;
    const char *id;    // in the same allocation
    const char *label; // id as a label value, escaped once when the series is made
};

// The `model` series, in the order their ids were first loaded.
static MetricsModel *series;
static pthread_mutex_t series_mu = PTHREAD_MUTEX_INITIALIZER;

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

// A label value as the text exposition format writes it: backslash, double quote and
// newline escaped. out holds 2 * strlen(value) + 1 bytes.
static void label_escape(const char *value, char *out) {
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"' || *p == '\n') *out++ = '\\';
        *out++ = *p == '\n' ? 'n' : *p;
    }
    *out = '\0';
}

static MetricsModel *series_new(const char *id) {
    size_t len = strlen(id);
    MetricsModel *mm = calloc(1, sizeof(*mm) + len + 1 + 2 * len + 1);
    if (!mm) return NULL;
    char *own = (char *)(mm + 1), *label = own + len + 1;
    memcpy(own, id, len + 1);
    label_escape(id, label);
    mm->id = own;
    mm->label = label;
    return mm;
}

MetricsModel *metrics_model_get(const char *id, size_t params) {
    pthread_mutex_lock(&series_mu);
    MetricsModel **at = &series;
    while (*at && strcmp((*at)->id, id) != 0) at = &(*at)->next;
    if (!*at) *at = series_new(id);
    MetricsModel *mm = *at;
    if (mm) {
        mm->refs++;
        mm->params = params;
    }
    pthread_mutex_unlock(&series_mu);
    return mm;
}

void metrics_model_put(MetricsModel *mm) {
    if (!mm) return;
    pthread_mutex_lock(&series_mu);
    if (--mm->refs == 0) {
        MetricsModel **at = &series;
        while (*at != mm) at = &(*at)->next;
        *at = mm->next;
        free(mm);
    }
    pthread_mutex_unlock(&series_mu);
}

void metrics_generation(MetricsModel *mm, int prompt_chars, int generated_chars,
                        FinishReason finish) {
    if (!mm) return;
    atomic_fetch_add(&mm->prompt_chars, (unsigned long)prompt_chars);
    atomic_fetch_add(&mm->generated_chars, (unsigned long)generated_chars);
    if ((unsigned)finish < FINISH_REASONS) atomic_fetch_add(&mm->generations[finish], 1);
}

enum MHD_Result metrics_handle(struct MHD_Connection *conn, Request *rq) {
    Buf b;
    if (buf_init(&b, 8192) != 0) return respond_error(conn, rq, 503, "out of memory", NULL);

    buf_printf(&b, "# HELP charlm_requests_total HTTP requests answered, by route and status.\n"
                   "# TYPE charlm_requests_total counter\n");
    for (int r = 0; r < nlabels; r++)
        for (int s = 100; s < NSTATUS; s++) {
            unsigned long v = atomic_load(&m.requests[r][s]);
            if (v)
                buf_printf(&b, "charlm_requests_total{route=\"%s\",status=\"%d\"} %lu\n", labels[r],
                           s, v);
        }

    buf_printf(&b,
               "# HELP charlm_request_duration_seconds Time from request to last byte, by route.\n"
               "# TYPE charlm_request_duration_seconds histogram\n");
    for (int r = 0; r < nlabels; r++) {
        unsigned long counts[NBUCKETS + 1], total = 0;
        for (int i = 0; i <= NBUCKETS; i++) total += counts[i] = atomic_load(&m.latency[r][i]);
        if (!total) continue;
        unsigned long cum = 0;
        for (int i = 0; i < NBUCKETS; i++) {
            cum += counts[i];
            buf_printf(&b, "charlm_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
                       labels[r], buckets[i], cum);
        }
        buf_printf(&b, "charlm_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n",
                   labels[r], total);
        buf_printf(&b, "charlm_request_duration_seconds_sum{route=\"%s\"} %.6f\n", labels[r],
                   (double)atomic_load(&m.latency_us[r]) / 1e6);
        buf_printf(&b, "charlm_request_duration_seconds_count{route=\"%s\"} %lu\n", labels[r],
                   total);
    }

    // The series come and go with the models loaded: read them under their lock.
    pthread_mutex_lock(&series_mu);
    buf_printf(
        &b, "# HELP charlm_generated_chars_total Characters generated (stop sequences included), "
            "by model.\n"
            "# TYPE charlm_generated_chars_total counter\n");
    for (const MetricsModel *mm = series; mm; mm = mm->next)
        buf_printf(&b, "charlm_generated_chars_total{model=\"%s\"} %lu\n", mm->label,
                   atomic_load(&mm->generated_chars));
    buf_printf(&b,
               "# HELP charlm_prompt_chars_total Prompt characters fed to the model, by model.\n"
               "# TYPE charlm_prompt_chars_total counter\n");
    for (const MetricsModel *mm = series; mm; mm = mm->next)
        buf_printf(&b, "charlm_prompt_chars_total{model=\"%s\"} %lu\n", mm->label,
                   atomic_load(&mm->prompt_chars));
    buf_printf(&b,
               "# HELP charlm_generations_total Generations finished, by model and finish reason.\n"
               "# TYPE charlm_generations_total counter\n");
    for (const MetricsModel *mm = series; mm; mm = mm->next)
        for (int f = FINISH_LENGTH; f < FINISH_REASONS; f++)
            buf_printf(&b, "charlm_generations_total{model=\"%s\",finish_reason=\"%s\"} %lu\n",
                       mm->label, finish_reason_name((FinishReason)f),
                       atomic_load(&mm->generations[f]));
    buf_printf(&b, "# HELP charlm_model_parameters Parameters of each loaded model.\n"
                   "# TYPE charlm_model_parameters gauge\n");
    for (const MetricsModel *mm = series; mm; mm = mm->next)
        buf_printf(&b, "charlm_model_parameters{model=\"%s\"} %zu\n", mm->label, mm->params);
    pthread_mutex_unlock(&series_mu);
    buf_printf(
        &b,
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
        "# HELP charlm_reply_bytes_waiting_max The --max-waiting-bytes limit.\n"
        "# TYPE charlm_reply_bytes_waiting_max gauge\n"
        "charlm_reply_bytes_waiting_max %ld\n"
        "# HELP charlm_start_time_seconds Unix time the server started.\n"
        "# TYPE charlm_start_time_seconds gauge\n"
        "charlm_start_time_seconds %ld\n",
        atomic_load(&srv.in_flight), srv.cfg.max_concurrent, atomic_load(&srv.replies_waiting),
        atomic_load(&srv.reply_bytes_waiting), srv.cfg.max_waiting_bytes, (long)srv.started);
    buf_printf(
        &b,
        "# HELP charlm_connections_closed_total Connections the server shut down: no progress "
        "for --idle-timeout, or giving way at --max-connections.\n"
        "# TYPE charlm_connections_closed_total counter\n"
        "charlm_connections_closed_total{reason=\"idle_timeout\"} %ld\n"
        "charlm_connections_closed_total{reason=\"evicted\"} %ld\n",
        atomic_load(&srv.conns_timed_out), atomic_load(&srv.conns_evicted));

    if (b.failed) {
        buf_free(&b);
        return respond_error(conn, rq, 503, "out of memory", NULL);
    }
    return respond(conn, rq, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.s, b.len);
}
