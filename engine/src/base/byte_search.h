/* byte_search.h - finding a byte string in a buffer that need not be NUL-terminated: special
 * tokens in the text to encode, markers in chat templates and token texts. No engine knowledge:
 * the bottom layer.
 */
#ifndef EDGELM_BYTE_SEARCH_H
#define EDGELM_BYTE_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

/* Index of the first occurrence of needle[0..needle_len) in hay[0..hay_len), or SIZE_MAX (also
 * for an empty needle). */
size_t bytes_find(const char *hay, size_t hay_len, const char *needle, size_t needle_len);
/* Whether hay[0..hay_len) contains the C string needle (false for an empty needle). */
bool bytes_contain(const char *hay, size_t hay_len, const char *needle);

#endif /* EDGELM_BYTE_SEARCH_H */
