/* growable_array.h - room for more elements in a heap array that doubles as it grows, the one
 * step every growable list in the engine repeats (tokenizer fragments and pre-token sizes, heap
 * storage, JSON values and schema nodes). No engine knowledge: the bottom layer.
 */
#ifndef EDGELM_GROWABLE_ARRAY_H
#define EDGELM_GROWABLE_ARRAY_H

#include <stdbool.h>
#include <stddef.h>

/* Make *items (the address of any object pointer, NULL for an empty array) hold at least need
 * elements of elem_size bytes; *cap is its capacity in elements, grown by doubling from
 * first_cap. False, leaving array and capacity as they were, when out of memory or when the size
 * would overflow. */
bool array_reserve(void *items, size_t *cap, size_t need, size_t elem_size, size_t first_cap);

#endif /* EDGELM_GROWABLE_ARRAY_H */
