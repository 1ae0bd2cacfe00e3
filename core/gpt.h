/*
 * gpt.h — nanoGPT's GPT (model.py): hyperparameters, parameters, GPT-2 init, and the
 * training forward and backward over a [B, T] batch.
 *
 *   x = drop(wte[token] + wpe[position])
 *   layers x pre-norm blocks:  x = x + drop(attn.c_proj(attention(c_attn(norm_1(x)))))
 *                              x = x + drop(mlp.c_proj(gelu(mlp.c_fc(norm_2(x)))))
 *   logits = norm_f(x) @ wte^T          (lm_head tied to wte, no bias)
 *
 * Attention is causal, `heads` heads of C/heads, softmax(q k^T / sqrt(C/heads)) with
 * dropout on the probabilities; c_attn is one fused Linear C -> 3C (q, k, v). GELU is the
 * exact (erf) one. The norm is LayerNorm (eps 1e-5) or RMSNorm (eps 1e-5, weight only);
 * `bias` gives every Linear and every LayerNorm a bias (RMSNorm never has one).
 *
 * All parameters live in one contiguous float buffer, grouped by kind across layers (all
 * layers' c_attn weights together, and so on); GptWeights holds named pointers into it.
 * The same layout is laid over the gradient buffer and Adam's moments, so clipping and
 * updating are loops over num_params floats. The tensor table names every tensor as
 * nanoGPT's state_dict does, in its order, so the weights move to and from PyTorch.
 *
 * Activations are batch-major, row (b, t) = b*T + t, as nanoGPT's [B, T, C]. The Linear
 * layers are OpenBLAS sgemm products; attention, the norms and GELU are plain loops.
 * Single-threaded: the caller may split a batch across threads with one workspace each
 * and `norm` = the whole batch's B*T, then add the gradients.
 */
#ifndef CHARLM_GPT_H
#define CHARLM_GPT_H

#include <stddef.h>
#include <stdint.h>

#define GPT_MAX_LAYERS  64
#define GPT_MAX_EMBED   8192
#define GPT_MAX_BLOCK   65536
#define GPT_MAX_TENSORS (4 + 12 * GPT_MAX_LAYERS)
#define GPT_NORM_EPS    1e-5f

enum { GPT_LAYERNORM = 0, GPT_RMSNORM = 1 };

typedef struct {
    int vocab_size; // V
    int layers;     // L
    int heads;      // NH, divides embed
    int embed;      // C
    int block;      // the longest context: rows of wpe
    int norm;       // GPT_LAYERNORM or GPT_RMSNORM
    int bias;       // 1: every Linear and LayerNorm has a bias
} GptConfig;

/* Named pointers into the parameter buffer; the bias pointers are NULL without biases
 * (and the norm biases also with RMSNorm). */
typedef struct {
    float *wte;    // [V, C] token embedding, also the output layer
    float *wpe;    // [block, C] position embedding
    float *ln1_w;  // [L, C]
    float *ln1_b;  // [L, C]
    float *qkv_w;  // [L, 3C, C] attn.c_attn
    float *qkv_b;  // [L, 3C]
    float *attn_w; // [L, C, C] attn.c_proj
    float *attn_b; // [L, C]
    float *ln2_w;  // [L, C]
    float *ln2_b;  // [L, C]
    float *fc_w;   // [L, 4C, C] mlp.c_fc
    float *fc_b;   // [L, 4C]
    float *proj_w; // [L, C, 4C] mlp.c_proj
    float *proj_b; // [L, C]
    float *lnf_w;  // [C]
    float *lnf_b;  // [C]
} GptWeights;

typedef struct {
    GptConfig config;
    size_t num_params;
    float *params; // [num_params] the one buffer GptWeights points into
    GptWeights w;
} Gpt;

/* One named tensor, in nanoGPT's state_dict order. */
typedef struct {
    char name[48]; // e.g. "transformer.h.0.attn.c_attn.weight"
    int ndim;
    int64_t shape[2];
    size_t offset;   // in floats from the start of the parameter buffer
    size_t count;    // floats
    int decay;       // AdamW decays it: two or more dimensions (nanoGPT's groups)
    float init_std;  // GPT-2 init: N(0, init_std), or when 0 the constant init_fill
    float init_fill; // 1 for norm weights, 0 for biases
} GptTensor;

