#include "lstm.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "error.h"

int lstm_workspace_alloc(LstmWorkspace *ws, const ModelConfig *config, int max_T, int B,
                         int with_dropout, char *err) {
    memset(ws, 0, sizeof(*ws));
    ws->config = *config;
    int T = max_T;
    ws->max_T = ws->T = max_T;
    ws->B = B;
    size_t L = config->layers, H = config->hidden, V = config->vocab_size;
    size_t TB = (size_t)T * B;
    ws->proj = calloc(V * 4 * H, sizeof(float));
    ws->gates = calloc(L * TB * 4 * H, sizeof(float));
    ws->c = calloc(L * (TB + B) * H, sizeof(float));
    ws->h = calloc(L * (TB + B) * H, sizeof(float));
    ws->tanh_c = calloc(L * TB * H, sizeof(float));
    ws->logits = calloc(TB * V, sizeof(float));
    ws->dgates = calloc(TB * 4 * H, sizeof(float));
    ws->dh = calloc(TB * H, sizeof(float));
    ws->din = calloc(TB * H, sizeof(float));
    ws->dh_next = calloc((size_t)B * H, sizeof(float));
    ws->dc_next = calloc((size_t)B * H, sizeof(float));
    int ok = ws->proj && ws->gates && ws->c && ws->h && ws->tanh_c && ws->logits && ws->dgates &&
             ws->dh && ws->din && ws->dh_next && ws->dc_next;
    if (with_dropout && L > 1) {
        ws->mask = calloc((L - 1) * TB * H, sizeof(float));
        ws->drop = calloc((L - 1) * TB * H, sizeof(float));
        ok = ok && ws->mask && ws->drop;
    }
    if (!ok) {
        lstm_workspace_free(ws);
        return err_set(err, "out of memory for a [%d, %d] training workspace", T, B);
    }
    return 0;
}

int lstm_workspace_regularise(LstmWorkspace *ws, int embed, int variational, char *err) {
    size_t L = ws->config.layers, E = ws->config.embed, H = ws->config.hidden;
    size_t B = ws->B, TB = (size_t)ws->max_T * B;
    int ok = 1;
    if (embed) ok = ok && (ws->emb_mask = calloc(ws->config.vocab_size, sizeof(float)));
    if (variational) {
        ok = ok && (ws->var_in = calloc(B * E, sizeof(float))) &&
             (ws->var_out = calloc(B * H, sizeof(float))) &&
             (ws->top = calloc(TB * H, sizeof(float)));
        if (L > 1) {
            // The between-layer mask and output buffers carry the variational factors.
            ok = ok && (ws->var_mid = calloc((L - 1) * B * H, sizeof(float)));
            if (!ws->mask) ok = ok && (ws->mask = calloc((L - 1) * TB * H, sizeof(float)));
            if (!ws->drop) ok = ok && (ws->drop = calloc((L - 1) * TB * H, sizeof(float)));
        }
    }
    if (embed || variational)
        ok = ok && (ws->x0 = calloc(TB * E, sizeof(float))) &&
             (ws->dx0 = calloc(TB * E, sizeof(float)));
    if (!ok) {
        lstm_workspace_free(ws);
        return err_set(err, "out of memory for a [%zu, %zu] regularised workspace", TB / B, B);
    }
    return 0;
}

void lstm_dropout_mask(float *mask, size_t n, float p, Rng *rng) {
    float keep = 1.0f / (1.0f - p);
    for (size_t k = 0; k < n; k++) mask[k] = rng_float(rng) < p ? 0.0f : keep;
}

void lstm_workspace_free(LstmWorkspace *ws) {
    free(ws->emb_mask);
    free(ws->var_in);
    free(ws->var_mid);
    free(ws->var_out);
    free(ws->x0);
    free(ws->dx0);
    free(ws->top);
    free(ws->proj);
    free(ws->gates);
    free(ws->c);
    free(ws->h);
    free(ws->tanh_c);
    free(ws->mask);
    free(ws->drop);
    free(ws->logits);
    free(ws->dgates);
    free(ws->dh);
    free(ws->din);
    free(ws->dh_next);
    free(ws->dc_next);
    memset(ws, 0, sizeof(*ws));
}

/* Distance between layers in h and c: fixed by the capacity so a carried state stays put
 * when T changes. */
