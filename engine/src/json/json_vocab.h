/* json_vocab.h - the per-model token byte table the JSON grammar reads: every token's output
 * bytes, the end-of-generation flags, the tokens sorted by bytes (with the common prefix of
 * neighbours) and each token's effect from a plain in-string state. Not the automaton
 * (json_grammar.h) and not the mask (json_mask.h), which read this table.
 * Built once per vocabulary, then immutable and shareable between threads.
 */
#ifndef EDGELM_JSON_VOCAB_H
#define EDGELM_JSON_VOCAB_H

#include "edgelm.h"
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct json_vocab json_vocab;

/* Token bytes from the tokenizer (token_to_piece of every token); control tokens have no bytes
 * and are never allowed inside JSON. */
edgelm_status json_vocab_create(const tokenizer *tok, json_vocab **out);
/* From explicit token bytes (tests build exact vocabularies this way). eog may be NULL. */
edgelm_status json_vocab_create_from_pieces(const char *const *pieces, const size_t *lens,
                                            int32_t n_vocab, const uint8_t *eog, json_vocab **out);
void json_vocab_free(json_vocab *vocab);

struct json_vocab {
    int32_t n_vocab;
    uint32_t *off; /* (n_vocab + 1) offsets into bytes */
    uint8_t *bytes;
    uint8_t *is_eog;       /* (n_vocab) */
    int32_t eog;           /* the end token budget forcing uses, -1 if none */
    int32_t n_sorted;      /* tokens with bytes and not end-of-generation, sorted by bytes */
    int32_t *sorted;       /* token ids */
    uint32_t *sorted_off;  /* (n_sorted + 1) offsets into sorted_bytes: the mask reads the */
    uint8_t *sorted_bytes; /* bytes in sorted order, sequentially */
    uint8_t *lcp;          /* common prefix with the previous sorted token, capped at 255 */
    int32_t *str_info;     /* from a plain in-string state: >= 0 characters added (no quote),
                            * -1 refused (or no bytes, or an end token), -2 contains a closing
                            * quote (walk it) */
    int32_t n_special;     /* end tokens and tokens without bytes */
    int32_t *special;
    uint32_t max_len; /* longest token in bytes */
};

static inline const uint8_t *js_token_bytes(const json_vocab *v, int32_t t, size_t *len) {
    *len = v->off[t + 1] - v->off[t];
    return v->bytes + v->off[t];
}

#endif /* EDGELM_JSON_VOCAB_H */
