/* gguf.c - bounds-checked GGUF v2/v3 parser over an in-memory buffer (see gguf.h).
 *
 * A cursor walks the buffer; every read first checks the bytes remaining, so no field from the
 * file is trusted before it is checked. Counts from the file are bounded by what the remaining
 * bytes could possibly hold before anything is allocated (a string needs at least 8 bytes, a
 * tensor info at least 24), so a hostile count cannot trigger a huge allocation.
 */
#include "gguf.h"

#include "base/error_text.h"

#include "kernels/quant.h"
#include "kernels/tensor_types.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
    edgelm_status status;
    char *err;
    size_t err_size;
} cursor;

static void fail_at(cursor *c, size_t offset, edgelm_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_at(cursor *c, size_t offset, edgelm_status status, const char *fmt, ...) {
    if (c->status != EDGELM_OK) {
        return; /* keep the first error */
    }
    c->status = status;
    char where[32];
    snprintf(where, sizeof where, "offset %zu", offset);
    va_list ap;
    va_start(ap, fmt);
    error_text_vformat(c->err, c->err_size, where, fmt, ap);
    va_end(ap);
}

static bool need(cursor *c, size_t n, const char *what) {
    if (c->status != EDGELM_OK) {
        return false;
    }
    if (n > c->size - c->pos) {
        fail_at(c, c->pos, EDGELM_ERR_TRUNCATED, "file ends inside %s (%zu bytes needed, %zu left)",
                what, n, c->size - c->pos);
        return false;
    }
    return true;
}

static bool read_bytes(cursor *c, void *dst, size_t n, const char *what) {
    if (!need(c, n, what)) {
        return false;
    }
    memcpy(dst, c->base + c->pos, n);
    c->pos += n;
    return true;
}

/* GGUF is little-endian; assemble explicitly so big-endian hosts read it right. */
static bool read_u32(cursor *c, uint32_t *out, const char *what) {
    uint8_t b[4];
    if (!read_bytes(c, b, 4, what)) {
        return false;
    }
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

static bool read_u64(cursor *c, uint64_t *out, const char *what) {
    uint8_t b[8];
    if (!read_bytes(c, b, 8, what)) {
        return false;
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | b[i];
    }
    *out = v;
    return true;
}

/* v1 used 32-bit counts; we refuse v1, so counts are always 64-bit here. */
static bool read_string(cursor *c, gguf_string *out, const char *what) {
    uint64_t len;
    size_t at = c->pos;
    if (!read_u64(c, &len, what)) {
        return false;
    }
    if (len > c->size - c->pos) {
        fail_at(c, at, len > (uint64_t)1 << 40 ? EDGELM_ERR_TOO_LARGE : EDGELM_ERR_TRUNCATED,
                "%s: length %llu exceeds the %zu bytes left in the file", what,
                (unsigned long long)len, c->size - c->pos);
        return false;
    }
    out->data = (const char *)(c->base + c->pos);
    out->len = len;
    c->pos += (size_t)len;
    return true;
}

size_t gguf_type_size(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

const char *gguf_type_name(uint32_t type) {
    static const char *const names[GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
    return type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

/* Decode one little-endian scalar of the given type at p into the widened union fields. */
static void decode_scalar(uint32_t type, const uint8_t *p, gguf_kv *kv) {
    uint64_t raw = 0;
    size_t n = gguf_type_size(type);
    for (size_t i = n; i > 0; i--) {
        raw = raw << 8 | p[i - 1];
    }
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        kv->value.u64 = raw;
        break;
    case GGUF_TYPE_INT8:
        kv->value.i64 = (int8_t)(uint8_t)raw;
        break;
    case GGUF_TYPE_INT16:
        kv->value.i64 = (int16_t)(uint16_t)raw;
        break;
    case GGUF_TYPE_INT32:
        kv->value.i64 = (int32_t)(uint32_t)raw;
        break;
    case GGUF_TYPE_INT64:
        kv->value.i64 = (int64_t)raw;
        break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        kv->value.f64 = (double)f;
        break;
    }
    case GGUF_TYPE_FLOAT64: {
        double d;
        memcpy(&d, &raw, 8);
        kv->value.f64 = d;
        break;
    }
    case GGUF_TYPE_BOOL:
        kv->value.b = raw != 0;
        break;
    default:
        break;
    }
}

static bool read_value(cursor *c, gguf_kv *kv, const char *key_for_msg) {
    size_t at = c->pos;
    if (kv->type == GGUF_TYPE_STRING) {
        return read_string(c, &kv->value.str, "metadata string value");
    }
    if (kv->type == GGUF_TYPE_ARRAY) {
        uint32_t elem_type;
        uint64_t n;
        if (!read_u32(c, &elem_type, "array element type") || !read_u64(c, &n, "array length")) {
            return false;
        }
        if (elem_type == GGUF_TYPE_ARRAY || elem_type >= GGUF_TYPE_COUNT) {
            fail_at(c, at, EDGELM_ERR_BAD_VALUE_TYPE, "key '%s': array of unsupported type %u",
                    key_for_msg, elem_type);
            return false;
        }
        kv->value.arr.elem_type = elem_type;
        kv->value.arr.n = n;
        if (elem_type == GGUF_TYPE_STRING) {
            /* each string is at least its 8-byte length */
            if (n > (c->size - c->pos) / 8) {
                fail_at(c, at,
                        n > ((uint64_t)1 << 40) ? EDGELM_ERR_TOO_LARGE : EDGELM_ERR_TRUNCATED,
                        "key '%s': %llu strings cannot fit in the %zu bytes left", key_for_msg,
                        (unsigned long long)n, c->size - c->pos);
                return false;
            }
            gguf_string *strings = n ? calloc((size_t)n, sizeof *strings) : NULL;
            if (n && strings == NULL) {
                fail_at(c, at, EDGELM_ERR_OUT_OF_MEMORY, "key '%s': out of memory", key_for_msg);
                return false;
            }
            kv->value.arr.strings = strings;
            for (uint64_t i = 0; i < n; i++) {
                if (!read_string(c, &strings[i], "array string")) {
                    return false;
                }
            }
            return true;
        }
        size_t elem_size = gguf_type_size(elem_type);
        if (n > (c->size - c->pos) / elem_size) {
            fail_at(c, at, n > ((uint64_t)1 << 40) ? EDGELM_ERR_TOO_LARGE : EDGELM_ERR_TRUNCATED,
                    "key '%s': array of %llu x %zu bytes exceeds the %zu bytes left", key_for_msg,
                    (unsigned long long)n, elem_size, c->size - c->pos);
            return false;
        }
        kv->value.arr.data = c->base + c->pos;
        c->pos += (size_t)n * elem_size;
        return true;
    }
    size_t size = gguf_type_size(kv->type);
    if (size == 0) {
        fail_at(c, at, EDGELM_ERR_BAD_VALUE_TYPE, "key '%s': unknown value type %u", key_for_msg,
                kv->type);
        return false;
    }
    if (!need(c, size, "metadata value")) {
        return false;
    }
    decode_scalar(kv->type, c->base + c->pos, kv);
    c->pos += size;
    return true;
}

/* Key bytes as a printable C string for messages (truncated, non-printables replaced). */
static const char *printable(gguf_string s, char *buf, size_t buf_size) {
    size_t n = s.len < buf_size - 1 ? (size_t)s.len : buf_size - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.data[i];
        buf[i] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    buf[n] = '\0';
    return buf;
}

static bool string_eq(gguf_string a, gguf_string b) {
    return a.len == b.len && memcmp(a.data, b.data, (size_t)a.len) == 0;
}

/* FNV-1a over a name, for the duplicate checks (hash table sized to the count). */
static uint64_t hash_string(gguf_string s) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < s.len; i++) {
        h = (h ^ (uint8_t)s.data[i]) * 1099511628211ull;
    }
    return h;
}

/* Returns the index of an earlier entry with the same name, or -1. names[i] via stride. */
static bool has_duplicate(const void *items, size_t stride, size_t name_offset, uint64_t n,
                          uint64_t *dup_index, bool *oom) {
    *oom = false;
    if (n < 2) {
        return false;
    }
    size_t cap = 16;
    while (cap < n * 2) {
        cap <<= 1;
    }
    int64_t *slots = malloc(cap * sizeof *slots);
    if (slots == NULL) {
        *oom = true;
        return false;
    }
    for (size_t i = 0; i < cap; i++) {
        slots[i] = -1;
    }
    bool found = false;
    for (uint64_t i = 0; i < n && !found; i++) {
        const gguf_string *name =
            (const gguf_string *)((const uint8_t *)items + i * stride + name_offset);
        size_t h = (size_t)hash_string(*name) & (cap - 1);
        while (slots[h] >= 0) {
            const gguf_string *other =
                (const gguf_string *)((const uint8_t *)items + (size_t)slots[h] * stride +
                                      name_offset);
            if (string_eq(*name, *other)) {
                found = true;
                *dup_index = i;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (!found) {
            slots[h] = (int64_t)i;
        }
    }
    free(slots);
    return found;
}

static bool read_tensor_info(cursor *c, gguf_tensor *t, uint64_t index) {
    size_t at = c->pos;
    char name_buf[96];
    if (!read_string(c, &t->name, "tensor name") ||
        !read_u32(c, &t->n_dims, "tensor dimension count")) {
        return false;
    }
    if (t->name.len == 0 || t->name.len > 1024) {
        fail_at(c, at, EDGELM_ERR_BAD_STRING, "tensor %llu: name length %llu is not in 1..1024",
                (unsigned long long)index, (unsigned long long)t->name.len);
        return false;
    }
    printable(t->name, name_buf, sizeof name_buf);
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS) {
        fail_at(c, at, EDGELM_ERR_BAD_DIMENSIONS, "tensor '%s': %u dimensions (1..%d allowed)",
                name_buf, t->n_dims, GGUF_MAX_DIMS);
        return false;
    }
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
    }
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (!read_u64(c, &t->ne[d], "tensor dimension")) {
            return false;
        }
        /* ggml keeps element counts in int64_t: the product must fit there */
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX / n_elements) {
            fail_at(c, at, EDGELM_ERR_BAD_DIMENSIONS,
                    "tensor '%s': dimension %u is %llu (zero or the element count overflows)",
                    name_buf, d, (unsigned long long)t->ne[d]);
            return false;
        }
        n_elements *= t->ne[d];
    }
    t->n_elements = n_elements;
    if (!read_u32(c, &t->type, "tensor type") || !read_u64(c, &t->offset, "tensor offset")) {
        return false;
    }
    const tensor_type_traits *traits = tensor_type_get_ref(t->type); /* names and sizes only */
    if (traits == NULL) {
        fail_at(c, at, EDGELM_ERR_BAD_TENSOR_TYPE, "tensor '%s': unknown or unsupported type %u",
                name_buf, t->type);
        return false;
    }
    if (t->ne[0] % (uint64_t)traits->block_size != 0) {
        fail_at(c, at, EDGELM_ERR_BAD_DIMENSIONS,
                "tensor '%s': row length %llu is not a multiple of the %s block size %lld",
                name_buf, (unsigned long long)t->ne[0], traits->name,
                (long long)traits->block_size);
        return false;
    }
    uint64_t n_blocks = n_elements / (uint64_t)traits->block_size;
    if (n_blocks > UINT64_MAX / traits->type_size) {
        fail_at(c, at, EDGELM_ERR_BAD_DIMENSIONS, "tensor '%s': byte size overflows", name_buf);
        return false;
    }
    t->n_bytes = n_blocks * traits->type_size;
    return true;
}

