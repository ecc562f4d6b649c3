/* tokenizer_spm.c - SentencePiece-style encoding as llama.cpp's llm_tokenizer_spm_session: start
 * from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
 * best-scoring vocabulary entry (ties: leftmost), then emit each symbol's token, or its bytes as
 * <0xXX> tokens when the symbol is not in the vocabulary (UNK when there is no byte token).
 * Any vocabulary entry may be formed by a merge, whatever its type, as in llama.cpp.
 */
#include "tokenizer_spm.h"
#include "min_heap.h"
#include "tokenizer_symbols.h"
#include "unicode.h"

#include <stdlib.h>

typedef struct spm_bigram {
    int32_t left, right;
    float score;
    size_t size; /* bytes of the pair when it was queued; stale if the symbols changed since */
} spm_bigram;

/* Priority: higher score first, then the smaller left index (llama.cpp's comparator). */
static bool spm_before(const void *pa, const void *pb) {
    const spm_bigram *a = pa, *b = pb;
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* Queue the pair (left, right) if its concatenation is a vocabulary entry. */
static bool try_add_bigram(const tokenizer *tok, const char *text, const tok_symbol *sym,
                           int32_t left, int32_t right, min_heap *heap) {
    if (left < 0 || right < 0) {
        return true;
    }
    size_t size = sym[left].n + sym[right].n;
    int32_t id = tok_find_token(tok, text + sym[left].start, size);
    if (id < 0) {
        return true;
    }
    spm_bigram bg = {left, right, tok->scores[id], size};
    return min_heap_push(heap, &bg, sizeof bg, spm_before);
}

edgelm_status tok_spm_encode(const tokenizer *tok, const char *text, size_t len, tok_out *out) {
    if (len == 0) {
        return EDGELM_OK;
    }
    if (len > (size_t)INT32_MAX) {
        return EDGELM_ERR_TOO_LARGE; /* symbol indices are int32 */
    }
    edgelm_status st = EDGELM_OK;
    /* the queued pairs (spm_bigram), best first */
    min_heap heap = {NULL, 0, 0};
    tok_symbol *sym = malloc(len * sizeof *sym); /* at most one symbol per byte */
    if (sym == NULL) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    int32_t n_sym = tok_split_chars(text, len, sym);

    for (int32_t i = 1; i < n_sym; i++) {
        if (!try_add_bigram(tok, text, sym, i - 1, i, &heap)) {
            st = EDGELM_ERR_OUT_OF_MEMORY;
            goto done;
        }
    }
    while (heap.n > 0) {
        spm_bigram bg;
        min_heap_pop(&heap, &bg, sizeof bg, spm_before);
        if (!tok_merge_symbols(sym, bg.left, bg.right, bg.size)) {
            continue; /* one side was merged away since this pair was queued */
        }
        const tok_symbol *l = &sym[bg.left];
        if (!try_add_bigram(tok, text, sym, l->prev, bg.left, &heap) ||
            !try_add_bigram(tok, text, sym, bg.left, l->next, &heap)) {
            st = EDGELM_ERR_OUT_OF_MEMORY;
            goto done;
        }
    }

    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t id = tok_find_token(tok, text + sym[i].start, sym[i].n);
        if (id >= 0) {
            tok_out_push(out, id);
            continue;
        }
        /* Not a token: its bytes. (A merged symbol is always a token, so this is a single
         * character, which llama.cpp's rev_merge lookup can never resolve either.) */
        for (size_t k = 0; k < sym[i].n; k++) {
            int32_t b = tok->byte_token[(uint8_t)text[sym[i].start + k]];
            if (b < 0) {
                b = tok->unk;
            }
            if (b >= 0) {
                tok_out_push(out, b);
            }
        }
    }
done:
    free(sym);
    min_heap_free(&heap);
    return st;
}
