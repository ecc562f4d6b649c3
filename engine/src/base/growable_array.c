/* growable_array.c - see growable_array.h. The array pointer is read and written through memcpy,
 * so any object pointer type can be passed by address (they share void *'s representation on
 * every target the engine builds for).
 */
#include "growable_array.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool array_reserve(void *items, size_t *cap, size_t need, size_t elem_size, size_t first_cap) {
    if (need <= *cap) {
        return true;
    }
    size_t new_cap = *cap ? *cap : first_cap;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2) {
            return false;
        }
        new_cap *= 2;
    }
    if (new_cap > SIZE_MAX / elem_size) {
        return false;
    }
    void *old;
    memcpy(&old, items, sizeof old);
    void *grown = realloc(old, new_cap * elem_size);
    if (grown == NULL) {
        return false;
    }
    memcpy(items, &grown, sizeof grown);
    *cap = new_cap;
    return true;
}
