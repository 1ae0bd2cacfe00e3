/*
 * decode_ceiling — how many chars/s could the server's decode steps reach at a batch shape?
 *
 *   decode_ceiling [--model DIR] [--batches 1,8,32,64] [--workers 2] [--reps 7] [--rep-ms 30]
 *
 * One decode step for n streams is, per layer, the recurrent product [n, H] x [H, 4H]
 * (and above layer 0 the input projection [n, H] x [H, 4H]; layer 0's input is a row of a
 * precomputed table), then the output [n, H] x [H, V]. For each n this times
 *   - sgemm:  exactly those products with OpenBLAS cblas_sgemm, 1 thread;
 *   - infer:  charlm's infer_step (those products with its own kernel, plus the cell);
 * each on one thread over the whole batch, and split the way the server splits a batch
 * over its workers: W threads each stepping about n/W of the rows, at the same time, on
 * the same weights. A split's step time is the slowest worker's, so its chars/s ceiling is
 * n / that time. The ceiling the server is compared with is the faster of the two splits.
 *
 * A single stream reads every weight once per step, so it is also bounded by how fast one
 * core streams bytes: the run measures that too, on a 256 MB buffer (far larger than any
 * cache: DRAM) and on a buffer of the weights' size (which on most machines stays in L3
 * between steps, as the weights do in the server), and divides by the bytes per step.
 *
 * Every figure is the median of --reps repetitions, each the mean over enough consecutive
 * steps to last --rep-ms; bandwidths are the best of 5 reads. The last stdout line is
 * JSON for bench/concurrency.sh.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artefacts.h"
#include "error.h"
#include "infer.h"

#define MAX_BATCHES 16
#define MAX_WORKERS 64
#define MAX_REPS    101

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "decode_ceiling: out of memory\n");
        exit(1);
    }
    return p;
}

typedef enum { KIND_SGEMM, KIND_INFER } Kind;

// One thread's share of a step: its rows, and the buffers either kind needs for them.
typedef struct {
    const Model *model;
    Kind kind;
    int n;        // rows; 0 = this worker idles in the step
    int steps;    // consecutive steps per timed repetition
    double secs;  // the last repetition's wall time
    float *x;     // [n, H] sgemm's left operand (a layer's input or state)
    float *gates; // [n, 4H]
    float *logits;
    InferScratch scratch;
    StreamState *st;
    StreamState **states;
    int *ids;
    pthread_barrier_t *start;
} Rows;

static void rows_init(Rows *r, const Model *m, Kind kind, int n) {
    const ModelConfig *cf = &m->config;
    char err[ERR_LEN];
    memset(r, 0, sizeof(*r));
    r->model = m;
    r->kind = kind;
    r->n = n;
    r->x = xcalloc((size_t)n * cf->hidden, sizeof(float));
    r->gates = xcalloc((size_t)n * 4 * cf->hidden, sizeof(float));
    r->logits = xcalloc((size_t)n * cf->vocab_size, sizeof(float));
    // Finite, varied inputs: no denormal slow paths, no all-zero shortcut.
    for (size_t i = 0; i < (size_t)n * cf->hidden; i++)
        r->x[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    r->st = xcalloc((size_t)n, sizeof(StreamState));
    r->states = xcalloc((size_t)n, sizeof(StreamState *));
    r->ids = xcalloc((size_t)n, sizeof(int));
    if (infer_scratch_alloc(&r->scratch, cf, n, err)) {
        fprintf(stderr, "decode_ceiling: %s\n", err);
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        if (stream_state_alloc(&r->st[i], cf, err)) {
            fprintf(stderr, "decode_ceiling: %s\n", err);
            exit(1);
        }
        r->states[i] = &r->st[i];
        r->ids[i] = (i * 31 + 7) % cf->vocab_size;
    }
}

static void rows_free(Rows *r) {
    for (int i = 0; i < r->n; i++) stream_state_free(&r->st[i]);
    infer_scratch_free(&r->scratch);
    free(r->x);
    free(r->gates);
    free(r->logits);
    free(r->st);
    free(r->states);
    free(r->ids);
}

// C[n, out] (+)= A[n, H] @ W[H, out]. W is infer_prepare's buffer for that matrix read
// as plain row-major [H, out]: the bytes infer_step streams (sgemm's time does not depend
// on their values, and its own packing ignores infer_step's strip order).
static void product(int n, int out, int H, const float *a, const float *w, float beta, float *c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, H, 1.0f, a, H, w, out, beta, c,
                out);
}

static void step(Rows *r) {
    if (r->n == 0) return;
    const Model *m = r->model;
    if (r->kind == KIND_INFER) {
        infer_step(m, &r->scratch, r->n, r->ids, r->states, r->logits);
        return;
    }
    int H = m->config.hidden, G = 4 * H, V = m->config.vocab_size;
    for (int l = 0; l < m->config.layers; l++) {
        float beta = 0.0f;
        if (l > 0) {
            product(r->n, G, H, r->x, m->infer.w_ih[l], 0.0f, r->gates);
            beta = 1.0f;
        }
        product(r->n, G, H, r->x, m->infer.w_hh[l], beta, r->gates);
    }
    product(r->n, V, H, r->x, m->infer.fc_w, 0.0f, r->logits);
}

static void *rows_run(void *arg) {
    Rows *r = arg;
    pthread_barrier_wait(r->start);
    double t0 = now();
    for (int i = 0; i < r->steps; i++) step(r);
    r->secs = now() - t0;
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Seconds per step of n rows of kind over w threads started together, median of reps;
 * each thread gets n / w rows, the first n % w one more (the server's workers take
 * streams as they come, so an even share is the best they can do). */
