/* tokenizer_impl.h - the inside of a tokenizer: struct tokenizer and its lookups (defined in
 * tokenizer.c, which loads it from GGUF metadata), read by the encoders (tokenizer_encode.c,
 * tokenizer_spm.c, tokenizer_bpe.c), and tok_out, where encoders put ids.
 * Invariant: after tokenizer_create() nothing in struct tokenizer changes, so encode/decode may
 * run on many threads at once; all per-call scratch is allocated by the call.
 */
#ifndef EDGELM_TOKENIZER_IMPL_H
#define EDGELM_TOKENIZER_IMPL_H

#include "edgelm.h"
#include "tokenizer_pre.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer; /* as in tokenizer.h */

typedef enum tok_kind {
    TOK_KIND_SPM = 0, /* tokenizer.ggml.model "llama" */
    TOK_KIND_BPE = 1, /* tokenizer.ggml.model "gpt2" */
} tok_kind;

/* Token attributes: llama.cpp's llama_token_attr bits, plus one private bit for end-of-generation
 * tokens. token_type (GGUF) 1..6 map to NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE. */
#define TOK_ATTR_UNKNOWN 0x0001u
#define TOK_ATTR_UNUSED 0x0002u
#define TOK_ATTR_NORMAL 0x0004u
#define TOK_ATTR_CONTROL 0x0008u
#define TOK_ATTR_USER_DEFINED 0x0010u
#define TOK_ATTR_BYTE 0x0020u
#define TOK_ATTR_LSTRIP 0x0080u
#define TOK_ATTR_RSTRIP 0x0100u
#define TOK_ATTR_EOG 0x8000u /* private: ends generation */

struct tokenizer {
    int32_t n_vocab;
    tok_kind kind;
    tok_pre pre;

    char *text;         /* every token's text, each followed by a NUL */
    uint32_t *text_off; /* (n_vocab + 1) offsets into text; length = off[i+1] - off[i] - 1 */
    float *scores;      /* (n_vocab) SPM merge priority, 0 when the file has none; NULL for BPE */
    uint16_t *attr;     /* (n_vocab) TOK_ATTR_* */

    int32_t *token_slots; /* open-addressing hash: token text -> id; -1 = empty */
    uint32_t token_mask;  /* slot count - 1 (a power of two minus one) */

    /* BPE merges "left right", rank = index in tokenizer.ggml.merges (first occurrence wins). */
    char *merge_text;    /* the merge strings, copied; left at off, right at off + left_len + 1 */
    uint32_t *merge_off; /* (n_merges) */
    uint32_t *merge_left_len;  /* (n_merges) */
    uint32_t *merge_right_len; /* (n_merges) */
    int32_t n_merges;
    int32_t *merge_slots; /* hash: (left, right) -> rank; -1 = empty */
    uint32_t merge_mask;

    char *piece;         /* token_to_piece() output of every token, back to back */
    uint32_t *piece_off; /* (n_vocab + 1) */

    int32_t *special; /* CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first */
    int32_t n_special;

    int32_t byte_token[256]; /* SPM byte fallback: <0xXX> (else the 1-byte token), -1 if none */

    int32_t bos, eos, unk, eot, eom; /* -1 when none */
    bool add_bos;
    bool add_eos;
    bool add_space_prefix; /* SPM: prefix a space to text that starts the input or follows a
                              special token */
    bool ignore_merges;    /* BPE (llama3): a pre-token that is a whole token is taken as is */
};

/* ---- lookups (tokenizer.c) ------------------------------------------------------------------ */

/* Token id whose text is exactly s[0..len), or -1. */
int32_t tok_find_token(const tokenizer *tok, const char *s, size_t len);
/* Merge rank of the pair (left, right), or -1. */
int32_t tok_find_merge(const tokenizer *tok, const char *left, size_t left_len, const char *right,
                       size_t right_len);
static inline const char *tok_text(const tokenizer *tok, int32_t id) {
    return tok->text + tok->text_off[id];
}
static inline size_t tok_text_len(const tokenizer *tok, int32_t id) {
    return tok->text_off[id + 1] - tok->text_off[id] - 1;
}

/* ---- encoding ------------------------------------------------------------------------------- */

/* Where encoders put ids: written while n < max, always counted. */
typedef struct tok_out {
    int32_t *tokens;
    int64_t max;
    int64_t n;
} tok_out;

static inline void tok_out_push(tok_out *out, int32_t id) {
    if (out->n < out->max) {
        out->tokens[out->n] = id;
    }
    out->n++;
}

#endif /* EDGELM_TOKENIZER_IMPL_H */
