/* byte_search.c - see byte_search.h: memchr to the next candidate first byte, then memcmp. */
#include "byte_search.h"

#include <stdint.h>
#include <string.h>

size_t bytes_find(const char *hay, size_t hay_len, const char *needle, size_t needle_len) {
    if (needle_len == 0 || needle_len > hay_len) {
        return SIZE_MAX;
    }
    const char first = needle[0];
    size_t last = hay_len - needle_len;
    for (size_t i = 0; i <= last;) {
        const char *p = memchr(hay + i, first, last - i + 1);
        if (p == NULL) {
            return SIZE_MAX;
        }
        i = (size_t)(p - hay);
        if (memcmp(p, needle, needle_len) == 0) {
            return i;
        }
        i++;
    }
    return SIZE_MAX;
}

bool bytes_contain(const char *hay, size_t hay_len, const char *needle) {
    return bytes_find(hay, hay_len, needle, strlen(needle)) != SIZE_MAX;
}
