/* lstm_arch.c — the LSTM behind the model seam (arch.h): model.h, lstm.h and infer.h's
 * functions in the table, with the handles as the LSTM's own structs. */
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "error.h"
#include "infer.h"
#include "lstm.h"

static int config_set(Model *model, const void *hyper, int vocab_size, char *err) {
    model->arch = &arch_lstm;
    model->config = *(const ModelConfig *)hyper;
    model->config.vocab_size = model->vocab_size = vocab_size;
    return model_config_check(&model->config, err);
}

static int config_read(Model *model, const StFile *f, int vocab_size, char *err) {
    long E, H, L;
    if (arch_meta_long(f, "embed", 1, MODEL_MAX_WIDTH, &E, err) ||
        arch_meta_long(f, "hidden", 1, MODEL_MAX_WIDTH, &H, err) ||
        arch_meta_long(f, "layers", 1, MODEL_MAX_LAYERS, &L, err))
        return -1;
    model->config = (ModelConfig){
        .vocab_size = vocab_size, .embed = (int)E, .hidden = (int)H, .layers = (int)L};
    return 0;
}

static int config_check(const Model *model, char *err) {
    return model_config_check(&model->config, err);
}

static int fields(const Model *model, ArchField *out) {
    const ModelConfig *c = &model->config;
    out[0] = (ArchField){"embed", c->embed, NULL};
    out[1] = (ArchField){"hidden", c->hidden, NULL};
    out[2] = (ArchField){"layers", c->layers, NULL};
    return 3;
}

static const void *hyper(const Model *model) {
    return &model->config;
}

static int tensors(const Model *model, ModelTensor *out) {
    return model_tensors(&model->config, out);
}

static void point_each(Model *model, float *const *data) {
    model->arch = &arch_lstm;
    model->num_params = model_param_count(&model->config);
    model_point_each(&model->w, &model->config, data);
}

static int alloc(Model *model, char *err) {
    ModelConfig c = model->config;
    return model_alloc(model, &c, err);
}

static int init(Model *model, uint64_t seed, char *err) {
    ModelConfig c = model->config;
    return model_init(model, &c, seed, err);
}

// The LSTM's workspace with the rates its masks are drawn at.
typedef struct {
    LstmWorkspace ws;
    ArchDropout drop;
} Workspace;

static void workspace_free(void *ws) {
    lstm_workspace_free(&((Workspace *)ws)->ws);
    free(ws);
}

static void *workspace_alloc(const Model *model, int max_T, int B, const ArchDropout *drop,
                             char *err) {
    Workspace *w = calloc(1, sizeof *w);
    if (!w) {
        err_set(err, "out of memory for a workspace");
        return NULL;
    }
    if (drop) w->drop = *drop;
    if (lstm_workspace_alloc(&w->ws, &model->config, max_T, B, w->drop.dropout > 0, err) != 0) {
        free(w);
        return NULL;
    }
    if (lstm_workspace_regularise(&w->ws, w->drop.embed_dropout > 0, w->drop.var_dropout > 0,
                                  err) != 0) {
        free(w); // regularise freed the buffers
        return NULL;
    }
    return w;
}

static void step_begin(const Model *model, void *const *ws, int n, Rng *rng) {
    float p = n > 0 ? ((const Workspace *)ws[0])->drop.embed_dropout : 0;
    if (p <= 0) return;
    // One row mask for the whole batch (as in AWD-LSTM), so every worker draws the same.
    uint64_t seed = rng_next(rng);
    for (int i = 0; i < n; i++) {
        Rng r;
        rng_seed(&r, seed);
        lstm_dropout_mask(((Workspace *)ws[i])->ws.emb_mask, model->config.vocab_size, p, &r);
    }
}

static float forward(const Model *model, void *ws, int T, const int *inputs, const int *targets,
                     Rng *rng, float norm) {
    Workspace *w = ws;
    w->ws.T = T;
    float p = rng ? w->drop.var_dropout : 0;
    if (p > 0) {
        // One mask per window, shared across its steps.
        const ModelConfig *m = &model->config;
        size_t BH = (size_t)w->ws.B * m->hidden;
        lstm_dropout_mask(w->ws.var_in, (size_t)w->ws.B * m->embed, p, rng);
        if (w->ws.var_mid) lstm_dropout_mask(w->ws.var_mid, (m->layers - 1) * BH, p, rng);
        lstm_dropout_mask(w->ws.var_out, BH, p, rng);
    }
    return lstm_forward(model, &w->ws, inputs, targets, rng ? w->drop.dropout : 0, rng, norm);
}

static void backward(const Model *model, void *ws, const int *inputs, const int *targets,
                     float norm, float *grads) {
    lstm_backward(model, &((Workspace *)ws)->ws, inputs, targets, norm, grads);
}

