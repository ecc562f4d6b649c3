/* state_file.c - save and restore a session's prompt state (format in state_file.h).
 *
 * Saving streams header, tokens and rows through one writer that hashes as it goes, into a
 * buffer or a temporary file that is renamed over the target only when complete and synced.
 * Loading never trusts the file: sizes are recomputed from the header with overflow checks and
 * must match exactly, and the checksum is verified before any field is believed.
 */
#include "state_file.h"

#include "format/file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "state files store tokens and rows in host order, which must be little-endian"
#endif

static const char state_magic[8] = {'E', 'D', 'G', 'E', 'L', 'M', 'K', 'V'};
#define STATE_KV_TYPE_F16 1u
#define STATE_MAX_LAYERS 65536u
#define STATE_MAX_KV_DIM (1u << 20)

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * FNV_PRIME;
    }
    return h;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)p[i] << (8 * i);
    }
    return v;
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* Bytes after the header and before the checksum; UINT64_MAX on overflow. */
static uint64_t payload_bytes(uint64_t n_layer, uint64_t kv_dim, uint64_t n_tokens,
                              uint32_t flags) {
    const uint64_t rows = n_layer * n_tokens; /* both < 2^32: no overflow */
    if (kv_dim != 0 && rows > (UINT64_MAX / 4) / kv_dim) {
        return UINT64_MAX;
    }
    const uint64_t kv = rows * kv_dim * 2 * sizeof(fp16_t);
    const uint64_t mask = flags & STATE_FLAG_HELD_MASK ? n_tokens : 0;
    return kv + n_tokens * sizeof(int32_t) + mask;
}

static uint32_t cache_flags(const kv_cache *c) {
    return c->ring_pos != NULL ? STATE_FLAG_HELD_MASK : 0;
}

uint64_t state_bytes(const kv_cache *cache, int32_t n_tokens) {
    if (cache->n_layer <= 0 || cache->kv_dim <= 0 || n_tokens < 0) {
        return 0;
    }
    const uint64_t payload = payload_bytes((uint64_t)cache->n_layer, (uint64_t)cache->kv_dim,
                                           (uint64_t)n_tokens, cache_flags(cache));
    if (payload > UINT64_MAX - STATE_HEADER_BYTES - 8) {
        return 0;
    }
    return STATE_HEADER_BYTES + payload + 8;
}

/* ---- writing ------------------------------------------------------------------------------- */

/* A byte sink into a buffer or a file, hashing everything written. */
typedef struct state_sink {
    uint8_t *buf; /* memory target, or NULL */
    size_t size;
    size_t used;
    FILE *file; /* file target, or NULL */
    uint64_t hash;
    int err_no; /* nonzero once a write failed */
} state_sink;

static void sink_put(state_sink *s, const void *data, size_t n) {
    if (s->err_no != 0 || n == 0) {
        return;
    }
    s->hash = fnv1a(s->hash, data, n);
    if (s->file != NULL) {
        if (fwrite(data, 1, n, s->file) != n) {
            s->err_no = errno != 0 ? errno : EIO;
        }
    } else if (n > s->size - s->used) {
        s->err_no = ENOSPC;
    } else {
        memcpy(s->buf + s->used, data, n);
        s->used += n;
    }
}

