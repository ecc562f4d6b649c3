/* min_heap.c - the out-of-line (cold) parts of min_heap.h: growth, doubling from 64 elements
 * with the byte count checked for overflow, and release.
 */
#include "min_heap.h"

#include <stdint.h>
#include <stdlib.h>

bool min_heap_reserve_one(min_heap *h, size_t elem_size) {
    if (h->n < h->cap) {
        return true;
    }
    size_t cap = h->cap ? h->cap * 2 : 64;
    if (cap < h->cap || cap > SIZE_MAX / elem_size) {
        return false;
    }
    unsigned char *grown = realloc(h->v, cap * elem_size);
    if (grown == NULL) {
        return false;
    }
    h->v = grown;
    h->cap = cap;
    return true;
}

void min_heap_free(min_heap *h) {
    free(h->v);
    h->v = NULL;
    h->n = 0;
    h->cap = 0;
}
