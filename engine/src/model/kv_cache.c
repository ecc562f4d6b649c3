/* kv_cache.c - the FP16 KV cache (see kv_cache.h): allocation, and the row moves and key
 * re-rotation the context shift needs. Nothing here knows the model; callers pass positions that
 * lie inside the cache. */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

uint64_t kv_cache_bytes(int32_t n_layer, uint32_t n_ctx, int32_t kv_dim) {
    if (n_layer <= 0 || kv_dim <= 0) {
        return 0;
    }
    uint64_t per_side = (uint64_t)n_layer * n_ctx;
    if (per_side > UINT64_MAX / (uint64_t)kv_dim / 4) {
        return 0;
    }
    return per_side * (uint64_t)kv_dim * sizeof(fp16_t) * 2;
}

edgelm_status kv_cache_init(kv_cache *cache, int32_t n_layer, uint32_t n_ctx, int32_t kv_dim) {
    memset(cache, 0, sizeof *cache);
    uint64_t bytes = kv_cache_bytes(n_layer, n_ctx, kv_dim);
    if (bytes == 0 || bytes / 2 > SIZE_MAX) {
        return EDGELM_ERR_TOO_LARGE;
    }
    size_t n = (size_t)(bytes / 2 / sizeof(fp16_t));
    /* calloc: untouched pages stay unallocated, so a large context only costs what is used */
    cache->k = calloc(n, sizeof(fp16_t));
    cache->v = calloc(n, sizeof(fp16_t));
    if (cache->k == NULL || cache->v == NULL) {
        kv_cache_free(cache);
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    cache->n_layer = n_layer;
    cache->n_ctx = n_ctx;
    cache->kv_dim = kv_dim;
    return EDGELM_OK;
}

void kv_cache_free(kv_cache *cache) {
    if (cache != NULL) {
        free(cache->k);
        free(cache->v);
        memset(cache, 0, sizeof *cache);
    }
}

void kv_cache_move(kv_cache *c, int32_t dst, int32_t src, int32_t n) {
    if (n <= 0 || dst == src) {
        return;
    }
    const size_t row_bytes = (size_t)c->kv_dim * sizeof(fp16_t);
    for (int32_t layer = 0; layer < c->n_layer; layer++) {
        memmove(kv_cache_k(c, layer, dst), kv_cache_k(c, layer, src), (size_t)n * row_bytes);
        memmove(kv_cache_v(c, layer, dst), kv_cache_v(c, layer, src), (size_t)n * row_bytes);
    }
}

void kv_cache_rotate_k(kv_cache *c, int32_t layer, int32_t begin, int32_t end, int32_t head_dim,
                       int32_t n_rot, bool neox, const float *cos_theta, const float *sin_theta) {
    const int32_t half = n_rot / 2;
    const int32_t n_head = c->kv_dim / head_dim;
    for (int32_t pos = begin; pos < end; pos++) {
        fp16_t *row = kv_cache_k(c, layer, pos);
        for (int32_t h = 0; h < n_head; h++) {
            fp16_t *head = row + (size_t)h * (size_t)head_dim;
            for (int32_t i = 0; i < half; i++) {
                const int32_t a = neox ? i : 2 * i;
                const int32_t b = neox ? i + half : 2 * i + 1;
                const float x0 = fp16_to_fp32(head[a]);
                const float x1 = fp16_to_fp32(head[b]);
                head[a] = fp32_to_fp16(x0 * cos_theta[i] - x1 * sin_theta[i]);
                head[b] = fp32_to_fp16(x0 * sin_theta[i] + x1 * cos_theta[i]);
            }
        }
    }
}
