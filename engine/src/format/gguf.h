/* gguf.h - a bounds-checked reader for GGUF v2/v3 files held in memory (usually an mmap).
 *
 * It knows the container format only: header, typed metadata (including arrays), tensor infos,
 * alignment and the data section. It has no model semantics. Every read is checked against the
 * remaining bytes, every count * size against overflow, and every tensor's data range against the
 * file. Strings point into the caller's buffer (not NUL-terminated); the buffer must outlive the
 * gguf_file. Errors name the byte offset where parsing stopped.
 */
#ifndef EDGELM_GGUF_H
#define EDGELM_GGUF_H

#include "edgelm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian uint32 */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DIMS 4

typedef enum gguf_value_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_value_type;

typedef struct gguf_string {
    const char *data; /* points into the file; not NUL-terminated */
    uint64_t len;
} gguf_string;

typedef struct gguf_array {
    uint32_t elem_type;   /* gguf_value_type, never ARRAY (nested arrays are refused) */
    uint64_t n;           /* element count */
    const uint8_t *data;  /* raw little-endian elements for scalar types */
    gguf_string *strings; /* n entries when elem_type == STRING (owned by the gguf_file) */
} gguf_array;

typedef struct gguf_kv {
    gguf_string key;
    uint32_t type; /* gguf_value_type */
    union {
        uint64_t u64; /* UINT8/16/32/64 widened */
        int64_t i64;  /* INT8/16/32/64 widened */
        double f64;   /* FLOAT32/64 widened */
        bool b;
        gguf_string str;
        gguf_array arr;
    } value;
} gguf_kv;

typedef struct gguf_tensor {
    gguf_string name;
    char *name_z; /* NUL-terminated copy of name (owned) */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims are 1 */
    uint32_t type;              /* tensor element type (quant.h tensor_type) */
    uint64_t offset;            /* relative to the data section, as stored */
    uint64_t n_elements;
    uint64_t n_bytes;
    const void *data; /* base + data_offset + offset, validated to lie inside the buffer */
} gguf_tensor;

typedef struct gguf_file {
    const uint8_t *base;
    size_t size;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint32_t alignment;
    uint64_t data_offset; /* start of the tensor data section */
} gguf_file;

/* Parse size bytes at data. On failure returns the status and writes "offset N: why" into err
 * (err may be NULL); *out is left zeroed and owns nothing. */
edgelm_status gguf_parse(const void *data, size_t size, gguf_file *out, char *err, size_t err_size);
void gguf_free(gguf_file *file);

const gguf_kv *gguf_find(const gguf_file *file, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *file, const char *name);
bool gguf_string_equals(gguf_string s, const char *z);

/* Typed getters: EDGELM_OK, EDGELM_ERR_MISSING when absent, EDGELM_ERR_BAD_VALUE_TYPE when the
 * key has an incompatible type or the value does not fit. Integer getters accept any integer
 * type whose value fits. */
edgelm_status gguf_get_u32(const gguf_file *file, const char *key, uint32_t *out);
edgelm_status gguf_get_i32(const gguf_file *file, const char *key, int32_t *out);
edgelm_status gguf_get_f32(const gguf_file *file, const char *key, float *out);
edgelm_status gguf_get_bool(const gguf_file *file, const char *key, bool *out);
edgelm_status gguf_get_string(const gguf_file *file, const char *key, gguf_string *out);
/* An array key whose elements have type elem_type. */
edgelm_status gguf_get_array(const gguf_file *file, const char *key, uint32_t elem_type,
                             const gguf_array **out);

/* Element i of a scalar array, widened; no bounds check beyond an assert (callers index < n). */
float gguf_array_f32(const gguf_array *arr, uint64_t i);
int64_t gguf_array_i64(const gguf_array *arr, uint64_t i);

const char *gguf_type_name(uint32_t type);
/* Size in bytes of one scalar element of a value type (0 for STRING/ARRAY/unknown). */
size_t gguf_type_size(uint32_t type);

#endif /* EDGELM_GGUF_H */