static size_t state_stride(const LstmWorkspace *ws) {
    return (size_t)(ws->max_T + 1) * ws->B * ws->config.hidden;
}

void lstm_state_reset(LstmWorkspace *ws) {
    size_t BH = (size_t)ws->B * ws->config.hidden;
    for (int l = 0; l < ws->config.layers; l++) {
        memset(ws->h + l * state_stride(ws), 0, BH * sizeof(float));
        memset(ws->c + l * state_stride(ws), 0, BH * sizeof(float));
    }
}

void lstm_state_carry(LstmWorkspace *ws) {
    size_t BH = (size_t)ws->B * ws->config.hidden;
    for (int l = 0; l < ws->config.layers; l++) {
        float *h = ws->h + l * state_stride(ws), *c = ws->c + l * state_stride(ws);
        memcpy(h, h + (size_t)ws->T * BH, BH * sizeof(float));
        memcpy(c, c + (size_t)ws->T * BH, BH * sizeof(float));
    }
}

/* The input of layer l > 0: the layer below's outputs (after dropout). */
static const float *layer_input(const LstmWorkspace *ws, int l) {
    size_t TBH = (size_t)ws->T * ws->B * ws->config.hidden;
    if (ws->mask) return ws->drop + (l - 1) * TBH;
    return ws->h + (l - 1) * state_stride(ws) + (size_t)ws->B * ws->config.hidden;
}

static const float *top_output(const LstmWorkspace *ws) {
    int L = ws->config.layers;
    if (ws->top) return ws->top;
    return ws->h + (L - 1) * state_stride(ws) + (size_t)ws->B * ws->config.hidden;
}

