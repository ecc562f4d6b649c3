/* kv_cache.h - the FP16 key/value cache of a session.
 *
 * Layout: for each layer, rows of kv_dim halves for K and the same for V, position-major
 * (k[row * kv_dim + head * head_dim + i]); keys are stored after RoPE. A full layer has n_ctx
 * rows, position p at row p. A windowed layer (a sliding-window layer that only ever attends to
 * the last n_window positions: gemma3's local layers) has only n_ring rows, a ring: position p
 * at row p % n_ring, and ring_pos[] says which position each ring row holds now. n_ring is at
 * least n_window plus a chunk, so a chunk's writes never evict a row one of its own queries
 * reads. Row-major per position keeps one token's write contiguous and lets attention stream
 * rows.
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
    int32_t n_used; /* positions 0..n_used-1 hold valid entries (windowed layers: see ring_pos) */
    fp16_t *k;
    fp16_t *v;
    /* windowed layers; all NULL / 0 when the cache has none */
    int32_t n_window;   /* the window the windowed layers attend within */
    uint32_t n_ring;    /* rows of each windowed layer */
    bool *windowed;     /* (n_layer) */
    size_t *first_row;  /* (n_layer) each layer's first row in k and v */
    int32_t *ring_pos;  /* (n_ring) the position ring row r holds, -1 for none */
    fp16_t *ring_spare; /* (n_ring * kv_dim) room to reorder a ring in (kv_cache_move) */
} kv_cache;

/* Bytes kv_cache_init_windowed would allocate with n_windowed layers windowed (0 on
 * overflow). */
uint64_t kv_cache_bytes_windowed(int32_t n_layer, uint32_t n_ctx, int32_t kv_dim,
                                 int32_t n_windowed, uint32_t n_ring);
/* A cache whose layers marked in windowed (n_layer flags, or NULL for none) keep n_ring rows
 * (n_window < n_ring < n_ctx) instead of n_ctx. */
edgelm_status kv_cache_init_windowed(kv_cache *cache, int32_t n_layer, uint32_t n_ctx,
                                     int32_t kv_dim, const bool *windowed, int32_t n_window,
                                     uint32_t n_ring);
/* Without windowed layers. */
uint64_t kv_cache_bytes(int32_t n_layer, uint32_t n_ctx, int32_t kv_dim);
edgelm_status kv_cache_init(kv_cache *cache, int32_t n_layer, uint32_t n_ctx, int32_t kv_dim);
void kv_cache_free(kv_cache *cache);

static inline bool kv_cache_is_windowed(const kv_cache *c, int32_t layer) {
    return c->windowed != NULL && c->windowed[layer];
}

static inline size_t kv_cache_row(const kv_cache *c, int32_t layer, int32_t pos) {
    if (c->first_row == NULL) {
        return (size_t)layer * c->n_ctx + (size_t)pos;
    }
    return c->first_row[layer] +
           (c->windowed[layer] ? (size_t)((uint32_t)pos % c->n_ring) : (size_t)pos);
}

static inline fp16_t *kv_cache_k(const kv_cache *c, int32_t layer, int32_t pos) {
    return c->k + kv_cache_row(c, layer, pos) * (size_t)c->kv_dim;
}

static inline fp16_t *kv_cache_v(const kv_cache *c, int32_t layer, int32_t pos) {
    return c->v + kv_cache_row(c, layer, pos) * (size_t)c->kv_dim;
}

/* Whether the windowed layers' rings still hold position pos (always true without them). */
static inline bool kv_cache_holds(const kv_cache *c, int32_t pos) {
    return c->ring_pos == NULL || c->ring_pos[(uint32_t)pos % c->n_ring] == pos;
}

/* Give positions [pos0, pos0 + n) their ring rows, before they are written (evicting what
 * those rows held). */
void kv_cache_claim(kv_cache *c, int32_t pos0, int32_t n);

/* Whether a query at position n would find every position its window needs, that is whether
 * the cache can continue from n after forgetting every position from n on. */
bool kv_cache_can_continue(const kv_cache *c, int32_t n);

/* Move n rows of K and V of every layer from position src to position dst < src, forgetting
 * positions [dst, src) (the ranges may overlap): the context shift closing the gap left by
 * discarded positions. Positions from src + n on are forgotten too. */
void kv_cache_move(kv_cache *c, int32_t dst, int32_t src, int32_t n);

/* Turn the keys at positions [begin, end) of one layer by per-frequency angles: in each head
 * (kv_dim / head_dim of them) pair i - dims (2i, 2i+1) for NORM rope, (i, i + n_rot/2) for
 * NEOX - rotates by the angle whose cosine and sine are cos_theta[i], sin_theta[i]
 * (n_rot/2 of each); dims past n_rot are left alone. RoPE rotations compose, so turning a key
 * that was stored at position p by the angles of position delta re-encodes it at p + delta.
 * Each element goes f16 -> f32 -> f16, as ggml's K-shift does. Positions a windowed layer no
 * longer holds are skipped. */
void kv_cache_rotate_k(kv_cache *c, int32_t layer, int32_t begin, int32_t end, int32_t head_dim,
                       int32_t n_rot, bool neox, const float *cos_theta, const float *sin_theta);

#endif
