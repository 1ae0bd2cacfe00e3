#include "gpt_infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gpt_ops.h"
#include "strips.h"

int gpt_infer_prepare(GptInfer *gi, const Gpt *m, char *err) {
    const GptConfig *c = &m->config;
    size_t C = (size_t)c->embed, L = (size_t)c->layers;
    size_t per_layer = strips_floats(3 * C, C) + strips_floats(C, C) + strips_floats(4 * C, C) +
                       strips_floats(C, 4 * C);
    size_t n = L * per_layer + strips_floats((size_t)c->vocab_size, C);
    free(gi->buf);
    memset(gi, 0, sizeof *gi);
    gi->buf = malloc(n * sizeof(float));
    if (!gi->buf) return err_set(err, "out of memory for the GPT's inference weights");
    gi->model = m;
    float *p = gi->buf;
    for (size_t l = 0; l < L; l++) {
        gi->qkv_w[l] = p;
        strips_pack(p, m->w.qkv_w + l * 3 * C * C, 3 * C, C);
        p += strips_floats(3 * C, C);
        gi->attn_w[l] = p;
        strips_pack(p, m->w.attn_w + l * C * C, C, C);
        p += strips_floats(C, C);
        gi->fc_w[l] = p;
        strips_pack(p, m->w.fc_w + l * 4 * C * C, 4 * C, C);
        p += strips_floats(4 * C, C);
        gi->proj_w[l] = p;
        strips_pack(p, m->w.proj_w + l * 4 * C * C, C, 4 * C);
        p += strips_floats(C, 4 * C);
    }
    gi->head_w = p;
    strips_pack(p, m->w.wte, (size_t)c->vocab_size, C);
    return 0;
}

void gpt_infer_free(GptInfer *gi) {
    free(gi->buf);
    memset(gi, 0, sizeof *gi);
}

size_t gpt_stream_floats(const GptConfig *c) {
    return 2 * (size_t)c->layers * (size_t)c->block * (size_t)c->embed;
}

int gpt_stream_alloc(GptStream *st, const GptConfig *c, char *err) {
    st->pos = 0;
    st->kv = calloc(gpt_stream_floats(c), sizeof(float));
    if (!st->kv)
        return err_set(err, "out of memory for a GPT stream's KV cache (%zu floats)",
                       gpt_stream_floats(c));
    return 0;
}

void gpt_stream_free(GptStream *st) {
    free(st->kv);
    st->kv = NULL;
    st->pos = 0;
}

int gpt_scratch_alloc(GptScratch *s, const GptConfig *c, int max_rows, char *err) {
    memset(s, 0, sizeof *s);
    size_t R = max_rows > 0 ? (size_t)max_rows : 1, C = (size_t)c->embed;
    s->max_rows = max_rows;
    float **field[] = {&s->x,    &s->ln,   &s->qkv,  &s->y,    &s->out,
                       &s->wide, &s->mean, &s->rstd, &s->score};
    size_t count[] = {R * C, R * C, R * 3 * C, R * C, R * C, R * 4 * C, R, R, (size_t)c->block};
    int ok = 1;
    for (size_t i = 0; i < sizeof count / sizeof count[0]; i++)
        ok &= (*field[i] = calloc(count[i], sizeof(float))) != NULL;
    s->pos = calloc(R, sizeof *s->pos);
    s->row_stream = calloc(R, sizeof *s->row_stream);
    if (!ok || !s->pos || !s->row_stream) {
        gpt_scratch_free(s);
        return err_set(err, "out of memory for GPT inference scratch (%d rows)", max_rows);
    }
    return 0;
}

void gpt_scratch_free(GptScratch *s) {
    float *buf[] = {s->x, s->ln, s->qkv, s->y, s->out, s->wide, s->mean, s->rstd, s->score};
    for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++) free(buf[i]);
    free(s->pos);
    free(s->row_stream);
    memset(s, 0, sizeof *s);
}

// out [n, OC] = in [n, IC] @ W^T + b (b may be NULL), W packed.
static void linear(float *out, const float *in, const float *w, const float *b, int n, int IC,
                   int OC) {
    for (int r = 0; r < n; r++) {
        float *o = out + (size_t)r * OC;
        if (b)
            memcpy(o, b, (size_t)OC * sizeof(float));
        else
            memset(o, 0, (size_t)OC * sizeof(float));
    }
    strips_matmul(n, IC, OC, in, IC, w, out);
}

/* One row's attention at position pos: stores its key and value (from qkv [3C]) in the
 * layer's cache (k, v [block, C]), then each head attends over positions 0 .. pos of the
 * cache, as gpt_attention_forward does over a sequence. */