static double time_step(const Model *m, Kind kind, int n, int w, int reps, double rep_secs) {
    Rows rows[MAX_WORKERS];
    pthread_t tid[MAX_WORKERS];
    pthread_barrier_t start;
    if (w > n) w = n; // a worker with no rows would only wait
    pthread_barrier_init(&start, NULL, (unsigned)w);
    for (int i = 0; i < w; i++) {
        rows_init(&rows[i], m, kind, n / w + (i < n % w));
        rows[i].start = &start;
    }
    // Calibrate on the whole split: enough steps for rep_secs, at least 3.
    int steps = 3;
    for (;;) {
        for (int i = 0; i < w; i++) rows[i].steps = steps;
        for (int i = 1; i < w; i++) pthread_create(&tid[i], NULL, rows_run, &rows[i]);
        rows_run(&rows[0]);
        for (int i = 1; i < w; i++) pthread_join(tid[i], NULL);
        double t = 0;
        for (int i = 0; i < w; i++)
            if (rows[i].secs > t) t = rows[i].secs;
        if (t >= rep_secs || steps > (1 << 24)) break;
        double want = steps * rep_secs / (t > 1e-6 ? t : 1e-6) * 1.1;
        steps = want > 2.0 * steps ? (int)(want < 1e8 ? want : 1e8) : 2 * steps;
    }
    double per_step[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        for (int i = 1; i < w; i++) pthread_create(&tid[i], NULL, rows_run, &rows[i]);
        rows_run(&rows[0]);
        for (int i = 1; i < w; i++) pthread_join(tid[i], NULL);
        double t = 0;
        for (int i = 0; i < w; i++)
            if (rows[i].secs > t) t = rows[i].secs;
        per_step[r] = t / steps;
    }
    for (int i = 0; i < w; i++) rows_free(&rows[i]);
    pthread_barrier_destroy(&start);
    return median(per_step, reps);
}

/* Bytes per second one thread reads from buf, best of 5 passes of passes reads each.
 * Integer adds: the compiler vectorises them, so the loop is bound by the loads. */
