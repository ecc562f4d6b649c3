/* tokenizer.h - text <-> token ids for the vocabularies GGUF files carry.
 *
 * Two families, chosen by tokenizer.ggml.model: "llama" (SentencePiece-style: scores, byte
 * fallback, space prefix, U+2581 for spaces) and "gpt2" (byte-level BPE with ranked merges and a
 * pre-tokenizer chosen by tokenizer.ggml.pre: llama-bpe, qwen2, gpt-2, deepseek-llm,
 * deepseek-coder, default). Results match llama.cpp's llama_tokenize / llama_token_to_piece.
 * A tokenizer is immutable after creation, so one may serve many threads.
 */
#ifndef EDGELM_TOKENIZER_H
#define EDGELM_TOKENIZER_H

#include "edgelm.h"
#include "format/gguf.h"

typedef struct tokenizer tokenizer;

/* Build from the tokenizer.* metadata of a parsed file (the file may be freed afterwards:
 * everything needed is copied). */
edgelm_status tokenizer_create(const gguf_file *file, tokenizer **out, char *err, size_t err_size);
void tokenizer_free(tokenizer *tok);

int32_t tokenizer_n_vocab(const tokenizer *tok);
int32_t tokenizer_bos(const tokenizer *tok); /* -1 when none */
int32_t tokenizer_eos(const tokenizer *tok); /* -1 when none */
bool tokenizer_add_bos(const tokenizer *tok);
bool tokenizer_is_eog(const tokenizer *tok, int32_t token);
bool tokenizer_is_control(const tokenizer *tok, int32_t token);

/* Same contract as edgelm_tokenize(). */
int32_t tokenizer_encode(const tokenizer *tok, const char *text, size_t len, bool add_bos,
                         bool parse_special, int32_t *tokens, int32_t max_tokens);
/* Same contract as edgelm_token_to_piece(). */
int32_t tokenizer_token_to_piece(const tokenizer *tok, int32_t token, char *buf, size_t buf_size);
/* The vocabulary entry as stored (NUL-terminated, owned by tok), NULL if out of range. */
const char *tokenizer_token_text(const tokenizer *tok, int32_t token);

#endif /* EDGELM_TOKENIZER_H */