/* Rejects sizes outside what the code supports (with a message naming the field). */
int gpt_config_check(const GptConfig *config, char *err);
size_t gpt_param_count(const GptConfig *config);
/* The tensor table (config must pass gpt_config_check). Returns the number of tensors. */
int gpt_tensors(const GptConfig *config, GptTensor *out);
/* Points every field of w into buf laid out as the model's parameters. */
void gpt_point(GptWeights *w, const GptConfig *config, float *buf);

/* Allocates zeroed parameters. */
int gpt_alloc(Gpt *model, const GptConfig *config, char *err);
/* Allocates and initialises as GPT-2: weight matrices and embeddings N(0, 0.02), every
 * c_proj.weight N(0, 0.02 / sqrt(2 layers)), biases 0, norm weights 1; drawn from a
 * generator seeded with seed, tensor by tensor in table order. */
int gpt_init(Gpt *model, const GptConfig *config, uint64_t seed, char *err);
void gpt_free(Gpt *model);

/* Dropout masks, each entry 0 or 1/(1-p), filled by the caller (who draws them, or, in
 * the parity test, reads PyTorch's). A NULL field leaves that dropout out; no masks at all
 * (NULL) is evaluation. Laid out for the forward call's T: */
typedef struct {
    const float *emb;        // [B, T, C] on the embedded input
    const float *attn;       // [L, B, NH, T, T] on the attention probabilities
    const float *attn_resid; // [L, B, T, C] on attn.c_proj's output
    const float *mlp_resid;  // [L, B, T, C] on mlp.c_proj's output
} GptMasks;

/* Every activation backward needs, for up to [B, max_T]. */
typedef struct {
    GptConfig config;
    int max_T; // capacity, at most block
    int T;     // positions of the next forward call, 1 .. max_T (callers may lower it)
    int B;
    GptMasks masks;   // the last forward call's, which backward applies again
    float *resid;     // [L+1, B, T, C] the residual stream entering each block, and the last
    float *resid_mid; // [L, B, T, C] after each block's attention
    float *ln1;       // [L, B, T, C] norm_1's output
    float *ln1_mean;  // [L, B, T] (LayerNorm only)
    float *ln1_rstd;  // [L, B, T] 1 / sqrt(var + eps), or RMSNorm's 1 / rms
    float *qkv;       // [L, B, T, 3C]
    float *att;       // [L, B, NH, T, T] softmax probabilities (0 above the diagonal)
    float *atty;      // [L, B, T, C] attention output, heads side by side
    float *ln2;       // [L, B, T, C]
    float *ln2_mean;  // [L, B, T]
    float *ln2_rstd;  // [L, B, T]
    float *fc;        // [L, B, T, 4C] before GELU
    float *fc_gelu;   // [L, B, T, 4C]
    float *lnf;       // [B, T, C]
    float *lnf_mean;  // [B, T]
    float *lnf_rstd;  // [B, T]
    float *logits;    // [B, T, V] logits, then softmax probabilities after the loss
    float *tmp;       // [B, T, C] forward and backward scratch
    float *dres;      // [B, T, C] backward: gradient of the residual stream
    float *dln;       // [B, T, C] backward: gradient of a norm's output
    float *dqkv;      // [B, T, 3C]
    float *dwide;     // [B, T, 4C]
    float *drow;      // [T] one attention row's probability gradient
} GptWorkspace;

int gpt_workspace_alloc(GptWorkspace *ws, const GptConfig *config, int max_T, int B, char *err);
void gpt_workspace_free(GptWorkspace *ws);

/* inputs, targets: [B, T] token ids, T = ws->T <= block. Computes ws->logits; returns the
 * summed cross-entropy over the B*T positions divided by norm (normally B*T), or 0 when
 * targets is NULL; a position whose target is < 0 is not scored (nanoGPT's ignore_index
 * -1), as the windows of a long text that only score their new positions need. masks (see GptMasks)
 * must stay valid until gpt_backward. */
float gpt_forward(const Gpt *model, GptWorkspace *ws, const int *inputs, const int *targets,
                  const GptMasks *masks, float norm);
/* Adds d(loss)/d(params) into grads (laid out like model->params). Must follow a forward
 * call with targets on the same workspace, with the same norm. */
void gpt_backward(const Gpt *model, GptWorkspace *ws, const int *inputs, const int *targets,
                  float norm, float *grads);

#endif
