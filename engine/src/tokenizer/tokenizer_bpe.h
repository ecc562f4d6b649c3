/* tokenizer_bpe.h - the byte-level BPE encoder (tokenizer_bpe.c), reached through
 * tokenizer_encode() for vocabularies of tokenizer.ggml.model "gpt2".
 */
#ifndef EDGELM_TOKENIZER_BPE_H
#define EDGELM_TOKENIZER_BPE_H

#include "tokenizer_impl.h"

#include <stddef.h>

/* BPE-encode raw UTF-8 text: pre-tokenize, byte-level map, merge. */
edgelm_status tok_bpe_encode(const tokenizer *tok, const char *text, size_t len, tok_out *out);

#endif /* EDGELM_TOKENIZER_BPE_H */
