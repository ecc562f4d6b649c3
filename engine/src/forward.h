/* forward.h - the transformer forward pass for one token at a time (decode), as llama.cpp's CPU
 * backend computes it, reading weights only through the tensor traits table.
 *
 * forward_state owns the KV cache and every scratch buffer; all of it is allocated in
 * forward_init, so evaluating a token allocates nothing.
 */
#ifndef EDGELM_FORWARD_H
#define EDGELM_FORWARD_H

#include "kv_cache.h"
#include "model.h"
#include "thread_pool.h"

typedef struct forward_state {
    const edgelm_model *model;
    thread_pool *pool;
    kv_cache cache;
    float *x;        /* (n_embd) residual stream */
    float *xb;       /* (max(n_embd, q_dim)) normed input / attention output */
    float *q;        /* (q_dim) */
    float *k;        /* (kv_dim) */
    float *v;        /* (kv_dim) */
    float *hb;       /* (n_ff) gate, then silu(gate) * up */
    float *hb2;      /* (n_ff) up */
    float *logits;   /* (n_vocab) */
    float *rope_cos; /* (n_rot / 2) for the current position */
    float *rope_sin;
    fp16_t *q16;     /* (q_dim) the query rounded to f16, as ggml feeds it to the f16 K dot */
    fp16_t *o16;     /* (q_dim) per-head f16 attention accumulators (ggml's VKQ16) */
    uint8_t *act[3]; /* activations converted to a vec_dot_type, one slot per distinct type */
    size_t act_bytes;
} forward_state;

/* Bytes of scratch and cache forward_init allocates for n_ctx. */
uint64_t forward_state_bytes(const edgelm_model *model, uint32_t n_ctx);
edgelm_status forward_init(forward_state *fs, const edgelm_model *model, uint32_t n_ctx,
                           int n_threads);
void forward_free(forward_state *fs);

/* Evaluate token at position pos (pos < n_ctx, token < n_vocab: checked by the caller); write
 * K/V at pos and, when want_logits, the logits. */
void forward_token(forward_state *fs, int32_t token, int32_t pos, bool want_logits);

#endif
