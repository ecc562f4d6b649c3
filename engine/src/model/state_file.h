/* state_file.h - the saved prompt state of a session: which model and cache layout it belongs to,
 * the tokens the KV cache holds and their K/V rows, under a checksum. Used for edgelm_session_
 * state_* (memory and files) and the CLI's --cache. Knows kv_cache, not sessions.
 *
 * Format v1 (little-endian), a 64-byte header, the payload, then the checksum:
 *    0  8  magic "EDGELMKV"          32  4  kv_type (1 = F16, the ggml type id)
 *    8  4  version (1)               36  4  n_ctx of the saving session (informational)
 *   12  4  header bytes (64)         40  4  n_vocab
 *   16  8  model fingerprint         44  4  n_tokens
 *   24  4  n_layer                   48  4  n_exact (see below)     52  4  flags (below)
 *   28  4  kv_dim                    56  8  payload bytes
 *   64     tokens (n_tokens int32), [held mask: n_tokens bytes, flag 1 only], then K (per layer:
 *          n_tokens rows of kv_dim f16), then V
 *  end-8 8 FNV-1a 64 of every byte before it
 * flags bit 0 (STATE_FLAG_HELD_MASK): saved from a cache with windowed layers (kv_cache.h), whose
 * rings hold only recent positions; mask byte p is 1 when their rows of position p are saved,
 * and 0 when those rows are zeros standing for a position the rings no longer held (full layers
 * always save every row). Files without windowed layers are as before (flags 0).
 * n_exact: the leading tokens whose K/V equal a fresh evaluation of the token sequence (after a
 * context shift only the kept start does); prefix reuse never goes past it.
 * Loading checks, in this order: structure and checksum (any failure: EDGELM_ERR_CORRUPT; an
 * unknown version: EDGELM_ERR_STATE_MISMATCH), then model and layout (EDGELM_ERR_STATE_MISMATCH),
 * then token ids (EDGELM_ERR_CORRUPT). The rows' positions are absolute, so a state restores into
 * a session of any n_ctx that holds its tokens.
 */
#ifndef EDGELM_STATE_FILE_H
#define EDGELM_STATE_FILE_H

#include "edgelm.h"
#include "kv_cache.h"

#include <stddef.h>
#include <stdint.h>

#define STATE_VERSION 1u
#define STATE_HEADER_BYTES 64u

/* What a state must match to be restored, and what a save records. */
typedef struct state_layout {
    uint64_t fingerprint; /* edgelm_model_fingerprint */
    int32_t n_vocab;
    uint32_t n_ctx; /* the session's; a state restores when n_tokens <= n_ctx */
} state_layout;

/* The cache contents a save reads and a load fills. tokens has room for n_ctx entries. */
typedef struct state_contents {
    kv_cache *cache;
    int32_t *tokens;
    int32_t n_tokens;
    int32_t n_exact;
} state_contents;

#define STATE_FLAG_HELD_MASK 1u

/* Bytes of a saved state of n_tokens from this cache (0 on overflow). */
uint64_t state_bytes(const kv_cache *cache, int32_t n_tokens);

/* Write the state into buf (size bytes); *written = bytes used. EDGELM_ERR_INVALID_ARGUMENT (with
 * the size needed in err) when it does not fit. */
edgelm_status state_save_mem(const state_layout *layout, const state_contents *in, void *buf,
                             size_t size, size_t *written, char *err, size_t err_size);
/* Write the state to path atomically: a temporary file in the same directory (mode 0600, from
 * mkstemp; a KV cache reveals the prompt), fsync, rename, then fsync of the directory. On
 * failure path is untouched and the temporary file removed. */
edgelm_status state_save_file(const state_layout *layout, const state_contents *in,
                              const char *path, char *err, size_t err_size);

/* Restore from size bytes at buf into out (cache rows, tokens, n_tokens, n_exact). Every check
 * runs before anything is written: on failure out is untouched. Errors name the field. */
edgelm_status state_load_mem(const state_layout *layout, state_contents *out, const void *buf,
                             size_t size, char *err, size_t err_size);
/* state_load_mem of a file's contents (mapped, not copied). A missing or unreadable file is
 * EDGELM_ERR_IO; an empty one EDGELM_ERR_CORRUPT. */
edgelm_status state_load_file(const state_layout *layout, state_contents *out, const char *path,
                              char *err, size_t err_size);

#endif /* EDGELM_STATE_FILE_H */