static void release(gguf_file *f) {
    if (f->kv != NULL) {
        for (uint64_t i = 0; i < f->n_kv; i++) {
            if (f->kv[i].type == GGUF_TYPE_ARRAY) {
                free(f->kv[i].value.arr.strings);
            }
        }
    }
    if (f->tensors != NULL) {
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            free(f->tensors[i].name_z);
        }
    }
    free(f->kv);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

edgelm_status gguf_parse(const void *data, size_t size, gguf_file *out, char *err,
                         size_t err_size) {
    cursor c = {.base = data, .size = size, .err = err, .err_size = err_size};
    gguf_file f;
    memset(&f, 0, sizeof f);
    memset(out, 0, sizeof *out);
    if (err != NULL && err_size > 0) {
        err[0] = '\0';
    }
    if (data == NULL && size > 0) {
        fail_at(&c, 0, EDGELM_ERR_INVALID_ARGUMENT, "no data");
        return c.status;
    }
    f.base = data;
    f.size = size;

    uint32_t magic;
    if (!read_u32(&c, &magic, "header magic")) {
        goto fail;
    }
    if (magic != GGUF_MAGIC) {
        fail_at(&c, 0, EDGELM_ERR_BAD_MAGIC, "not a GGUF file (magic %08x)", magic);
        goto fail;
    }
    if (!read_u32(&c, &f.version, "header version")) {
        goto fail;
    }
    if (f.version < 2 || f.version > 3) {
        fail_at(&c, 4, EDGELM_ERR_UNSUPPORTED_VERSION,
                "GGUF version %u is not supported (only 2 and 3%s)", f.version,
                f.version == 1 ? "; re-convert this v1 file with a current llama.cpp" : "");
        goto fail;
    }
    uint64_t n_tensors, n_kv;
    if (!read_u64(&c, &n_tensors, "tensor count") || !read_u64(&c, &n_kv, "metadata count")) {
        goto fail;
    }
    /* a key-value pair needs at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at
     * least 8 + 1 + 4 + 8 + 4 + 8 */
    if (n_kv > (size - c.pos) / 13) {
        fail_at(&c, 16, n_kv > ((uint64_t)1 << 40) ? EDGELM_ERR_TOO_LARGE : EDGELM_ERR_TRUNCATED,
                "metadata count %llu cannot fit in a %zu-byte file", (unsigned long long)n_kv,
                size);
        goto fail;
    }
    if (n_tensors > (size - c.pos) / 33) {
        fail_at(
            &c, 8, n_tensors > ((uint64_t)1 << 40) ? EDGELM_ERR_TOO_LARGE : EDGELM_ERR_TRUNCATED,
            "tensor count %llu cannot fit in a %zu-byte file", (unsigned long long)n_tensors, size);
        goto fail;
    }
    if (n_kv > 0) {
        f.kv = calloc((size_t)n_kv, sizeof *f.kv);
        if (f.kv == NULL) {
            fail_at(&c, 16, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for %llu metadata entries",
                    (unsigned long long)n_kv);
            goto fail;
        }
    }
    f.n_kv = n_kv; /* release() walks only zero-initialized or complete entries */
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &f.kv[i];
        size_t at = c.pos;
        char key_buf[96];
        if (!read_string(&c, &kv->key, "metadata key")) {
            goto fail;
        }
        if (kv->key.len == 0 || kv->key.len > 65535) {
            fail_at(&c, at, EDGELM_ERR_BAD_STRING, "metadata %llu: key length %llu is not 1..65535",
                    (unsigned long long)i, (unsigned long long)kv->key.len);
            goto fail;
        }
        printable(kv->key, key_buf, sizeof key_buf);
        size_t type_at = c.pos;
        if (!read_u32(&c, &kv->type, "metadata value type")) {
            goto fail;
        }
        if (kv->type >= GGUF_TYPE_COUNT) {
            fail_at(&c, type_at, EDGELM_ERR_BAD_VALUE_TYPE, "key '%s': unknown value type %u",
                    key_buf, kv->type);
            kv->type = GGUF_TYPE_UINT8; /* nothing owned */
            goto fail;
        }
        if (!read_value(&c, kv, key_buf)) {
            goto fail;
        }
    }
    bool oom = false;
    uint64_t dup = 0;
    if (has_duplicate(f.kv, sizeof *f.kv, offsetof(gguf_kv, key), n_kv, &dup, &oom)) {
        char key_buf[96];
        fail_at(&c, 24, EDGELM_ERR_DUPLICATE, "metadata key '%s' appears twice",
                printable(f.kv[dup].key, key_buf, sizeof key_buf));
        goto fail;
    }
    if (oom) {
        fail_at(&c, 24, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }

    f.alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *align_kv = gguf_find(&f, "general.alignment");
    if (align_kv != NULL) {
        if (align_kv->type != GGUF_TYPE_UINT32 || align_kv->value.u64 == 0 ||
            (align_kv->value.u64 & (align_kv->value.u64 - 1)) != 0) {
            fail_at(&c, 24, EDGELM_ERR_BAD_ALIGNMENT,
                    "general.alignment must be a u32 power of two (type %s, value %llu)",
                    gguf_type_name(align_kv->type), (unsigned long long)align_kv->value.u64);
            goto fail;
        }
        f.alignment = (uint32_t)align_kv->value.u64;
    }

    if (n_tensors > 0) {
        f.tensors = calloc((size_t)n_tensors, sizeof *f.tensors);
        if (f.tensors == NULL) {
            fail_at(&c, c.pos, EDGELM_ERR_OUT_OF_MEMORY, "out of memory for %llu tensors",
                    (unsigned long long)n_tensors);
            goto fail;
        }
    }
    f.n_tensors = n_tensors;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (!read_tensor_info(&c, &f.tensors[i], i)) {
            goto fail;
        }
    }
    if (has_duplicate(f.tensors, sizeof *f.tensors, offsetof(gguf_tensor, name), n_tensors, &dup,
                      &oom)) {
        char name_buf[96];
        fail_at(&c, c.pos, EDGELM_ERR_DUPLICATE, "tensor '%s' appears twice",
                printable(f.tensors[dup].name, name_buf, sizeof name_buf));
        goto fail;
    }
    if (oom) {
        fail_at(&c, c.pos, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }

    /* the data section starts at the next multiple of the alignment */
    uint64_t data_offset = ((uint64_t)c.pos + f.alignment - 1) / f.alignment * f.alignment;
    if (n_tensors > 0 && data_offset > size) {
        fail_at(&c, c.pos, EDGELM_ERR_TRUNCATED, "file ends before the tensor data section");
        goto fail;
    }
    f.data_offset = data_offset;
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &f.tensors[i];
        char name_buf[96];
        printable(t->name, name_buf, sizeof name_buf);
        if (t->offset % f.alignment != 0) {
            fail_at(&c, (size_t)data_offset, EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
                    "tensor '%s': data offset %llu is not a multiple of the alignment %u", name_buf,
                    (unsigned long long)t->offset, f.alignment);
            goto fail;
        }
        uint64_t available = size - data_offset;
        if (t->offset > available || t->n_bytes > available - t->offset) {
            fail_at(&c, (size_t)data_offset, EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
                    "tensor '%s': data [%llu, +%llu) lies past the end of the file (%llu bytes of "
                    "tensor data)",
                    name_buf, (unsigned long long)t->offset, (unsigned long long)t->n_bytes,
                    (unsigned long long)available);
            goto fail;
        }
        t->data = f.base + data_offset + t->offset;
        t->name_z = malloc((size_t)t->name.len + 1);
        if (t->name_z == NULL) {
            fail_at(&c, 0, EDGELM_ERR_OUT_OF_MEMORY, "out of memory");
            goto fail;
        }
        memcpy(t->name_z, t->name.data, (size_t)t->name.len);
        t->name_z[t->name.len] = '\0';
    }
    *out = f;
    return EDGELM_OK;

