/* min_heap.h - a binary heap of fixed-size elements ordered by a caller's "before" callback, the
 * element that comes first on top; shared by the SPM and BPE encoders' bigram queues. Push and
 * pop are static inline so that each user's wrapper, passing a constant size and callback, gets
 * the comparison inlined and fixed-size copies (an out-of-line generic version was 2x slower on
 * SPM encode). The heap owns its array; reusing it with n = 0 keeps the capacity.
 */
#ifndef EDGELM_MIN_HEAP_H
#define EDGELM_MIN_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* true when *a must leave the heap before *b (a strict weak order). */
typedef bool (*min_heap_before_fn)(const void *a, const void *b);

typedef struct min_heap {
    unsigned char *v; /* cap elements; [0, n) is the heap */
    size_t n, cap;
} min_heap; /* {NULL, 0, 0} is an empty heap */

void min_heap_free(min_heap *h);
/* Room for one more element of elem_size bytes; false when out of memory (heap unchanged). */
bool min_heap_reserve_one(min_heap *h, size_t elem_size);

/* Copies *item in (item must not point into the heap); false when out of memory. */
static inline bool min_heap_push(min_heap *h, const void *item, size_t elem_size,
                                 min_heap_before_fn before) {
    if (h->n == h->cap && !min_heap_reserve_one(h, elem_size)) {
        return false;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(item, h->v + parent * elem_size)) {
            break;
        }
        memcpy(h->v + i * elem_size, h->v + parent * elem_size, elem_size);
        i = parent;
    }
    memcpy(h->v + i * elem_size, item, elem_size);
    return true;
}

/* Copies the first element to *out and removes it; requires n > 0. */
static inline void min_heap_pop(min_heap *h, void *out, size_t elem_size,
                                min_heap_before_fn before) {
    memcpy(out, h->v, elem_size);
    /* The last element stays at index n while the hole left at the top sinks to its place:
     * only indices below n are written. */
    const unsigned char *last = h->v + --h->n * elem_size;
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) {
            break;
        }
        if (child + 1 < h->n && before(h->v + (child + 1) * elem_size, h->v + child * elem_size)) {
            child++;
        }
        if (!before(h->v + child * elem_size, last)) {
            break;
        }
        memcpy(h->v + i * elem_size, h->v + child * elem_size, elem_size);
        i = child;
    }
    if (h->n > 0) {
        memcpy(h->v + i * elem_size, last, elem_size);
    }
}

#endif
