#include "train.h"

#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "safetensors.h"

// The model a config describes, its parameters not yet allocated (arch_free releases it).
static int model_of(Model *m, const TrainConfig *c, char *err) {
    memset(m, 0, sizeof *m);
    const Arch *arch = c->arch ? c->arch : arch_find(ARCH_DEFAULT);
    m->arch = arch;
    return arch->config_set(m, c->hyper, c->vocab_size, err);
}

int train_config_check(const TrainConfig *c, char *err) {
    Model m;
    int bad = model_of(&m, c, err);
    int context = bad ? 0 : m.arch->context(&m);
    arch_free(&m);
    if (bad) return -1;
    if (context > 0 && c->seq > context)
        return err_set(err, "the training windows (%d) are longer than the context (%d)", c->seq,
                       context);
    if (!(c->dropout >= 0 && c->dropout < 1)) return err_set(err, "--dropout must be in [0, 1)");
    if (!(c->embed_dropout >= 0 && c->embed_dropout < 1))
        return err_set(err, "--embed-dropout must be in [0, 1)");
    if (!(c->var_dropout >= 0 && c->var_dropout < 1))
        return err_set(err, "--var-dropout must be in [0, 1)");
    if (!(c->weight_decay >= 0 && c->weight_decay * c->lr < 1))
        return err_set(err, "--weight-decay must be >= 0 and below 1 / --lr");
    if (!(c->beta2 >= 0 && c->beta2 < 1)) return err_set(err, "--beta2 must be in [0, 1)");
    if (c->patience < 0) return err_set(err, "--patience must be >= 0 (0 = off)");
    if (c->seq < 1 || c->seq > TRAIN_MAX_SEQ)
        return err_set(err, "--seq must be in 1..%d", TRAIN_MAX_SEQ);
    if (c->batch < 1 || c->batch > TRAIN_MAX_BATCH)
        return err_set(err, "--batch must be in 1..%d", TRAIN_MAX_BATCH);
    if (c->steps < 1) return err_set(err, "--steps must be at least 1");
    if (!(c->max_time >= 0 && isfinite(c->max_time)))
        return err_set(err, "--max-time must be a number of seconds > 0");
    if (!(c->lr > 0 && c->lr < TRAIN_MAX_LR))
        return err_set(err, "--lr must be in (0, %d)", TRAIN_MAX_LR);
    if (!(c->clip >= 0 && isfinite(c->clip))) return err_set(err, "--clip must be >= 0 (0 = off)");
    if (!(c->val_frac > 0 && c->val_frac < 1)) return err_set(err, "--val-frac must be in (0, 1)");
    if (c->eval_every < 1) return err_set(err, "--eval-every must be at least 1");
    if (c->checkpoint_every < 1) return err_set(err, "--checkpoint-every must be at least 1");
    if (c->threads < 1 || c->threads > TRAIN_MAX_THREADS)
        return err_set(err, "--threads must be in 1..%d", TRAIN_MAX_THREADS);
    return 0;
}

long train_warmup(long steps) {
    long w = steps / 10;
    if (w > 100) w = 100;
    return w < 1 ? 1 : w;
}

int train_out_of_time(const TrainState *st) {
    return st->config.max_time > 0 && st->train_time >= st->config.max_time;
}

int train_should_stop(const TrainState *st) {
    // Evaluations since the best are counted from best_step, which the checkpoint keeps,
    // so a resumed run stops where an uninterrupted one would have.
    const TrainConfig *c = &st->config;
    return c->patience > 0 && st->best_step > 0 &&
           (st->step - st->best_step) / c->eval_every >= c->patience;
}

void train_free(TrainState *st) {
    const Arch *arch = st->model.arch; // whose the workspaces are
    adam_free(&st->adam);
    free(st->grads);
    free(st->inputs);
    free(st->targets);
    for (int i = 0; i < st->nworkers; i++) {
        TrainWorker *w = &st->workers[i];
        if (w->ws) arch->workspace_free(w->ws);
        free(w->grads);
        free(w->inputs);
        free(w->targets);
    }
    arch_free(&st->model);
    memset(st, 0, sizeof(*st));
}

