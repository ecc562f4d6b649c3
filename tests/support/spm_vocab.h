/* spm_vocab.h - small SentencePiece ("llama") vocabularies written with gguf_writer, shared by
 * test_tokenizer.c and json_walk.h (header-only, static functions). Layout: id 0 <unk>, 1 <s>,
 * 2 </s>, 3 + b the byte token <0xbb> for every byte b, then the caller's own pieces from
 * TEST_SPM_PIECE0 on. Only the metadata a tokenizer reads; no tensors.
 */
#ifndef EDGELM_TEST_SPM_VOCAB_H
#define EDGELM_TEST_SPM_VOCAB_H

#include "gguf_writer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TEST_SPM_BYTE0 3    /* id of <0x00> */
#define TEST_SPM_PIECE0 259 /* the first of the caller's pieces */

/* The fixed entries 0 .. TEST_SPM_PIECE0 - 1 of tokens, scores and token types (llama.cpp's
 * types: 2 unknown, 3 control, 6 byte). */
static inline void test_spm_fixed_tokens(const char **tokens, float *scores, int32_t *types) {
    static char byte_names[256][8];
    tokens[0] = "<unk>";
    tokens[1] = "<s>";
    tokens[2] = "</s>";
    types[0] = 2;
    types[1] = types[2] = 3;
    scores[0] = scores[1] = scores[2] = 0.0f;
    for (int b = 0; b < 256; b++) {
        snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", (unsigned)b);
        tokens[TEST_SPM_BYTE0 + b] = byte_names[b];
        types[TEST_SPM_BYTE0 + b] = 6;
        scores[TEST_SPM_BYTE0 + b] = 0.0f;
    }
}

/* A writer holding the vocabulary of n entries: architecture and tokenizer model "llama", the
 * tokens (left out when with_tokens is false), scores, token types, BOS 1, EOS 2 and UNK 0.
 * NULL when out of memory. */
static inline gguf_writer *test_spm_writer(const char *const *tokens, const float *scores,
                                           const int32_t *types, int n, bool with_tokens) {
    gguf_writer *w = gguf_writer_create();
    if (w == NULL) {
        return NULL;
    }
    gguf_writer_set_string(w, "general.architecture", "llama");
    gguf_writer_set_string(w, "tokenizer.ggml.model", "llama");
    if (with_tokens) {
        gguf_writer_set_string_array(w, "tokenizer.ggml.tokens", tokens, (uint64_t)n);
    }
    gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, (uint64_t)n);
    gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    return w;
}

#endif /* EDGELM_TEST_SPM_VOCAB_H */
