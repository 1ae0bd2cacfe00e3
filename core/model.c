#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arch.h"
#include "error.h"
#include "rng.h"

int model_config_check(const ModelConfig *c, char *err) {
    if (c->vocab_size < 1 || c->vocab_size > 65536)
        return err_set(err, "vocab_size %d out of range 1..65536", c->vocab_size);
    if (c->embed < 1 || c->embed > MODEL_MAX_WIDTH)
        return err_set(err, "embed %d out of range 1..%d", c->embed, MODEL_MAX_WIDTH);
    if (c->hidden < 1 || c->hidden > MODEL_MAX_WIDTH)
        return err_set(err, "hidden %d out of range 1..%d", c->hidden, MODEL_MAX_WIDTH);
    if (c->layers < 1 || c->layers > MODEL_MAX_LAYERS)
        return err_set(err, "layers %d out of range 1..%d", c->layers, MODEL_MAX_LAYERS);
    return 0;
}

int model_tensors(const ModelConfig *c, ModelTensor *out) {
    int64_t V = c->vocab_size, E = c->embed, H = c->hidden;
    int n = 0;
    size_t offset = 0;
#define ADD(rows, cols, ...)                                                                       \
    do {                                                                                           \
        ModelTensor *t = &out[n++];                                                                \
        snprintf(t->name, sizeof t->name, __VA_ARGS__);                                            \
        t->shape[0] = (rows);                                                                      \
        t->shape[1] = (cols);                                                                      \
        t->ndim = (cols) > 0 ? 2 : 1;                                                              \
        t->count = (size_t)(rows) * (size_t)((cols) > 0 ? (cols) : 1);                             \
        t->offset = offset;                                                                        \
        t->decay = (cols) > 0 && n > 1;                                                            \
        offset += t->count;                                                                        \
    } while (0)
    // Decay shrinks weights that multiply activations; a bias or an embedding row has no
    // such role (a rare char's row would just fade), so only the other matrices decay.
    ADD(V, E, "embedding.weight");
    for (int k = 0; k < c->layers; k++) {
        ADD(4 * H, k == 0 ? E : H, "lstm.weight_ih_l%d", k);
        ADD(4 * H, H, "lstm.weight_hh_l%d", k);
        ADD(4 * H, 0, "lstm.bias_ih_l%d", k);
        ADD(4 * H, 0, "lstm.bias_hh_l%d", k);
    }
    ADD(V, H, "fc.weight");
    ADD(V, 0, "fc.bias");
#undef ADD
    return n;
}

size_t model_param_count(const ModelConfig *c) {
    size_t V = (size_t)c->vocab_size, E = (size_t)c->embed, H = (size_t)c->hidden;
    size_t n = V * E + V * H + V;
    for (int k = 0; k < c->layers; k++) n += 4 * H * ((k == 0 ? E : H) + H + 2);
    return n;
}

// The field of w that holds tensor i of model_tensors' table.
static float **tensor_field(LstmWeights *w, const ModelConfig *c, int i) {
    int n = 3 + 4 * c->layers;
    if (i == 0) return &w->embedding;
    if (i == n - 2) return &w->fc_w;
    if (i == n - 1) return &w->fc_b;
    int k = (i - 1) / 4;
    float **row[4] = {&w->w_ih[k], &w->w_hh[k], &w->b_ih[k], &w->b_hh[k]};
    return row[(i - 1) % 4];
}

void model_point_each(LstmWeights *w, const ModelConfig *c, float *const *data) {
    memset(w, 0, sizeof *w);
    for (int i = 0; i < 3 + 4 * c->layers; i++) *tensor_field(w, c, i) = data[i];
}

void model_point(LstmWeights *w, const ModelConfig *c, float *buf) {
    ModelTensor t[MODEL_MAX_TENSORS];
    float *data[MODEL_MAX_TENSORS];
    int n = model_tensors(c, t);
    for (int i = 0; i < n; i++) data[i] = buf + t[i].offset;
    model_point_each(w, c, data);
}

const float *model_tensor(const Model *model, int i) {
    return *tensor_field((LstmWeights *)&model->w, &model->config, i);
}

int model_alloc(Model *model, const ModelConfig *config, char *err) {
    memset(model, 0, sizeof *model);
    if (model_config_check(config, err) != 0) return -1;
    size_t n = model_param_count(config);
    float *p = calloc(n, sizeof(float));
    if (!p) return err_set(err, "out of memory for %zu parameters", n);
    model->arch = &arch_lstm;
    model->vocab_size = config->vocab_size;
    model->config = *config;
    model->num_params = n;
    model->params = p;
    model_point(&model->w, config, p);
    return 0;
}

void model_drop_weights(Model *model) {
    free(model->params);
    if (model->map) munmap((void *)model->map, model->map_len);
    model->params = NULL;
    model->map = NULL;
    model->map_len = 0;
    memset(&model->w, 0, sizeof model->w);
}

void model_free(Model *model) {
    model_drop_weights(model);
    free(model->infer.buf);
    memset(model, 0, sizeof *model);
}

int model_init(Model *model, const ModelConfig *config, uint64_t seed, char *err) {
    if (model_alloc(model, config, err) != 0) return -1;
    Rng rng;
    rng_seed(&rng, seed);
    ModelTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(config, t);
    float bound = 1.0f / sqrtf((float)config->hidden);
    // Tensor by tensor in storage order, so the draws depend only on the config and seed.
    for (int i = 0; i < n; i++) {
        float *p = model->params + t[i].offset;
        if (i == 0) {
            for (size_t j = 0; j < t[i].count; j++) p[j] = rng_normal(&rng);
        } else {
            for (size_t j = 0; j < t[i].count; j++) p[j] = (2.0f * rng_float(&rng) - 1.0f) * bound;
        }
    }
    return 0;
}