// The weights of init, a model made like m, into m's one parameter buffer.
static int init_from(Model *m, const Model *init, char *err) {
    if (init->arch != m->arch || init->vocab_size != m->vocab_size)
        return err_set(err, "the model to start from is not the model the flags describe");
    if (m->arch->alloc(m, err) != 0) return -1;
    ModelTensor mt[ARCH_MAX_TENSORS];
    int nt = m->arch->tensors(m, mt);
    for (int i = 0; i < nt; i++)
        memcpy(m->params + mt[i].offset, init->arch->tensor(init, i), mt[i].count * sizeof(float));
    return 0;
}

int train_init(TrainState *st, const TrainConfig *config, char *err) {
    memset(st, 0, sizeof(*st));
    st->config = *config;
    st->config.hyper = NULL; // the caller's; the model keeps its own copy
    st->config.init = NULL;
    if (model_of(&st->model, config, err) != 0 ||
        (config->init ? init_from(&st->model, config->init, err)
                      : st->model.arch->init(&st->model, config->seed, err)) != 0) {
        arch_free(&st->model);
        return -1;
    }
    // The generator for batches is seeded apart from the one model_init used.
    rng_seed(&st->rng, config->seed ^ 0x9e3779b97f4a7c15ull);
    st->best_val_loss = INFINITY;
    size_t n = st->model.num_params;
    int T = config->seq, B = config->batch;
    st->grads = calloc(n, sizeof(float));
    st->inputs = malloc((size_t)T * B * sizeof(int));
    st->targets = malloc((size_t)T * B * sizeof(int));
    if (adam_init(&st->adam, n, err) != 0 || !st->grads || !st->inputs || !st->targets) {
        train_free(st);
        return err_set(err, "out of memory for training state");
    }
    st->adam.beta2 = config->beta2;
    st->nworkers = config->threads < B ? config->threads : B;
    ArchDropout drop = {config->dropout, config->embed_dropout, config->var_dropout};
    for (int i = 0; i < st->nworkers; i++) {
        TrainWorker *w = &st->workers[i];
        w->b0 = B * i / st->nworkers;
        w->nb = B * (i + 1) / st->nworkers - w->b0;
        w->grads = malloc(n * sizeof(float));
        w->inputs = malloc((size_t)T * w->nb * sizeof(int));
        w->targets = malloc((size_t)T * w->nb * sizeof(int));
        if (!w->grads || !w->inputs || !w->targets ||
            !(w->ws = st->model.arch->workspace_alloc(&st->model, T, w->nb, &drop, err))) {
            train_free(st);
            return err_set(err, "out of memory for training workspaces");
        }
    }
    return 0;
}

void train_adam_step(Adam *adam, Model *model, const float *grads, float lr, float weight_decay) {
    if (weight_decay == 0.0f) {
        adam_step(adam, model->params, grads, lr);
        return;
    }
    // The architecture's tensor table says which tensors decay; the others take plain
    // Adam steps.
    ModelTensor mt[ARCH_MAX_TENSORS];
    int nt = model->arch->tensors(model, mt);
    adam_begin(adam);
    for (int i = 0; i < nt; i++)
        adam_update(adam, model->params, grads, mt[i].offset, mt[i].offset + mt[i].count, lr,
                    mt[i].decay ? weight_decay : 0.0f);
}

typedef struct {
    TrainState *st;
    TrainWorker *w;
} WorkerJob;

