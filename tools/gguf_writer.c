/* gguf_writer.c - see gguf_writer.h. Builds GGUF files for the generator and the tests.
 *
 * Metadata values are encoded to their GGUF bytes when set, so writing is a matter of laying out
 * offsets and copying. Every output goes through one sink (a FILE or a preallocated buffer) whose
 * writes are all checked; the layout of the last file is kept for tests that corrupt fields.
 * Invariant while streaming: stream_index is the first tensor not yet fully written and every
 * tensor before it has been written and padded to its successor's offset.
 */
#include "gguf_writer.h"

#include "format/gguf.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEY_BYTES 65535u
#define MAX_NAME_BYTES 1024u
#define MAX_ALIGNMENT (1u << 30)

typedef struct writer_kv {
    char *key;
    size_t key_len;
    uint32_t type;
    uint8_t *value; /* encoded bytes that follow the type field in the file */
    size_t value_len;
} writer_kv;

typedef struct writer_tensor {
    char *name;
    size_t name_len;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint64_t n_bytes;
    const void *data; /* NULL: deferred (streamed) */
    bool owned;
} writer_tensor;

struct gguf_writer {
    uint32_t version;
    uint32_t alignment;
    writer_kv *kv;
    size_t n_kv, cap_kv;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    char err[512];

    bool have_layout;
    gguf_layout layout;
    gguf_kv_layout *kv_layout;
    gguf_tensor_layout *tensor_layout;

    /* output stream: exactly one of file / mem is in use while streaming */
    bool streaming;
    FILE *file;
    char *tmp_path;
    char *final_path;
    uint8_t *mem;
    size_t mem_size;
    uint64_t pos;
    size_t stream_index;
    uint64_t stream_written; /* bytes of tensors[stream_index] written so far */
};

/* ---- helpers ------------------------------------------------------------------------------ */

#if defined(__GNUC__)
static edgelm_status fail(gguf_writer *w, edgelm_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#endif

static edgelm_status fail(gguf_writer *w, edgelm_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    return status;
}

/* A growable byte buffer that remembers running out of memory. */
typedef struct bytebuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} bytebuf;

static void buf_put(bytebuf *b, const void *src, size_t n) {
    if (b->oom || n == 0) {
        return;
    }
    if (n > SIZE_MAX - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) {
            if (cap > SIZE_MAX / 2) {
                cap = b->len + n;
                break;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

/* Little-endian encodings, explicit so big-endian hosts write the same bytes. */
static void buf_le(bytebuf *b, uint64_t v, size_t n_bytes) {
    uint8_t tmp[8];
    for (size_t i = 0; i < n_bytes; i++) {
        tmp[i] = (uint8_t)(v >> (8 * i));
    }
    buf_put(b, tmp, n_bytes);
}

static void buf_u32(bytebuf *b, uint32_t v) { buf_le(b, v, 4); }

static void buf_u64(bytebuf *b, uint64_t v) { buf_le(b, v, 8); }

static void buf_string(bytebuf *b, const char *s, size_t len) {
    buf_u64(b, len);
    buf_put(b, s, len);
}

static uint64_t read_le(const uint8_t *p, size_t n_bytes) {
    uint64_t v = 0;
    for (size_t i = n_bytes; i > 0; i--) {
        v = v << 8 | p[i - 1];
    }
    return v;
}

static bool is_scalar_type(uint32_t type) {
    return type < GGUF_TYPE_COUNT && type != GGUF_TYPE_STRING && type != GGUF_TYPE_ARRAY;
}

static uint64_t align_up(uint64_t x, uint32_t alignment) {
    return (x + alignment - 1) / alignment * alignment;
}

static bool add_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    if (a > UINT64_MAX - b) {
        return true;
    }
    *out = a + b;
    return false;
}

/* ---- lifetime ----------------------------------------------------------------------------- */

gguf_writer *gguf_writer_create(void) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->version = 3;
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

static void stream_abandon(gguf_writer *w) {
    if (w->file != NULL) {
        fclose(w->file);
        w->file = NULL;
    }
    if (w->tmp_path != NULL) {
        unlink(w->tmp_path);
    }
    free(w->tmp_path);
    free(w->final_path);
    free(w->mem);
    w->tmp_path = NULL;
    w->final_path = NULL;
    w->mem = NULL;
    w->mem_size = 0;
    w->streaming = false;
}

void gguf_writer_free(gguf_writer *w) {
    if (w == NULL) {
        return;
    }
    stream_abandon(w);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].value);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        if (w->tensors[i].owned) {
            free((void *)w->tensors[i].data);
        }
    }
    free(w->kv);
    free(w->tensors);
    free(w->kv_layout);
    free(w->tensor_layout);
    free(w);
}

