/* test_gguf.c - the GGUF reader (engine/src/gguf.c) against files built at test time with the
 * gguf_writer tool library: every value type, arrays, tensors of 1-4 dims, v2 and v3, alignment
 * 32 and 64 round-trip; corrupt variants (made by patching bytes at the offsets the writer
 * reports) are each refused with their specific edgelm_status; truncation at every byte of the
 * header never crashes; a deterministic mutation fuzz loop runs under ASan. Every parse reads
 * from a malloc'd copy of exactly the file's size, so any over-read is an ASan error.
 */
#include "format/gguf.h"
#include "gguf_writer.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "test_util.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------ */

/* Parse an exact-size heap copy and return only the status (message into err). */
static edgelm_status parse_status(const uint8_t *data, size_t size, char *err, size_t err_size) {
    uint8_t *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    if (size > 0) {
        memcpy(copy, data, size);
    }
    gguf_file f;
    edgelm_status st = gguf_parse(copy, size, &f, err, err_size);
    if (st == EDGELM_OK) {
        /* a file the parser accepts must have every tensor inside the buffer */
        for (uint64_t i = 0; i < f.n_tensors; i++) {
            const gguf_tensor *t = &f.tensors[i];
            const uint8_t *p = t->data;
            CHECK(p >= copy && p <= copy + size && t->n_bytes <= (uint64_t)(copy + size - p));
        }
        gguf_free(&f);
    } else {
        /* a failed parse leaves *out zeroed */
        CHECK(f.kv == NULL && f.tensors == NULL && f.n_kv == 0 && f.n_tensors == 0);
    }
    free(copy);
    return st;
}

static void expect_status(const char *what, const uint8_t *data, size_t size,
                          edgelm_status expected) {
    char err[256] = "";
    edgelm_status st = parse_status(data, size, err, sizeof err);
    CHECK_MSG(st == expected, "%s: got %s (%d), expected %s (%d): %s", what, edgelm_strerror(st),
              (int)st, edgelm_strerror(expected), (int)expected, err);
    if (st != EDGELM_OK) {
        CHECK_MSG(strncmp(err, "offset ", 7) == 0, "%s: message '%s' does not name the offset",
                  what, err);
    }
}

/* ---- the fixture -------------------------------------------------------------------------- */

static const uint8_t a_u8[] = {0, 1, 255};
static const int8_t a_i8[] = {-128, 0, 127};
static const uint16_t a_u16[] = {0, 65535};
static const int16_t a_i16[] = {-32768, 32767};
static const uint32_t a_u32[] = {1, 2, 3, 4294967295u};
static const int32_t a_i32[] = {-1, 2147483647, -2147483647 - 1};
static const uint64_t a_u64[] = {UINT64_MAX, 0};
static const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
static const float a_f32[] = {0.5f, -2.0f, 1e-20f};
static const double a_f64[] = {1e300, -0.0};
static const bool a_bool[] = {true, false, true};
static const char *const a_str[] = {"x", "", "\xe2\x96\x81the", "<0x0A>"};

/* The fixture's arrays, in file order: written by fixture_metadata, compared by check_round_trip
 * (the string arrays element by element there). */
typedef struct fixture_array {
    const char *key;
    uint32_t type;
    const void *data;
    uint64_t n;
} fixture_array;

static const fixture_array fixture_arrays[] = {
    {"a.u8", GGUF_TYPE_UINT8, a_u8, 3},     {"a.i8", GGUF_TYPE_INT8, a_i8, 3},
    {"a.u16", GGUF_TYPE_UINT16, a_u16, 2},  {"a.i16", GGUF_TYPE_INT16, a_i16, 2},
    {"a.u32", GGUF_TYPE_UINT32, a_u32, 4},  {"a.i32", GGUF_TYPE_INT32, a_i32, 3},
    {"a.u64", GGUF_TYPE_UINT64, a_u64, 2},  {"a.i64", GGUF_TYPE_INT64, a_i64, 2},
    {"a.f32", GGUF_TYPE_FLOAT32, a_f32, 3}, {"a.f64", GGUF_TYPE_FLOAT64, a_f64, 2},
    {"a.bool", GGUF_TYPE_BOOL, a_bool, 3},  {"a.str", GGUF_TYPE_STRING, a_str, 4},
    {"a.empty", GGUF_TYPE_UINT32, NULL, 0}, {"a.str.empty", GGUF_TYPE_STRING, NULL, 0},
};
#define N_FIXTURE_ARRAYS (sizeof fixture_arrays / sizeof fixture_arrays[0])

typedef struct fixture_tensor {
    const char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[4];
} fixture_tensor;

static const fixture_tensor fixture_tensors[] = {
    {"t0", TENSOR_TYPE_F32, 2, {8, 3, 1, 1}},   {"t1", TENSOR_TYPE_F16, 1, {16, 1, 1, 1}},
    {"t2", TENSOR_TYPE_Q8_0, 2, {64, 2, 1, 1}}, {"t3", TENSOR_TYPE_Q4_K, 3, {256, 1, 2, 1}},
    {"t4", TENSOR_TYPE_F32, 4, {2, 3, 1, 2}},   {"t5", TENSOR_TYPE_BF16, 1, {4, 1, 1, 1}},
};
#define N_FIXTURE_TENSORS (sizeof fixture_tensors / sizeof fixture_tensors[0])

/* Deterministic bytes for tensor i. */
static uint8_t *fixture_data(size_t i, uint64_t n_bytes) {
    uint8_t *d = malloc((size_t)n_bytes);
    if (d != NULL) {
        for (uint64_t k = 0; k < n_bytes; k++) {
            d[k] = (uint8_t)(k * 7 + i * 31 + 1);
        }
    }
    return d;
}

static uint64_t fixture_bytes(size_t i) {
    const fixture_tensor *ft = &fixture_tensors[i];
    uint64_t n = 1;
    for (uint32_t d = 0; d < ft->n_dims; d++) {
        n *= ft->ne[d];
    }
    const tensor_type_traits *t = tensor_type_get(ft->type);
    return n / (uint64_t)t->block_size * t->type_size;
}

