/* fuzz_tokenizer.c - libFuzzer target for the tokenizers: byte 0 of the input picks a vocabulary
 * (the fuzz tiny.gguf's SentencePiece one, always; the shared models' stories260K and
 * llama.cpp vocab fixtures, SPM and byte-level BPE with every pre-tokenizer, when present under
 * $EDGELM_MODELS or ../shared/models), byte 1 the flags (add_bos, parse_special), the rest is text.
 * The text is encoded (the truncated count contract checked), every id decoded; then the same
 * bytes read as little-endian int32 ids (any value) are decoded into exact-size buffers.
 */
#include "edgelm.h"
#include "format/gguf.h"
#include "fuzz_support.h"
#include "fuzz_target.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef EDGELM_FUZZ_MODELS_DIR
#define EDGELM_FUZZ_MODELS_DIR "../shared/models"
#endif

#define MAX_VOCABS 8

typedef struct loaded_vocab {
    tokenizer *tok;
    bool byte_level; /* gpt2-style BPE: decoding an encoding gives the text back */
} loaded_vocab;

static loaded_vocab vocabs[MAX_VOCABS];
static int n_vocabs;

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    uint8_t *buf = NULL;
    long end = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (end > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)end)) != NULL &&
        fread(buf, 1, (size_t)end, f) != (size_t)end) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)end;
    return buf;
}

static void add_vocab(const char *path, bool required) {
    size_t size = 0;
    uint8_t *data = read_file(path, &size);
    if (data == NULL) {
        FUZZ_CHECK(!required, "cannot read %s", path);
        return;
    }
    char err[256];
    gguf_file gf;
    edgelm_status st = gguf_parse(data, size, &gf, err, sizeof err);
    FUZZ_CHECK(st == EDGELM_OK, "%s: %s", path, err);
    st = tokenizer_create(&gf, &vocabs[n_vocabs].tok, err, sizeof err);
    FUZZ_CHECK(st == EDGELM_OK, "%s: %s", path, err);
    gguf_string model;
    vocabs[n_vocabs].byte_level =
        gguf_get_string(&gf, "tokenizer.ggml.model", &model) == EDGELM_OK &&
        gguf_string_equals(model, "gpt2");
    gguf_free(&gf);
    free(data);
    n_vocabs++;
}

static void free_vocabs(void) {
    for (int i = 0; i < n_vocabs; i++) {
        tokenizer_free(vocabs[i].tok);
    }
    n_vocabs = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const shared[] = {
        "stories260K.gguf",
        "vocab/ggml-vocab-llama-spm.gguf",
        "vocab/ggml-vocab-llama-bpe.gguf",
        "vocab/ggml-vocab-qwen2.gguf",
        "vocab/ggml-vocab-gpt-2.gguf",
        "vocab/ggml-vocab-deepseek-coder.gguf",
        "vocab/ggml-vocab-deepseek-llm.gguf",
    };
    char path[1024];
    add_vocab(fuzz_data_path(FUZZ_TINY_MODEL, path, sizeof path), true);
    const char *dir = getenv("EDGELM_MODELS");
    if (dir == NULL || dir[0] == '\0') {
        dir = EDGELM_FUZZ_MODELS_DIR;
    }
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, shared[i]);
        add_vocab(path, false);
    }
    fprintf(stderr, "fuzz_tokenizer: %d vocabularies (shared models from %s)\n", n_vocabs, dir);
    atexit(free_vocabs);
    return 0;
}

/* Decode every id, each into a buffer of exactly its length; the pieces concatenated into *text
 * (malloc'd, caller frees) of *text_len bytes. */
static void decode_all(const tokenizer *tok, const int32_t *ids, int32_t n, char **text,
                       size_t *text_len) {
    size_t cap = 64, used = 0;
    char *out = malloc(cap);
    FUZZ_CHECK(out != NULL, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        int32_t k = tokenizer_token_to_piece(tok, ids[i], NULL, 0);
        FUZZ_CHECK(k >= 0, "token %d of the encoding: status %d", (int)ids[i], (int)-k);
        while (cap - used < (size_t)k) {
            cap *= 2;
            out = realloc(out, cap);
            FUZZ_CHECK(out != NULL, "out of memory");
        }
        FUZZ_CHECK(tokenizer_token_to_piece(tok, ids[i], out + used, (size_t)k) == k,
                   "token %d: a different length with the buffer", (int)ids[i]);
        used += (size_t)k;
    }
    *text = out;
    *text_len = used;
}

static void check_encoding(const loaded_vocab *v, const char *text, size_t len, bool add_bos,
                           bool parse_special) {
    const tokenizer *tok = v->tok;
    int32_t n_vocab = tokenizer_n_vocab(tok);
    int32_t small[8];
    int32_t n = tokenizer_encode(tok, text, len, add_bos, parse_special, small, 8);
    FUZZ_CHECK(n >= 0, "encode: status %d", (int)-n);
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    FUZZ_CHECK(ids != NULL, "out of memory");
    int32_t again = tokenizer_encode(tok, text, len, add_bos, parse_special, ids, n);
    FUZZ_CHECK(again == n, "encode gave %d tokens, then %d", (int)n, (int)again);
    for (int32_t i = 0; i < n; i++) {
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < n_vocab, "token %d of %d", (int)ids[i], (int)n_vocab);
        FUZZ_CHECK(i >= 8 || ids[i] == small[i], "the truncated encoding differs at %d", (int)i);
    }
    char *decoded = NULL;
    size_t decoded_len = 0;
    decode_all(tok, ids, n, &decoded, &decoded_len);
    if (v->byte_level && !add_bos && !parse_special &&
        fuzz_utf8_valid((const uint8_t *)text, len)) {
        FUZZ_CHECK(decoded_len == len && memcmp(decoded, text, len) == 0,
                   "byte-level BPE: %zu bytes decode to %zu other bytes", len, decoded_len);
    }
    free(decoded);
    free(ids);
}

/* Any int32 as a token id: a status for ids out of range, and never a byte past buf_size. */
static void check_raw_ids(const tokenizer *tok, const uint8_t *data, size_t size) {
    for (size_t at = 0; at + 4 <= size && at < 64 * 4; at += 4) {
        int32_t id = (int32_t)fuzz_u32(data + at);
        size_t buf_size = data[at] & 15u;
        char *buf = malloc(buf_size > 0 ? buf_size : 1);
        FUZZ_CHECK(buf != NULL, "out of memory");
        memset(buf, 0x5a, buf_size);
        int32_t k = tokenizer_token_to_piece(tok, id, buf_size > 0 ? buf : NULL, buf_size);
        bool in_range = id >= 0 && id < tokenizer_n_vocab(tok);
        FUZZ_CHECK(in_range == (k >= 0), "token %d: %d", (int)id, (int)k);
        FUZZ_CHECK(in_range == (tokenizer_token_text(tok, id) != NULL), "token %d text", (int)id);
        if (k > (int32_t)buf_size) {
            for (size_t i = 0; i < buf_size; i++) {
                FUZZ_CHECK(buf[i] == 0x5a, "token %d: a %d-byte piece written into %zu bytes",
                           (int)id, (int)k, buf_size);
            }
        }
        free(buf);
        (void)tokenizer_is_control(tok, id);
        (void)tokenizer_is_eog(tok, id);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) {
        return 0;
    }
    const loaded_vocab *v = &vocabs[data[0] % n_vocabs];
    bool add_bos = (data[1] & 1) != 0;
    bool parse_special = (data[1] & 2) != 0;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    check_encoding(v, text, len, add_bos, parse_special);
    check_raw_ids(v->tok, data + 2, len);
    return 0;
}