fail:
    release(&f);
    return c.status != EDGELM_OK ? c.status : EDGELM_ERR_INVALID_ARGUMENT;
}

void gguf_free(gguf_file *file) {
    if (file != NULL) {
        release(file);
    }
}

bool gguf_string_equals(gguf_string s, const char *z) {
    size_t n = strlen(z);
    return s.len == n && memcmp(s.data, z, n) == 0;
}

const gguf_kv *gguf_find(const gguf_file *file, const char *key) {
    for (uint64_t i = 0; i < file->n_kv; i++) {
        if (gguf_string_equals(file->kv[i].key, key)) {
            return &file->kv[i];
        }
    }
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *file, const char *name) {
    for (uint64_t i = 0; i < file->n_tensors; i++) {
        if (gguf_string_equals(file->tensors[i].name, name)) {
            return &file->tensors[i];
        }
    }
    return NULL;
}

static bool is_unsigned(uint32_t t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64;
}

static bool is_signed(uint32_t t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_INT64;
}

/* Integer value of a kv as int64 range-checked into [lo, hi]. */
static edgelm_status get_integer(const gguf_file *file, const char *key, int64_t lo, int64_t hi,
                                 int64_t *out) {
    const gguf_kv *kv = gguf_find(file, key);
    if (kv == NULL) {
        return EDGELM_ERR_MISSING;
    }
    if (is_unsigned(kv->type)) {
        if (kv->value.u64 > (uint64_t)hi) {
            return EDGELM_ERR_BAD_VALUE_TYPE;
        }
        *out = (int64_t)kv->value.u64;
        return *out < lo ? EDGELM_ERR_BAD_VALUE_TYPE : EDGELM_OK;
    }
    if (is_signed(kv->type)) {
        if (kv->value.i64 < lo || kv->value.i64 > hi) {
            return EDGELM_ERR_BAD_VALUE_TYPE;
        }
        *out = kv->value.i64;
        return EDGELM_OK;
    }
    return EDGELM_ERR_BAD_VALUE_TYPE;
}

