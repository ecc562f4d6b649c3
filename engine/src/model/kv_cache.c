/* kv_cache.c - the FP16 KV cache (see kv_cache.h): allocation, the rings of windowed layers, and
 * the row moves and key re-rotation the context shift needs. Nothing here knows the model;
 * callers pass positions that lie inside the cache. */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

/* Rows of K (or of V) over all layers. */
static uint64_t total_rows(int32_t n_layer, uint32_t n_ctx, int32_t n_windowed, uint32_t n_ring) {
    return (uint64_t)(n_layer - n_windowed) * n_ctx + (uint64_t)n_windowed * n_ring;
}

static int32_t count_windowed(int32_t n_layer, const bool *windowed) {
    int32_t n = 0;
    for (int32_t layer = 0; windowed != NULL && layer < n_layer; layer++) {
        n += windowed[layer];
    }
    return n;
}

uint64_t kv_cache_bytes_windowed(int32_t n_layer, uint32_t n_ctx, int32_t kv_dim,
                                 int32_t n_windowed, uint32_t n_ring) {
    if (n_layer <= 0 || kv_dim <= 0 || n_windowed < 0 || n_windowed > n_layer) {
        return 0;
    }
    const uint64_t rows = total_rows(n_layer, n_ctx, n_windowed, n_ring);
    if (rows > UINT64_MAX / (uint64_t)kv_dim / 8) {
        return 0;
    }
    uint64_t bytes = rows * (uint64_t)kv_dim * sizeof(fp16_t) * 2;
    if (n_windowed > 0) { /* ring_pos, ring_spare, first_row, windowed */
        bytes += (uint64_t)n_ring * (sizeof(int32_t) + (uint64_t)kv_dim * sizeof(fp16_t)) +
                 (uint64_t)n_layer * (sizeof(size_t) + sizeof(bool));
    }
    return bytes;
}

uint64_t kv_cache_bytes(int32_t n_layer, uint32_t n_ctx, int32_t kv_dim) {
    return kv_cache_bytes_windowed(n_layer, n_ctx, kv_dim, 0, 0);
}

