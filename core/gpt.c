#include "gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rng.h"

/* The tensors of one block, in state_dict order and in GptWeights' order. Shapes are in
 * units of C: rows x cols, cols 0 for a vector. */
typedef struct {
    const char *name;
    int rows, cols;
    int is_bias, is_norm, is_proj;
} Kind;

#define KINDS 12
static const Kind KIND[KINDS] = {
    {"ln_1.weight", 1, 0, 0, 1, 0},        {"ln_1.bias", 1, 0, 1, 1, 0},
    {"attn.c_attn.weight", 3, 1, 0, 0, 0}, {"attn.c_attn.bias", 3, 0, 1, 0, 0},
    {"attn.c_proj.weight", 1, 1, 0, 0, 1}, {"attn.c_proj.bias", 1, 0, 1, 0, 0},
    {"ln_2.weight", 1, 0, 0, 1, 0},        {"ln_2.bias", 1, 0, 1, 1, 0},
    {"mlp.c_fc.weight", 4, 1, 0, 0, 0},    {"mlp.c_fc.bias", 4, 0, 1, 0, 0},
    {"mlp.c_proj.weight", 1, 4, 0, 0, 1},  {"mlp.c_proj.bias", 1, 0, 1, 0, 0},
};

static int has_norm_bias(const GptConfig *c) {
    return c->bias && c->norm == GPT_LAYERNORM;
}

// Floats of one layer's tensor of kind k, 0 when the config leaves it out.
static size_t kind_count(const GptConfig *c, const Kind *k) {
    if (k->is_bias && !(k->is_norm ? has_norm_bias(c) : c->bias)) return 0;
    size_t C = (size_t)c->embed;
    return (size_t)k->rows * C * (k->cols ? (size_t)k->cols * C : 1);
}

int gpt_config_check(const GptConfig *c, char *err) {
    if (c->vocab_size < 1 || c->vocab_size > 65536)
        return err_set(err, "vocab_size %d out of range 1..65536", c->vocab_size);
    if (c->layers < 1 || c->layers > GPT_MAX_LAYERS)
        return err_set(err, "layers %d out of range 1..%d", c->layers, GPT_MAX_LAYERS);
    if (c->embed < 1 || c->embed > GPT_MAX_EMBED)
        return err_set(err, "embed %d out of range 1..%d", c->embed, GPT_MAX_EMBED);
    if (c->heads < 1 || c->heads > c->embed || c->embed % c->heads != 0)
        return err_set(err, "heads %d must divide embed %d", c->heads, c->embed);
    if (c->block < 1 || c->block > GPT_MAX_BLOCK)
        return err_set(err, "block %d out of range 1..%d", c->block, GPT_MAX_BLOCK);
    if (c->norm != GPT_LAYERNORM && c->norm != GPT_RMSNORM)
        return err_set(err, "norm %d is neither layernorm (%d) nor rmsnorm (%d)", c->norm,
                       GPT_LAYERNORM, GPT_RMSNORM);
    if (c->bias != 0 && c->bias != 1) return err_set(err, "bias %d is neither 0 nor 1", c->bias);
    return 0;
}

size_t gpt_param_count(const GptConfig *c) {
    size_t C = (size_t)c->embed;
    size_t n = ((size_t)c->vocab_size + (size_t)c->block) * C + C * (1 + has_norm_bias(c));
    for (int k = 0; k < KINDS; k++) n += (size_t)c->layers * kind_count(c, &KIND[k]);
    return n;
}

static void tensor_set(GptTensor *t, int64_t rows, int64_t cols, size_t offset) {
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->ndim = cols > 0 ? 2 : 1;
    t->count = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
    t->offset = offset;
    t->decay = t->ndim >= 2;
    t->init_std = 0.02f;
    t->init_fill = 0.0f;
}

