/* kv_cache.c - allocation of the FP16 KV cache (see kv_cache.h). */
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