/* Metadata of every kind. alignment 0: no general.alignment key (default 32). */
static void fixture_metadata(gguf_writer *w, uint32_t version, uint32_t alignment) {
    CHECK(gguf_writer_set_version(w, version) == EDGELM_OK);
    CHECK(gguf_writer_set_string(w, "general.architecture", "llama") == EDGELM_OK);
    if (alignment != 0) {
        CHECK(gguf_writer_set_alignment(w, alignment) == EDGELM_OK);
    }
    CHECK(gguf_writer_set_u8(w, "t.u8", 200) == EDGELM_OK);
    CHECK(gguf_writer_set_i8(w, "t.i8", -100) == EDGELM_OK);
    CHECK(gguf_writer_set_u16(w, "t.u16", 60000) == EDGELM_OK);
    CHECK(gguf_writer_set_i16(w, "t.i16", -30000) == EDGELM_OK);
    CHECK(gguf_writer_set_u32(w, "t.u32", 4000000000u) == EDGELM_OK);
    CHECK(gguf_writer_set_i32(w, "t.i32", -2000000000) == EDGELM_OK);
    CHECK(gguf_writer_set_u64(w, "t.u64", 0xFEDCBA9876543210ull) == EDGELM_OK);
    CHECK(gguf_writer_set_i64(w, "t.i64", INT64_MIN + 1) == EDGELM_OK);
    CHECK(gguf_writer_set_f32(w, "t.f32", 3.25f) == EDGELM_OK);
    CHECK(gguf_writer_set_f64(w, "t.f64", -1.0e300) == EDGELM_OK);
    CHECK(gguf_writer_set_bool(w, "t.bool", true) == EDGELM_OK);
    CHECK(gguf_writer_set_bool(w, "t.bool0", false) == EDGELM_OK);
    CHECK(gguf_writer_set_string(w, "t.str", "h\xc3\xa9llo \xe2\x96\x81world") == EDGELM_OK);
    CHECK(gguf_writer_set_string(w, "t.str.empty", "") == EDGELM_OK);
    CHECK(gguf_writer_set_string_n(w, "t.str.nul", "a\0b", 3) == EDGELM_OK);
    for (size_t i = 0; i < N_FIXTURE_ARRAYS; i++) {
        const fixture_array *a = &fixture_arrays[i];
        CHECK((a->type == GGUF_TYPE_STRING
                   ? gguf_writer_set_string_array(w, a->key, a->data, a->n)
                   : gguf_writer_set_array(w, a->key, a->type, a->data, a->n)) == EDGELM_OK);
    }
    CHECK(gguf_writer_set_u32(w, "dup.k1", 1) == EDGELM_OK);
    CHECK(gguf_writer_set_u32(w, "dup.k2", 2) == EDGELM_OK);
}

/* A writer holding the whole fixture (tensor data copied). */
static gguf_writer *make_fixture_writer(uint32_t version, uint32_t alignment) {
    gguf_writer *w = gguf_writer_create();
    CHECK(w != NULL);
    if (w == NULL) {
        return NULL;
    }
    fixture_metadata(w, version, alignment);
    for (size_t i = 0; i < N_FIXTURE_TENSORS; i++) {
        const fixture_tensor *ft = &fixture_tensors[i];
        uint8_t *data = fixture_data(i, fixture_bytes(i));
        CHECK(data != NULL);
        edgelm_status st = gguf_writer_add_tensor(w, ft->name, ft->type, ft->n_dims, ft->ne, data);
        CHECK_MSG(st == EDGELM_OK, "add_tensor %s: %s", ft->name, gguf_writer_errmsg(w));
        free(data); /* add_tensor copied it */
    }
    return w;
}

/* ---- round trip --------------------------------------------------------------------------- */

static const gguf_kv *find_typed(const gguf_file *f, const char *key, uint32_t type) {
    const gguf_kv *kv = gguf_find(f, key);
    CHECK_MSG(kv != NULL, "key %s missing", key);
    if (kv != NULL) {
        CHECK_MSG(kv->type == type, "key %s: type %u, expected %u", key, kv->type, type);
    }
    return kv != NULL && kv->type == type ? kv : NULL;
}

static void check_array(const gguf_file *f, const fixture_array *want) {
    const char *key = want->key;
    const uint64_t n = want->n;
    const gguf_array *arr = NULL;
    edgelm_status st = gguf_get_array(f, key, want->type, &arr);
    CHECK_MSG(st == EDGELM_OK, "array %s: %s", key, edgelm_strerror(st));
    if (st != EDGELM_OK) {
        return;
    }
    CHECK_MSG(arr->n == n, "array %s: %" PRIu64 " elements, expected %" PRIu64, key, arr->n, n);
    /* the test hosts are little-endian, so the raw file bytes equal the C array */
    if (arr->n == n && n > 0) {
        CHECK_MSG(memcmp(arr->data, want->data, (size_t)n * gguf_type_size(want->type)) == 0,
                  "array %s: element bytes differ", key);
    }
}

