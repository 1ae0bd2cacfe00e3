/* gpt_arch.c — nanoGPT's GPT behind the model seam (arch.h): gpt.h's training and
 * gpt_infer.h's inference in the table. The model's own part (Model.own) is a GptModel;
 * a training workspace turns the seam's time-major windows into the GPT's batch-major
 * rows and draws its dropout masks. */
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "gpt.h"
#include "gpt_infer.h"

typedef struct {
    GptConfig config; // what alloc and init build
    Gpt gpt;          // the parameters (Model.params is gpt.params)
    GptInfer infer;   // empty until prepare
} GptModel;

static const char *const NORM_NAME[] = {[GPT_LAYERNORM] = "layernorm", [GPT_RMSNORM] = "rmsnorm"};

static GptModel *own(const Model *model) {
    return model->own;
}

static int own_ensure(Model *model, char *err) {
    model->arch = &arch_gpt;
    if (!model->own && !(model->own = calloc(1, sizeof(GptModel))))
        return err_set(err, "out of memory for a GPT");
    return 0;
}

static int config_set(Model *model, const void *hyper, int vocab_size, char *err) {
    if (own_ensure(model, err) != 0) return -1;
    GptConfig *c = &own(model)->config;
    *c = *(const GptConfig *)hyper;
    c->vocab_size = model->vocab_size = vocab_size;
    return gpt_config_check(c, err);
}

static int config_read(Model *model, const StFile *f, int vocab_size, char *err) {
    long L, NH, C, T, bias;
    if (arch_meta_long(f, "layers", 1, GPT_MAX_LAYERS, &L, err) ||
        arch_meta_long(f, "heads", 1, GPT_MAX_EMBED, &NH, err) ||
        arch_meta_long(f, "embed", 1, GPT_MAX_EMBED, &C, err) ||
        arch_meta_long(f, "block", 1, GPT_MAX_BLOCK, &T, err) ||
        arch_meta_long(f, "bias", 0, 1, &bias, err))
        return -1;
    const char *norm = st_meta(f, "norm");
    int kind = -1;
    for (int k = 0; norm && k < 2; k++)
        if (strcmp(norm, NORM_NAME[k]) == 0) kind = k;
    if (kind < 0)
        return err_set(err, "%s: metadata \"norm\" = \"%.32s\" is neither layernorm nor rmsnorm",
                       f->path, norm ? norm : "(missing)");
    GptConfig c = {.vocab_size = vocab_size,
                   .layers = (int)L,
                   .heads = (int)NH,
                   .embed = (int)C,
                   .block = (int)T,
                   .norm = kind,
                   .bias = (int)bias};
    char why[ERR_LEN];
    if (config_set(model, &c, vocab_size, why) != 0) return err_set(err, "%s: %s", f->path, why);
    return 0;
}

static int config_check(const Model *model, char *err) {
    return gpt_config_check(&own(model)->config, err);
}

static const void *hyper(const Model *model) {
    return &own(model)->config;
}

static int fields(const Model *model, ArchField *out) {
    const GptConfig *c = &own(model)->config;
    out[0] = (ArchField){"layers", c->layers, NULL};
    out[1] = (ArchField){"heads", c->heads, NULL};
    out[2] = (ArchField){"embed", c->embed, NULL};
    out[3] = (ArchField){"block", c->block, NULL};
    out[4] = (ArchField){"norm", c->norm, NORM_NAME[c->norm]};
    out[5] = (ArchField){"bias", c->bias, NULL};
    return 6;
}

static int tensors(const Model *model, ModelTensor *out) {
    GptTensor t[GPT_MAX_TENSORS];
    int n = gpt_tensors(&own(model)->config, t);
    for (int i = 0; i < n; i++) {
        ModelTensor *m = &out[i];
        memcpy(m->name, t[i].name, sizeof m->name);
        m->ndim = t[i].ndim;
        m->shape[0] = t[i].shape[0];
        m->shape[1] = t[i].shape[1];
        m->offset = t[i].offset;
        m->count = t[i].count;
        m->decay = t[i].decay;
    }
    return n;
}

static const float *tensor(const Model *model, int i) {
    ModelTensor t[ARCH_MAX_TENSORS];
    tensors(model, t);
    return model->params + t[i].offset;
}

// The GPT's own parameters are Model's too: the optimiser, saving and loading see them.
static void share_params(Model *model) {
    model->params = own(model)->gpt.params;
    model->num_params = own(model)->gpt.num_params;
}

static int alloc(Model *model, char *err) {
    GptModel *g = own(model);
    if (gpt_alloc(&g->gpt, &g->config, err) != 0) return -1;
    share_params(model);
    return 0;
}

static int init(Model *model, uint64_t seed, char *err) {
    GptModel *g = own(model);
    if (gpt_init(&g->gpt, &g->config, seed, err) != 0) return -1;
    share_params(model);
    return 0;
}