const char *gguf_writer_errmsg(const gguf_writer *w) { return w != NULL ? w->err : "no writer"; }

edgelm_status gguf_writer_set_version(gguf_writer *w, uint32_t version) {
    if (version != 2 && version != 3) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "GGUF version %u: only 2 and 3 are written",
                    version);
    }
    if (w->streaming) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "set_version while a file is being streamed");
    }
    w->version = version;
    return EDGELM_OK;
}

/* ---- metadata ----------------------------------------------------------------------------- */

static int64_t find_key_n(const gguf_writer *w, const char *key, size_t len) {
    for (size_t i = 0; i < w->n_kv; i++) {
        if (w->kv[i].key_len == len && memcmp(w->kv[i].key, key, len) == 0) {
            return (int64_t)i;
        }
    }
    return -1;
}

/* Check that value_len bytes at value are a well-formed encoding of a value of type. */
static edgelm_status check_encoding(gguf_writer *w, const char *key, uint32_t type,
                                    const uint8_t *value, size_t value_len) {
    if (is_scalar_type(type)) {
        if (value_len != gguf_type_size(type)) {
            return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': %s value of %zu bytes", key,
                        gguf_type_name(type), value_len);
        }
        return EDGELM_OK;
    }
    if (type == GGUF_TYPE_STRING) {
        if (value_len < 8 || read_le(value, 8) != value_len - 8) {
            return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': malformed string encoding", key);
        }
        return EDGELM_OK;
    }
    if (type != GGUF_TYPE_ARRAY) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': unknown value type %u", key, type);
    }
    if (value_len < 12) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': malformed array encoding", key);
    }
    uint32_t elem_type = (uint32_t)read_le(value, 4);
    uint64_t n = read_le(value + 4, 8);
    size_t rest = value_len - 12;
    const uint8_t *p = value + 12;
    if (elem_type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            if (rest < 8 || read_le(p, 8) > rest - 8) {
                return fail(w, EDGELM_ERR_INVALID_ARGUMENT,
                            "key '%s': malformed string array encoding at element %llu", key,
                            (unsigned long long)i);
            }
            size_t len = (size_t)read_le(p, 8);
            p += 8 + len;
            rest -= 8 + len;
        }
        if (rest != 0) {
            return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': %zu stray bytes after array",
                        key, rest);
        }
        return EDGELM_OK;
    }
    if (!is_scalar_type(elem_type)) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': array of type %u", key, elem_type);
    }
    size_t size = gguf_type_size(elem_type);
    if (n > rest / size || n * size != rest) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT,
                    "key '%s': array of %llu %s does not match %zu value bytes", key,
                    (unsigned long long)n, gguf_type_name(elem_type), rest);
    }
    return EDGELM_OK;
}

/* Store (key, type, value) taking ownership of value (freed on failure). */
static edgelm_status put_kv(gguf_writer *w, const char *key, uint32_t type, uint8_t *value,
                            size_t value_len) {
    edgelm_status st = EDGELM_OK;
    if (key == NULL) {
        st = fail(w, EDGELM_ERR_INVALID_ARGUMENT, "NULL key");
        goto fail;
    }
    size_t key_len = strlen(key);
    if (key_len == 0 || key_len > MAX_KEY_BYTES) {
        st = fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key length %zu is not 1..%u", key_len,
                  MAX_KEY_BYTES);
        goto fail;
    }
    if (w->streaming) {
        st = fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': set while a file is being streamed",
                  key);
        goto fail;
    }
    st = check_encoding(w, key, type, value, value_len);
    if (st != EDGELM_OK) {
        goto fail;
    }
    if (strcmp(key, "general.alignment") == 0 && type == GGUF_TYPE_UINT32) {
        uint32_t a = (uint32_t)read_le(value, 4);
        if (a == 0 || (a & (a - 1)) != 0 || a > MAX_ALIGNMENT) {
            st = fail(w, EDGELM_ERR_BAD_ALIGNMENT,
                      "general.alignment %u is not a power of two in 1..2^30", a);
            goto fail;
        }
        w->alignment = a;
    }
    int64_t existing = find_key_n(w, key, key_len);
    if (existing >= 0) {
        writer_kv *kv = &w->kv[existing];
        free(kv->value);
        kv->type = type;
        kv->value = value;
        kv->value_len = value_len;
        return EDGELM_OK;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        writer_kv *grown = realloc(w->kv, cap * sizeof *grown);
        if (grown == NULL) {
            st = fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for key '%s'", key);
            goto fail;
        }
        w->kv = grown;
        w->cap_kv = cap;
    }
    char *key_copy = malloc(key_len + 1);
    if (key_copy == NULL) {
        st = fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for key '%s'", key);
        goto fail;
    }
    memcpy(key_copy, key, key_len + 1);
    w->kv[w->n_kv++] = (writer_kv){
        .key = key_copy, .key_len = key_len, .type = type, .value = value, .value_len = value_len};
    return EDGELM_OK;

