/* byte_buffer.h - a growable byte string, the one the tokenizer's decoder and the JSON schema
 * compiler build their text in. Owns its storage (free(data) when done; a zeroed struct is an
 * empty buffer). Invariant: once anything was appended, data[len] is a NUL, so the text can be
 * handed on as a C string. No engine knowledge: the bottom layer.
 */
#ifndef EDGELM_BYTE_BUFFER_H
#define EDGELM_BYTE_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct byte_buffer {
    char *data;
    size_t len; /* bytes appended */
    size_t cap; /* bytes allocated, > len once anything was appended */
} byte_buffer;

/* Make room for extra more bytes (plus the NUL) without changing the contents; false when out of
 * memory or when the length would pass SIZE_MAX / 2. */
bool byte_buffer_reserve(byte_buffer *b, size_t extra);
/* Append n bytes (bytes may be NULL when n is 0). False, leaving the buffer as it was, when out
 * of memory or when the length would pass SIZE_MAX / 2. */
bool byte_buffer_append(byte_buffer *b, const void *bytes, size_t n);

#endif /* EDGELM_BYTE_BUFFER_H */
