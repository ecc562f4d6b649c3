/* tokenizer_spm.c - SentencePiece-style encoding as llama.cpp's llm_tokenizer_spm_session: start
 * from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
 * best-scoring vocabulary entry (ties: leftmost), then emit each symbol's token, or its bytes as
 * <0xXX> tokens when the symbol is not in the vocabulary (UNK when there is no byte token).
 * Any vocabulary entry may be formed by a merge, whatever its type, as in llama.cpp.
 */
#include "tokenizer_impl.h"
#include "unicode.h"

#include <stdlib.h>

typedef struct spm_symbol {
    int32_t prev, next; /* neighbours in the live list, -1 at the ends */
    size_t start;       /* byte offset into the text */
    size_t n;           /* byte length; 0 once merged into its left neighbour */
} spm_symbol;

typedef struct spm_bigram {
    int32_t left, right;
    float score;
    size_t size; /* bytes of the pair when it was queued; stale if the symbols changed since */
} spm_bigram;

typedef struct spm_heap {
    spm_bigram *v;
    size_t n, cap;
} spm_heap;

/* Priority: higher score first, then the smaller left index (llama.cpp's comparator). */
static bool spm_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static bool heap_push(spm_heap *h, spm_bigram item) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_bigram *grown = realloc(h->v, cap * sizeof *grown);
        if (grown == NULL) {
            return false;
        }
        h->v = grown;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!spm_before(&item, &h->v[parent])) {
            break;
        }
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = item;
    return true;
}

static spm_bigram heap_pop(spm_heap *h) {
    spm_bigram top = h->v[0];
    spm_bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) {
            break;
        }
        if (child + 1 < h->n && spm_before(&h->v[child + 1], &h->v[child])) {
            child++;
        }
        if (!spm_before(&h->v[child], &last)) {
            break;
        }
        h->v[i] = h->v[child];
        i = child;
    }
    if (h->n > 0) {
        h->v[i] = last;
    }
    return top;
}

/* Queue the pair (left, right) if its concatenation is a vocabulary entry. */
static bool try_add_bigram(const tokenizer *tok, const char *text, const spm_symbol *sym,
                           int32_t left, int32_t right, spm_heap *heap) {
    if (left < 0 || right < 0) {
        return true;
    }
    size_t size = sym[left].n + sym[right].n;
    int32_t id = tok_find_token(tok, text + sym[left].start, size);
    if (id < 0) {
        return true;
    }
    spm_bigram bg = {left, right, tok->scores[id], size};
    return heap_push(heap, bg);
}

edgelm_status tok_spm_encode(const tokenizer *tok, const char *text, size_t len, tok_out *out) {
    if (len == 0) {
        return EDGELM_OK;
    }
    if (len > (size_t)INT32_MAX) {
        return EDGELM_ERR_TOO_LARGE; /* symbol indices are int32 */
    }
    edgelm_status st = EDGELM_OK;
    spm_heap heap = {NULL, 0, 0};
    spm_symbol *sym = malloc(len * sizeof *sym); /* at most one symbol per byte */
    if (sym == NULL) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    int32_t n_sym = 0;
    for (size_t off = 0; off < len;) {
        size_t n = unicode_utf8_len((uint8_t)text[off]);
        if (n > len - off) {
            n = len - off;
        }
        sym[n_sym].prev = n_sym - 1;
        sym[n_sym].start = off;
        sym[n_sym].n = n;
        off += n;
        sym[n_sym].next = off == len ? -1 : n_sym + 1;
        n_sym++;
    }

    for (int32_t i = 1; i < n_sym; i++) {
        if (!try_add_bigram(tok, text, sym, i - 1, i, &heap)) {
            st = EDGELM_ERR_OUT_OF_MEMORY;
            goto done;
        }
    }
    while (heap.n > 0) {
        spm_bigram bg = heap_pop(&heap);
        spm_symbol *l = &sym[bg.left], *r = &sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) {
            continue; /* one side was merged away since this pair was queued */
        }
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            sym[r->next].prev = bg.left;
        }
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
    free(heap.v);
    return st;
}