static void check_round_trip(const uint8_t *file, size_t size, const gguf_layout *layout,
                             uint32_t version, uint32_t alignment) {
    uint8_t *copy = malloc(size);
    CHECK(copy != NULL);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, file, size);
    gguf_file f;
    char err[256];
    edgelm_status st = gguf_parse(copy, size, &f, err, sizeof err);
    CHECK_MSG(st == EDGELM_OK, "v%u align %u: %s: %s", version, alignment, edgelm_strerror(st),
              err);
    if (st != EDGELM_OK) {
        free(copy);
        return;
    }
    uint32_t want_align = alignment ? alignment : GGUF_DEFAULT_ALIGNMENT;
    CHECK(f.version == version);
    CHECK(f.alignment == want_align);
    CHECK(f.n_kv == layout->n_kv);
    CHECK(f.n_tensors == N_FIXTURE_TENSORS);
    CHECK(f.data_offset == layout->data_section_offset);
    CHECK(f.data_offset % want_align == 0);
    CHECK(layout->file_size == size);
    CHECK(size % want_align == 0);

    const gguf_kv *kv;
    if ((kv = find_typed(&f, "t.u8", GGUF_TYPE_UINT8))) {
        CHECK(kv->value.u64 == 200);
    }
    if ((kv = find_typed(&f, "t.i8", GGUF_TYPE_INT8))) {
        CHECK(kv->value.i64 == -100);
    }
    if ((kv = find_typed(&f, "t.u16", GGUF_TYPE_UINT16))) {
        CHECK(kv->value.u64 == 60000);
    }
    if ((kv = find_typed(&f, "t.i16", GGUF_TYPE_INT16))) {
        CHECK(kv->value.i64 == -30000);
    }
    if ((kv = find_typed(&f, "t.u32", GGUF_TYPE_UINT32))) {
        CHECK(kv->value.u64 == 4000000000u);
    }
    if ((kv = find_typed(&f, "t.i32", GGUF_TYPE_INT32))) {
        CHECK(kv->value.i64 == -2000000000);
    }
    if ((kv = find_typed(&f, "t.u64", GGUF_TYPE_UINT64))) {
        CHECK(kv->value.u64 == 0xFEDCBA9876543210ull);
    }
    if ((kv = find_typed(&f, "t.i64", GGUF_TYPE_INT64))) {
        CHECK(kv->value.i64 == INT64_MIN + 1);
    }
    if ((kv = find_typed(&f, "t.f32", GGUF_TYPE_FLOAT32))) {
        CHECK(kv->value.f64 == 3.25);
    }
    if ((kv = find_typed(&f, "t.f64", GGUF_TYPE_FLOAT64))) {
        CHECK(kv->value.f64 == -1.0e300);
    }
    if ((kv = find_typed(&f, "t.bool", GGUF_TYPE_BOOL))) {
        CHECK(kv->value.b);
    }
    if ((kv = find_typed(&f, "t.bool0", GGUF_TYPE_BOOL))) {
        CHECK(!kv->value.b);
    }
    if ((kv = find_typed(&f, "t.str", GGUF_TYPE_STRING))) {
        CHECK(gguf_string_equals(kv->value.str, "h\xc3\xa9llo \xe2\x96\x81world"));
    }
    if ((kv = find_typed(&f, "t.str.empty", GGUF_TYPE_STRING))) {
        CHECK(kv->value.str.len == 0);
    }
    if ((kv = find_typed(&f, "t.str.nul", GGUF_TYPE_STRING))) {
        CHECK(kv->value.str.len == 3 && memcmp(kv->value.str.data, "a\0b", 3) == 0);
    }
    if (alignment != 0 && (kv = find_typed(&f, "general.alignment", GGUF_TYPE_UINT32))) {
        CHECK(kv->value.u64 == alignment);
    }
    for (size_t i = 0; i < N_FIXTURE_ARRAYS; i++) {
        if (fixture_arrays[i].type != GGUF_TYPE_STRING) {
            check_array(&f, &fixture_arrays[i]);
        }
    }
    const gguf_array *arr = NULL;
    if (gguf_get_array(&f, "a.str", GGUF_TYPE_STRING, &arr) == EDGELM_OK) {
        CHECK(arr->n == 4);
        for (uint64_t i = 0; i < arr->n && i < 4; i++) {
            CHECK_MSG(gguf_string_equals(arr->strings[i], a_str[i]), "a.str[%" PRIu64 "]", i);
        }
    } else {
        CHECK_MSG(false, "a.str missing");
    }
    CHECK(gguf_get_array(&f, "a.str.empty", GGUF_TYPE_STRING, &arr) == EDGELM_OK && arr->n == 0);

    /* widened element access */
    if (gguf_get_array(&f, "a.i8", GGUF_TYPE_INT8, &arr) == EDGELM_OK) {
        CHECK(gguf_array_i64(arr, 0) == -128 && gguf_array_i64(arr, 2) == 127);
    }
    if (gguf_get_array(&f, "a.u64", GGUF_TYPE_UINT64, &arr) == EDGELM_OK) {
        CHECK((uint64_t)gguf_array_i64(arr, 0) == UINT64_MAX);
    }
    if (gguf_get_array(&f, "a.f32", GGUF_TYPE_FLOAT32, &arr) == EDGELM_OK) {
        CHECK(gguf_array_f32(arr, 1) == -2.0f && gguf_array_f32(arr, 2) == 1e-20f);
    }
    if (gguf_get_array(&f, "a.f64", GGUF_TYPE_FLOAT64, &arr) == EDGELM_OK) {
        CHECK(gguf_array_f32(arr, 1) == 0.0f && signbit(gguf_array_f32(arr, 1)));
    }
    if (gguf_get_array(&f, "a.bool", GGUF_TYPE_BOOL, &arr) == EDGELM_OK) {
        CHECK(gguf_array_i64(arr, 0) == 1 && gguf_array_i64(arr, 1) == 0);
    }

    /* typed getters */
    uint32_t u32 = 0;
    int32_t i32 = 0;
    float f32 = 0.0f;
    bool b = false;
    gguf_string s;
    CHECK(gguf_get_u32(&f, "t.u8", &u32) == EDGELM_OK && u32 == 200);
    CHECK(gguf_get_u32(&f, "t.u32", &u32) == EDGELM_OK && u32 == 4000000000u);
    CHECK(gguf_get_u32(&f, "t.i8", &u32) == EDGELM_ERR_BAD_VALUE_TYPE);  /* negative */
    CHECK(gguf_get_u32(&f, "t.u64", &u32) == EDGELM_ERR_BAD_VALUE_TYPE); /* does not fit */
    CHECK(gguf_get_u32(&f, "t.str", &u32) == EDGELM_ERR_BAD_VALUE_TYPE);
    CHECK(gguf_get_u32(&f, "no.such.key", &u32) == EDGELM_ERR_MISSING);
    CHECK(gguf_get_i32(&f, "t.i16", &i32) == EDGELM_OK && i32 == -30000);
    CHECK(gguf_get_i32(&f, "t.u32", &i32) == EDGELM_ERR_BAD_VALUE_TYPE);
    CHECK(gguf_get_f32(&f, "t.f32", &f32) == EDGELM_OK && f32 == 3.25f);
    CHECK(gguf_get_f32(&f, "t.u8", &f32) == EDGELM_ERR_BAD_VALUE_TYPE);
    CHECK(gguf_get_bool(&f, "t.bool", &b) == EDGELM_OK && b);
    CHECK(gguf_get_bool(&f, "t.u8", &b) == EDGELM_ERR_BAD_VALUE_TYPE);
    CHECK(gguf_get_string(&f, "general.architecture", &s) == EDGELM_OK &&
          gguf_string_equals(s, "llama"));
    CHECK(gguf_get_array(&f, "a.u8", GGUF_TYPE_INT8, &arr) == EDGELM_ERR_BAD_VALUE_TYPE);
    CHECK(gguf_get_array(&f, "t.u8", GGUF_TYPE_UINT8, &arr) == EDGELM_ERR_BAD_VALUE_TYPE);

    /* tensors: shape, type, offsets as laid out, data bytes as given */
    for (size_t i = 0; i < N_FIXTURE_TENSORS; i++) {
        const fixture_tensor *ft = &fixture_tensors[i];
        const gguf_tensor *t = gguf_find_tensor(&f, ft->name);
        CHECK_MSG(t != NULL, "tensor %s missing", ft->name);
        if (t == NULL) {
            continue;
        }
        CHECK(t == &f.tensors[i]);
        CHECK(strcmp(t->name_z, ft->name) == 0);
        CHECK(t->n_dims == ft->n_dims);
        for (int d = 0; d < 4; d++) {
            CHECK(t->ne[d] == ft->ne[d]);
        }
        CHECK(t->type == ft->type);
        CHECK(t->n_bytes == fixture_bytes(i));
        CHECK(t->offset == layout->tensors[i].data_offset);
        CHECK(t->offset % want_align == 0);
        CHECK((const uint8_t *)t->data == copy + layout->tensors[i].data_abs_offset);
        uint8_t *want = fixture_data(i, t->n_bytes);
        CHECK(want != NULL && memcmp(t->data, want, (size_t)t->n_bytes) == 0);
        free(want);
    }
    CHECK(gguf_find_tensor(&f, "nope") == NULL);
    gguf_free(&f);
    gguf_free(&f); /* a freed file is zeroed: freeing again is harmless */
    free(copy);
}