static void free_model(Model *model) {
    GptModel *g = own(model);
    if (!g) return;
    gpt_infer_free(&g->infer);
    gpt_free(&g->gpt);
    free(g);
    model->own = NULL;
    model->params = NULL;
}

/* A step reads the packed matrices (gpt_infer.h) and, from the parameters themselves, the
 * embeddings, the norms and the biases: those move to a buffer of their own, and the
 * parameters (training's layout, which the packing copied) go. */
static void drop_weights(Model *model) {
    GptModel *g = own(model);
    if (!g || !g->gpt.params || !g->infer.buf) return;
    GptWeights *w = &g->gpt.w;
    const GptConfig *c = &g->config;
    size_t V = (size_t)c->vocab_size, C = (size_t)c->embed, L = (size_t)c->layers;
    // Each kept tensor and its floats, in one table so the copy and the count agree.
    float **keep[] = {&w->wte,   &w->wpe,   &w->ln1_w, &w->ln1_b,  &w->qkv_b, &w->attn_b,
                      &w->ln2_w, &w->ln2_b, &w->fc_b,  &w->proj_b, &w->lnf_w, &w->lnf_b};
    size_t count[] = {V * C,     (size_t)c->block * C,
                      L * C,     L * C,
                      L * 3 * C, L * C,
                      L * C,     L * C,
                      L * 4 * C, L * C,
                      C,         C};
    size_t n = 0;
    for (size_t i = 0; i < sizeof count / sizeof count[0]; i++)
        if (*keep[i]) n += count[i];
    float *small = malloc(n * sizeof(float));
    if (!small) return; // keep everything: more memory, the same results
    float *p = small;
    for (size_t i = 0; i < sizeof count / sizeof count[0]; i++) {
        if (!*keep[i]) continue;
        memcpy(p, *keep[i], count[i] * sizeof(float));
        *keep[i] = p;
        p += count[i];
    }
    w->qkv_w = w->attn_w = w->fc_w = w->proj_w = NULL; // packed in infer
    free(g->gpt.params);
    g->gpt.params = small; // what gpt_free frees from now on
    model->params = NULL;
}

/* The seam's windows are [T, B] time-major; the GPT's rows are [B, T]. */
typedef struct {
    GptWorkspace ws;
    float p;               // dropout on the embeddings, the attention and every residual branch
    int *inputs, *targets; // [B, max_T] the last forward's, which backward reads
    float *mask_buf;       // what masks point into, when p > 0
    GptMasks masks;
} Workspace;

static void workspace_free(void *ws) {
    Workspace *w = ws;
    gpt_workspace_free(&w->ws);
    free(w->inputs);
    free(w->targets);
    free(w->mask_buf);
    free(w);
}

static void *workspace_alloc(const Model *model, int max_T, int B, const ArchDropout *drop,
                             char *err) {
    const GptConfig *c = &own(model)->config;
    Workspace *w = calloc(1, sizeof *w);
    if (!w) {
        err_set(err, "out of memory for a workspace");
        return NULL;
    }
    w->p = drop ? drop->dropout : 0;
    if (gpt_workspace_alloc(&w->ws, c, max_T, B, err) != 0) {
        free(w);
        return NULL;
    }
    size_t N = (size_t)B * max_T, NC = N * c->embed, L = (size_t)c->layers;
    size_t att = L * B * c->heads * max_T * max_T;
    w->inputs = malloc(N * sizeof(int));
    w->targets = malloc(N * sizeof(int));
    if (w->p > 0) w->mask_buf = malloc((NC + att + 2 * L * NC) * sizeof(float));
    if (!w->inputs || !w->targets || (w->p > 0 && !w->mask_buf)) {
        workspace_free(w);
        err_set(err, "out of memory for a [%d, %d] GPT training workspace", B, max_T);
        return NULL;
    }
    return w;
}

static void step_begin(const Model *model, void *const *ws, int n, Rng *rng) {
    (void)model, (void)ws, (void)n, (void)rng; // every mask is the window's own
}

// Each entry 0 with probability p, else 1 / (1 - p), as torch's dropout scales.
static void draw_mask(float *m, size_t n, float p, Rng *rng) {
    float keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) m[i] = rng_float(rng) < p ? 0.0f : keep;
}

static float forward(const Model *model, void *ws, int T, const int *inputs, const int *targets,
                     Rng *rng, float norm) {
    Workspace *w = ws;
    const GptConfig *c = &own(model)->config;
    int B = w->ws.B;
    w->ws.T = T;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            w->inputs[b * T + t] = inputs[t * B + b];
            if (targets) w->targets[b * T + t] = targets[t * B + b];
        }
    const GptMasks *masks = NULL;
    if (rng && w->p > 0) {
        size_t NC = (size_t)B * T * c->embed, L = (size_t)c->layers;
        size_t att = L * B * c->heads * T * T;
        float *m = w->mask_buf;
        w->masks = (GptMasks){m, m + NC, m + NC + att, m + NC + att + L * NC};
        draw_mask(m, NC + att + 2 * L * NC, w->p, rng);
        masks = &w->masks;
    }
    return gpt_forward(&own(model)->gpt, &w->ws, w->inputs, targets ? w->targets : NULL, masks,
                       norm);
}

