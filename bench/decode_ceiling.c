/*
 * decode_ceiling — how many chars/s could the server's decode steps reach at a batch shape?
 *
 *   decode_ceiling [--model DIR] [--batches 1,8,32,64] [--workers 2] [--reps 7] [--rep-ms 30]
 *
 * One decode step for n streams is a list of matrix products over the n rows, the
 * architecture's (for each, every row's [in] times an [in, out] weight matrix):
 *   LSTM: per layer the recurrent product [H] x [H, 4H], above layer 0 the input
 *         projection [H] x [H, 4H] (layer 0's input is a row of a precomputed table), then
 *         the output [H] x [H, V];
 *   GPT:  per block attn.c_attn [C] x [C, 3C], attn.c_proj [C] x [C, C], mlp.c_fc
 *         [C] x [C, 4C], mlp.c_proj [4C] x [4C, C], then the tied head [C] x [C, V].
 * For each n this times
 *   - sgemm:  exactly those products with OpenBLAS cblas_sgemm, 1 thread;
 *   - infer:  the architecture's own step through the model seam (arch.h: those products
 *             with charlm's strip kernel, plus the cell, or the norms, GELU and attention);
 * each on one thread over the whole batch, and split the way the server splits a batch
 * over its workers: W threads each stepping about n/W of the rows, at the same time, on
 * the same weights. A split's step time is the slowest worker's, so its chars/s ceiling is
 * n / that time. The ceiling the server is compared with is the faster of the two splits.
 * A GPT's infer streams attend over their caches: they are fed step after step and all
 * emptied when full, so their positions sweep 0 .. block - 1 (attention at block / 2 on
 * average); the sgemm figure has no attention at all.
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

#include "arch.h"
#include "artefacts.h"
#include "error.h"
#include "gpt.h"

#define MAX_BATCHES  16
#define MAX_WORKERS  64
#define MAX_REPS     101
#define MAX_PRODUCTS (4 * 64 + 1)

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

/* A decode step's products, one row's [in] x [in, out] each, and what the step streams. */
typedef struct {
    int count;
    int in[MAX_PRODUCTS], out[MAX_PRODUCTS];
    float *w[MAX_PRODUCTS]; // [in, out] row-major: sgemm's time does not depend on the values
    int max_in, max_out;
    double flops_row;    // 2 x the multiply-adds of one row
    double weight_bytes; // the matrices plus the vectors a step reads whatever n is
} Products;

static void products_add(Products *p, int in, int out) {
    int i = p->count++;
    p->in[i] = in;
    p->out[i] = out;
    p->w[i] = xcalloc((size_t)in * out, sizeof(float));
    for (size_t k = 0; k < (size_t)in * out; k++) p->w[i][k] = (float)(k % 101) * 1e-4f - 5e-3f;
    if (in > p->max_in) p->max_in = in;
    if (out > p->max_out) p->max_out = out;
    p->flops_row += 2.0 * in * out;
    p->weight_bytes += 4.0 * in * out;
}

static int products_of(const Model *m, Products *p, char *err) {
    memset(p, 0, sizeof *p);
    int V = m->vocab_size, L = (int)arch_field(m, "layers");
    if (!strcmp(m->arch->name, "lstm")) {
        int H = (int)arch_field(m, "hidden"), G = 4 * H;
        for (int l = 0; l < L; l++) {
            if (l > 0) products_add(p, H, G);
            products_add(p, H, G);
        }
        products_add(p, H, V);
        // The biases above layer 0 and the output's, and one row of layer 0's table.
        p->weight_bytes += 4.0 * (2.0 * (L - 1) * G + V + G);
        return 0;
    }
    if (!strcmp(m->arch->name, "gpt")) {
        int C = (int)arch_field(m, "embed"), bias = (int)arch_field(m, "bias");
        int layernorm = arch_field(m, "norm") == GPT_LAYERNORM;
        for (int l = 0; l < L; l++) {
            products_add(p, C, 3 * C);
            products_add(p, C, C);
            products_add(p, C, 4 * C);
            products_add(p, 4 * C, C);
        }
        products_add(p, C, V);
        // Per block two norms' weights (and biases), the Linear biases; the final norm;
        // one row each of wte and wpe.
        double norms = (2.0 * L + 1) * C * (layernorm && bias ? 2 : 1);
        p->weight_bytes += 4.0 * (norms + (bias ? 9.0 * C * L : 0) + 2.0 * C);
        return 0;
    }
    return err_set(err, "no decode products for architecture %s", m->arch->name);
}