fail:
    free(value);
    return st;
}

static edgelm_status put_buf(gguf_writer *w, const char *key, uint32_t type, bytebuf *b) {
    if (b->oom) {
        free(b->p);
        return fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for key '%s'",
                    key != NULL ? key : "(null)");
    }
    if (b->p == NULL) { /* an empty encoding: keep a valid pointer */
        b->p = malloc(1);
        if (b->p == NULL) {
            return fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
        }
    }
    return put_kv(w, key, type, b->p, b->len);
}

static edgelm_status set_scalar(gguf_writer *w, const char *key, uint32_t type, uint64_t bits) {
    bytebuf b = {0};
    buf_le(&b, bits, gguf_type_size(type));
    return put_buf(w, key, type, &b);
}

/* The integer setters differ only in their C type and GGUF type id; the value goes to the file
 * as its two's complement bits, little-endian. */
#define DEFINE_INTEGER_SETTER(suffix, c_type, gguf_type)                                           \
    edgelm_status gguf_writer_set_##suffix(gguf_writer *w, const char *key, c_type value) {        \
        return set_scalar(w, key, gguf_type, (uint64_t)value);                                     \
    }
DEFINE_INTEGER_SETTER(u8, uint8_t, GGUF_TYPE_UINT8)
DEFINE_INTEGER_SETTER(i8, int8_t, GGUF_TYPE_INT8)
DEFINE_INTEGER_SETTER(u16, uint16_t, GGUF_TYPE_UINT16)
DEFINE_INTEGER_SETTER(i16, int16_t, GGUF_TYPE_INT16)
DEFINE_INTEGER_SETTER(u32, uint32_t, GGUF_TYPE_UINT32)
DEFINE_INTEGER_SETTER(i32, int32_t, GGUF_TYPE_INT32)
DEFINE_INTEGER_SETTER(u64, uint64_t, GGUF_TYPE_UINT64)
DEFINE_INTEGER_SETTER(i64, int64_t, GGUF_TYPE_INT64)

edgelm_status gguf_writer_set_integer(gguf_writer *w, const char *key, uint32_t type,
                                      uint64_t bits) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
        return set_scalar(w, key, type, bits);
    default:
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': type %u is not an integer type",
                    key != NULL ? key : "(null)", type);
    }
}

edgelm_status gguf_writer_set_f32(gguf_writer *w, const char *key, float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    return set_scalar(w, key, GGUF_TYPE_FLOAT32, bits);
}

edgelm_status gguf_writer_set_f64(gguf_writer *w, const char *key, double value) {
    uint64_t bits;
    memcpy(&bits, &value, 8);
    return set_scalar(w, key, GGUF_TYPE_FLOAT64, bits);
}

edgelm_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool value) {
    return set_scalar(w, key, GGUF_TYPE_BOOL, value ? 1u : 0u);
}

edgelm_status gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment) {
    return gguf_writer_set_u32(w, "general.alignment", alignment);
}

/* A key whose value is n bytes: as they are, or (as_string) as a GGUF string of them. */
static edgelm_status set_bytes(gguf_writer *w, const char *key, uint32_t type, const void *value,
                               size_t n, bool as_string) {
    if (value == NULL && n > 0) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': NULL %s",
                    key != NULL ? key : "(null)", as_string ? "string" : "value");
    }
    bytebuf b = {0};
    if (as_string) {
        buf_string(&b, value, n);
    } else {
        buf_put(&b, value, n);
    }
    return put_buf(w, key, type, &b);
}

edgelm_status gguf_writer_set_string_n(gguf_writer *w, const char *key, const char *value,
                                       size_t len) {
    return set_bytes(w, key, GGUF_TYPE_STRING, value, len, true);
}

edgelm_status gguf_writer_set_string(gguf_writer *w, const char *key, const char *value) {
    if (value == NULL) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': NULL string",
                    key != NULL ? key : "(null)");
    }
    return gguf_writer_set_string_n(w, key, value, strlen(value));
}

