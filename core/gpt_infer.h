/*
 * gpt_infer.h — GPT inference: a decode step that advances n independent streams at once,
 * a prefill of a chunk of one stream (the context rule, arch.h, resets a stream and
 * prefills what it keeps).
 *
 * A stream's state is its KV cache: the keys and values of every layer at every position
 * it has been fed, 2 x layers x block x embed floats, and its position (how many of those
 * are filled). A step gives each of n streams one token at its own position: every Linear
 * of a block runs over the n rows at once with one pass over its (packed, see
 * gpt_infer_prepare) weights, and attention runs for each stream over its own cache. A
 * prefill runs a chunk of one stream's tokens as a sequence: the same row-wise code with
 * the chunk's T positions as the rows, attention causal inside the chunk and over the cache.
 *
 * Bit-identity: every number of a row is computed by the same operations in the same
 * order whatever the other rows are: the products are a fixed-order kernel (each output
 * one chain of multiply-adds over the inputs in order, whatever the number of rows), the
 * norms, GELU and residual adds are per row, and a row's attention reads only its own
 * stream's cache, positions 0 .. its own in order. So a stream's logits and cache are the
 * same bits alone, batched with any others, and fed in prefill chunks of any size or
 * step by step, and the same seed gives the same text under load. They agree with the
 * training forward (gpt_forward, an sgemm that sums in another order) to about 1e-6
 * relative, not bit for bit.
 */
#ifndef CHARLM_GPT_INFER_H
#define CHARLM_GPT_INFER_H

#include <stddef.h>

#include "gpt.h"

/* The model's Linear weights packed for the kernel, and the model they came from. */
typedef struct {
    const Gpt *model; // not owned: must outlive this, and not change after prepare
    float *buf;       // every packed matrix below points into it
    const float *qkv_w[GPT_MAX_LAYERS];  // attn.c_attn
    const float *attn_w[GPT_MAX_LAYERS]; // attn.c_proj
    const float *fc_w[GPT_MAX_LAYERS];   // mlp.c_fc
    const float *proj_w[GPT_MAX_LAYERS]; // mlp.c_proj
    const float *head_w;                 // wte, the tied output layer
} GptInfer;

/* One stream: kv [L][2][block][C], layer l's keys at kv + 2 l block C, its values the
 * block x C floats after; pos positions filled (0 .. block). */
typedef struct {
    float *kv;
    int pos;
} GptStream;

/* Scratch for a step of up to max_rows streams or a prefill of up to max_rows tokens. */
typedef struct {
    int max_rows;
    float *x;               // [rows, C] the residual stream
    float *ln;              // [rows, C] a norm's output
    float *qkv;             // [rows, 3C]
    float *y;               // [rows, C] attention's output, heads side by side
    float *out;             // [rows, C] a c_proj's output, before it joins the residual stream
    float *wide;            // [rows, 4C] the MLP's hidden layer
    float *mean;            // [rows] the norms' statistics (unused after the call)
    float *rstd;            // [rows]
    float *score;           // [block] one head's attention weights for one row
    int *pos;               // [rows] each row's position
    GptStream **row_stream; // [rows] each row's stream
} GptScratch;

/* Packs model's Linear weights for the kernel into gi (zeroed before the first call); call
 * again after changing the model's parameters, which frees the previous packing. */
int gpt_infer_prepare(GptInfer *gi, const Gpt *model, char *err);
void gpt_infer_free(GptInfer *gi);

/* Floats of one stream's KV cache: 2 x layers x block x embed. */
size_t gpt_stream_floats(const GptConfig *config);
/* Allocates an empty stream (pos 0). */
int gpt_stream_alloc(GptStream *st, const GptConfig *config, char *err);
void gpt_stream_free(GptStream *st);

int gpt_scratch_alloc(GptScratch *s, const GptConfig *config, int max_rows, char *err);
void gpt_scratch_free(GptScratch *s);

/* Feeds ids[i] to streams[i] at its position for i < n (n <= s->max_rows, the streams
 * distinct, each with pos < block), advances each position by one and writes each
 * stream's next-token logits into logits [n, V]. */
void gpt_infer_step(const GptInfer *gi, GptScratch *s, int n, const int *ids,
                    GptStream *const *streams, float *logits);

/* Feeds ids[0 .. T) (T <= s->max_rows, pos + T <= block) to one stream as a sequence and
 * advances its position by T. Writes the logits of the last nlogits positions
 * (0 <= nlogits <= T) into logits [nlogits, V]; the others are not computed. */
void gpt_infer_prefill(const GptInfer *gi, GptScratch *s, int T, const int *ids, GptStream *st,
                       float *logits, int nlogits);

#endif