static double read_bandwidth(const uint64_t *buf, size_t words, int passes) {
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        for (int p = 0; p < passes; p++) {
            uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (size_t i = 0; i + 4 <= words; i += 4) {
                s0 += buf[i];
                s1 += buf[i + 1];
                s2 += buf[i + 2];
                s3 += buf[i + 3];
            }
            sink += s0 + s1 + s2 + s3;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    (void)sink;
    return (double)words * 8 * passes / best;
}

static double bandwidth_of(size_t bytes, int passes) {
    size_t words = bytes / 8;
    uint64_t *buf = malloc(words * 8);
    if (!buf) {
        fprintf(stderr, "decode_ceiling: out of memory for a %zu-byte buffer\n", bytes);
        exit(1);
    }
    for (size_t i = 0; i < words; i++) buf[i] = i; // touch every page before timing
    read_bandwidth(buf, words, 1);
    double bw = read_bandwidth(buf, words, passes);
    free(buf);
    return bw;
}

static int parse_int(const char *flag, const char *v, int lo, int hi) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "decode_ceiling: %s must be an integer in %d..%d\n", flag, lo, hi);
        exit(2);
    }
    return (int)x;
}

static int parse_batches(const char *v, int *out) {
    char buf[256];
    int n = 0;
    snprintf(buf, sizeof(buf), "%s", v);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_BATCHES) {
            fprintf(stderr, "decode_ceiling: at most %d batch sizes\n", MAX_BATCHES);
            exit(2);
        }
        out[n++] = parse_int("--batches", tok, 1, 4096);
    }
    if (n == 0) {
        fprintf(stderr, "decode_ceiling: --batches needs at least one size\n");
        exit(2);
    }
    return n;
}

typedef struct {
    double secs, cps, gflops;
} Figure;

static Figure figure(double secs, int n, double flops_per_row) {
    return (Figure){secs, n / secs, flops_per_row * n / secs * 1e-9};
}

static void print_json_figure(const char *name, Figure f, const char *sep) {
    printf("\"%s\": {\"us\": %.3f, \"chars_per_s\": %.1f, \"gflops\": %.3f}%s", name, f.secs * 1e6,
           f.cps, f.gflops, sep);
}

