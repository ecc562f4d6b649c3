/* gguf_writer.h - builds GGUF v2/v3 files: typed metadata (every value type, arrays of scalars and
 * strings), tensor infos, alignment padding and tensor data; to a file (atomically, via a temp
 * file and rename) or to a malloc'd buffer. A tool library for the model generator and the tests,
 * not part of the engine. It writes only well-formed files; tests make malformed ones by patching
 * bytes at the offsets gguf_writer_layout() reports for every header, metadata and tensor field.
 * Value and tensor type ids are the GGUF ones (gguf_value_type in gguf.h, tensor_type in quant.h).
 */
#ifndef EDGELM_GGUF_WRITER_H
#define EDGELM_GGUF_WRITER_H

#include "edgelm.h"
#include "kernels/tensor_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gguf_writer gguf_writer;

/* A new empty writer: version 3, alignment 32 (no general.alignment key). NULL when out of
 * memory. */
gguf_writer *gguf_writer_create(void);
/* Frees everything; an unfinished streamed file is closed and its temp file removed. NULL ok. */
void gguf_writer_free(gguf_writer *w);
/* Message of the last failed call ("" if none). Never NULL. */
const char *gguf_writer_errmsg(const gguf_writer *w);

/* GGUF version written in the header: 2 or 3 (the layout is identical for little-endian files). */
edgelm_status gguf_writer_set_version(gguf_writer *w, uint32_t version);
/* Data alignment: a power of two (1 .. 2^30). Also stores the u32 key general.alignment (at the
 * position of the first call). gguf_writer_set_u32(w, "general.alignment", a) does the same. */
edgelm_status gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment);

/* ---- metadata ----------------------------------------------------------------------------- *
 * Keys are written in the order they are first set; setting an existing key replaces its type
 * and value in place. Keys must be 1..65535 bytes. Every setter copies what it is given. */
edgelm_status gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t value);
edgelm_status gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t value);
edgelm_status gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t value);
edgelm_status gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t value);
edgelm_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t value);
edgelm_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t value);
edgelm_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t value);
edgelm_status gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t value);
edgelm_status gguf_writer_set_f32(gguf_writer *w, const char *key, float value);
edgelm_status gguf_writer_set_f64(gguf_writer *w, const char *key, double value);
edgelm_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool value);
/* Any of the eight integer types by its GGUF id, from the value's two's complement bits (the low
 * bytes the type holds are written); other types are refused. */
edgelm_status gguf_writer_set_integer(gguf_writer *w, const char *key, uint32_t type,
                                      uint64_t bits);
/* A NUL-terminated string, or len bytes (any bytes, NULs included). */
edgelm_status gguf_writer_set_string(gguf_writer *w, const char *key, const char *value);
edgelm_status gguf_writer_set_string_n(gguf_writer *w, const char *key, const char *value,
                                       size_t len);
/* An array of n scalars of elem_type (any gguf_value_type but STRING and ARRAY) laid out as a C
 * array in host memory: uint8_t/int8_t/.../float/double, and bool as one byte (0 or 1) per
 * element. Written little-endian. data may be NULL when n is 0. */
edgelm_status gguf_writer_set_array(gguf_writer *w, const char *key, uint32_t elem_type,
                                    const void *data, uint64_t n);
/* An array of n strings. lens may be NULL (NUL-terminated strings); else lens[i] bytes each. */
edgelm_status gguf_writer_set_string_array(gguf_writer *w, const char *key,
                                           const char *const *strings, uint64_t n);
edgelm_status gguf_writer_set_string_array_n(gguf_writer *w, const char *key,
                                             const char *const *strings, const size_t *lens,
                                             uint64_t n);
/* Copy one value already encoded in GGUF form: type, then the little-endian value bytes exactly as
 * they follow the type field in a file (for STRING: u64 length + bytes; for ARRAY: u32 element
 * type, u64 count, elements). The encoding is checked. For copying keys between files. */
edgelm_status gguf_writer_set_raw(gguf_writer *w, const char *key, uint32_t type, const void *value,
                                  size_t value_bytes);
bool gguf_writer_has_key(const gguf_writer *w, const char *key);
int64_t gguf_writer_n_kv(const gguf_writer *w);

/* ---- tensors ------------------------------------------------------------------------------ *
 * ne[0] is the row length (GGUF order); n_dims 1..4, every ne >= 1, the element count must fit
 * int64, ne[0] a multiple of the type's block size. Tensors are written in the order added, each
 * at the next multiple of the alignment. Names are 1..1024 bytes and unique.
 * gguf_writer_add_tensor      copies data (n_bytes of it, from tensor_row_size()); data may be
 *                             NULL: the tensor is then "deferred", its bytes given later through
 *                             the streaming calls below (gguf_writer_write_file refuses it).
 * gguf_writer_add_tensor_ref  borrows data: the pointer must stay valid until the last write. */