edgelm_status gguf_get_u32(const gguf_file *file, const char *key, uint32_t *out) {
    int64_t v;
    edgelm_status st = get_integer(file, key, 0, UINT32_MAX, &v);
    if (st == EDGELM_OK) {
        *out = (uint32_t)v;
    }
    return st;
}

edgelm_status gguf_get_i32(const gguf_file *file, const char *key, int32_t *out) {
    int64_t v;
    edgelm_status st = get_integer(file, key, INT32_MIN, INT32_MAX, &v);
    if (st == EDGELM_OK) {
        *out = (int32_t)v;
    }
    return st;
}

edgelm_status gguf_get_f32(const gguf_file *file, const char *key, float *out) {
    const gguf_kv *kv = gguf_find(file, key);
    if (kv == NULL) {
        return EDGELM_ERR_MISSING;
    }
    if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64) {
        *out = (float)kv->value.f64;
        return EDGELM_OK;
    }
    return EDGELM_ERR_BAD_VALUE_TYPE;
}

/* The kv of key when its value has the GGUF type want, else NULL with *st saying why (MISSING or
 * BAD_VALUE_TYPE); *st is EDGELM_OK with a kv. */
static const gguf_kv *find_typed(const gguf_file *file, const char *key, uint32_t want,
                                 edgelm_status *st) {
    const gguf_kv *kv = gguf_find(file, key);
    *st = kv == NULL         ? EDGELM_ERR_MISSING
          : kv->type != want ? EDGELM_ERR_BAD_VALUE_TYPE
                             : EDGELM_OK;
    return *st == EDGELM_OK ? kv : NULL;
}