edgelm_status gguf_writer_set_array(gguf_writer *w, const char *key, uint32_t elem_type,
                                    const void *data, uint64_t n) {
    const char *k = key != NULL ? key : "(null)";
    if (!is_scalar_type(elem_type)) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT,
                    "key '%s': set_array takes scalar element types, not %u", k, elem_type);
    }
    if (data == NULL && n > 0) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': NULL array data", k);
    }
    size_t size = gguf_type_size(elem_type);
    if (n > (SIZE_MAX - 12) / size) {
        return fail(w, EDGELM_ERR_TOO_LARGE, "key '%s': array of %llu elements is too large", k,
                    (unsigned long long)n);
    }
    bytebuf b = {0};
    buf_u32(&b, elem_type);
    buf_u64(&b, n);
    const uint8_t *src = data;
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        /* host-order element to integer bits, then little-endian */
        uint64_t bits = 0;
        switch (size) {
        case 1:
            bits = src[i];
            break;
        case 2: {
            uint16_t v;
            memcpy(&v, src + i * 2, 2);
            bits = v;
            break;
        }
        case 4: {
            uint32_t v;
            memcpy(&v, src + i * 4, 4);
            bits = v;
            break;
        }
        default: {
            memcpy(&bits, src + i * 8, 8);
            break;
        }
        }
        buf_le(&b, bits, size);
    }
    return put_buf(w, key, GGUF_TYPE_ARRAY, &b);
}

edgelm_status gguf_writer_set_string_array_n(gguf_writer *w, const char *key,
                                             const char *const *strings, const size_t *lens,
                                             uint64_t n) {
    const char *k = key != NULL ? key : "(null)";
    if (strings == NULL && n > 0) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': NULL string array", k);
    }
    bytebuf b = {0};
    buf_u32(&b, GGUF_TYPE_STRING);
    buf_u64(&b, n);
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        size_t len = lens != NULL ? lens[i] : (strings[i] != NULL ? strlen(strings[i]) : 0);
        if (strings[i] == NULL && len > 0) {
            free(b.p);
            return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "key '%s': element %llu is NULL", k,
                        (unsigned long long)i);
        }
        buf_string(&b, strings[i], len);
    }
    return put_buf(w, key, GGUF_TYPE_ARRAY, &b);
}

edgelm_status gguf_writer_set_string_array(gguf_writer *w, const char *key,
                                           const char *const *strings, uint64_t n) {
    return gguf_writer_set_string_array_n(w, key, strings, NULL, n);
}

edgelm_status gguf_writer_set_raw(gguf_writer *w, const char *key, uint32_t type, const void *value,
                                  size_t value_bytes) {
    return set_bytes(w, key, type, value, value_bytes, false);
}

bool gguf_writer_has_key(const gguf_writer *w, const char *key) {
    return key != NULL && find_key_n(w, key, strlen(key)) >= 0;
}

int64_t gguf_writer_n_kv(const gguf_writer *w) { return (int64_t)w->n_kv; }

/* ---- tensors ------------------------------------------------------------------------------ */

typedef enum data_mode { DATA_COPY, DATA_BORROW } data_mode;

static int64_t find_tensor_n(const gguf_writer *w, const char *name, size_t len) {
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (w->tensors[i].name_len == len && memcmp(w->tensors[i].name, name, len) == 0) {
            return (int64_t)i;
        }
    }
    return -1;
}