static void write_state(state_sink *s, const state_layout *layout, const state_contents *in) {
    const kv_cache *c = in->cache;
    const size_t n = (size_t)in->n_tokens;
    uint8_t h[STATE_HEADER_BYTES];
    memset(h, 0, sizeof h);
    memcpy(h, state_magic, sizeof state_magic);
    put_u32(h + 8, STATE_VERSION);
    put_u32(h + 12, STATE_HEADER_BYTES);
    put_u64(h + 16, layout->fingerprint);
    put_u32(h + 24, (uint32_t)c->n_layer);
    put_u32(h + 28, (uint32_t)c->kv_dim);
    put_u32(h + 32, STATE_KV_TYPE_F16);
    put_u32(h + 36, layout->n_ctx);
    put_u32(h + 40, (uint32_t)layout->n_vocab);
    put_u32(h + 44, (uint32_t)in->n_tokens);
    put_u32(h + 48, (uint32_t)in->n_exact);
    put_u32(h + 52, cache_flags(c));
    put_u64(h + 56, payload_bytes((uint64_t)c->n_layer, (uint64_t)c->kv_dim, n, cache_flags(c)));
    sink_put(s, h, sizeof h);
    sink_put(s, in->tokens, n * sizeof(int32_t));
    for (size_t p = 0; c->ring_pos != NULL && p < n; p++) {
        const uint8_t held = kv_cache_holds(c, (int32_t)p);
        sink_put(s, &held, 1);
    }
    const size_t rows_bytes = n * (size_t)c->kv_dim * sizeof(fp16_t);
    for (int side = 0; side < 2; side++) {
        for (int32_t layer = 0; layer < c->n_layer; layer++) {
            if (!kv_cache_is_windowed(c, layer)) { /* rows 0..n-1 are contiguous */
                sink_put(s, side == 0 ? kv_cache_k(c, layer, 0) : kv_cache_v(c, layer, 0),
                         rows_bytes);
                continue;
            }
            const fp16_t zero_row[1] = {0};
            for (size_t p = 0; p < n; p++) {
                if (kv_cache_holds(c, (int32_t)p)) {
                    sink_put(s,
                             side == 0 ? kv_cache_k(c, layer, (int32_t)p)
                                       : kv_cache_v(c, layer, (int32_t)p),
                             (size_t)c->kv_dim * sizeof(fp16_t));
                } else {
                    for (int32_t i = 0; i < c->kv_dim; i++) {
                        sink_put(s, zero_row, sizeof zero_row);
                    }
                }
            }
        }
    }
    uint8_t sum[8];
    put_u64(sum, s->hash);
    sink_put(s, sum, sizeof sum);
}

static bool contents_valid(const state_contents *in) {
    return in != NULL && in->cache != NULL && in->n_tokens >= 0 &&
           (uint32_t)in->n_tokens <= in->cache->n_ctx && in->n_exact >= 0 &&
           in->n_exact <= in->n_tokens && (in->n_tokens == 0 || in->tokens != NULL);
}

