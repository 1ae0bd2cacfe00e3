/* gpt.h's training half: the workspace, forward with the loss, and backward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gpt.h"
#include "gpt_ops.h"

int gpt_workspace_alloc(GptWorkspace *ws, const GptConfig *c, int max_T, int B, char *err) {
    memset(ws, 0, sizeof *ws);
    if (gpt_config_check(c, err) != 0) return -1;
    if (max_T < 1 || max_T > c->block)
        return err_set(err, "a window of %d positions does not fit the block of %d", max_T,
                       c->block);
    if (B < 1) return err_set(err, "batch %d must be at least 1", B);
    ws->config = *c;
    ws->max_T = ws->T = max_T;
    ws->B = B;
    size_t L = (size_t)c->layers, C = (size_t)c->embed, V = (size_t)c->vocab_size;
    size_t N = (size_t)max_T * B, att = (size_t)B * c->heads * max_T * max_T;
    float **field[] = {&ws->resid,    &ws->resid_mid, &ws->ln1,     &ws->ln1_mean, &ws->ln1_rstd,
                       &ws->qkv,      &ws->att,       &ws->atty,    &ws->ln2,      &ws->ln2_mean,
                       &ws->ln2_rstd, &ws->fc,        &ws->fc_gelu, &ws->lnf,      &ws->lnf_mean,
                       &ws->lnf_rstd, &ws->logits,    &ws->tmp,     &ws->dres,     &ws->dln,
                       &ws->dqkv,     &ws->dwide,     &ws->drow};
    size_t count[] = {(L + 1) * N * C, L * N * C, L * N * C, L * N,     L * N,        L * N * 3 * C,
                      L * att,         L * N * C, L * N * C, L * N,     L * N,        L * N * 4 * C,
                      L * N * 4 * C,   N * C,     N,         N,         N * V,        N * C,
                      N * C,           N * C,     N * 3 * C, N * 4 * C, (size_t)max_T};
    for (size_t i = 0; i < sizeof count / sizeof count[0]; i++) {
        *field[i] = calloc(count[i], sizeof(float));
        if (!*field[i]) {
            gpt_workspace_free(ws);
            return err_set(err, "out of memory for a [%d, %d] GPT training workspace", B, max_T);
        }
    }
    return 0;
}

void gpt_workspace_free(GptWorkspace *ws) {
    float *buf[] = {ws->resid,   ws->resid_mid, ws->ln1,      ws->ln1_mean, ws->ln1_rstd, ws->qkv,
                    ws->att,     ws->atty,      ws->ln2,      ws->ln2_mean, ws->ln2_rstd, ws->fc,
                    ws->fc_gelu, ws->lnf,       ws->lnf_mean, ws->lnf_rstd, ws->logits,   ws->tmp,
                    ws->dres,    ws->dln,       ws->dqkv,     ws->dwide,    ws->drow};
    for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++) free(buf[i]);
    memset(ws, 0, sizeof *ws);
}

// x[n] = base[n] + y[n] * mask[n] (mask NULL: no dropout).
static void add_dropped(float *x, const float *base, const float *y, const float *mask, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = base[i] + (mask ? y[i] * mask[i] : y[i]);
}

float gpt_forward(const Gpt *m, GptWorkspace *ws, const int *inputs, const int *targets,
                  const GptMasks *masks, float norm) {
    const GptConfig *c = &m->config;
    const GptWeights *w = &m->w;
    int B = ws->B, T = ws->T, C = c->embed, V = c->vocab_size, NH = c->heads, N = B * T;
    int rms = c->norm == GPT_RMSNORM;
    size_t NC = (size_t)N * C, att_n = (size_t)B * NH * T * T;
    static const GptMasks none = {0};
    ws->masks = masks ? *masks : none;
    const GptMasks *mk = &ws->masks;

    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)b * T + t;
            const float *te = w->wte + (size_t)inputs[row] * C, *pe = w->wpe + (size_t)t * C;
            float *x = ws->resid + row * C;
            for (int j = 0; j < C; j++) x[j] = te[j] + pe[j];
            if (mk->emb)
                for (int j = 0; j < C; j++) x[j] *= mk->emb[row * C + j];
        }
    for (int l = 0; l < c->layers; l++) {
        size_t C3 = 3 * (size_t)C, C4 = 4 * (size_t)C;
        const float *x = ws->resid + l * NC;
        float *ln1 = ws->ln1 + l * NC, *qkv = ws->qkv + l * NC * 3, *atty = ws->atty + l * NC;
        float *mid = ws->resid_mid + l * NC, *ln2 = ws->ln2 + l * NC;
        float *fc = ws->fc + l * NC * 4, *fc_gelu = ws->fc_gelu + l * NC * 4;
        gpt_norm_forward(ln1, ws->ln1_mean + (size_t)l * N, ws->ln1_rstd + (size_t)l * N, x,
                         w->ln1_w + (size_t)l * C, w->ln1_b ? w->ln1_b + (size_t)l * C : NULL, N, C,
                         rms);
        gpt_linear_forward(qkv, ln1, w->qkv_w + l * C3 * C, w->qkv_b ? w->qkv_b + l * C3 : NULL, N,
                           C, 3 * C);
        gpt_attention_forward(atty, ws->att + l * att_n, qkv,
                              mk->attn ? mk->attn + l * att_n : NULL, B, T, C, NH);
        gpt_linear_forward(ws->tmp, atty, w->attn_w + (size_t)l * C * C,
                           w->attn_b ? w->attn_b + (size_t)l * C : NULL, N, C, C);
        add_dropped(mid, x, ws->tmp, mk->attn_resid ? mk->attn_resid + l * NC : NULL, NC);
        gpt_norm_forward(ln2, ws->ln2_mean + (size_t)l * N, ws->ln2_rstd + (size_t)l * N, mid,
                         w->ln2_w + (size_t)l * C, w->ln2_b ? w->ln2_b + (size_t)l * C : NULL, N, C,
                         rms);
        gpt_linear_forward(fc, ln2, w->fc_w + l * C4 * C, w->fc_b ? w->fc_b + l * C4 : NULL, N, C,
                           4 * C);
        gpt_gelu_forward(fc_gelu, fc, (size_t)N * C4);
        gpt_linear_forward(ws->tmp, fc_gelu, w->proj_w + l * C4 * C,
                           w->proj_b ? w->proj_b + (size_t)l * C : NULL, N, 4 * C, C);
        add_dropped(ws->resid + (l + 1) * NC, mid, ws->tmp,
                    mk->mlp_resid ? mk->mlp_resid + l * NC : NULL, NC);
    }
    gpt_norm_forward(ws->lnf, ws->lnf_mean, ws->lnf_rstd, ws->resid + c->layers * NC, w->lnf_w,
                     w->lnf_b, N, C, rms);
    gpt_linear_forward(ws->logits, ws->lnf, w->wte, NULL, N, C, V);
    if (!targets) return 0.0f;

    double loss = 0.0;
    for (int i = 0; i < N; i++) {
        float *z = ws->logits + (size_t)i * V;
        if (targets[i] < 0) { // not scored: no loss, and no gradient from this position
            memset(z, 0, (size_t)V * sizeof(float));
            continue;
        }
        float max = z[0];
        for (int v = 1; v < V; v++) max = fmaxf(max, z[v]);
        float target = z[targets[i]] - max;
        double sum = 0.0;
        for (int v = 0; v < V; v++) {
            z[v] = expf(z[v] - max);
            sum += z[v];
        }
        for (int v = 0; v < V; v++) z[v] = (float)(z[v] / sum);
        loss += log(sum) - target;
    }
    return (float)(loss / norm);
}

void gpt_backward(const Gpt *m, GptWorkspace *ws, const int *inputs, const int *targets, float norm,
                  float *grads) {
    const GptConfig *c = &m->config;
    const GptWeights *w = &m->w;
    GptWeights g;
    gpt_point(&g, c, grads);
    int B = ws->B, T = ws->T, C = c->embed, V = c->vocab_size, NH = c->heads, N = B * T;
    int rms = c->norm == GPT_RMSNORM;
    size_t NC = (size_t)N * C, C3 = 3 * (size_t)C, C4 = 4 * (size_t)C;
    size_t att_n = (size_t)B * NH * T * T;
    const GptMasks *mk = &ws->masks;

    // Softmax cross-entropy: d(logits) = (p - onehot) / norm, in place.
    for (int i = 0; i < N; i++) {
        float *z = ws->logits + (size_t)i * V;
        if (targets[i] >= 0) z[targets[i]] -= 1.0f;
        for (int v = 0; v < V; v++) z[v] /= norm;
    }
    gpt_linear_backward(ws->dln, g.wte, NULL, ws->logits, ws->lnf, w->wte, N, C, V);
    memset(ws->dres, 0, NC * sizeof(float));
    gpt_norm_backward(ws->dres, g.lnf_w, g.lnf_b, ws->dln, ws->resid + c->layers * NC, ws->lnf_mean,
                      ws->lnf_rstd, w->lnf_w, N, C, rms);

    for (int l = c->layers - 1; l >= 0; l--) {
        const float *mask;
        // resid[l+1] = mid + drop(proj(gelu(fc(ln2(mid))))); dres is d(resid[l+1]).
        mask = mk->mlp_resid ? mk->mlp_resid + l * NC : NULL;
        for (size_t i = 0; i < NC; i++) ws->tmp[i] = mask ? ws->dres[i] * mask[i] : ws->dres[i];
        gpt_linear_backward(ws->dwide, g.proj_w + l * C4 * C,
                            g.proj_b ? g.proj_b + (size_t)l * C : NULL, ws->tmp,
                            ws->fc_gelu + l * NC * 4, w->proj_w + l * C4 * C, N, 4 * C, C);
        gpt_gelu_backward(ws->dwide, ws->fc + l * NC * 4, NC * 4);
        gpt_linear_backward(ws->dln, g.fc_w + l * C4 * C, g.fc_b ? g.fc_b + l * C4 : NULL,
                            ws->dwide, ws->ln2 + l * NC, w->fc_w + l * C4 * C, N, C, 4 * C);
        gpt_norm_backward(ws->dres, g.ln2_w + (size_t)l * C,
                          g.ln2_b ? g.ln2_b + (size_t)l * C : NULL, ws->dln, ws->resid_mid + l * NC,
                          ws->ln2_mean + (size_t)l * N, ws->ln2_rstd + (size_t)l * N,
                          w->ln2_w + (size_t)l * C, N, C, rms);
        // mid = resid[l] + drop(c_proj(attention(c_attn(ln1(resid[l]))))); dres is d(mid).
        mask = mk->attn_resid ? mk->attn_resid + l * NC : NULL;
        for (size_t i = 0; i < NC; i++) ws->tmp[i] = mask ? ws->dres[i] * mask[i] : ws->dres[i];
        gpt_linear_backward(ws->dln, g.attn_w + (size_t)l * C * C,
                            g.attn_b ? g.attn_b + (size_t)l * C : NULL, ws->tmp, ws->atty + l * NC,
                            w->attn_w + (size_t)l * C * C, N, C, C);
        gpt_attention_backward(ws->dqkv, ws->drow, ws->dln, ws->att + l * att_n,
                               ws->qkv + l * NC * 3, mk->attn ? mk->attn + l * att_n : NULL, B, T,
                               C, NH);
        gpt_linear_backward(ws->dln, g.qkv_w + l * C3 * C, g.qkv_b ? g.qkv_b + l * C3 : NULL,
                            ws->dqkv, ws->ln1 + l * NC, w->qkv_w + l * C3 * C, N, C, 3 * C);
        gpt_norm_backward(ws->dres, g.ln1_w + (size_t)l * C,
                          g.ln1_b ? g.ln1_b + (size_t)l * C : NULL, ws->dln, ws->resid + l * NC,
                          ws->ln1_mean + (size_t)l * N, ws->ln1_rstd + (size_t)l * N,
                          w->ln1_w + (size_t)l * C, N, C, rms);
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)b * T + t;
            float *dte = g.wte + (size_t)inputs[row] * C, *dpe = g.wpe + (size_t)t * C;
            const float *d = ws->dres + row * C;
            for (int j = 0; j < C; j++) {
                float dx = mk->emb ? d[j] * mk->emb[row * C + j] : d[j];
                dte[j] += dx;
                dpe[j] += dx;
            }
        }
}
