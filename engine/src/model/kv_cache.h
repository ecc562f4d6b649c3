/* kv_cache.h - the FP16 key/value cache of a session.
 *
 * Layout: for each layer, n_ctx rows of kv_dim halves for K and the same for V
 * (k[(layer * n_ctx + pos) * kv_dim + head * head_dim + i]). Keys are stored after RoPE.
 * Row-major per position keeps one token's write contiguous and lets attention stream rows.
 */
#ifndef EDGELM_KV_CACHE_H
#define EDGELM_KV_CACHE_H

#include "edgelm.h"
#include "kernels/fp16.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv_cache {
    int32_t n_layer;
    uint32_t n_ctx;
    int32_t kv_dim;
    int32_t n_used; /* positions 0..n_used-1 hold valid entries */
    fp16_t *k;
    fp16_t *v;
} kv_cache;

/* Bytes kv_cache_init would allocate (0 on overflow). */
uint64_t kv_cache_bytes(int32_t n_layer, uint32_t n_ctx, int32_t kv_dim);
edgelm_status kv_cache_init(kv_cache *cache, int32_t n_layer, uint32_t n_ctx, int32_t kv_dim);
void kv_cache_free(kv_cache *cache);

static inline fp16_t *kv_cache_k(const kv_cache *c, int32_t layer, int32_t pos) {
    return c->k + ((size_t)layer * c->n_ctx + (size_t)pos) * (size_t)c->kv_dim;
}

static inline fp16_t *kv_cache_v(const kv_cache *c, int32_t layer, int32_t pos) {
    return c->v + ((size_t)layer * c->n_ctx + (size_t)pos) * (size_t)c->kv_dim;
}

/* Move n rows of K and V of every layer from position src to position dst (the ranges may
 * overlap). Used by the context shift to close the gap left by discarded positions. */
void kv_cache_move(kv_cache *c, int32_t dst, int32_t src, int32_t n);

/* Turn the keys at positions [begin, end) of one layer by per-frequency angles: in each head
 * (kv_dim / head_dim of them) pair i - dims (2i, 2i+1) for NORM rope, (i, i + n_rot/2) for
 * NEOX - rotates by the angle whose cosine and sine are cos_theta[i], sin_theta[i]
 * (n_rot/2 of each); dims past n_rot are left alone. RoPE rotations compose, so turning a key
 * that was stored at position p by the angles of position delta re-encodes it at p + delta.
 * Each element goes f16 -> f32 -> f16, as ggml's K-shift does. */
void kv_cache_rotate_k(kv_cache *c, int32_t layer, int32_t begin, int32_t end, int32_t head_dim,
                       int32_t n_rot, bool neox, const float *cos_theta, const float *sin_theta);

#endif