static void *worker_run(void *arg) {
    WorkerJob *job = arg;
    TrainState *st = job->st;
    TrainWorker *w = job->w;
    float norm = (float)st->config.seq * st->config.batch;
    memset(w->grads, 0, st->model.num_params * sizeof(float));
    const Arch *a = st->model.arch;
    a->reset(w->ws);
    w->loss = a->forward(&st->model, w->ws, st->config.seq, w->inputs, w->targets, &w->rng, norm);
    a->backward(&st->model, w->ws, w->inputs, w->targets, norm, w->grads);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

float train_step(TrainState *st, const Corpus *corpus, float *lr) {
    double t0 = now_s();
    const TrainConfig *c = &st->config;
    int T = c->seq, B = c->batch;
    corpus_batch(corpus, &st->rng, T, B, st->inputs, st->targets);
    for (int i = 0; i < st->nworkers; i++) {
        TrainWorker *w = &st->workers[i];
        for (int t = 0; t < T; t++)
            for (int b = 0; b < w->nb; b++) {
                w->inputs[t * w->nb + b] = st->inputs[t * B + w->b0 + b];
                w->targets[t * w->nb + b] = st->targets[t * B + w->b0 + b];
            }
        rng_seed(&w->rng, rng_next(&st->rng));
    }
    void *ws[TRAIN_MAX_THREADS];
    for (int i = 0; i < st->nworkers; i++) ws[i] = st->workers[i].ws;
    st->model.arch->step_begin(&st->model, ws, st->nworkers, &st->rng);

    WorkerJob jobs[TRAIN_MAX_THREADS];
    pthread_t tids[TRAIN_MAX_THREADS];
    int started[TRAIN_MAX_THREADS] = {0};
    // Workers split the batch, so each one's OpenBLAS calls stay on its own core.
    openblas_set_num_threads(1);
    for (int i = 0; i < st->nworkers; i++) {
        jobs[i] = (WorkerJob){st, &st->workers[i]};
        if (i > 0) started[i] = pthread_create(&tids[i], NULL, worker_run, &jobs[i]) == 0;
    }
    worker_run(&jobs[0]);
    for (int i = 1; i < st->nworkers; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            worker_run(&jobs[i]); // no thread to be had: same result, just slower
    }

    size_t n = st->model.num_params;
    float loss = 0.0f;
    memcpy(st->grads, st->workers[0].grads, n * sizeof(float));
    loss += st->workers[0].loss;
    for (int i = 1; i < st->nworkers; i++) {
        const float *g = st->workers[i].grads;
        for (size_t k = 0; k < n; k++) st->grads[k] += g[k];
        loss += st->workers[i].loss;
    }
    optim_clip(st->grads, n, c->clip);
    double spent = c->max_time > 0 ? st->train_time / c->max_time : 0.0;
    *lr = optim_lr_budget(st->step, c->steps, train_warmup(c->steps), spent, c->lr, c->lr / 10.0f);
    train_adam_step(&st->adam, &st->model, st->grads, *lr, c->weight_decay);
    st->step++;
    st->train_time += now_s() - t0;
    return loss;
}

int train_checkpoint_save(const TrainState *st, const char *path, const char *corpus_sha256,
                          char *err) {
    const Model *model = &st->model;
    ModelTensor mt[ARCH_MAX_TENSORS];
    int nt = model->arch->tensors(model, mt);
    StTensorOut t[ARCH_MAX_TENSORS + 2];
    for (int i = 0; i < nt; i++) {
        t[i] = (StTensorOut){mt[i].name,
                             mt[i].ndim,
                             {mt[i].shape[0], mt[i].shape[1]},
                             st->model.params + mt[i].offset};
    }
    int64_t n = (int64_t)st->model.num_params;
    t[nt] = (StTensorOut){"optim.m", 1, {n}, st->adam.m};
    t[nt + 1] = (StTensorOut){"optim.v", 1, {n}, st->adam.v};

    // The run's state, then the model's hyperparameters as its model file lists them (the
    // default architecture without "arch"), which a resume must match.
    char vals[10 + ARCH_MAX_FIELDS][40];
    snprintf(vals[0], 40, "%ld", st->step);
    snprintf(vals[1], 40, "%ld", st->adam.t);
    for (int i = 0; i < 4; i++) snprintf(vals[2 + i], 40, "%" PRIu64, st->rng.s[i]);
    snprintf(vals[6], 40, "%.17g", st->best_val_loss);
    snprintf(vals[7], 40, "%ld", st->best_step);
    snprintf(vals[8], 40, "%d", model->vocab_size);
    snprintf(vals[9], 40, "%.17g", st->train_time);
    StMeta meta[12 + ARCH_MAX_FIELDS] = {{"step", vals[0]},          {"adam_t", vals[1]},
                                         {"rng0", vals[2]},          {"rng1", vals[3]},
                                         {"rng2", vals[4]},          {"rng3", vals[5]},
                                         {"best_val_loss", vals[6]}, {"best_step", vals[7]},
                                         {"vocab_size", vals[8]},    {"train_time_s", vals[9]}};
    int nm = 10;
    if (strcmp(model->arch->name, ARCH_DEFAULT) != 0)
        meta[nm++] = (StMeta){"arch", model->arch->name};
    ArchField f[ARCH_MAX_FIELDS];
    int nf = model->arch->fields(model, f);
    for (int i = 0; i < nf; i++) {
        snprintf(vals[10 + i], 40, "%ld", f[i].number);
        meta[nm++] = (StMeta){f[i].name, f[i].text ? f[i].text : vals[10 + i]};
    }
    meta[nm++] = (StMeta){"corpus_sha256", corpus_sha256};
    return st_write(path, t, nt + 2, meta, nm, err);
}

static int meta_u64(const StFile *f, const char *key, uint64_t *out, char *err) {
    const char *s = st_meta(f, key);
    char *end;
    if (!s || !*s) return err_set(err, "%s: checkpoint has no '%s'", f->path, key);
    *out = strtoull(s, &end, 10);
    if (*end) return err_set(err, "%s: checkpoint '%s' is not a number", f->path, key);
    return 0;
}

int train_checkpoint_load(TrainState *st, const char *path, const char *corpus_sha256, char *err) {
    StFile f;
    if (st_open(&f, path, err) != 0) return -1;
    const Model *model = &st->model;
    uint64_t v = 0, step = 0, adam_t = 0, rng[4] = {0};
    int rc = -1;
    const char *arch = st_meta(&f, "arch");
    if (strcmp(arch ? arch : ARCH_DEFAULT, model->arch->name) != 0) {
        err_set(err, "%s: checkpoint has arch %.32s but the flags say %s", path,
                arch ? arch : ARCH_DEFAULT, model->arch->name);
        goto out;
    }
    // vocab_size, then the architecture's hyperparameters.
    ArchField want[1 + ARCH_MAX_FIELDS] = {{"vocab_size", model->vocab_size, NULL}};
    int nw = 1 + model->arch->fields(model, want + 1);
    for (int i = 0; i < nw; i++) {
        if (want[i].text) {
            const char *s = st_meta(&f, want[i].name);
            if (!s || strcmp(s, want[i].text) != 0) {
                err_set(err, "%s: checkpoint has %s %.32s but the flags say %s", path, want[i].name,
                        s ? s : "(none)", want[i].text);
                goto out;
            }
            continue;
        }
        if (meta_u64(&f, want[i].name, &v, err) != 0) goto out;
        if ((int)v != (int)want[i].number) {
            err_set(err, "%s: checkpoint has %s %d but the flags say %d", path, want[i].name,
                    (int)v, (int)want[i].number);
            goto out;
        }
    }
    const char *sha = st_meta(&f, "corpus_sha256");
    if (!sha || strcmp(sha, corpus_sha256) != 0) {
        err_set(err, "%s: checkpoint was made from a different corpus", path);
        goto out;
    }
    if (meta_u64(&f, "step", &step, err) != 0 || meta_u64(&f, "adam_t", &adam_t, err) != 0 ||
        meta_u64(&f, "rng0", &rng[0], err) != 0 || meta_u64(&f, "rng1", &rng[1], err) != 0 ||
        meta_u64(&f, "rng2", &rng[2], err) != 0 || meta_u64(&f, "rng3", &rng[3], err) != 0 ||
        meta_u64(&f, "best_step", &v, err) != 0)
        goto out;
    const char *best = st_meta(&f, "best_val_loss");
    if (!best) {
        err_set(err, "%s: checkpoint has no 'best_val_loss'", path);
        goto out;
    }
    // Checkpoints from before time budgets have no training time: count it from 0.
    const char *spent = st_meta(&f, "train_time_s");
    char *end = NULL;
    double train_time = spent ? strtod(spent, &end) : 0.0;
    if (spent && (end == spent || *end || !(train_time >= 0 && isfinite(train_time)))) {
        err_set(err, "%s: checkpoint 'train_time_s' is not a number of seconds", path);
        goto out;
    }
    ModelTensor mt[ARCH_MAX_TENSORS];
    int nt = model->arch->tensors(model, mt);
    for (int i = 0; i < nt; i++)
        if (st_read(&f, mt[i].name, mt[i].ndim, mt[i].shape, st->model.params + mt[i].offset,
                    err) != 0)
            goto out;
    int64_t n = (int64_t)st->model.num_params;
    if (st_read(&f, "optim.m", 1, &n, st->adam.m, err) != 0 ||
        st_read(&f, "optim.v", 1, &n, st->adam.v, err) != 0)
        goto out;
    st->step = (long)step;
    st->adam.t = (long)adam_t;
    memcpy(st->rng.s, rng, sizeof(rng));
    st->best_step = (long)v;
    st->best_val_loss = strtod(best, NULL);
    st->train_time = train_time;
    rc = 0;
out:
    st_close(&f);
    return rc;
}