/* n_bytes == UINT64_MAX: compute from the type's block layout. */
static edgelm_status add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const uint64_t *ne, const void *data, uint64_t n_bytes,
                                data_mode mode) {
    if (name == NULL || ne == NULL) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "add_tensor: NULL name or shape");
    }
    if (w->streaming) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT,
                    "tensor '%s': added while a file is being streamed", name);
    }
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > MAX_NAME_BYTES) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "tensor name length %zu is not 1..%u", name_len,
                    MAX_NAME_BYTES);
    }
    if (find_tensor_n(w, name, name_len) >= 0) {
        return fail(w, EDGELM_ERR_DUPLICATE, "tensor '%s' added twice", name);
    }
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS) {
        return fail(w, EDGELM_ERR_BAD_DIMENSIONS, "tensor '%s': %u dimensions (1..%d allowed)",
                    name, n_dims, GGUF_MAX_DIMS);
    }
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX / n_elements) {
            return fail(w, EDGELM_ERR_BAD_DIMENSIONS,
                        "tensor '%s': dimension %u is %llu (zero or the element count overflows)",
                        name, d, (unsigned long long)ne[d]);
        }
        n_elements *= ne[d];
    }
    if (n_bytes == UINT64_MAX) {
        const tensor_type_traits *traits = tensor_type_get(type);
        if (traits == NULL) {
            return fail(w, EDGELM_ERR_BAD_TENSOR_TYPE,
                        "tensor '%s': type %u unknown to the engine (use add_tensor_raw)", name,
                        type);
        }
        if (ne[0] % (uint64_t)traits->block_size != 0) {
            return fail(w, EDGELM_ERR_BAD_DIMENSIONS,
                        "tensor '%s': row length %llu is not a multiple of the %s block size %lld",
                        name, (unsigned long long)ne[0], traits->name,
                        (long long)traits->block_size);
        }
        uint64_t n_blocks = n_elements / (uint64_t)traits->block_size;
        if (n_blocks > UINT64_MAX / 2 / traits->type_size) {
            return fail(w, EDGELM_ERR_BAD_DIMENSIONS, "tensor '%s': byte size overflows", name);
        }
        n_bytes = n_blocks * traits->type_size;
    }
    if (n_bytes > UINT64_MAX / 4) {
        return fail(w, EDGELM_ERR_TOO_LARGE, "tensor '%s': %llu bytes is too large", name,
                    (unsigned long long)n_bytes);
    }
    if (data != NULL && mode == DATA_COPY && n_bytes > SIZE_MAX) {
        return fail(w, EDGELM_ERR_TOO_LARGE, "tensor '%s': too large to copy", name);
    }

    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        writer_tensor *grown = realloc(w->tensors, cap * sizeof *grown);
        if (grown == NULL) {
            return fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for tensor '%s'", name);
        }
        w->tensors = grown;
        w->cap_tensors = cap;
    }
    writer_tensor t;
    memset(&t, 0, sizeof t);
    t.name = malloc(name_len + 1);
    if (t.name == NULL) {
        return fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for tensor '%s'", name);
    }
    memcpy(t.name, name, name_len + 1);
    t.name_len = name_len;
    t.n_dims = n_dims;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
    }
    t.type = type;
    t.n_bytes = n_bytes;
    if (data != NULL && mode == DATA_COPY) {
        void *copy = malloc(n_bytes > 0 ? (size_t)n_bytes : 1);
        if (copy == NULL) {
            free(t.name);
            return fail(w, EDGELM_ERR_OUT_OF_MEMORY,
                        "out of memory copying %llu bytes of tensor '%s'",
                        (unsigned long long)n_bytes, name);
        }
        memcpy(copy, data, (size_t)n_bytes);
        t.data = copy;
        t.owned = true;
    } else {
        t.data = data;
    }
    w->tensors[w->n_tensors++] = t;
    return EDGELM_OK;
}

edgelm_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                                     uint32_t n_dims, const uint64_t *ne, const void *data) {
    return add_tensor(w, name, type, n_dims, ne, data, UINT64_MAX, DATA_COPY);
}

edgelm_status gguf_writer_add_tensor_ref(gguf_writer *w, const char *name, uint32_t type,
                                         uint32_t n_dims, const uint64_t *ne, const void *data) {
    if (data == NULL) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "tensor '%s': add_tensor_ref needs data",
                    name != NULL ? name : "(null)");
    }
    return add_tensor(w, name, type, n_dims, ne, data, UINT64_MAX, DATA_BORROW);
}

edgelm_status gguf_writer_add_tensor_raw(gguf_writer *w, const char *name, uint32_t type,
                                         uint32_t n_dims, const uint64_t *ne, const void *data,
                                         uint64_t n_bytes) {
    if (n_bytes == UINT64_MAX) {
        return fail(w, EDGELM_ERR_TOO_LARGE, "tensor '%s': byte count too large",
                    name != NULL ? name : "(null)");
    }
    return add_tensor(w, name, type, n_dims, ne, data, n_bytes, DATA_COPY);
}

int64_t gguf_writer_n_tensors(const gguf_writer *w) { return (int64_t)w->n_tensors; }

uint64_t gguf_writer_tensor_bytes(const gguf_writer *w, int64_t i) {
    if (i < 0 || (size_t)i >= w->n_tensors) {
        return 0;
    }
    return w->tensors[i].n_bytes;
}

/* ---- layout ------------------------------------------------------------------------------- */