static void reset(void *ws) {
    lstm_state_reset(&((Workspace *)ws)->ws);
}

static void carry(void *ws) {
    lstm_state_carry(&((Workspace *)ws)->ws);
}

// A stream's state and its size, which a reset needs.
typedef struct {
    StreamState s;
    size_t floats; // of h and of c: [L, H]
} State;

static size_t state_bytes(const Model *model) {
    return 2 * (size_t)model->config.layers * model->config.hidden * sizeof(float); // h and c
}

static void *state_alloc(const Model *model, char *err) {
    State *st = malloc(sizeof *st);
    if (!st) {
        err_set(err, "out of memory for a stream");
        return NULL;
    }
    if (stream_state_alloc(&st->s, &model->config, err) != 0) {
        free(st);
        return NULL;
    }
    st->floats = (size_t)model->config.layers * model->config.hidden;
    return st;
}

static void state_reset(void *state) {
    State *st = state;
    memset(st->s.h, 0, st->floats * sizeof(float));
    memset(st->s.c, 0, st->floats * sizeof(float));
}

static void state_free(void *state) {
    stream_state_free(&((State *)state)->s);
    free(state);
}

// infer_step takes StreamState pointers: the table's void pointers are copied into rows.
typedef struct {
    InferScratch s;
    StreamState **rows; // [max_n]
    int hidden;         // the widest model it serves: its sizes depend on H alone
} Scratch;

static void scratch_free(void *scratch) {
    Scratch *s = scratch;
    infer_scratch_free(&s->s);
    free(s->rows);
    free(s);
}

static void *scratch_alloc(const Model *model, int max_n, char *err) {
    Scratch *s = calloc(1, sizeof *s);
    if (!s || !(s->rows = malloc((size_t)max_n * sizeof *s->rows))) {
        free(s);
        err_set(err, "out of memory for inference scratch");
        return NULL;
    }
    if (infer_scratch_alloc(&s->s, &model->config, max_n, err) != 0) {
        free(s->rows);
        free(s);
        return NULL;
    }
    s->hidden = model->config.hidden;
    return s;
}

static int scratch_fits(const Model *model, const void *scratch) {
    return model->config.hidden <= ((const Scratch *)scratch)->hidden;
}

static void step(const Model *model, void *scratch, int n, const int *ids, void *const *states,
                 float *logits) {
    Scratch *s = scratch;
    for (int i = 0; i < n; i++) s->rows[i] = &((State *)states[i])->s;
    infer_step(model, &s->s, n, ids, s->rows, logits);
}

typedef struct {
    PrefillScratch s;
    int hidden; // as Scratch's
} Prefill;

static void prefill_free(void *scratch) {
    prefill_scratch_free(&((Prefill *)scratch)->s);
    free(scratch);
}

static void *prefill_alloc(const Model *model, int max_t, char *err) {
    Prefill *s = malloc(sizeof *s);
    if (!s) {
        err_set(err, "out of memory for prefill scratch");
        return NULL;
    }
    if (prefill_scratch_alloc(&s->s, &model->config, max_t, err) != 0) {
        free(s);
        return NULL;
    }
    s->hidden = model->config.hidden;
    return s;
}

static int prefill_fits(const Model *model, const void *scratch) {
    return model->config.hidden <= ((const Prefill *)scratch)->hidden;
}

static void prefill(const Model *model, void *scratch, int T, const int *ids, void *state,
                    float *logits, int nlogits) {
    infer_prefill(model, &((Prefill *)scratch)->s, T, ids, &((State *)state)->s, logits, nlogits);
}

static int context(const Model *model) {
    (void)model;
    return 0; // the recurrent state summarises any length
}

const Arch arch_lstm = {
    .name = "lstm",
    .layout = "Embedding(V, E) -> LSTM(E -> H, L layers) -> Linear(H, V)",
    .config_set = config_set,
    .config_read = config_read,
    .config_check = config_check,
    .fields = fields,
    .hyper = hyper,
    .tensors = tensors,
    .tensor = model_tensor,
    .point_each = point_each,
    .alloc = alloc,
    .init = init,
    .free = model_free,
    .drop_weights = model_drop_weights,
    .workspace_alloc = workspace_alloc,
    .workspace_free = workspace_free,
    .step_begin = step_begin,
    .forward = forward,
    .backward = backward,
    .reset = reset,
    .carry = carry,
    .prepare = infer_prepare,
    .state_bytes = state_bytes,
    .state_alloc = state_alloc,
    .state_reset = state_reset,
    .state_free = state_free,
    .scratch_alloc = scratch_alloc,
    .scratch_free = scratch_free,
    .scratch_fits = scratch_fits,
    .step = step,
    .prefill_alloc = prefill_alloc,
    .prefill_free = prefill_free,
    .prefill_fits = prefill_fits,
    .prefill = prefill,
    .context = context,
};