edgelm_status state_save_mem(const state_layout *layout, const state_contents *in, void *buf,
                             size_t size, size_t *written, char *err, size_t err_size) {
    if (written != NULL) {
        *written = 0;
    }
    if (layout == NULL || !contents_valid(in) || (buf == NULL && size > 0)) {
        snprintf(err, err_size, "state save: bad arguments");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    const uint64_t need = state_bytes(in->cache, in->n_tokens);
    if (need == 0 || need > size) {
        snprintf(err, err_size, "state save: the buffer has %zu bytes, the state needs %llu", size,
                 (unsigned long long)need);
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    state_sink s = {.buf = buf, .size = size, .hash = FNV_OFFSET};
    write_state(&s, layout, in);
    if (s.err_no != 0) {
        snprintf(err, err_size, "state save: buffer too small");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    if (written != NULL) {
        *written = s.used;
    }
    return EDGELM_OK;
}

/* fsync the directory holding path, so the rename itself survives a power cut. Best effort:
 * some file systems refuse to open or sync directories. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash == NULL) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else if ((size_t)(slash - path) < sizeof dir) {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    } else {
        return;
    }
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

edgelm_status state_save_file(const state_layout *layout, const state_contents *in,
                              const char *path, char *err, size_t err_size) {
    if (layout == NULL || !contents_valid(in) || path == NULL || path[0] == '\0') {
        snprintf(err, err_size, "state save: bad arguments");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    const size_t path_len = strlen(path);
    char *tmp = malloc(path_len + 16);
    if (tmp == NULL) {
        snprintf(err, err_size, "out of memory");
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    memcpy(tmp, path, path_len);
    memcpy(tmp + path_len, ".tmp.XXXXXX", 12);
    edgelm_status st = EDGELM_ERR_IO;
    FILE *f = NULL;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_size, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return EDGELM_ERR_IO;
    }
    f = fdopen(fd, "wb");
    if (f == NULL) {
        snprintf(err, err_size, "%s: %s", tmp, strerror(errno));
        close(fd);
        goto fail;
    }
    state_sink s = {.file = f, .hash = FNV_OFFSET};
    errno = 0;
    write_state(&s, layout, in);
    if (s.err_no == 0 && fflush(f) != 0) {
        s.err_no = errno != 0 ? errno : EIO;
    }
    if (s.err_no == 0 && fsync(fileno(f)) != 0) {
        s.err_no = errno;
    }
    if (fclose(f) != 0 && s.err_no == 0) {
        s.err_no = errno != 0 ? errno : EIO;
    }
    f = NULL;
    if (s.err_no != 0) {
        snprintf(err, err_size, "%s: cannot write: %s", tmp, strerror(s.err_no));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, err_size, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    sync_parent_dir(path);
    free(tmp);
    return EDGELM_OK;
fail:
    if (f != NULL) {
        fclose(f);
    }
    unlink(tmp);
    free(tmp);
    return st;
}

/* ---- reading ------------------------------------------------------------------------------- */

edgelm_status state_load_mem(const state_layout *layout, state_contents *out, const void *buf,
                             size_t size, char *err, size_t err_size) {
    if (layout == NULL || out == NULL || out->cache == NULL || out->tokens == NULL ||
        (buf == NULL && size > 0)) {
        snprintf(err, err_size, "state load: bad arguments");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    const uint8_t *p = buf;
    if (size < STATE_HEADER_BYTES + 8) {
        snprintf(err, err_size, "%zu bytes: too short for a state (header %u + checksum 8)", size,
                 STATE_HEADER_BYTES);
        return EDGELM_ERR_CORRUPT;
    }
    if (memcmp(p, state_magic, sizeof state_magic) != 0) {
        snprintf(err, err_size, "offset 0: not an edgelm state (bad magic)");
        return EDGELM_ERR_CORRUPT;
    }
    const uint32_t version = get_u32(p + 8);
    if (version != STATE_VERSION) {
        snprintf(err, err_size, "offset 8: state format version %u, this build reads %u", version,
                 STATE_VERSION);
        return version == 0 ? EDGELM_ERR_CORRUPT : EDGELM_ERR_STATE_MISMATCH;
    }
    const uint64_t fingerprint = get_u64(p + 16);
    const uint32_t n_layer = get_u32(p + 24);
    const uint32_t kv_dim = get_u32(p + 28);
    const uint32_t kv_type = get_u32(p + 32);
    const uint32_t n_ctx_saved = get_u32(p + 36);
    const uint32_t n_vocab = get_u32(p + 40);
    const uint32_t n_tokens = get_u32(p + 44);
    const uint32_t n_exact = get_u32(p + 48);
    const uint64_t payload = get_u64(p + 56);
    const char *why = NULL;
    if (get_u32(p + 12) != STATE_HEADER_BYTES) {
        why = "offset 12: header size is not 64";
    } else if (n_layer == 0 || n_layer > STATE_MAX_LAYERS) {
        why = "offset 24: layer count out of range";
    } else if (kv_dim == 0 || kv_dim > STATE_MAX_KV_DIM) {
        why = "offset 28: kv_dim out of range";
    } else if (kv_type != STATE_KV_TYPE_F16) {
        why = "offset 32: KV type is not F16";
    } else if (n_tokens > INT32_MAX || n_tokens > n_ctx_saved) {
        why = "offset 44: more tokens than the saving context held";
    } else if (n_exact > n_tokens) {
        why = "offset 48: more exact tokens than tokens";
    } else if ((get_u32(p + 52) & ~STATE_FLAG_HELD_MASK) != 0) {
        why = "offset 52: unknown flags";
    } else if (payload != payload_bytes(n_layer, kv_dim, n_tokens, get_u32(p + 52))) {
        why = "offset 56: payload size disagrees with the header";
    } else if (payload > (uint64_t)(size - STATE_HEADER_BYTES - 8)) {
        why = "the payload runs past the end (truncated)";
    } else if (payload < (uint64_t)(size - STATE_HEADER_BYTES - 8)) {
        why = "bytes after the checksum";
    }
    if (why != NULL) {
        snprintf(err, err_size, "%s", why);
        return EDGELM_ERR_CORRUPT;
    }
    const size_t sum_at = STATE_HEADER_BYTES + (size_t)payload;
    if (fnv1a(FNV_OFFSET, p, sum_at) != get_u64(p + sum_at)) {
        snprintf(err, err_size, "offset %zu: checksum mismatch", sum_at);
        return EDGELM_ERR_CORRUPT;
    }

    kv_cache *c = out->cache;
    if (fingerprint != layout->fingerprint) {
        snprintf(err, err_size, "saved for another model (fingerprint %016llx, this one %016llx)",
                 (unsigned long long)fingerprint, (unsigned long long)layout->fingerprint);
        return EDGELM_ERR_STATE_MISMATCH;
    }
    if (n_layer != (uint32_t)c->n_layer || kv_dim != (uint32_t)c->kv_dim ||
        n_vocab != (uint32_t)layout->n_vocab) {
        snprintf(err, err_size,
                 "cache layout differs: %u layers x kv_dim %u, vocabulary %u; this session "
                 "has %d x %d, %d",
                 n_layer, kv_dim, n_vocab, (int)c->n_layer, (int)c->kv_dim, (int)layout->n_vocab);
        return EDGELM_ERR_STATE_MISMATCH;
    }
    if (n_tokens > c->n_ctx || n_tokens > layout->n_ctx) {
        snprintf(err, err_size, "%u saved tokens do not fit this session's context of %u", n_tokens,
                 layout->n_ctx);
        return EDGELM_ERR_STATE_MISMATCH;
    }
    const uint8_t *tok = p + STATE_HEADER_BYTES;
    for (uint32_t i = 0; i < n_tokens; i++) {
        const int32_t t = (int32_t)get_u32(tok + (size_t)i * 4);
        if (t < 0 || t >= layout->n_vocab) {
            snprintf(err, err_size, "token %d at index %u is outside the vocabulary", (int)t, i);
            return EDGELM_ERR_CORRUPT;
        }
    }

    /* held[p]: the windowed layers' rows of position p were saved (every position without a
     * mask) */
    const uint8_t *held = (get_u32(p + 52) & STATE_FLAG_HELD_MASK) != 0
                              ? tok + (size_t)n_tokens * sizeof(int32_t)
                              : NULL;
    for (uint32_t i = 0; held != NULL && c->ring_pos == NULL && i < n_tokens; i++) {
        if (held[i] == 0) { /* a full cache would attend to the zeros standing for it */
            snprintf(err, err_size,
                     "position %u was not saved (its sliding window had passed): this state "
                     "restores only into a session whose context exceeds the window by a chunk",
                     i);
            return EDGELM_ERR_STATE_MISMATCH;
        }
    }
    memcpy(out->tokens, tok, (size_t)n_tokens * sizeof(int32_t));
    const size_t row_bytes = (size_t)kv_dim * sizeof(fp16_t);
    const size_t rows_bytes = (size_t)n_tokens * row_bytes;
    const uint8_t *rows = tok + (size_t)n_tokens * sizeof(int32_t) + (held ? n_tokens : 0);
    /* a ring keeps the last n_ring positions that were saved */
    const uint32_t first_kept =
        c->ring_pos != NULL && n_tokens > c->n_ring ? n_tokens - c->n_ring : 0;
    for (uint32_t r = 0; c->ring_pos != NULL && r < c->n_ring; r++) {
        c->ring_pos[r] = -1;
    }
    for (uint32_t i = first_kept; c->ring_pos != NULL && i < n_tokens; i++) {
        if (held == NULL || held[i] != 0) {
            kv_cache_claim(c, (int32_t)i, 1);
        }
    }
    for (int side = 0; side < 2; side++) {
        for (int32_t layer = 0; layer < c->n_layer; layer++, rows += rows_bytes) {
            if (!kv_cache_is_windowed(c, layer)) {
                memcpy(side == 0 ? kv_cache_k(c, layer, 0) : kv_cache_v(c, layer, 0), rows,
                       rows_bytes);
                continue;
            }
            for (uint32_t i = first_kept; i < n_tokens; i++) {
                if (kv_cache_holds(c, (int32_t)i)) {
                    memcpy(side == 0 ? kv_cache_k(c, layer, (int32_t)i)
                                     : kv_cache_v(c, layer, (int32_t)i),
                           rows + (size_t)i * row_bytes, row_bytes);
                }
            }
        }
    }
    out->n_tokens = (int32_t)n_tokens;
    out->n_exact = (int32_t)n_exact;
    return EDGELM_OK;
}

edgelm_status state_load_file(const state_layout *layout, state_contents *out, const char *path,
                              char *err, size_t err_size) {
    if (path == NULL) {
        snprintf(err, err_size, "state load: NULL path");
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    file_map map;
    char map_err[512];
    edgelm_status st = file_map_open(path, false, &map, map_err, sizeof map_err);
    if (st == EDGELM_ERR_TRUNCATED || st == EDGELM_ERR_TOO_LARGE) {
        snprintf(err, err_size, "%s: %s", path,
                 st == EDGELM_ERR_TRUNCATED ? "empty file" : "too large");
        return EDGELM_ERR_CORRUPT;
    }
    if (st != EDGELM_OK) {
        snprintf(err, err_size, "%s", map_err);
        return st;
    }
    char why[384];
    st = state_load_mem(layout, out, map.data, map.size, why, sizeof why);
    file_map_close(&map);
    if (st != EDGELM_OK) {
        snprintf(err, err_size, "%s: %s", path, why);
    }
    return st;
}