static void products_free(Products *p) {
    for (int i = 0; i < p->count; i++) free(p->w[i]);
}

typedef enum { KIND_SGEMM, KIND_INFER } Kind;

// One thread's share of a step: its rows, and the buffers either kind needs for them.
typedef struct {
    const Model *model;
    const Products *prod;
    Kind kind;
    int n;       // rows; 0 = this worker idles in the step
    int steps;   // consecutive steps per timed repetition
    double secs; // the last repetition's wall time
    float *x;    // [n, max_in] sgemm's left operand
    float *y;    // [n, max_out] its result
    float *logits;
    void *scratch;
    void **states;
    int fed; // steps the states have taken since they were last emptied
    int *ids;
    pthread_barrier_t *start;
} Rows;

static void rows_init(Rows *r, const Model *m, const Products *p, Kind kind, int n) {
    char err[ERR_LEN];
    memset(r, 0, sizeof(*r));
    r->model = m;
    r->prod = p;
    r->kind = kind;
    r->n = n;
    r->x = xcalloc((size_t)n * p->max_in, sizeof(float));
    r->y = xcalloc((size_t)n * p->max_out, sizeof(float));
    r->logits = xcalloc((size_t)n * m->vocab_size, sizeof(float));
    // Finite, varied inputs: no denormal slow paths, no all-zero shortcut.
    for (size_t i = 0; i < (size_t)n * p->max_in; i++)
        r->x[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    r->states = xcalloc((size_t)n, sizeof(void *));
    r->ids = xcalloc((size_t)n, sizeof(int));
    if (!(r->scratch = m->arch->scratch_alloc(m, n, err))) {
        fprintf(stderr, "decode_ceiling: %s\n", err);
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        if (!(r->states[i] = m->arch->state_alloc(m, err))) {
            fprintf(stderr, "decode_ceiling: %s\n", err);
            exit(1);
        }
        r->ids[i] = (i * 31 + 7) % m->vocab_size;
    }
}

static void rows_free(Rows *r) {
    const Arch *a = r->model->arch;
    for (int i = 0; i < r->n; i++) a->state_free(r->states[i]);
    a->scratch_free(r->scratch);
    free(r->x);
    free(r->y);
    free(r->logits);
    free(r->states);
    free(r->ids);
}

static void step(Rows *r) {
    if (r->n == 0) return;
    const Model *m = r->model;
    if (r->kind == KIND_INFER) {
        int context = m->arch->context(m);
        if (context > 0 && r->fed == context) {
            for (int i = 0; i < r->n; i++) m->arch->state_reset(r->states[i]);
            r->fed = 0;
        }
        m->arch->step(m, r->scratch, r->n, r->ids, r->states, r->logits);
        r->fed++;
        return;
    }
    const Products *p = r->prod;
    for (int i = 0; i < p->count; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r->n, p->out[i], p->in[i], 1.0f,
                    r->x, p->in[i], p->w[i], p->out[i], 0.0f, r->y, p->out[i]);
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
static double time_step(const Model *m, const Products *p, Kind kind, int n, int w, int reps,
                        double rep_secs) {
    Rows rows[MAX_WORKERS];
    pthread_t tid[MAX_WORKERS];
    pthread_barrier_t start;
    if (w > n) w = n; // a worker with no rows would only wait
    pthread_barrier_init(&start, NULL, (unsigned)w);
    for (int i = 0; i < w; i++) {
        rows_init(&rows[i], m, p, kind, n / w + (i < n % w));
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
    Products prod;
    if (products_of(&model, &prod, err)) {
        fprintf(stderr, "decode_ceiling: %s\n", err);
        return 1;
    }
    double flops_row = prod.flops_row, weight_bytes = prod.weight_bytes;
    ArchField fld[ARCH_MAX_FIELDS];
    int nf = model.arch->fields(&model, fld);
    char shape[512];
    int len = snprintf(shape, sizeof shape, "%s V=%d", model.arch->name, model.vocab_size);
    for (int i = 0; i < nf && len < (int)sizeof shape; i++)
        len +=
            fld[i].text
                ? snprintf(shape + len, sizeof shape - len, " %s=%s", fld[i].name, fld[i].text)
                : snprintf(shape + len, sizeof shape - len, " %s=%ld", fld[i].name, fld[i].number);

    printf("decode step: %s; %d products, %.2f MFLOP per row, %.2f MB of weights per step; "
           "%d workers in the split; median of %d reps of >= %d ms\n",
           shape, prod.count, flops_row * 1e-6, weight_bytes * 1e-6, workers, reps, rep_ms);
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
        fig[b][0] = figure(time_step(&model, &prod, KIND_SGEMM, n, 1, reps, rs), n, flops_row);
        fig[b][1] = figure(time_step(&model, &prod, KIND_INFER, n, 1, reps, rs), n, flops_row);
        fig[b][2] =
            figure(time_step(&model, &prod, KIND_SGEMM, n, workers, reps, rs), n, flops_row);
        fig[b][3] =
            figure(time_step(&model, &prod, KIND_INFER, n, workers, reps, rs), n, flops_row);
        char label[4][64];
        snprintf(label[0], sizeof(label[0]), "sgemm, 1 thread");
        snprintf(label[1], sizeof(label[1]), "step, 1 thread");
        snprintf(label[2], sizeof(label[2]), "sgemm, %d x ~%d rows", workers < n ? workers : n,
                 (n + workers - 1) / workers);
        snprintf(label[3], sizeof(label[3]), "step, %d x ~%d rows", workers < n ? workers : n,
                 (n + workers - 1) / workers);
        for (int k = 0; k < 4; k++)
            printf("%5d  %-28s %10.1f %12.0f %9.2f\n", n, label[k], fig[b][k].secs * 1e6,
                   fig[b][k].cps, fig[b][k].gflops);
        int best = fig[b][2].cps >= fig[b][3].cps ? 2 : 3;
        printf("%5d  %-28s %10s %12.0f   (%s)\n", n, "ceiling (faster split)", "", fig[b][best].cps,
               names[best]);
    }

    printf("{\"arch\": \"%s\", \"vocab\": %d, ", model.arch->name, model.vocab_size);
    for (int i = 0; i < nf; i++)
        if (fld[i].text)
            printf("\"%s\": \"%s\", ", fld[i].name, fld[i].text);
        else
            printf("\"%s\": %ld, ", fld[i].name, fld[i].number);
    printf("\"context\": %d, \"workers\": %d, \"reps\": %d, \"stat\": \"median\", "
           "\"flops_per_row\": %.0f, \"weight_bytes\": %.0f, "
           "\"bandwidth_dram_gbs\": %.3f, \"bandwidth_cached_gbs\": %.3f, "
           "\"single_stream_bound\": %.1f, \"single_stream_bound_cached\": %.1f, \"batches\": [",
           model.arch->context(&model), workers, reps, flops_row, weight_bytes, bw_dram * 1e-9,
           bw_cache * 1e-9, bw_dram / weight_bytes, bw_cache / weight_bytes);
    for (int b = 0; b < nb; b++) {
        int best = fig[b][2].cps >= fig[b][3].cps ? 2 : 3;
        printf("{\"n\": %d, ", batches[b]);
        for (int k = 0; k < 4; k++) print_json_figure(names[k], fig[b][k], ", ");
        printf("\"ceiling\": %.1f, \"ceiling_kind\": \"%s\"}%s", fig[b][best].cps, names[best],
               b + 1 < nb ? ", " : "");
    }
    printf("]}\n");
    products_free(&prod);
    arch_free(&model);
    vocab_free(&vocab);
    return 0;
}
