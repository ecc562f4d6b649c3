/* tokenizer_symbols.h - the symbol list the SPM and BPE merge loops share (tokenizer_symbols.c):
 * the text split into UTF-8 characters, linked in order, and the merge of two neighbours.
 * Symbols point into the caller's text; nothing here allocates.
 */
#ifndef EDGELM_TOKENIZER_SYMBOLS_H
#define EDGELM_TOKENIZER_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A symbol of the SPM and BPE merge loops: a byte run of the text being merged, in a doubly
 * linked list of the live symbols. */
typedef struct tok_symbol {
    int32_t prev, next; /* neighbours in the live list, -1 at the ends */
    size_t start;       /* byte offset into the text */
    size_t n;           /* byte length; 0 once merged into its left neighbour */
} tok_symbol;

/* One symbol per UTF-8 character of text[0, len) (a truncated last character is one symbol),
 * linked in order; returns their count. sym has room for len symbols; len <= INT32_MAX. */
int32_t tok_split_chars(const char *text, size_t len, tok_symbol *sym);
/* Merge right into its left neighbour left, the pair having been queued when its bytes were
 * size long. Returns false, changing nothing, for a stale pair: a side was merged away since.
 * (While both live, left cannot have grown, so the size tells whether the texts still match.) */
bool tok_merge_symbols(tok_symbol *sym, int32_t left, int32_t right, size_t size);

#endif /* EDGELM_TOKENIZER_SYMBOLS_H */