int gpt_tensors(const GptConfig *c, GptTensor *out) {
    int64_t C = c->embed;
    size_t L = (size_t)c->layers, V = (size_t)c->vocab_size, T = (size_t)c->block;
    int n = 0;
    GptTensor *t = &out[n++];
    snprintf(t->name, sizeof t->name, "transformer.wte.weight");
    tensor_set(t, (int64_t)V, C, 0);
    t = &out[n++];
    snprintf(t->name, sizeof t->name, "transformer.wpe.weight");
    tensor_set(t, (int64_t)T, C, V * (size_t)C);
    // Each kind's L tensors sit together, after the embeddings.
    size_t base[KINDS], offset = (V + T) * (size_t)C;
    for (int k = 0; k < KINDS; k++) {
        base[k] = offset;
        offset += L * kind_count(c, &KIND[k]);
    }
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < KINDS; k++) {
            const Kind *kd = &KIND[k];
            size_t count = kind_count(c, kd);
            if (count == 0) continue;
            t = &out[n++];
            snprintf(t->name, sizeof t->name, "transformer.h.%zu.%s", l, kd->name);
            tensor_set(t, kd->rows * C, kd->cols * C, base[k] + l * count);
            if (kd->is_proj) t->init_std = 0.02f / sqrtf(2.0f * (float)L);
            if (t->ndim == 1) t->init_std = 0.0f;
            if (kd->is_norm && !kd->is_bias) t->init_fill = 1.0f;
        }
    t = &out[n++];
    snprintf(t->name, sizeof t->name, "transformer.ln_f.weight");
    tensor_set(t, C, 0, offset);
    t->init_std = 0.0f;
    t->init_fill = 1.0f;
    if (has_norm_bias(c)) {
        t = &out[n++];
        snprintf(t->name, sizeof t->name, "transformer.ln_f.bias");
        tensor_set(t, C, 0, offset + (size_t)C);
        t->init_std = 0.0f;
    }
    return n;
}

void gpt_point(GptWeights *w, const GptConfig *c, float *buf) {
    float **field[KINDS] = {&w->ln1_w, &w->ln1_b, &w->qkv_w, &w->qkv_b, &w->attn_w, &w->attn_b,
                            &w->ln2_w, &w->ln2_b, &w->fc_w,  &w->fc_b,  &w->proj_w, &w->proj_b};
    size_t C = (size_t)c->embed;
    w->wte = buf;
    w->wpe = buf + (size_t)c->vocab_size * C;
    float *p = w->wpe + (size_t)c->block * C;
    for (int k = 0; k < KINDS; k++) {
        size_t count = kind_count(c, &KIND[k]);
        *field[k] = count ? p : NULL;
        p += (size_t)c->layers * count;
    }
    w->lnf_w = p;
    w->lnf_b = has_norm_bias(c) ? p + C : NULL;
}

int gpt_alloc(Gpt *m, const GptConfig *c, char *err) {
    memset(m, 0, sizeof *m);
    if (gpt_config_check(c, err) != 0) return -1;
    m->config = *c;
    m->num_params = gpt_param_count(c);
    m->params = calloc(m->num_params, sizeof(float));
    if (!m->params) return err_set(err, "out of memory for %zu GPT parameters", m->num_params);
    gpt_point(&m->w, c, m->params);
    return 0;
}

int gpt_init(Gpt *m, const GptConfig *c, uint64_t seed, char *err) {
    if (gpt_alloc(m, c, err) != 0) return -1;
    GptTensor *t = malloc(GPT_MAX_TENSORS * sizeof *t);
    if (!t) {
        gpt_free(m);
        return err_set(err, "out of memory for the GPT tensor table");
    }
    int n = gpt_tensors(c, t);
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        float *p = m->params + t[i].offset;
        for (size_t k = 0; k < t[i].count; k++)
            p[k] = t[i].init_std > 0 ? t[i].init_std * rng_normal(&rng) : t[i].init_fill;
    }
    free(t);
    return 0;
}

void gpt_free(Gpt *m) {
    free(m->params);
    memset(m, 0, sizeof *m);
}