float lstm_forward(const Model *model, LstmWorkspace *ws, const int *inputs, const int *targets,
                   float dropout, Rng *rng, float norm) {
    const ModelConfig *cf = &model->config;
    const LstmWeights *w = &model->w;
    int T = ws->T, B = ws->B, E = cf->embed, H = cf->hidden, V = cf->vocab_size;
    int TB = T * B, G = 4 * H;

    for (int l = 0; l < cf->layers; l++) {
        float *gates = ws->gates + (size_t)l * TB * G;   // [T, B, 4H]
        float *h = ws->h + l * state_stride(ws);         // [T+1, B, H]
        float *c = ws->c + l * state_stride(ws);         // [T+1, B, H]
        float *tanh_c = ws->tanh_c + (size_t)l * TB * H; // [T, B, H]

        if (l == 0 && ws->x0) {
            // Masked embedding rows, one per position, then one product as for the layers
            // above: with masks the table's V rows no longer cover every input.
            const float *var_in = ws->var_in;
            for (int p = 0; p < TB; p++) {
                const float *e = w->embedding + (size_t)inputs[p] * E;
                float *x = ws->x0 + (size_t)p * E;
                float s = ws->emb_mask ? ws->emb_mask[inputs[p]] : 1.0f;
                for (int k = 0; k < E; k++)
                    x[k] = e[k] * s * (var_in ? var_in[(size_t)(p % B) * E + k] : 1.0f);
                float *g = gates + (size_t)p * G;
                for (int j = 0; j < G; j++) g[j] = w->b_ih[0][j] + w->b_hh[0][j];
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TB, G, E, 1.0f, ws->x0, E,
                        w->w_ih[0], E, 1.0f, gates, G);
        } else if (l == 0) {
            // Layer 0 sees one embedding row per token, so its input projection (biases
            // included) takes one of V values: make the table once, then copy rows.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, V, G, E, 1.0f, w->embedding, E,
                        w->w_ih[0], E, 0.0f, ws->proj, G);
            for (int v = 0; v < V; v++) {
                float *row = ws->proj + (size_t)v * G;
                for (int j = 0; j < G; j++) row[j] += w->b_ih[0][j] + w->b_hh[0][j];
            }
            for (int p = 0; p < TB; p++)
                memcpy(gates + (size_t)p * G, ws->proj + (size_t)inputs[p] * G, G * sizeof(float));
        } else {
            // Gates start as the summed biases; the input projections of every step are
            // then added in one product, so only h @ W_hh^T is left to the sequential loop.
            for (int p = 0; p < TB; p++) {
                float *g = gates + (size_t)p * G;
                for (int j = 0; j < G; j++) g[j] = w->b_ih[l][j] + w->b_hh[l][j];
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TB, G, H, 1.0f, layer_input(ws, l),
                        H, w->w_ih[l], H, 1.0f, gates, G);
        }
        for (int t = 0; t < T; t++) {
            float *gt = gates + (size_t)t * B * G;
            const float *h_prev = h + (size_t)t * B * H;
            float *h_next = h + (size_t)(t + 1) * B * H, *c_next = c + (size_t)(t + 1) * B * H;
            float *tc = tanh_c + (size_t)t * B * H;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G, H, 1.0f, h_prev, H,
                        w->w_hh[l], H, 1.0f, gt, G);
            memcpy(c_next, c + (size_t)t * B * H, (size_t)B * H * sizeof(float));
            for (int b = 0; b < B; b++)
                act_lstm_cell(gt + (size_t)b * G, c_next + (size_t)b * H, tc + (size_t)b * H,
                              h_next + (size_t)b * H, H);
        }
        if (ws->mask && l < cf->layers - 1) {
            float *mask = ws->mask + (size_t)l * TB * H, *drop = ws->drop + (size_t)l * TB * H;
            const float *out = h + (size_t)B * H;
            float keep = 1.0f - dropout;
            const float *var = ws->var_mid ? ws->var_mid + (size_t)l * B * H : NULL;
            for (size_t k = 0; k < (size_t)TB * H; k++) {
                mask[k] = dropout > 0 && rng_float(rng) < dropout ? 0.0f : 1.0f / keep;
                if (var) mask[k] *= var[k % ((size_t)B * H)];
                drop[k] = out[k] * mask[k];
            }
        }
    }
    if (ws->var_out) {
        const float *out = ws->h + (cf->layers - 1) * state_stride(ws) + (size_t)B * H;
        for (size_t k = 0; k < (size_t)TB * H; k++)
            ws->top[k] = out[k] * ws->var_out[k % ((size_t)B * H)];
    }

    const float *top = top_output(ws); // [T*B, H]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, TB, V, H, 1.0f, top, H, w->fc_w, H, 0.0f,
                ws->logits, V);
    for (int p = 0; p < TB; p++) {
        float *z = ws->logits + (size_t)p * V;
        for (int v = 0; v < V; v++) z[v] += w->fc_b[v];
    }
    if (!targets) return 0.0f;

    // Softmax in place: the backward pass needs the probabilities.
    double loss = 0.0;
    for (int p = 0; p < TB; p++) {
        float *z = ws->logits + (size_t)p * V;
        float max = z[0];
        for (int v = 1; v < V; v++) max = z[v] > max ? z[v] : max;
        float sum = 0.0f;
        for (int v = 0; v < V; v++) {
            z[v] = expf(z[v] - max);
            sum += z[v];
        }
        float inv = 1.0f / sum;
        loss -= logf(z[targets[p]] * inv);
        for (int v = 0; v < V; v++) z[v] *= inv;
    }
    return (float)(loss / norm);
}

static void add_column_sums(const float *m, int rows, int cols, float *out) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) out[c] += m[(size_t)r * cols + c];
}