static void backward(const Model *model, void *ws, const int *inputs, const int *targets,
                     float norm, float *grads) {
    (void)inputs, (void)targets; // forward kept them in the GPT's order
    Workspace *w = ws;
    gpt_backward(&own(model)->gpt, &w->ws, w->inputs, w->targets, norm, grads);
}

static void window_state(void *ws) {
    (void)ws; // each window starts from nothing: there is no state to reset or carry
}

static int prepare(Model *model, char *err) {
    GptModel *g = own(model);
    return gpt_infer_prepare(&g->infer, &g->gpt, err);
}

static size_t state_bytes(const Model *model) {
    return gpt_stream_floats(&own(model)->config) * sizeof(float); // the KV cache
}

static void *state_alloc(const Model *model, char *err) {
    GptStream *st = malloc(sizeof *st);
    if (!st) {
        err_set(err, "out of memory for a stream");
        return NULL;
    }
    if (gpt_stream_alloc(st, &own(model)->config, err) != 0) {
        free(st);
        return NULL;
    }
    return st;
}

static void state_reset(void *state) {
    ((GptStream *)state)->pos = 0; // the cache is overwritten as positions are fed again
}

static void state_free(void *state) {
    gpt_stream_free(state);
    free(state);
}

// GptScratch with what it was sized for; gpt_infer_step takes GptStream pointers.
typedef struct {
    GptScratch s;
    GptStream **rows; // [max_rows]
    int embed, block;
} Scratch;

static void scratch_free(void *scratch) {
    Scratch *s = scratch;
    gpt_scratch_free(&s->s);
    free(s->rows);
    free(s);
}

static void *scratch_alloc(const Model *model, int max_n, char *err) {
    const GptConfig *c = &own(model)->config;
    Scratch *s = calloc(1, sizeof *s);
    if (!s || !(s->rows = malloc((size_t)(max_n > 0 ? max_n : 1) * sizeof *s->rows))) {
        free(s);
        err_set(err, "out of memory for inference scratch");
        return NULL;
    }
    if (gpt_scratch_alloc(&s->s, c, max_n, err) != 0) {
        free(s->rows);
        free(s);
        return NULL;
    }
    s->embed = c->embed;
    s->block = c->block;
    return s;
}

static int scratch_fits(const Model *model, const void *scratch) {
    const GptConfig *c = &own(model)->config;
    const Scratch *s = scratch;
    return c->embed <= s->embed && c->block <= s->block;
}

static void step(const Model *model, void *scratch, int n, const int *ids, void *const *states,
                 float *logits) {
    Scratch *s = scratch;
    for (int i = 0; i < n; i++) s->rows[i] = states[i];
    gpt_infer_step(&own(model)->infer, &s->s, n, ids, s->rows, logits);
}

static void prefill(const Model *model, void *scratch, int T, const int *ids, void *state,
                    float *logits, int nlogits) {
    gpt_infer_prefill(&own(model)->infer, &((Scratch *)scratch)->s, T, ids, state, logits, nlogits);
}

static int context(const Model *model) {
    return own(model)->config.block;
}

static const char *const tied[][2] = {{"lm_head.weight", "transformer.wte.weight"}};

const Arch arch_gpt = {
    .name = "gpt",
    .layout = "Embedding(V, C) + Position(block, C) -> L x [Norm -> CausalSelfAttention(heads) "
              "-> Norm -> MLP(C -> 4C -> C)] -> Norm -> Linear(C, V), tied to the embedding",
    .config_set = config_set,
    .config_read = config_read,
    .config_check = config_check,
    .fields = fields,
    .hyper = hyper,
    .tensors = tensors,
    .tensor = tensor,
    .point_each = NULL, // GptWeights are grouped by kind across layers: one buffer
    .tied = tied,
    .ntied = 1,
    .alloc = alloc,
    .init = init,
    .free = free_model,
    .drop_weights = drop_weights,
    .workspace_alloc = workspace_alloc,
    .workspace_free = workspace_free,
    .step_begin = step_begin,
    .forward = forward,
    .backward = backward,
    .reset = window_state,
    .carry = window_state,
    .prepare = prepare,
    .state_bytes = state_bytes,
    .state_alloc = state_alloc,
    .state_reset = state_reset,
    .state_free = state_free,
    .scratch_alloc = scratch_alloc,
    .scratch_free = scratch_free,
    .scratch_fits = scratch_fits,
    .step = step,
    .prefill_alloc = scratch_alloc,
    .prefill_free = scratch_free,
    .prefill_fits = scratch_fits,
    .prefill = prefill,
    .context = context,
};