edgelm_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                                     uint32_t n_dims, const uint64_t *ne, const void *data);
edgelm_status gguf_writer_add_tensor_ref(gguf_writer *w, const char *name, uint32_t type,
                                         uint32_t n_dims, const uint64_t *ne, const void *data);
/* Any type id (known to the engine or not) with an explicit byte count; data copied (n_bytes of
 * it) or NULL (deferred). No check of ne[0] against a block size. For fixtures. */
edgelm_status gguf_writer_add_tensor_raw(gguf_writer *w, const char *name, uint32_t type,
                                         uint32_t n_dims, const uint64_t *ne, const void *data,
                                         uint64_t n_bytes);
int64_t gguf_writer_n_tensors(const gguf_writer *w);
/* Byte size of tensor i's data (0 when out of range). */
uint64_t gguf_writer_tensor_bytes(const gguf_writer *w, int64_t i);

/* ---- output ------------------------------------------------------------------------------- */

/* Whole file at once: every tensor must have data. Atomic: written to "path.tmp.XXXXXX" in the
 * same directory, flushed, fsync'ed and renamed over path; on any failure the temp is removed and
 * path is untouched. */
edgelm_status gguf_writer_write_file(gguf_writer *w, const char *path);
/* The whole file in a malloc'd buffer (caller frees). Same rules as write_file. */
edgelm_status gguf_writer_write_memory(gguf_writer *w, uint8_t **out, size_t *out_size);

/* Streaming, for files too big to hold: begin writes the header, metadata and tensor infos (the
 * sizes are known up front) to the temp file; write_tensor_data appends the next bytes of tensor
 * data, in tensor order, in chunks of any size (padding between tensors is inserted); finish checks
 * that every tensor got exactly its bytes, flushes, fsyncs and renames. Between begin and finish no
 * metadata or tensor may be added. Tensors added with data are written from it automatically when
 * the stream reaches them (so only deferred tensors need write_tensor_data). On error the stream
 * is abandoned (temp removed). */
edgelm_status gguf_writer_begin_file(gguf_writer *w, const char *path);
edgelm_status gguf_writer_write_tensor_data(gguf_writer *w, const void *data, size_t n_bytes);
edgelm_status gguf_writer_finish_file(gguf_writer *w);
/* Index of the tensor the stream expects bytes for next (n_tensors once all are written). */
int64_t gguf_writer_stream_tensor(const gguf_writer *w);

/* ---- layout of the last file written (for tests that corrupt fields) ------------------------
 * Absolute byte offsets into the file. Filled by write_file / write_memory / begin_file; valid
 * until the next write or free. */
typedef struct gguf_kv_layout {
    uint64_t key_len_offset;    /* u64 key length */
    uint64_t key_offset;        /* key bytes */
    uint64_t type_offset;       /* u32 value type */
    uint64_t value_offset;      /* scalar value; STRING: u64 length; ARRAY: u32 element type */
    uint64_t array_n_offset;    /* ARRAY: u64 element count (0 otherwise) */
    uint64_t array_data_offset; /* ARRAY: first element (for strings: first u64 length) */
    uint64_t end_offset;        /* one past the value */
} gguf_kv_layout;

typedef struct gguf_tensor_layout {
    uint64_t name_len_offset; /* u64 name length */
    uint64_t name_offset;
    uint64_t n_dims_offset;   /* u32 */
    uint64_t ne_offset;       /* n_dims u64s */
    uint64_t type_offset;     /* u32 */
    uint64_t offset_offset;   /* u64 data offset relative to the data section */
    uint64_t end_offset;      /* one past the info */
    uint64_t data_offset;     /* relative offset as stored */
    uint64_t data_abs_offset; /* absolute start of the data */
    uint64_t n_bytes;
} gguf_tensor_layout;

typedef struct gguf_layout {
    uint64_t version_offset;   /* 4: u32 version (magic at 0) */
    uint64_t n_tensors_offset; /* 8: u64 */
    uint64_t n_kv_offset;      /* 16: u64 */
    uint64_t n_kv;
    const gguf_kv_layout *kv; /* n_kv entries, in file order */
    uint64_t n_tensors;
    const gguf_tensor_layout *tensors;
    uint64_t infos_end_offset;    /* one past the last tensor info */
    uint64_t data_section_offset; /* aligned start of the tensor data */
    uint64_t file_size;
    uint32_t alignment;
} gguf_layout;

/* NULL before the first write. */
const gguf_layout *gguf_writer_layout(const gguf_writer *w);
/* Index of a key / tensor in the layout arrays, or -1. */
int64_t gguf_writer_find_key(const gguf_writer *w, const char *key);
int64_t gguf_writer_find_tensor(const gguf_writer *w, const char *name);

#endif /* EDGELM_GGUF_WRITER_H */