void lstm_backward(const Model *model, LstmWorkspace *ws, const int *inputs, const int *targets,
                   float norm, float *grads) {
    const ModelConfig *cf = &model->config;
    const LstmWeights *w = &model->w;
    LstmWeights gw;
    model_point(&gw, cf, grads);
    int T = ws->T, B = ws->B, E = cf->embed, H = cf->hidden, V = cf->vocab_size;
    int TB = T * B, G = 4 * H;

    // d(loss)/d(logits) = (softmax - onehot) / norm, in place over the probabilities.
    float scale = 1.0f / norm;
    for (int p = 0; p < TB; p++) {
        float *z = ws->logits + (size_t)p * V;
        z[targets[p]] -= 1.0f;
        for (int v = 0; v < V; v++) z[v] *= scale;
    }
    const float *dlogits = ws->logits; // [T*B, V]
    const float *top = top_output(ws);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, H, TB, 1.0f, dlogits, V, top, H, 1.0f,
                gw.fc_w, H);
    add_column_sums(dlogits, TB, V, gw.fc_b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, TB, H, V, 1.0f, dlogits, V, w->fc_w, H,
                0.0f, ws->dh, H);
    if (ws->var_out)
        for (size_t k = 0; k < (size_t)TB * H; k++) ws->dh[k] *= ws->var_out[k % ((size_t)B * H)];

    for (int l = cf->layers - 1; l >= 0; l--) {
        const float *gates = ws->gates + (size_t)l * TB * G;
        const float *h = ws->h + l * state_stride(ws);
        const float *c = ws->c + l * state_stride(ws);
        const float *tanh_c = ws->tanh_c + (size_t)l * TB * H;
        memset(ws->dh_next, 0, (size_t)B * H * sizeof(float));
        memset(ws->dc_next, 0, (size_t)B * H * sizeof(float));

        for (int t = T - 1; t >= 0; t--) {
            const float *gt = gates + (size_t)t * B * G;
            const float *c_prev = c + (size_t)t * B * H;
            const float *tc = tanh_c + (size_t)t * B * H;
            const float *dh_out = ws->dh + (size_t)t * B * H;
            float *dg = ws->dgates + (size_t)t * B * G;
            // dh_next becomes the total gradient reaching h_t.
            for (int k = 0; k < B * H; k++) ws->dh_next[k] += dh_out[k];
            for (int b = 0; b < B; b++)
                act_lstm_cell_backward(gt + (size_t)b * G, c_prev + (size_t)b * H,
                                       tc + (size_t)b * H, ws->dh_next + (size_t)b * H,
                                       ws->dc_next + (size_t)b * H, dg + (size_t)b * G, H);
            if (t > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G, 1.0f, dg, G,
                            w->w_hh[l], H, 0.0f, ws->dh_next, H);
        }

        // Weight gradients for all steps at once: h[0 .. T-1] is contiguous.
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, H, TB, 1.0f, ws->dgates, G, h, H,
                    1.0f, gw.w_hh[l], H);
        if (l > 0) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, H, TB, 1.0f, ws->dgates, G,
                        layer_input(ws, l), H, 1.0f, gw.w_ih[l], H);
            add_column_sums(ws->dgates, TB, G, gw.b_ih[l]);
            add_column_sums(ws->dgates, TB, G, gw.b_hh[l]);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, TB, H, G, 1.0f, ws->dgates, G,
                        w->w_ih[l], H, 0.0f, ws->din, H);
            const float *mask = ws->mask ? ws->mask + (size_t)(l - 1) * TB * H : NULL;
            for (size_t k = 0; k < (size_t)TB * H; k++)
                ws->dh[k] = mask ? ws->din[k] * mask[k] : ws->din[k];
        } else if (ws->x0) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, E, TB, 1.0f, ws->dgates, G,
                        ws->x0, E, 1.0f, gw.w_ih[0], E);
            add_column_sums(ws->dgates, TB, G, gw.b_ih[0]);
            add_column_sums(ws->dgates, TB, G, gw.b_hh[0]);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, TB, E, G, 1.0f, ws->dgates, G,
                        w->w_ih[0], E, 0.0f, ws->dx0, E);
            // Each position's input gradient goes back through its masks to its row.
            for (int p = 0; p < TB; p++) {
                float *ge = gw.embedding + (size_t)inputs[p] * E;
                const float *d = ws->dx0 + (size_t)p * E;
                float s = ws->emb_mask ? ws->emb_mask[inputs[p]] : 1.0f;
                for (int k = 0; k < E; k++)
                    ge[k] += d[k] * s * (ws->var_in ? ws->var_in[(size_t)(p % B) * E + k] : 1.0f);
            }
        } else {
            // The forward table's backward: sum the gate gradients per token, then three
            // small products replace the [T*B]-row ones.
            memset(ws->proj, 0, (size_t)V * G * sizeof(float));
            for (int p = 0; p < TB; p++) {
                float *row = ws->proj + (size_t)inputs[p] * G;
                const float *d = ws->dgates + (size_t)p * G;
                for (int j = 0; j < G; j++) row[j] += d[j];
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, E, V, 1.0f, ws->proj, G,
                        w->embedding, E, 1.0f, gw.w_ih[0], E);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, V, E, G, 1.0f, ws->proj, G,
                        w->w_ih[0], E, 1.0f, gw.embedding, E);
            add_column_sums(ws->proj, V, G, gw.b_ih[0]);
            add_column_sums(ws->proj, V, G, gw.b_hh[0]);
        }
    }
}