static void attend(float *y, float *score, const float *qkv, float *k, float *v, int pos, int C,
                   int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    memcpy(k + (size_t)pos * C, qkv + C, (size_t)C * sizeof(float));
    memcpy(v + (size_t)pos * C, qkv + 2 * C, (size_t)C * sizeof(float));
    for (int h = 0; h < NH; h++) {
        const float *q = qkv + (size_t)h * hs;
        float max = -INFINITY;
        for (int u = 0; u <= pos; u++) {
            const float *ku = k + (size_t)u * C + (size_t)h * hs;
            float s = 0.0f;
            for (int i = 0; i < hs; i++) s += q[i] * ku[i];
            score[u] = s * scale;
            if (score[u] > max) max = score[u];
        }
        float sum = 0.0f;
        for (int u = 0; u <= pos; u++) {
            score[u] = expf(score[u] - max);
            sum += score[u];
        }
        for (int u = 0; u <= pos; u++) score[u] /= sum;
        float *yh = y + (size_t)h * hs;
        memset(yh, 0, (size_t)hs * sizeof(float));
        for (int u = 0; u <= pos; u++) {
            const float *vu = v + (size_t)u * C + (size_t)h * hs;
            for (int i = 0; i < hs; i++) yh[i] += score[u] * vu[i];
        }
    }
}

static void add_rows(float *x, const float *d, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += d[i];
}

/* Runs rows r < n (row r: token ids[r] of stream s->row_stream[r] at position s->pos[r])
 * through every block, leaving the last residual stream in s->x. Rows of one stream must
 * come in order of position, so that each sees the keys of those before it. */
static void forward_rows(const GptInfer *gi, GptScratch *s, int n, const int *ids) {
    const Gpt *m = gi->model;
    const GptConfig *c = &m->config;
    const GptWeights *w = &m->w;
    int C = c->embed, NH = c->heads, rms = c->norm == GPT_RMSNORM;
    size_t Cz = (size_t)C, nC = (size_t)n * Cz, layer_kv = 2 * (size_t)c->block * Cz;
    for (int r = 0; r < n; r++) {
        const float *te = w->wte + (size_t)ids[r] * Cz, *pe = w->wpe + (size_t)s->pos[r] * Cz;
        float *x = s->x + (size_t)r * Cz;
        for (int j = 0; j < C; j++) x[j] = te[j] + pe[j];
    }
    for (int l = 0; l < c->layers; l++) {
        size_t lc = (size_t)l * Cz;
        gpt_norm_forward(s->ln, s->mean, s->rstd, s->x, w->ln1_w + lc, w->ln1_b ? w->ln1_b + lc : 0,
                         n, C, rms);
        linear(s->qkv, s->ln, gi->qkv_w[l], w->qkv_b ? w->qkv_b + 3 * lc : NULL, n, C, 3 * C);
        for (int r = 0; r < n; r++) {
            float *k = s->row_stream[r]->kv + (size_t)l * layer_kv;
            attend(s->y + (size_t)r * Cz, s->score, s->qkv + (size_t)r * 3 * Cz, k,
                   k + layer_kv / 2, s->pos[r], C, NH);
        }
        linear(s->out, s->y, gi->attn_w[l], w->attn_b ? w->attn_b + lc : NULL, n, C, C);
        add_rows(s->x, s->out, nC);
        gpt_norm_forward(s->ln, s->mean, s->rstd, s->x, w->ln2_w + lc, w->ln2_b ? w->ln2_b + lc : 0,
                         n, C, rms);
        linear(s->wide, s->ln, gi->fc_w[l], w->fc_b ? w->fc_b + 4 * lc : NULL, n, C, 4 * C);
        gpt_gelu_forward(s->wide, s->wide, nC * 4);
        linear(s->out, s->wide, gi->proj_w[l], w->proj_b ? w->proj_b + lc : NULL, n, 4 * C, C);
        add_rows(s->x, s->out, nC);
    }
}

// logits [n, V] of the residual rows x [n, C]: the final norm, then the tied head.
static void head_logits(const GptInfer *gi, GptScratch *s, int n, const float *x, float *logits) {
    const Gpt *m = gi->model;
    int C = m->config.embed, rms = m->config.norm == GPT_RMSNORM;
    gpt_norm_forward(s->ln, s->mean, s->rstd, x, m->w.lnf_w, m->w.lnf_b, n, C, rms);
    linear(logits, s->ln, gi->head_w, NULL, n, C, m->config.vocab_size);
}

void gpt_infer_step(const GptInfer *gi, GptScratch *s, int n, const int *ids,
                    GptStream *const *streams, float *logits) {
    for (int r = 0; r < n; r++) {
        s->row_stream[r] = streams[r];
        s->pos[r] = streams[r]->pos;
    }
    forward_rows(gi, s, n, ids);
    for (int r = 0; r < n; r++) streams[r]->pos++;
    head_logits(gi, s, n, s->x, logits);
}

void gpt_infer_prefill(const GptInfer *gi, GptScratch *s, int T, const int *ids, GptStream *st,
                       float *logits, int nlogits) {
    for (int t = 0; t < T; t++) {
        s->row_stream[t] = st;
        s->pos[t] = st->pos + t;
    }
    forward_rows(gi, s, T, ids);
    st->pos += T;
    if (nlogits > 0)
        head_logits(gi, s, nlogits, s->x + (size_t)(T - nlogits) * gi->model->config.embed, logits);
}
