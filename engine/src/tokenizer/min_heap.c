/* min_heap.c - the out-of-line (cold) parts of min_heap.h: growth, doubling from 64 elements
 * with the byte count checked for overflow, and release.
 */
#include "min_heap.h"

#include "base/growable_array.h"

#include <stdint.h>
#include <stdlib.h>

bool min_heap_reserve_one(min_heap *h, size_t elem_size) {
    return array_reserve(&h->v, &h->cap, h->n + 1, elem_size, 64);
}

void min_heap_free(min_heap *h) {
    free(h->v);
    h->v = NULL;
    h->n = 0;
    h->cap = 0;
}