edgelm_status kv_cache_init_windowed(kv_cache *cache, int32_t n_layer, uint32_t n_ctx,
                                     int32_t kv_dim, const bool *windowed, int32_t n_window,
                                     uint32_t n_ring) {
    memset(cache, 0, sizeof *cache);
    const int32_t n_windowed = count_windowed(n_layer, windowed);
    if (n_windowed == 0) {
        windowed = NULL;
    } else if (n_window <= 0 || n_ring <= (uint32_t)n_window || n_ring >= n_ctx) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    const uint64_t bytes = kv_cache_bytes_windowed(n_layer, n_ctx, kv_dim, n_windowed, n_ring);
    if (bytes == 0 || bytes / 2 > SIZE_MAX) {
        return EDGELM_ERR_TOO_LARGE;
    }
    const size_t n = (size_t)(total_rows(n_layer, n_ctx, n_windowed, n_ring) * (uint64_t)kv_dim);
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
    if (windowed == NULL) {
        return EDGELM_OK;
    }
    cache->windowed = malloc((size_t)n_layer * sizeof *cache->windowed);
    cache->first_row = malloc((size_t)n_layer * sizeof *cache->first_row);
    cache->ring_pos = malloc((size_t)n_ring * sizeof *cache->ring_pos);
    cache->ring_spare = malloc((size_t)n_ring * (size_t)kv_dim * sizeof(fp16_t));
    if (cache->windowed == NULL || cache->first_row == NULL || cache->ring_pos == NULL ||
        cache->ring_spare == NULL) {
        kv_cache_free(cache);
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    cache->n_window = n_window;
    cache->n_ring = n_ring;
    size_t row = 0;
    for (int32_t layer = 0; layer < n_layer; layer++) {
        cache->windowed[layer] = windowed[layer];
        cache->first_row[layer] = row;
        row += windowed[layer] ? n_ring : n_ctx;
    }
    for (uint32_t r = 0; r < n_ring; r++) {
        cache->ring_pos[r] = -1;
    }
    return EDGELM_OK;
}

edgelm_status kv_cache_init(kv_cache *cache, int32_t n_layer, uint32_t n_ctx, int32_t kv_dim) {
    return kv_cache_init_windowed(cache, n_layer, n_ctx, kv_dim, NULL, 0, 0);
}

void kv_cache_free(kv_cache *cache) {
    if (cache != NULL) {
        free(cache->k);
        free(cache->v);
        free(cache->windowed);
        free(cache->first_row);
        free(cache->ring_pos);
        free(cache->ring_spare);
        memset(cache, 0, sizeof *cache);
    }
}

void kv_cache_claim(kv_cache *c, int32_t pos0, int32_t n) {
    for (int32_t i = 0; c->ring_pos != NULL && i < n; i++) {
        c->ring_pos[(uint32_t)(pos0 + i) % c->n_ring] = pos0 + i;
    }
}

bool kv_cache_can_continue(const kv_cache *c, int32_t n) {
    /* the query at n sees n - n_window + 1 .. n; n itself is written before it is read */
    for (int32_t p = n - c->n_window + 1; c->ring_pos != NULL && p < n; p++) {
        if (p >= 0 && !kv_cache_holds(c, p)) {
            return false;
        }
    }
    return true;
}

/* The position a ring row holding p holds after kv_cache_move(dst, src, n), or -1. */
static int32_t moved_position(int32_t p, int32_t dst, int32_t src, int32_t n) {
    if (p < 0 || p < dst) {
        return p;
    }
    return p >= src && p < src + n ? p - (src - dst) : -1;
}

/* Reorder the rows of one windowed layer's ring (K or V) as the positions they hold move. */
static void move_ring_rows(kv_cache *c, fp16_t *ring, int32_t dst, int32_t src, int32_t n) {
    const size_t row_bytes = (size_t)c->kv_dim * sizeof(fp16_t);
    memcpy(c->ring_spare, ring, (size_t)c->n_ring * row_bytes);
    for (uint32_t r = 0; r < c->n_ring; r++) {
        const int32_t p = moved_position(c->ring_pos[r], dst, src, n);
        if (p >= 0) {
            memcpy(ring + (size_t)((uint32_t)p % c->n_ring) * c->kv_dim,
                   c->ring_spare + (size_t)r * c->kv_dim, row_bytes);
        }
    }
}

void kv_cache_move(kv_cache *c, int32_t dst, int32_t src, int32_t n) {
    if (n <= 0 || dst == src) {
        return;
    }
    const size_t row_bytes = (size_t)c->kv_dim * sizeof(fp16_t);
    for (int32_t layer = 0; layer < c->n_layer; layer++) {
        if (kv_cache_is_windowed(c, layer)) {
            /* The positions a ring holds span fewer than n_ring and moving the newer ones down
             * keeps them so, so no two land on one row. */
            move_ring_rows(c, kv_cache_k(c, layer, 0), dst, src, n);
            move_ring_rows(c, kv_cache_v(c, layer, 0), dst, src, n);
            continue;
        }
        memmove(kv_cache_k(c, layer, dst), kv_cache_k(c, layer, src), (size_t)n * row_bytes);
        memmove(kv_cache_v(c, layer, dst), kv_cache_v(c, layer, src), (size_t)n * row_bytes);
    }
    if (c->ring_pos != NULL) {
        int32_t *old = (int32_t *)c->ring_spare; /* free again: the rows are placed */
        memcpy(old, c->ring_pos, (size_t)c->n_ring * sizeof *old);
        for (uint32_t r = 0; r < c->n_ring; r++) {
            c->ring_pos[r] = -1;
        }
        for (uint32_t r = 0; r < c->n_ring; r++) {
            const int32_t p = moved_position(old[r], dst, src, n);
            if (p >= 0) {
                c->ring_pos[(uint32_t)p % c->n_ring] = p;
            }
        }
    }
}

void kv_cache_rotate_k(kv_cache *c, int32_t layer, int32_t begin, int32_t end, int32_t head_dim,
                       int32_t n_rot, bool neox, const float *cos_theta, const float *sin_theta) {
    const int32_t half = n_rot / 2;
    const int32_t n_head = c->kv_dim / head_dim;
    for (int32_t pos = begin; pos < end; pos++) {
        if (kv_cache_is_windowed(c, layer) && !kv_cache_holds(c, pos)) {
            continue; /* its row holds another position */
        }
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