static void test_round_trips(void) {
    static const uint32_t versions[] = {2, 3};
    static const uint32_t alignments[] = {0, 32, 64, 1};
    for (size_t v = 0; v < 2; v++) {
        for (size_t a = 0; a < sizeof alignments / sizeof alignments[0]; a++) {
            gguf_writer *w = make_fixture_writer(versions[v], alignments[a]);
            uint8_t *file = NULL;
            size_t size = 0;
            edgelm_status st = gguf_writer_write_memory(w, &file, &size);
            CHECK_MSG(st == EDGELM_OK, "write_memory: %s", gguf_writer_errmsg(w));
            if (st == EDGELM_OK) {
                CHECK(memcmp(file, "GGUF", 4) == 0);
                check_round_trip(file, size, gguf_writer_layout(w), versions[v], alignments[a]);
            }
            free(file);
            gguf_writer_free(w);
        }
    }
    /* an empty file: header only, padded to the alignment */
    gguf_writer *w = gguf_writer_create();
    uint8_t *file = NULL;
    size_t size = 0;
    CHECK(gguf_writer_write_memory(w, &file, &size) == EDGELM_OK && size == 32);
    expect_status("empty gguf", file, size, EDGELM_OK);
    free(file);
    gguf_writer_free(w);
}

/* ---- writer behaviour --------------------------------------------------------------------- */

