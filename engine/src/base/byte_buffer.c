/* byte_buffer.c - see byte_buffer.h: capacity doubles from 64 bytes, one byte kept for the NUL.
 */
#include "byte_buffer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool byte_buffer_reserve(byte_buffer *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) {
        return false;
    }
    if (b->len + extra + 1 <= b->cap) {
        return true;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    char *grown = realloc(b->data, cap);
    if (grown == NULL) {
        return false;
    }
    b->data = grown;
    b->cap = cap;
    return true;
}

bool byte_buffer_append(byte_buffer *b, const void *bytes, size_t n) {
    if (!byte_buffer_reserve(b, n)) {
        return false;
    }
    if (n > 0) {
        memcpy(b->data + b->len, bytes, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}
