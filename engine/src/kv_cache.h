/* kv_cache.h - the FP16 key/value cache of a session.
 *
 * Layout: for each layer, n_ctx rows of kv_dim halves for K and the same for V
 * (k[(layer * n_ctx + pos) * kv_dim + head * head_dim + i]). Keys are stored after RoPE.
 * Row-major per position keeps one token's write contiguous and lets attention stream rows.
 */
#ifndef EDGELM_KV_CACHE_H
#define EDGELM_KV_CACHE_H

#include "edgelm.h"
#include "fp16.h"

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

#endif