static edgelm_status compute_layout(gguf_writer *w) {
    free(w->kv_layout);
    free(w->tensor_layout);
    w->kv_layout = NULL;
    w->tensor_layout = NULL;
    w->have_layout = false;
    if (w->n_kv > 0) {
        w->kv_layout = calloc(w->n_kv, sizeof *w->kv_layout);
    }
    if (w->n_tensors > 0) {
        w->tensor_layout = calloc(w->n_tensors, sizeof *w->tensor_layout);
    }
    if ((w->n_kv > 0 && w->kv_layout == NULL) || (w->n_tensors > 0 && w->tensor_layout == NULL)) {
        return fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for the layout");
    }
    /* header: magic, version, n_tensors, n_kv; sizes here are bounded by what is in memory */
    uint64_t pos = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++) {
        const writer_kv *kv = &w->kv[i];
        gguf_kv_layout *l = &w->kv_layout[i];
        l->key_len_offset = pos;
        l->key_offset = pos + 8;
        l->type_offset = l->key_offset + kv->key_len;
        l->value_offset = l->type_offset + 4;
        if (kv->type == GGUF_TYPE_ARRAY) {
            l->array_n_offset = l->value_offset + 4;
            l->array_data_offset = l->value_offset + 12;
        }
        l->end_offset = l->value_offset + kv->value_len;
        pos = l->end_offset;
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        gguf_tensor_layout *l = &w->tensor_layout[i];
        l->name_len_offset = pos;
        l->name_offset = pos + 8;
        l->n_dims_offset = l->name_offset + t->name_len;
        l->ne_offset = l->n_dims_offset + 4;
        l->type_offset = l->ne_offset + 8 * (uint64_t)t->n_dims;
        l->offset_offset = l->type_offset + 4;
        l->end_offset = l->offset_offset + 8;
        l->n_bytes = t->n_bytes;
        pos = l->end_offset;
    }
    uint64_t infos_end = pos;
    uint64_t data_section = align_up(infos_end, w->alignment);
    uint64_t rel = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        gguf_tensor_layout *l = &w->tensor_layout[i];
        uint64_t end;
        l->data_offset = rel;
        if (add_overflows(data_section, rel, &l->data_abs_offset) ||
            add_overflows(rel, w->tensors[i].n_bytes, &end) ||
            add_overflows(end, w->alignment, &end)) {
            return fail(w, EDGELM_ERR_TOO_LARGE, "tensor data exceeds 2^64 bytes");
        }
        rel = align_up(end - w->alignment, w->alignment);
    }
    uint64_t file_size;
    if (add_overflows(data_section, rel, &file_size)) {
        return fail(w, EDGELM_ERR_TOO_LARGE, "file exceeds 2^64 bytes");
    }
    w->layout = (gguf_layout){.version_offset = 4,
                              .n_tensors_offset = 8,
                              .n_kv_offset = 16,
                              .n_kv = w->n_kv,
                              .kv = w->kv_layout,
                              .n_tensors = w->n_tensors,
                              .tensors = w->tensor_layout,
                              .infos_end_offset = infos_end,
                              .data_section_offset = data_section,
                              .file_size = file_size,
                              .alignment = w->alignment};
    w->have_layout = true;
    return EDGELM_OK;
}

const gguf_layout *gguf_writer_layout(const gguf_writer *w) {
    return w->have_layout ? &w->layout : NULL;
}

int64_t gguf_writer_find_key(const gguf_writer *w, const char *key) {
    return key != NULL ? find_key_n(w, key, strlen(key)) : -1;
}

int64_t gguf_writer_find_tensor(const gguf_writer *w, const char *name) {
    return name != NULL ? find_tensor_n(w, name, strlen(name)) : -1;
}

/* ---- output ------------------------------------------------------------------------------- */

static edgelm_status sink_write(gguf_writer *w, const void *src, size_t n) {
    if (n == 0) {
        return EDGELM_OK;
    }
    if (w->file != NULL) {
        if (fwrite(src, 1, n, w->file) != n) {
            return fail(w, EDGELM_ERR_IO, "%s: write failed at offset %llu: %s", w->tmp_path,
                        (unsigned long long)w->pos, strerror(errno));
        }
    } else {
        if (w->mem == NULL || w->pos > w->mem_size || n > w->mem_size - w->pos) {
            return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "internal: write past the buffer");
        }
        memcpy(w->mem + w->pos, src, n);
    }
    w->pos += n;
    return EDGELM_OK;
}

static edgelm_status sink_pad_to(gguf_writer *w, uint64_t target) {
    static const uint8_t zeros[4096];
    while (w->pos < target) {
        uint64_t left = target - w->pos;
        size_t n = left < sizeof zeros ? (size_t)left : sizeof zeros;
        edgelm_status st = sink_write(w, zeros, n);
        if (st != EDGELM_OK) {
            return st;
        }
    }
    return EDGELM_OK;
}

