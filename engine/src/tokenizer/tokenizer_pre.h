/* tokenizer_pre.h - BPE pre-tokenizers (tokenizer_pre.c): which splitter tokenizer.ggml.pre
 * names, and the split of a codepoint sequence into the pieces BPE merges within.
 * Pure functions; no tokenizer state.
 */
#ifndef EDGELM_TOKENIZER_PRE_H
#define EDGELM_TOKENIZER_PRE_H

#include "edgelm.h"

#include <stddef.h>
#include <stdint.h>

/* Pre-tokenizer (BPE only), from tokenizer.ggml.pre; names as in llama.cpp's llama-vocab.cpp. */
typedef enum tok_pre {
    TOK_PRE_DEFAULT = 0,
    TOK_PRE_LLAMA3, /* llama-bpe, llama3, ... (custom splitter) */
    TOK_PRE_GPT2,   /* gpt-2, ... (custom splitter) */
    TOK_PRE_QWEN2,  /* qwen2, ... */
    TOK_PRE_DEEPSEEK_LLM,
    TOK_PRE_DEEPSEEK_CODER,
    TOK_PRE_STARCODER, /* \p{N} then the GPT-2 splitter */
} tok_pre;

/* A growable array of sizes (pre-token lengths in codepoints). */
typedef struct tok_sizes {
    size_t *v;
    size_t n;
    size_t cap;
} tok_sizes;

/* Split cpts[0..n_cpts) into pre-tokens with the pre-tokenizer pre; *words receives their
 * lengths in codepoints (summing to n_cpts). words must be zero-initialized or reused; the
 * caller frees words->v. */
edgelm_status tok_pretokenize(tok_pre pre, const uint32_t *cpts, size_t n_cpts, tok_sizes *words);

#endif /* EDGELM_TOKENIZER_PRE_H */