int main(int argc, char **argv) {
    const char *dir = "artefacts";
    int batches[MAX_BATCHES] = {1, 8, 32, 64}, nb = 4, workers = 2, reps = 7, rep_ms = 30;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: decode_ceiling [--model DIR] [--batches 1,8,32,64] "
                            "[--workers W] [--reps R] [--rep-ms MS]\n");
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--model"))
            dir = v;
        else if (!strcmp(f, "--batches"))
            nb = parse_batches(v, batches);
        else if (!strcmp(f, "--workers"))
            workers = parse_int(f, v, 1, MAX_WORKERS);
        else if (!strcmp(f, "--reps"))
            reps = parse_int(f, v, 1, MAX_REPS);
        else if (!strcmp(f, "--rep-ms"))
            rep_ms = parse_int(f, v, 1, 60000);
        else {
            fprintf(stderr, "decode_ceiling: unknown flag %s\n", f);
            return 2;
        }
    }

    Model model = {0};
    Vocab vocab;
    ModelInfo info;
    char err[ERR_LEN];
    if (artefacts_load(dir, &model, &vocab, &info, err)) {
        fprintf(stderr, "decode_ceiling: %s\n", err);
        return 1;
    }
    openblas_set_num_threads(1);
    const ModelConfig *cf = &model.config;
    double H = cf->hidden, G = 4 * H, V = cf->vocab_size, L = cf->layers;
    // Per row and step: 2L - 1 products [H] x [H, 4H] and one [H] x [H, V].
    double flops_row = 2.0 * ((2 * L - 1) * H * G + H * V);
    // What a step streams whatever n is: those matrices, the biases above layer 0 and the
    // output's, and one row of layer 0's table (a single stream's case).
    double weight_bytes = 4.0 * ((2 * L - 1) * H * G + H * V + 2 * (L - 1) * G + V + G);

    printf("decode step: V=%d E=%d H=%d L=%d; %.2f MFLOP per row, %.2f MB of weights per step; "
           "%d workers in the split; median of %d reps of >= %d ms\n",
           cf->vocab_size, cf->embed, cf->hidden, cf->layers, flops_row * 1e-6, weight_bytes * 1e-6,
           workers, reps, rep_ms);
    double bw_dram = bandwidth_of((size_t)256 << 20, 1);
    double bw_cache = bandwidth_of((size_t)weight_bytes, 20);
    printf("read bandwidth, 1 thread, best of 5: 256 MB buffer %.2f GB/s; weights-sized %.2f MB "
           "buffer %.2f GB/s\n",
           bw_dram * 1e-9, weight_bytes * 1e-6, bw_cache * 1e-9);
    printf("single-stream bound = bandwidth / weight bytes per step: %.0f chars/s from DRAM, "
           "%.0f chars/s with the weights cached\n\n",
           bw_dram / weight_bytes, bw_cache / weight_bytes);

    printf("%5s  %-28s %10s %12s %9s\n", "n", "configuration", "us/step", "chars/s", "GFLOP/s");
    Figure fig[MAX_BATCHES][4];
    const char *names[4] = {"sgemm", "infer", "sgemm_split", "infer_split"};
    for (int b = 0; b < nb; b++) {
        int n = batches[b];
        double rs = rep_ms * 1e-3;
        fig[b][0] = figure(time_step(&model, KIND_SGEMM, n, 1, reps, rs), n, flops_row);
        fig[b][1] = figure(time_step(&model, KIND_INFER, n, 1, reps, rs), n, flops_row);
        fig[b][2] = figure(time_step(&model, KIND_SGEMM, n, workers, reps, rs), n, flops_row);
        fig[b][3] = figure(time_step(&model, KIND_INFER, n, workers, reps, rs), n, flops_row);
        char label[4][64];
        snprintf(label[0], sizeof(label[0]), "sgemm, 1 thread");
        snprintf(label[1], sizeof(label[1]), "infer_step, 1 thread");
        snprintf(label[2], sizeof(label[2]), "sgemm, %d x ~%d rows", workers < n ? workers : n,
                 (n + workers - 1) / workers);
        snprintf(label[3], sizeof(label[3]), "infer_step, %d x ~%d rows", workers < n ? workers : n,
                 (n + workers - 1) / workers);
        for (int k = 0; k < 4; k++)
            printf("%5d  %-28s %10.1f %12.0f %9.2f\n", n, label[k], fig[b][k].secs * 1e6,
                   fig[b][k].cps, fig[b][k].gflops);
        int best = fig[b][2].cps >= fig[b][3].cps ? 2 : 3;
        printf("%5d  %-28s %10s %12.0f   (%s)\n", n, "ceiling (faster split)", "", fig[b][best].cps,
               names[best]);
    }

    printf("{\"vocab\": %d, \"embed\": %d, \"hidden\": %d, \"layers\": %d, \"workers\": %d, "
           "\"reps\": %d, \"stat\": \"median\", \"flops_per_row\": %.0f, \"weight_bytes\": %.0f, "
           "\"bandwidth_dram_gbs\": %.3f, \"bandwidth_cached_gbs\": %.3f, "
           "\"single_stream_bound\": %.1f, \"single_stream_bound_cached\": %.1f, \"batches\": [",
           cf->vocab_size, cf->embed, cf->hidden, cf->layers, workers, reps, flops_row,
           weight_bytes, bw_dram * 1e-9, bw_cache * 1e-9, bw_dram / weight_bytes,
           bw_cache / weight_bytes);
    for (int b = 0; b < nb; b++) {
        int best = fig[b][2].cps >= fig[b][3].cps ? 2 : 3;
        printf("{\"n\": %d, ", batches[b]);
        for (int k = 0; k < 4; k++) print_json_figure(names[k], fig[b][k], ", ");
        printf("\"ceiling\": %.1f, \"ceiling_kind\": \"%s\"}%s", fig[b][best].cps, names[best],
               b + 1 < nb ? ", " : "");
    }
    printf("]}\n");
    model_free(&model);
    vocab_free(&vocab);
    return 0;
}