static edgelm_status write_header(gguf_writer *w) {
    bytebuf b = {0};
    buf_u32(&b, GGUF_MAGIC);
    buf_u32(&b, w->version);
    buf_u64(&b, w->n_tensors);
    buf_u64(&b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const writer_kv *kv = &w->kv[i];
        buf_string(&b, kv->key, kv->key_len);
        buf_u32(&b, kv->type);
        buf_put(&b, kv->value, kv->value_len);
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        buf_string(&b, t->name, t->name_len);
        buf_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) {
            buf_u64(&b, t->ne[d]);
        }
        buf_u32(&b, t->type);
        buf_u64(&b, w->tensor_layout[i].data_offset);
    }
    if (b.oom) {
        free(b.p);
        return fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for the header");
    }
    edgelm_status st = EDGELM_OK;
    if ((uint64_t)b.len != w->layout.infos_end_offset) {
        st = fail(w, EDGELM_ERR_INVALID_ARGUMENT, "internal: header size mismatch");
    } else {
        st = sink_write(w, b.p, b.len);
    }
    free(b.p);
    if (st != EDGELM_OK) {
        return st;
    }
    return sink_pad_to(w, w->layout.data_section_offset);
}

/* Padding after tensor i: up to the next tensor's start, or the aligned end of the file. */
static uint64_t tensor_end_target(const gguf_writer *w, size_t i) {
    return i + 1 < w->n_tensors ? w->tensor_layout[i + 1].data_abs_offset : w->layout.file_size;
}

/* Write every tensor from the current one on that has its data in memory (or no bytes). */
static edgelm_status stream_pump(gguf_writer *w) {
    while (w->stream_index < w->n_tensors) {
        const writer_tensor *t = &w->tensors[w->stream_index];
        if (t->data == NULL && t->n_bytes > 0) {
            return EDGELM_OK; /* deferred: wait for write_tensor_data */
        }
        edgelm_status st = sink_write(w, t->data, (size_t)t->n_bytes);
        if (st == EDGELM_OK) {
            st = sink_pad_to(w, tensor_end_target(w, w->stream_index));
        }
        if (st != EDGELM_OK) {
            return st;
        }
        w->stream_index++;
        w->stream_written = 0;
    }
    return EDGELM_OK;
}

static edgelm_status begin_common(gguf_writer *w) {
    edgelm_status st = compute_layout(w);
    if (st != EDGELM_OK) {
        return st;
    }
    w->pos = 0;
    w->stream_index = 0;
    w->stream_written = 0;
    w->streaming = true;
    st = write_header(w);
    if (st == EDGELM_OK) {
        st = stream_pump(w);
    }
    return st;
}

edgelm_status gguf_writer_begin_file(gguf_writer *w, const char *path) {
    if (w->streaming) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "a file is already being streamed");
    }
    if (path == NULL || path[0] == '\0') {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "empty output path");
    }
    static const char suffix[] = ".tmp.XXXXXX";
    size_t len = strlen(path);
    edgelm_status st = EDGELM_OK;
    char *tmp = malloc(len + sizeof suffix);
    w->final_path = malloc(len + 1);
    if (tmp == NULL || w->final_path == NULL) {
        free(tmp);
        st = fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    memcpy(w->final_path, path, len + 1);
    memcpy(tmp, path, len);
    memcpy(tmp + len, suffix, sizeof suffix);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = fail(w, EDGELM_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                  strerror(errno));
        free(tmp); /* nothing to unlink */
        goto fail;
    }
    w->tmp_path = tmp;      /* from here on a failure unlinks it */
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; a model file is ordinary data */
    w->file = fdopen(fd, "wb");
    if (w->file == NULL) {
        st = fail(w, EDGELM_ERR_IO, "%s: fdopen: %s", w->tmp_path, strerror(errno));
        close(fd);
        goto fail;
    }
    st = begin_common(w);
    if (st == EDGELM_OK) {
        return EDGELM_OK;
    }
fail:
    stream_abandon(w);
    return st;
}

/* Write tensor bytes in order, padding after each tensor and pumping the next one's header. */
static edgelm_status stream_tensor_bytes(gguf_writer *w, const uint8_t *src, size_t n_bytes) {
    while (n_bytes > 0) {
        if (w->stream_index >= w->n_tensors) {
            return fail(w, EDGELM_ERR_INVALID_ARGUMENT,
                        "%zu bytes of tensor data beyond the last tensor", n_bytes);
        }
        const writer_tensor *t = &w->tensors[w->stream_index];
        uint64_t left = t->n_bytes - w->stream_written;
        size_t take = (uint64_t)n_bytes < left ? n_bytes : (size_t)left;
        edgelm_status st = sink_write(w, src, take);
        if (st != EDGELM_OK) {
            return st;
        }
        src += take;
        n_bytes -= take;
        w->stream_written += take;
        if (w->stream_written == t->n_bytes) {
            st = sink_pad_to(w, tensor_end_target(w, w->stream_index));
            if (st != EDGELM_OK) {
                return st;
            }
            w->stream_index++;
            w->stream_written = 0;
            st = stream_pump(w);
            if (st != EDGELM_OK) {
                return st;
            }
        }
    }
    return EDGELM_OK;
}

