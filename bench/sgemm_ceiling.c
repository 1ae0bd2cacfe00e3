/*
 * sgemm_ceiling — how fast could one training step be if it were nothing but sgemm?
 *
 * Times OpenBLAS sgemm at exactly the shapes (and transposes) core/lstm.c uses for one
 * training step of the default model, and turns the total into a tokens/s ceiling for
 * charlm-train: everything else a step does (gates, softmax, Adam) only adds time.
 *
 *   sgemm_ceiling [--embed 64] [--hidden 256] [--vocab 83] [--layers 1] [--seq 128]
 *                 [--batch 64] [--reps 5]
 *   sgemm_ceiling --arch gpt [--layers 4] [--embed 256] [--block 128] [--batch 32]
 *                 [--vocab 65] [--reps 5]
 *
 * With --arch gpt the products are those of core/gpt_train.c's step over a [batch, block]
 * window: per layer the four Linear layers (c_attn C -> 3C, attn.c_proj C -> C, c_fc
 * C -> 4C, mlp.c_proj 4C -> C) and the tied head C -> V, forward, then backward's two
 * products per Linear (the input's gradient and the weight's). Attention's own products
 * (q k^T, att v) are loops in core/gpt_ops.c, not sgemm, and are not counted: the ceiling
 * is what the step would cost if its Linear layers were all it did.
 *
 * Three configurations: 1 thread over the whole batch; OpenBLAS's own 2 threads over the
 * whole batch; and 2 pthreads each doing half the batch with 1-thread OpenBLAS, which
 * is how charlm-train splits a step. Each is the best of --reps timed steps, because
 * the machine is shared. The last stdout line is JSON for bench/train_bench.sh.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int gpt; // 0: the LSTM (E, H used), 1: the GPT (E = C, H unused, T = block)
    int E, H, V, L, T, B;
} Shape;

typedef struct {
    const char *what;
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k;
    int repeat; // how many times per step (T for per-time-step products)
} Gemm;

#define MAX_GEMMS (16 + 12 * 16) // the GPT at 16 layers is the most

// One Linear IC -> OC over N rows as core/gpt_ops.c issues it: forward out = in w^T,
// backward din = dout w and dw += dout^T in.
static int linear_gemms(Gemm *g, const char *fwd, const char *bwd_in, const char *bwd_w, int N,
                        int IC, int OC, int backward) {
    if (!backward) {
        g[0] = (Gemm){fwd, CblasNoTrans, CblasTrans, N, OC, IC, 1};
        return 1;
    }
    g[0] = (Gemm){bwd_in, CblasNoTrans, CblasNoTrans, N, IC, OC, 1};
    g[1] = (Gemm){bwd_w, CblasTrans, CblasNoTrans, OC, IC, N, 1};
    return 2;
}

// The products of one GPT forward + backward over a [B, T] batch, as core/gpt_train.c
// issues them.
static int gpt_step_gemms(const Shape *s, int B, Gemm *g) {
    int n = 0, N = B * s->T, C = s->E;
    for (int l = 0; l < s->L; l++) {
        n += linear_gemms(g + n, "fwd c_attn", "", "", N, C, 3 * C, 0);
        n += linear_gemms(g + n, "fwd attn.c_proj", "", "", N, C, C, 0);
        n += linear_gemms(g + n, "fwd c_fc", "", "", N, C, 4 * C, 0);
        n += linear_gemms(g + n, "fwd mlp.c_proj", "", "", N, 4 * C, C, 0);
    }
    n += linear_gemms(g + n, "fwd head (wte)", "", "", N, C, s->V, 0);
    n += linear_gemms(g + n, "", "bwd head din", "bwd head dwte", N, C, s->V, 1);
    for (int l = s->L - 1; l >= 0; l--) {
        n += linear_gemms(g + n, "", "bwd mlp.c_proj din", "bwd mlp.c_proj dw", N, 4 * C, C, 1);
        n += linear_gemms(g + n, "", "bwd c_fc din", "bwd c_fc dw", N, C, 4 * C, 1);
        n += linear_gemms(g + n, "", "bwd attn.c_proj din", "bwd attn.c_proj dw", N, C, C, 1);
        n += linear_gemms(g + n, "", "bwd c_attn din", "bwd c_attn dw", N, C, 3 * C, 1);
    }
    return n;
}

// The products of one forward + backward over a [T, B] batch, as core/lstm.c issues them.
static int step_gemms(const Shape *s, int B, Gemm *g) {
    if (s->gpt) return gpt_step_gemms(s, B, g);
    int n = 0, TB = s->T * B, G = 4 * s->H;
    for (int l = 0; l < s->L; l++) {
        int in = l == 0 ? s->E : s->H;
        g[n++] = (Gemm){"fwd input projection", CblasNoTrans, CblasTrans, TB, G, in, 1};
        g[n++] = (Gemm){"fwd recurrent (per t)", CblasNoTrans, CblasTrans, B, G, s->H, s->T};
    }
    g[n++] = (Gemm){"fwd output", CblasNoTrans, CblasTrans, TB, s->V, s->H, 1};
    g[n++] = (Gemm){"bwd dW_fc", CblasTrans, CblasNoTrans, s->V, s->H, TB, 1};
    g[n++] = (Gemm){"bwd dh from output", CblasNoTrans, CblasNoTrans, TB, s->H, s->V, 1};
    for (int l = s->L - 1; l >= 0; l--) {
        int in = l == 0 ? s->E : s->H;
        g[n++] =
            (Gemm){"bwd dh recurrent (per t)", CblasNoTrans, CblasNoTrans, B, s->H, G, s->T - 1};
        g[n++] = (Gemm){"bwd dW_hh", CblasTrans, CblasNoTrans, G, s->H, TB, 1};
        g[n++] = (Gemm){"bwd dW_ih", CblasTrans, CblasNoTrans, G, in, TB, 1};
        g[n++] = (Gemm){"bwd dx", CblasNoTrans, CblasNoTrans, TB, in, G, 1};
    }
    return n;
}

static double gemm_flops(const Gemm *g) {
    return 2.0 * g->m * g->n * g->k * g->repeat;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Operand buffers big enough for any product of the step; contents do not matter for
// timing but are finite so no denormal slow paths kick in.
typedef struct {
    float *a, *b, *c;
} Buffers;

static int buffers_alloc(Buffers *bf, const Gemm *g, int n) {
    size_t sa = 0, sb = 0, sc = 0;
    for (int i = 0; i < n; i++) {
        size_t a = (size_t)g[i].m * g[i].k, b = (size_t)g[i].k * g[i].n,
               c = (size_t)g[i].m * g[i].n;
        if (a > sa) sa = a;
        if (b > sb) sb = b;
        if (c > sc) sc = c;
    }
    bf->a = malloc(sa * sizeof(float));
    bf->b = malloc(sb * sizeof(float));
    bf->c = malloc(sc * sizeof(float));
    if (!bf->a || !bf->b || !bf->c) return -1;
    for (size_t i = 0; i < sa; i++) bf->a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < sb; i++) bf->b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    memset(bf->c, 0, sc * sizeof(float));
    return 0;
}

static void buffers_free(Buffers *bf) {
    free(bf->a);
    free(bf->b);
    free(bf->c);
}

static void run_gemm(const Gemm *g, Buffers *bf) {
    int lda = g->ta == CblasNoTrans ? g->k : g->m;
    int ldb = g->tb == CblasNoTrans ? g->n : g->k;
    for (int r = 0; r < g->repeat; r++)
        cblas_sgemm(CblasRowMajor, g->ta, g->tb, g->m, g->n, g->k, 1.0f, bf->a, lda, bf->b, ldb,
                    1.0f, bf->c, g->n);
}

static void run_step(const Gemm *g, int n, Buffers *bf) {
    for (int i = 0; i < n; i++) run_gemm(&g[i], bf);
}

typedef struct {
    const Gemm *g;
    int n;
    Buffers bf;
} Half;

static void *half_run(void *arg) {
    Half *h = arg;
    run_step(h->g, h->n, &h->bf);
    return NULL;
}

static double time_split(Half *halves, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        pthread_t tid;
        double t0 = now();
        if (pthread_create(&tid, NULL, half_run, &halves[1]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
        half_run(&halves[0]);
        pthread_join(tid, NULL);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static double time_step(const Gemm *g, int n, Buffers *bf, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        run_step(g, n, bf);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static int parse_int(const char *flag, const char *v, int lo, int hi) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "sgemm_ceiling: %s must be an integer in %d..%d\n", flag, lo, hi);
        exit(2);
    }
    return (int)x;
}

int main(int argc, char **argv) {
    Shape s = {.E = 64, .H = 256, .V = 83, .L = 1, .T = 128, .B = 64};
    int reps = 5;
    // --arch first, as it changes the other flags' defaults.
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--arch")) {
            if (!strcmp(argv[i + 1], "gpt"))
                s = (Shape){.gpt = 1, .E = 256, .V = 65, .L = 4, .T = 128, .B = 32};
            else if (strcmp(argv[i + 1], "lstm")) {
                fprintf(stderr, "sgemm_ceiling: --arch must be lstm or gpt\n");
                return 2;
            }
        }
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: sgemm_ceiling [--arch lstm|gpt] [--embed E] [--hidden H] "
                            "[--vocab V] [--layers L] [--seq T | --block T] [--batch B] "
                            "[--reps N]\n");
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--arch"))
            continue; // read above
        else if (!strcmp(f, "--embed"))
            s.E = parse_int(f, v, 1, 4096);
        else if (!strcmp(f, "--hidden"))
            s.H = parse_int(f, v, 1, 4096);
        else if (!strcmp(f, "--vocab"))
            s.V = parse_int(f, v, 1, 1 << 20);
        else if (!strcmp(f, "--layers"))
            s.L = parse_int(f, v, 1, s.gpt ? 16 : 8);
        else if (!strcmp(f, "--seq") && !s.gpt)
            s.T = parse_int(f, v, 2, 4096);
        else if (!strcmp(f, "--block") && s.gpt)
            s.T = parse_int(f, v, 2, 4096);
        else if (!strcmp(f, "--batch"))
            s.B = parse_int(f, v, 2, 4096);
        else if (!strcmp(f, "--reps"))
            reps = parse_int(f, v, 1, 1000);
        else {
            fprintf(stderr, "sgemm_ceiling: unknown flag %s\n", f);
            return 2;
        }
    }

    Gemm full[MAX_GEMMS], half[MAX_GEMMS];
    int n = step_gemms(&s, s.B, full);
    step_gemms(&s, s.B / 2, half);
    Buffers bf;
    Half halves[2] = {{half, n, {0}}, {half, n, {0}}};
    if (buffers_alloc(&bf, full, n) || buffers_alloc(&halves[0].bf, half, n) ||
        buffers_alloc(&halves[1].bf, half, n)) {
        fprintf(stderr, "sgemm_ceiling: out of memory\n");
        return 1;
    }
    double flops = 0;
    for (int i = 0; i < n; i++) flops += gemm_flops(&full[i]);
    double tokens = (double)s.T * s.B;

    if (s.gpt)
        printf("one GPT training step: C=%d V=%d L=%d block=%d B=%d, %.3f GFLOP in sgemm\n", s.E,
               s.V, s.L, s.T, s.B, flops * 1e-9);
    else
        printf("one training step: E=%d H=%d V=%d L=%d T=%d B=%d, %.3f GFLOP in sgemm\n", s.E, s.H,
               s.V, s.L, s.T, s.B, flops * 1e-9);
    printf("%-32s %6s %6s %6s %5s %8s %8s\n", "product (1 thread)", "M", "N", "K", "xT", "GFLOP",
           "GFLOP/s");
    openblas_set_num_threads(1);
    run_step(full, n, &bf); // warm caches and OpenBLAS's buffers
    for (int i = 0; i < n; i++) {
        // The GPT repeats each product once per layer: one row each, timed once.
        int first = 1, times = 0;
        for (int j = 0; j < n; j++)
            if (!strcmp(full[j].what, full[i].what)) {
                if (j < i) first = 0;
                times++;
            }
        if (!first) continue;
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            run_gemm(&full[i], &bf);
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        char what[40];
        snprintf(what, sizeof what, times > 1 ? "%s (x%d layers)" : "%s", full[i].what, times);
        printf("%-32s %6d %6d %6d %5d %8.3f %8.2f\n", what, full[i].m, full[i].n, full[i].k,
               full[i].repeat, gemm_flops(&full[i]) * 1e-9, gemm_flops(&full[i]) / best * 1e-9);
    }

    double t1 = time_step(full, n, &bf, reps);
    openblas_set_num_threads(2);
    run_step(full, n, &bf);
    double t2 = time_step(full, n, &bf, reps);
    openblas_set_num_threads(1);
    run_step(half, n, &halves[0].bf);
    double t2s = time_split(halves, reps);

    printf("\n%-40s %9s %9s %12s\n", "configuration", "step ms", "GFLOP/s", "tokens/s");
    printf("%-40s %9.1f %9.2f %12.0f\n", "1 thread, batch B", t1 * 1e3, flops / t1 * 1e-9,
           tokens / t1);
    printf("%-40s %9.1f %9.2f %12.0f\n", "OpenBLAS 2 threads, batch B", t2 * 1e3, flops / t2 * 1e-9,
           tokens / t2);
    printf("%-40s %9.1f %9.2f %12.0f\n", "2 pthreads x batch B/2, 1-thread BLAS", t2s * 1e3,
           flops / t2s * 1e-9, tokens / t2s);
    double best2 = t2 < t2s ? t2 : t2s;
    printf("{\"flops_per_step\": %.0f, \"tokens_per_step\": %.0f, \"threads1\": {\"gflops\": "
           "%.3f, \"tokens_per_s\": %.1f}, \"threads2\": {\"gflops\": %.3f, \"tokens_per_s\": "
           "%.1f}, \"threads2_blas\": %.3f, \"threads2_split\": %.3f}\n",
           flops, tokens, flops / t1 * 1e-9, tokens / t1, flops / best2 * 1e-9, tokens / best2,
           flops / t2 * 1e-9, flops / t2s * 1e-9);
    buffers_free(&bf);
    buffers_free(&halves[0].bf);
    buffers_free(&halves[1].bf);
    return 0;
}
