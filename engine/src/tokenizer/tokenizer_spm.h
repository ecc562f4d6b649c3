/* tokenizer_spm.h - the SentencePiece-style encoder (tokenizer_spm.c), reached through
 * tokenizer_encode() for vocabularies of tokenizer.ggml.model "llama".
 */
#ifndef EDGELM_TOKENIZER_SPM_H
#define EDGELM_TOKENIZER_SPM_H

#include "tokenizer_impl.h"

#include <stddef.h>

/* SPM-encode len bytes (already space-prefixed and with ' ' -> U+2581 applied). */
edgelm_status tok_spm_encode(const tokenizer *tok, const char *text, size_t len, tok_out *out);

#endif /* EDGELM_TOKENIZER_SPM_H */