edgelm_status gguf_writer_write_tensor_data(gguf_writer *w, const void *data, size_t n_bytes) {
    if (!w->streaming) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "write_tensor_data without begin_file");
    }
    if (data == NULL && n_bytes > 0) {
        stream_abandon(w);
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "write_tensor_data: NULL data");
    }
    edgelm_status st = stream_tensor_bytes(w, data, n_bytes);
    if (st != EDGELM_OK) {
        stream_abandon(w);
    }
    return st;
}

int64_t gguf_writer_stream_tensor(const gguf_writer *w) { return (int64_t)w->stream_index; }

static edgelm_status check_stream_complete(gguf_writer *w) {
    if (w->stream_index < w->n_tensors) {
        const writer_tensor *t = &w->tensors[w->stream_index];
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT,
                    "tensor '%s' got %llu of its %llu bytes of data", t->name,
                    (unsigned long long)w->stream_written, (unsigned long long)t->n_bytes);
    }
    if (w->pos != w->layout.file_size) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "internal: wrote %llu bytes, expected %llu",
                    (unsigned long long)w->pos, (unsigned long long)w->layout.file_size);
    }
    return EDGELM_OK;
}

edgelm_status gguf_writer_finish_file(gguf_writer *w) {
    if (!w->streaming || w->file == NULL) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "finish_file without begin_file");
    }
    edgelm_status st = check_stream_complete(w);
    if (st != EDGELM_OK) {
        goto fail;
    }
    if (fflush(w->file) != 0 || fsync(fileno(w->file)) != 0) {
        st = fail(w, EDGELM_ERR_IO, "%s: flush failed: %s", w->tmp_path, strerror(errno));
        goto fail;
    }
    FILE *f = w->file;
    w->file = NULL;
    if (fclose(f) != 0) {
        st = fail(w, EDGELM_ERR_IO, "%s: close failed: %s", w->tmp_path, strerror(errno));
        goto fail;
    }
    if (rename(w->tmp_path, w->final_path) != 0) {
        st = fail(w, EDGELM_ERR_IO, "cannot rename %s to %s: %s", w->tmp_path, w->final_path,
                  strerror(errno));
        goto fail;
    }
    free(w->tmp_path);
    w->tmp_path = NULL;
    stream_abandon(w); /* releases the paths; nothing left to unlink */
    return EDGELM_OK;

fail:
    stream_abandon(w);
    return st;
}

static edgelm_status check_no_deferred(gguf_writer *w) {
    if (w->streaming) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "a file is already being streamed");
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (w->tensors[i].data == NULL && w->tensors[i].n_bytes > 0) {
            return fail(w, EDGELM_ERR_INVALID_ARGUMENT,
                        "tensor '%s' has no data (stream it with begin_file)", w->tensors[i].name);
        }
    }
    return EDGELM_OK;
}

edgelm_status gguf_writer_write_file(gguf_writer *w, const char *path) {
    edgelm_status st = check_no_deferred(w);
    if (st == EDGELM_OK) {
        st = gguf_writer_begin_file(w, path);
    }
    if (st == EDGELM_OK) {
        st = gguf_writer_finish_file(w);
    }
    return st;
}

edgelm_status gguf_writer_write_memory(gguf_writer *w, uint8_t **out, size_t *out_size) {
    if (out == NULL || out_size == NULL) {
        return fail(w, EDGELM_ERR_INVALID_ARGUMENT, "write_memory: NULL output");
    }
    *out = NULL;
    *out_size = 0;
    edgelm_status st = check_no_deferred(w);
    if (st == EDGELM_OK) {
        st = compute_layout(w);
    }
    if (st != EDGELM_OK) {
        return st;
    }
    if (w->layout.file_size > SIZE_MAX) {
        return fail(w, EDGELM_ERR_TOO_LARGE, "file of %llu bytes does not fit in memory",
                    (unsigned long long)w->layout.file_size);
    }
    w->mem_size = (size_t)w->layout.file_size;
    w->mem = malloc(w->mem_size > 0 ? w->mem_size : 1);
    if (w->mem == NULL) {
        w->mem_size = 0;
        return fail(w, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for a %llu-byte file",
                    (unsigned long long)w->layout.file_size);
    }
    st = begin_common(w);
    if (st == EDGELM_OK) {
        st = check_stream_complete(w);
    }
    if (st != EDGELM_OK) {
        stream_abandon(w);
        return st;
    }
    *out = w->mem;
    *out_size = w->mem_size;
    w->mem = NULL; /* now the caller's */
    stream_abandon(w);
    return EDGELM_OK;
}