edgelm_status gguf_get_bool(const gguf_file *file, const char *key, bool *out) {
    edgelm_status st;
    const gguf_kv *kv = find_typed(file, key, GGUF_TYPE_BOOL, &st);
    if (kv != NULL) {
        *out = kv->value.b;
    }
    return st;
}

edgelm_status gguf_get_string(const gguf_file *file, const char *key, gguf_string *out) {
    edgelm_status st;
    const gguf_kv *kv = find_typed(file, key, GGUF_TYPE_STRING, &st);
    if (kv != NULL) {
        *out = kv->value.str;
    }
    return st;
}

edgelm_status gguf_get_array(const gguf_file *file, const char *key, uint32_t elem_type,
                             const gguf_array **out) {
    edgelm_status st;
    const gguf_kv *kv = find_typed(file, key, GGUF_TYPE_ARRAY, &st);
    if (kv != NULL && kv->value.arr.elem_type != elem_type) {
        return EDGELM_ERR_BAD_VALUE_TYPE;
    }
    if (kv != NULL) {
        *out = &kv->value.arr;
    }
    return st;
}

float gguf_array_f32(const gguf_array *arr, uint64_t i) {
    gguf_kv tmp;
    memset(&tmp, 0, sizeof tmp);
    decode_scalar(arr->elem_type, arr->data + i * gguf_type_size(arr->elem_type), &tmp);
    if (arr->elem_type == GGUF_TYPE_FLOAT32 || arr->elem_type == GGUF_TYPE_FLOAT64) {
        return (float)tmp.value.f64;
    }
    if (is_unsigned(arr->elem_type)) {
        return (float)tmp.value.u64;
    }
    return (float)tmp.value.i64;
}

int64_t gguf_array_i64(const gguf_array *arr, uint64_t i) {
    gguf_kv tmp;
    memset(&tmp, 0, sizeof tmp);
    decode_scalar(arr->elem_type, arr->data + i * gguf_type_size(arr->elem_type), &tmp);
    if (is_unsigned(arr->elem_type)) {
        return (int64_t)tmp.value.u64;
    }
    if (arr->elem_type == GGUF_TYPE_FLOAT32 || arr->elem_type == GGUF_TYPE_FLOAT64) {
        return (int64_t)tmp.value.f64;
    }
    if (arr->elem_type == GGUF_TYPE_BOOL) {
        return tmp.value.b;
    }
    return tmp.value.i64;
}
