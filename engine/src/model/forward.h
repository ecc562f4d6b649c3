/* forward.h - the transformer forward pass, as llama.cpp's CPU backend computes it, reading
 * weights only through the tensor traits table: one token (decode) or a batch of tokens (prefill)
 * processed in chunks whose every weight row is read once per chunk.
 *
 * forward_state owns the KV cache and every scratch buffer, all allocated in forward_init for a
 * chunk of up to FORWARD_CHUNK tokens, so evaluating tokens allocates nothing. A batch gives
 * bit-identical results to the same tokens evaluated one at a time.
 */
#ifndef EDGELM_FORWARD_H
#define EDGELM_FORWARD_H

#include "kv_cache.h"
#include "model.h"
#include "thread_pool.h"

/* Tokens per prefill chunk: large enough that a chunk's matmul is bound by arithmetic rather
 * than by reading the weights, small enough that the chunk's activations for one matmul (32 x
 * n_ff Q8_K values, about 200 KiB for a 1B model) stay in a small board's L2. */
#define FORWARD_CHUNK 32

typedef struct forward_state {
    const edgelm_model *model;
    thread_pool *pool;
    kv_cache cache;
    int32_t n_chunk_max; /* tokens the scratch below holds (FORWARD_CHUNK) */
    int32_t n_chunk; /* tokens per chunk used by forward_batch, 1..n_chunk_max (tests lower it) */
    /* scratch, one row per token of the chunk */
    float *x;              /* (n_chunk_max, n_embd) residual stream */
    float *xb;             /* (n_chunk_max, n_embd) normed input */
    float *q;              /* (n_chunk_max, q_dim) */
    float *k;              /* (n_chunk_max, kv_dim) */
    float *v;              /* (n_chunk_max, kv_dim) */
    float *att;            /* (n_chunk_max, q_dim) attention output */
    float *hb;             /* (n_chunk_max, n_ff) gate, then silu(gate) * up */
    float *hb2;            /* (n_chunk_max, n_ff) up */
    float *rope_cos;       /* (n_chunk_max, n_rot / 2) for each token's position */
    float *rope_sin;       /* (n_chunk_max, n_rot / 2) */
    float *rope_cos_local; /* the same for local layers' rope (hp.n_local_layers > 0) */
    float *rope_sin_local;
    fp16_t *q16;     /* (n_chunk_max, q_dim) queries rounded to f16, as ggml feeds the f16 K dot */
    fp16_t *o16;     /* (n_chunk_max, q_dim) per-head f16 attention accumulators (ggml's VKQ16) */
    uint8_t *act[3]; /* activations converted to a vec_dot_type, one slot per distinct type:
                      * n_chunk_max rows of at most act_row_bytes each */
    size_t act_row_bytes;
    float *logits; /* (n_vocab) of the last token evaluated with want_logits */
} forward_state;

/* Bytes of scratch and cache forward_init allocates for n_ctx (besides a few KiB per thread). */
uint64_t forward_state_bytes(const edgelm_model *model, uint32_t n_ctx);
edgelm_status forward_init(forward_state *fs, const edgelm_model *model, uint32_t n_ctx,
                           int n_threads);
void forward_free(forward_state *fs);

/* Evaluate tokens[0..n) at positions pos0..pos0+n-1 (pos0 + n <= n_ctx, every token < n_vocab:
 * checked by the caller); write their K/V and, when want_logits, the logits of the last one.
 * Bit-identical to n calls of forward_token. Cancellation granularity is the caller's: it may
 * call this once per FORWARD_CHUNK tokens. */
void forward_batch(forward_state *fs, const int32_t *tokens, int32_t n, int32_t pos0,
                   bool want_logits);

/* cos/sin of freq_scale * (pos * base^(-2i/n_rot) / factor[i]) for i < n_rot / 2 (factor 1
 * without rope_freq_factors), built by repeated multiplication as ggml's rope cache does (so the
 * angles round the same way); pos may be negative (a context shift turns keys back by the tokens
 * it drops, with the same factors). local: the angles of local (sliding-window) layers, with
 * rope_freq_base_swa, scale 1 and no factors. */
void forward_rope_angles(const model_hparams *hp, bool local, int32_t pos, float *cos_out,
                         float *sin_out);

/* Re-encode the cached keys at positions [begin, end) of every layer at position + delta, each
 * layer with its own rope (local or global): the context shift's key update. */
void forward_rotate_keys(forward_state *fs, int32_t begin, int32_t end, int32_t delta);

/* forward_batch of one token. */
void forward_token(forward_state *fs, int32_t token, int32_t pos, bool want_logits);

#endif