static void test_writer_api(void) {
    gguf_writer *w = gguf_writer_create();
    uint64_t ne[2] = {32, 2};
    float data[64] = {0};
    CHECK(gguf_writer_set_version(w, 1) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_version(w, 4) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_alignment(w, 0) == EDGELM_ERR_BAD_ALIGNMENT);
    CHECK(gguf_writer_set_alignment(w, 3) == EDGELM_ERR_BAD_ALIGNMENT);
    CHECK(!gguf_writer_has_key(w, "general.alignment"));
    CHECK(gguf_writer_set_u32(w, "", 1) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_u32(w, NULL, 1) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_array(w, "k", GGUF_TYPE_STRING, data, 1) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_array(w, "k", GGUF_TYPE_ARRAY, data, 1) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_array(w, "k", 13, data, 1) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_n_kv(w) == 0);
    /* raw encodings are checked */
    static const uint8_t bad_string[] = {5, 0, 0, 0, 0, 0, 0, 0, 'a'};
    static const uint8_t good_string[] = {1, 0, 0, 0, 0, 0, 0, 0, 'a'};
    static const uint8_t bad_array[] = {4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    CHECK(gguf_writer_set_raw(w, "r", GGUF_TYPE_STRING, bad_string, sizeof bad_string) ==
          EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_raw(w, "r", GGUF_TYPE_ARRAY, bad_array, sizeof bad_array) ==
          EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_raw(w, "r", GGUF_TYPE_UINT32, good_string, 4) == EDGELM_OK);
    CHECK(gguf_writer_set_raw(w, "r", GGUF_TYPE_STRING, good_string, sizeof good_string) ==
          EDGELM_OK);
    /* replacing keeps the position */
    CHECK(gguf_writer_set_u32(w, "k1", 1) == EDGELM_OK);
    CHECK(gguf_writer_set_u32(w, "k2", 2) == EDGELM_OK);
    CHECK(gguf_writer_set_string(w, "k1", "one") == EDGELM_OK);
    CHECK(gguf_writer_n_kv(w) == 3 && gguf_writer_find_key(w, "k1") == 1);
    /* tensors */
    CHECK(gguf_writer_add_tensor(w, "x", TENSOR_TYPE_Q8_0, 2, ne, data) == EDGELM_OK);
    CHECK(gguf_writer_add_tensor(w, "x", TENSOR_TYPE_Q8_0, 2, ne, data) == EDGELM_ERR_DUPLICATE);
    CHECK(gguf_writer_add_tensor(w, "y", 4, 2, ne, data) == EDGELM_ERR_BAD_TENSOR_TYPE);
    uint64_t bad_row[1] = {33};
    CHECK(gguf_writer_add_tensor(w, "y", TENSOR_TYPE_Q8_0, 1, bad_row, data) ==
          EDGELM_ERR_BAD_DIMENSIONS);
    CHECK(gguf_writer_add_tensor(w, "y", TENSOR_TYPE_F32, 5, ne, data) ==
          EDGELM_ERR_BAD_DIMENSIONS);
    uint64_t zero[1] = {0};
    CHECK(gguf_writer_add_tensor(w, "y", TENSOR_TYPE_F32, 1, zero, data) ==
          EDGELM_ERR_BAD_DIMENSIONS);
    uint64_t huge[2] = {1ull << 32, 1ull << 32};
    CHECK(gguf_writer_add_tensor(w, "y", TENSOR_TYPE_F32, 2, huge, NULL) ==
          EDGELM_ERR_BAD_DIMENSIONS);
    CHECK(gguf_writer_n_tensors(w) == 1 && gguf_writer_tensor_bytes(w, 0) == 2 * 34);
    /* a deferred tensor cannot be written all at once */
    uint64_t ne1[1] = {4};
    CHECK(gguf_writer_add_tensor(w, "deferred", TENSOR_TYPE_F32, 1, ne1, NULL) == EDGELM_OK);
    uint8_t *file = NULL;
    size_t size = 0;
    CHECK(gguf_writer_write_memory(w, &file, &size) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(file == NULL && size == 0);
    CHECK(gguf_writer_write_tensor_data(w, data, 4) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_finish_file(w) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(strlen(gguf_writer_errmsg(w)) > 0);
    gguf_writer_free(w);
    gguf_writer_free(NULL);
}

static void test_writer_files(void) {
    char dir[600], path[700], path2[700];
    snprintf(dir, sizeof dir, "%s/writer", test_temp_dir());
    CHECK(mkdtemp(strcat(dir, "-XXXXXX")) != NULL);
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    snprintf(path2, sizeof path2, "%s/b.gguf", dir);

    /* the reference bytes */
    gguf_writer *w = make_fixture_writer(3, 64);
    uint8_t *ref = NULL;
    size_t ref_size = 0;
    CHECK(gguf_writer_write_memory(w, &ref, &ref_size) == EDGELM_OK);

    /* write_file gives the same bytes, and replaces an existing file */
    FILE *old = fopen(path, "wb");
    CHECK(old != NULL && fputs("old contents", old) >= 0 && fclose(old) == 0);
    CHECK_MSG(gguf_writer_write_file(w, path) == EDGELM_OK, "%s", gguf_writer_errmsg(w));
    size_t size = 0;
    unsigned char *got = test_read_file(path, &size);
    CHECK(got != NULL && size == ref_size && memcmp(got, ref, size) == 0);
    free(got);
    gguf_writer_free(w);

    /* streaming: deferred tensors fed in 7-byte chunks (crossing tensor boundaries), others from
     * memory, give the same bytes */
    w = gguf_writer_create();
    fixture_metadata(w, 3, 64);
    uint8_t *all = NULL;
    uint64_t all_bytes = 0;
    for (size_t i = 0; i < N_FIXTURE_TENSORS; i++) {
        all_bytes += fixture_bytes(i);
    }
    all = malloc((size_t)all_bytes);
    uint64_t deferred_bytes = 0;
    for (size_t i = 0; i < N_FIXTURE_TENSORS; i++) {
        const fixture_tensor *ft = &fixture_tensors[i];
        uint8_t *data = fixture_data(i, fixture_bytes(i));
        bool deferred = i != 2; /* t2 comes from memory in the middle of the stream */
        CHECK(gguf_writer_add_tensor(w, ft->name, ft->type, ft->n_dims, ft->ne,
                                     deferred ? NULL : data) == EDGELM_OK);
        if (deferred && all != NULL) {
            memcpy(all + deferred_bytes, data, (size_t)fixture_bytes(i));
            deferred_bytes += fixture_bytes(i);
        }
        free(data);
    }
    CHECK_MSG(gguf_writer_begin_file(w, path2) == EDGELM_OK, "%s", gguf_writer_errmsg(w));
    CHECK(gguf_writer_set_u32(w, "late", 1) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(test_count_files(dir, NULL) == 2); /* a.gguf and the temp file */
    for (uint64_t off = 0; off < deferred_bytes && all != NULL; off += 7) {
        size_t n = deferred_bytes - off < 7 ? (size_t)(deferred_bytes - off) : 7;
        CHECK(gguf_writer_write_tensor_data(w, all + off, n) == EDGELM_OK);
    }
    CHECK(gguf_writer_stream_tensor(w) == (int64_t)N_FIXTURE_TENSORS);
    CHECK_MSG(gguf_writer_finish_file(w) == EDGELM_OK, "%s", gguf_writer_errmsg(w));
    got = test_read_file(path2, &size);
    CHECK(got != NULL && size == ref_size && memcmp(got, ref, size) == 0);
    free(got);
    CHECK(test_count_files(dir, NULL) == 2); /* no temp left */

    /* too much data abandons the stream: temp removed, the old file untouched */
    CHECK(gguf_writer_begin_file(w, path2) == EDGELM_OK);
    CHECK(gguf_writer_write_tensor_data(w, all, (size_t)deferred_bytes + 1) ==
          EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(test_count_files(dir, NULL) == 2);
    /* too little: finish refuses */
    CHECK(gguf_writer_begin_file(w, path2) == EDGELM_OK);
    CHECK(gguf_writer_write_tensor_data(w, all, 10) == EDGELM_OK);
    CHECK(gguf_writer_finish_file(w) == EDGELM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(gguf_writer_errmsg(w), "t0") != NULL);
    CHECK(test_count_files(dir, NULL) == 2);
    got = test_read_file(path2, &size);
    CHECK(got != NULL && size == ref_size && memcmp(got, ref, size) == 0);
    free(got);
    /* freeing the writer mid-stream removes the temp */
    CHECK(gguf_writer_begin_file(w, path2) == EDGELM_OK);
    CHECK(test_count_files(dir, NULL) == 3);
    gguf_writer_free(w);
    CHECK(test_count_files(dir, NULL) == 2);

    /* an unwritable place fails with IO and leaves nothing */
    w = make_fixture_writer(3, 0);
    char bad[800];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.gguf", dir);
    CHECK(gguf_writer_write_file(w, bad) == EDGELM_ERR_IO);
    CHECK(strstr(gguf_writer_errmsg(w), "x.gguf") != NULL);
    gguf_writer_free(w);

    remove(path);
    remove(path2);
    remove(dir);
    free(all);
    free(ref);
}

/* ---- corrupt files ------------------------------------------------------------------------ */

typedef struct fixture {
    gguf_writer *w;
    const gguf_layout *layout;
    uint8_t *file;
    size_t size;
    uint8_t *work; /* a scratch copy to corrupt */
} fixture;

static bool fixture_open(fixture *fx, uint32_t version, uint32_t alignment) {
    memset(fx, 0, sizeof *fx);
    fx->w = make_fixture_writer(version, alignment);
    if (fx->w == NULL || gguf_writer_write_memory(fx->w, &fx->file, &fx->size) != EDGELM_OK) {
        CHECK_MSG(false, "fixture: %s", gguf_writer_errmsg(fx->w));
        return false;
    }
    fx->layout = gguf_writer_layout(fx->w);
    fx->work = malloc(fx->size);
    return fx->work != NULL;
}

static void fixture_close(fixture *fx) {
    gguf_writer_free(fx->w);
    free(fx->file);
    free(fx->work);
}

/* Reset the scratch copy to the valid file. */
static uint8_t *fresh(fixture *fx) {
    memcpy(fx->work, fx->file, fx->size);
    return fx->work;
}

static const gguf_kv_layout *kv_at(const fixture *fx, const char *key) {
    int64_t i = gguf_writer_find_key(fx->w, key);
    CHECK_MSG(i >= 0, "fixture key %s", key);
    return &fx->layout->kv[i >= 0 ? i : 0];
}

static const gguf_tensor_layout *tensor_at(const fixture *fx, const char *name) {
    int64_t i = gguf_writer_find_tensor(fx->w, name);
    CHECK_MSG(i >= 0, "fixture tensor %s", name);
    return &fx->layout->tensors[i >= 0 ? i : 0];
}

/* One field of the valid file overwritten: `width` bytes (1, 4 or 8), little-endian. */
typedef struct field_edit {
    uint64_t offset;
    unsigned width;
    uint64_t value;
} field_edit;

/* A corrupt variant: up to two edits (width 0: unused) and the status it must be refused with. */
typedef struct corruption {
    const char *what;
    edgelm_status expected;
    field_edit edit[2];
} corruption;

/* The valid file with the edits applied, in the scratch copy. */
static uint8_t *corrupted(fixture *fx, const field_edit *edits, size_t n_edits) {
    uint8_t *p = fresh(fx);
    for (size_t i = 0; i < n_edits; i++) {
        for (unsigned b = 0; b < edits[i].width; b++) {
            p[edits[i].offset + b] = (uint8_t)(edits[i].value >> (8 * b));
        }
    }
    return p;
}

static void expect_corruptions(fixture *fx, const corruption *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        expect_status(cases[i].what, corrupted(fx, cases[i].edit, 2), fx->size, cases[i].expected);
    }
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_corrupt(void) {
    fixture fx;
    if (!fixture_open(&fx, 3, 32)) {
        fixture_close(&fx);
        return;
    }
    const gguf_layout *L = fx.layout;
    const size_t size = fx.size;
    expect_status("valid fixture", fresh(&fx), size, EDGELM_OK);

    const gguf_kv_layout *k_u32 = kv_at(&fx, "t.u32");
    const gguf_kv_layout *k_str = kv_at(&fx, "t.str");
    const gguf_kv_layout *k_arr = kv_at(&fx, "a.u32");
    const gguf_kv_layout *k_sarr = kv_at(&fx, "a.str");
    const gguf_kv_layout *k_align = kv_at(&fx, "general.alignment");
    const gguf_kv_layout *k_dup = kv_at(&fx, "dup.k2");
    const gguf_tensor_layout *t0 = tensor_at(&fx, "t0");
    const gguf_tensor_layout *t1 = tensor_at(&fx, "t1");
    const gguf_tensor_layout *t2 = tensor_at(&fx, "t2");
    const gguf_tensor_layout *t5 = tensor_at(&fx, "t5");
    const uint64_t data_bytes = size - L->data_section_offset;
    const uint64_t huge = 1ull << 62, long_string = 1ull << 41;
    const corruption cases[] = {
        /* header */
        {"bad magic", EDGELM_ERR_BAD_MAGIC, {{0, 1, 'X'}}},
        {"ggml magic", EDGELM_ERR_BAD_MAGIC, {{0, 4, 0x4C4D4747u /* "GGML" */}}},
        {"huge tensor count", EDGELM_ERR_TOO_LARGE, {{L->n_tensors_offset, 8, huge}}},
        {"tensor count 2^64-1", EDGELM_ERR_TOO_LARGE, {{L->n_tensors_offset, 8, UINT64_MAX}}},
        {"huge kv count", EDGELM_ERR_TOO_LARGE, {{L->n_kv_offset, 8, huge}}},
        {"kv count 2^64-1", EDGELM_ERR_TOO_LARGE, {{L->n_kv_offset, 8, UINT64_MAX}}},
        /* metadata */
        {"huge key length", EDGELM_ERR_TOO_LARGE, {{k_u32->key_len_offset, 8, long_string}}},
        {"key length 2^64-1", EDGELM_ERR_TOO_LARGE, {{k_u32->key_len_offset, 8, UINT64_MAX}}},
        {"key length one past EOF",
         EDGELM_ERR_TRUNCATED,
         {{k_u32->key_len_offset, 8, size - k_u32->key_offset + 1}}},
        {"empty key", EDGELM_ERR_BAD_STRING, {{k_u32->key_len_offset, 8, 0}}},
        {"huge string length", EDGELM_ERR_TOO_LARGE, {{k_str->value_offset, 8, long_string}}},
        {"string length one past EOF",
         EDGELM_ERR_TRUNCATED,
         {{k_str->value_offset, 8, size - (k_str->value_offset + 8) + 1}}},
        {"nested array", EDGELM_ERR_BAD_VALUE_TYPE, {{k_arr->value_offset, 4, GGUF_TYPE_ARRAY}}},
        {"huge array length", EDGELM_ERR_TOO_LARGE, {{k_arr->array_n_offset, 8, huge}}},
        {"array length 2^64-1", EDGELM_ERR_TOO_LARGE, {{k_arr->array_n_offset, 8, UINT64_MAX}}},
        {"array one element past EOF",
         EDGELM_ERR_TRUNCATED,
         {{k_arr->array_n_offset, 8, (size - k_arr->array_data_offset) / 4 + 1}}},
        {"huge string array length", EDGELM_ERR_TOO_LARGE, {{k_sarr->array_n_offset, 8, huge}}},
        {"huge string in array",
         EDGELM_ERR_TOO_LARGE,
         {{k_sarr->array_data_offset, 8, long_string}}},
        /* "dup.k2" becomes "dup.k1" */
        {"duplicate key", EDGELM_ERR_DUPLICATE, {{k_dup->key_offset + 5, 1, '1'}}},
        {"alignment of type i32",
         EDGELM_ERR_BAD_ALIGNMENT,
         {{k_align->type_offset, 4, GGUF_TYPE_INT32}}},
        /* tensor infos */
        {"zero dimension", EDGELM_ERR_BAD_DIMENSIONS, {{t0->ne_offset, 8, 0}}},
        {"dimension product 2^64",
         EDGELM_ERR_BAD_DIMENSIONS,
         {{t0->ne_offset, 8, 1ull << 32}, {t0->ne_offset + 8, 8, 1ull << 32}}},
        {"dimension 2^64-1", EDGELM_ERR_BAD_DIMENSIONS, {{t0->ne_offset, 8, UINT64_MAX}}},
        {"dimension product 2^63",
         EDGELM_ERR_BAD_DIMENSIONS,
         {{t0->ne_offset, 8, huge}, {t0->ne_offset + 8, 8, 2}}},
        {"tensor data past EOF (big dim)",
         EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
         {{t0->ne_offset + 8, 8, 1ull << 20}}},
        /* Q8_0 rows must be 32-multiples */
        {"row not a block multiple", EDGELM_ERR_BAD_DIMENSIONS, {{t2->ne_offset, 8, 48}}},
        {"tensor offset at EOF",
         EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
         {{t5->offset_offset, 8, data_bytes}}},
        {"tensor offset 2^60",
         EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
         {{t5->offset_offset, 8, 1ull << 60}}},
        {"tensor offset near 2^64",
         EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
         {{t5->offset_offset, 8, UINT64_MAX - 31}}},
        /* aligned, but its 96 bytes run past EOF */
        {"tensor data past EOF (offset)",
         EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
         {{t0->offset_offset, 8, data_bytes - 32}}},
        {"misaligned tensor offset",
         EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
         {{t1->offset_offset, 8, t1->data_offset + 1}}},
        {"half-aligned tensor offset",
         EDGELM_ERR_TENSOR_OUT_OF_BOUNDS,
         {{t1->offset_offset, 8, t1->data_offset + 16}}},
        {"empty tensor name", EDGELM_ERR_BAD_STRING, {{t0->name_len_offset, 8, 0}}},
        {"huge tensor name length", EDGELM_ERR_TOO_LARGE, {{t0->name_len_offset, 8, long_string}}},
        /* "t1" becomes "t0" */
        {"duplicate tensor name", EDGELM_ERR_DUPLICATE, {{t1->name_offset + 1, 1, '0'}}},
    };
    expect_corruptions(&fx, cases, N_OF(cases));

    /* u32 fields set to each of a list of bad values */
    static const uint32_t bad_versions[] = {0, 1, 4, 99, 0xFFFFFFFFu};
    static const uint32_t bad_types[] = {13, 14, 255, 0x80000000u, 0xFFFFFFFFu};
    static const uint32_t bad_alignments[] = {0, 3, 48, 0x80000001u};
    static const uint32_t bad_ndims[] = {0, 5, 1000};
    static const uint32_t bad_ttypes[] = {4, 5, 16, 29, 31, 39, 40, 1000, 0xFFFFFFFFu};
    const struct {
        const char *field;
        uint64_t offset;
        const uint32_t *values;
        size_t n_values;
        edgelm_status expected;
    } sweeps[] = {
        {"version", L->version_offset, bad_versions, N_OF(bad_versions),
         EDGELM_ERR_UNSUPPORTED_VERSION},
        {"value type", k_u32->type_offset, bad_types, N_OF(bad_types), EDGELM_ERR_BAD_VALUE_TYPE},
        {"array element type", k_arr->value_offset, bad_types, N_OF(bad_types),
         EDGELM_ERR_BAD_VALUE_TYPE},
        {"alignment", k_align->value_offset, bad_alignments, N_OF(bad_alignments),
         EDGELM_ERR_BAD_ALIGNMENT},
        {"n_dims", t0->n_dims_offset, bad_ndims, N_OF(bad_ndims), EDGELM_ERR_BAD_DIMENSIONS},
        {"tensor type", t1->type_offset, bad_ttypes, N_OF(bad_ttypes), EDGELM_ERR_BAD_TENSOR_TYPE},
    };
    for (size_t i = 0; i < N_OF(sweeps); i++) {
        for (size_t v = 0; v < sweeps[i].n_values; v++) {
            char what[64];
            snprintf(what, sizeof what, "%s %u", sweeps[i].field, sweeps[i].values[v]);
            const field_edit edit = {sweeps[i].offset, 4, sweeps[i].values[v]};
            expect_status(what, corrupted(&fx, &edit, 1), size, sweeps[i].expected);
        }
    }

    expect_status("last tensor one byte short", fresh(&fx),
                  (size_t)(t5->data_abs_offset + t5->n_bytes - 1), EDGELM_ERR_TENSOR_OUT_OF_BOUNDS);
    /* a valid but different alignment moves the data section: offsets no longer fit */
    char err[256];
    const field_edit align64 = {k_align->value_offset, 4, 64};
    edgelm_status st = parse_status(corrupted(&fx, &align64, 1), size, err, sizeof err);
    CHECK_MSG(st == EDGELM_ERR_TENSOR_OUT_OF_BOUNDS || st == EDGELM_OK, "alignment 64: %s",
              edgelm_strerror(st));
    /* one more tensor or key declared: its info is read from padding/data and refused somehow */
    const field_edit more_tensors = {L->n_tensors_offset, 8, N_FIXTURE_TENSORS + 1};
    st = parse_status(corrupted(&fx, &more_tensors, 1), size, err, sizeof err);
    CHECK_MSG(st != EDGELM_OK, "one tensor too many accepted");
    const field_edit more_keys = {L->n_kv_offset, 8, L->n_kv + 1};
    st = parse_status(corrupted(&fx, &more_keys, 1), size, err, sizeof err);
    CHECK_MSG(st != EDGELM_OK, "one key too many accepted");

    fixture_close(&fx);
}

/* Every cut of the file: TRUNCATED before the data section; TENSOR_OUT_OF_BOUNDS inside the
 * tensor data; OK once only the last tensor's padding is missing. */
static void test_truncation(uint32_t version, uint32_t alignment) {
    fixture fx;
    if (!fixture_open(&fx, version, alignment)) {
        fixture_close(&fx);
        return;
    }
    const gguf_layout *L = fx.layout;
    const gguf_tensor_layout *last = &L->tensors[L->n_tensors - 1];
    uint64_t data_end = last->data_abs_offset + last->n_bytes;
    int wrong = 0, checked = 0;
    char first_wrong[512] = "";
    for (size_t cut = 0; cut < fx.size; cut++) {
        edgelm_status expected = cut < L->data_section_offset ? EDGELM_ERR_TRUNCATED
                                 : cut < data_end             ? EDGELM_ERR_TENSOR_OUT_OF_BOUNDS
                                                              : EDGELM_OK;
        char err[256] = "";
        edgelm_status st = parse_status(fx.file, cut, err, sizeof err);
        checked++;
        if (st != expected) {
            if (wrong == 0) {
                snprintf(first_wrong, sizeof first_wrong,
                         "first at cut %zu (data section at %" PRIu64 "): got %s, expected %s: %s",
                         cut, L->data_section_offset, edgelm_strerror(st),
                         edgelm_strerror(expected), err);
            }
            wrong++;
        }
    }
    CHECK_MSG(wrong == 0, "v%u align %u: %d of %d truncated files gave the wrong status; %s",
              version, alignment, wrong, checked, first_wrong);
    fixture_close(&fx);
}

/* ---- mutation fuzz ------------------------------------------------------------------------ */

static uint64_t fuzz_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_fuzz(void) {
    fixture fx;
    if (!fixture_open(&fx, 3, 32)) {
        fixture_close(&fx);
        return;
    }
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    uint64_t header = fx.layout->data_section_offset;
    int n_ok = 0, n_err = 0, bad_status = 0;
    int counts[EDGELM_ERR_BAD_STRING + 1] = {0};
    for (int iter = 0; iter < 4000; iter++) {
        uint8_t *p = fresh(&fx);
        size_t size = fx.size;
        int n_flips = 1 + (int)(fuzz_next(&seed) % 4);
        for (int k = 0; k < n_flips; k++) {
            uint64_t r = fuzz_next(&seed);
            /* mostly the header, where the structure is */
            uint64_t pos = (r & 7) != 0 ? (r >> 8) % header : (r >> 8) % size;
            switch ((r >> 3) % 4) {
            case 0:
                p[pos] ^= (uint8_t)(1u << ((r >> 5) % 8));
                break;
            case 1:
                p[pos] = (uint8_t)(r >> 40);
                break;
            case 2:
                p[pos] = 0xFF;
                break;
            default:
                p[pos] = 0;
                break;
            }
        }
        if (iter % 5 == 0) {
            size = (size_t)(fuzz_next(&seed) % (fx.size + 1));
        }
        char err[256];
        edgelm_status st = parse_status(p, size, err, sizeof err);
        if ((int)st < 0 || st > EDGELM_ERR_BAD_STRING) {
            bad_status++;
            continue;
        }
        counts[st]++;
        if (st == EDGELM_OK) {
            n_ok++;
        } else {
            n_err++;
        }
    }
    CHECK(bad_status == 0);
    CHECK(n_ok + n_err == 4000);
    fprintf(stderr, "fuzz: 4000 mutants: %d accepted, %d refused (", n_ok, n_err);
    for (int s = 1; s <= EDGELM_ERR_BAD_STRING; s++) {
        if (counts[s] > 0) {
            fprintf(stderr, " %s=%d", edgelm_strerror((edgelm_status)s), counts[s]);
        }
    }
    fprintf(stderr, " )\n");
    fixture_close(&fx);
}

int main(void) {
    test_round_trips();
    test_writer_api();
    test_writer_files();
    test_corrupt();
    test_truncation(3, 0);
    test_truncation(2, 64);
    test_fuzz();
    expect_status("empty buffer", (const uint8_t *)"", 0, EDGELM_ERR_TRUNCATED);
    return test_finish("test_gguf", 0);
}
