/* tokenizer_bpe.c - byte-level BPE as llama.cpp's llm_tokenizer_bpe_session: decode the text to
 * codepoints (bad UTF-8 bytes become U+FFFD), pre-tokenize, write each pre-token's UTF-8 bytes in
 * GPT-2's byte alphabet, then repeatedly merge the adjacent pair with the lowest merge rank
 * (ties: leftmost). Each final symbol is emitted as its token; a symbol that is not a token is
 * emitted byte by byte where a single byte is itself a token, and otherwise dropped.
 */
#include "tokenizer_bpe.h"
#include "min_heap.h"
#include "tokenizer_pre.h"
#include "tokenizer_symbols.h"
#include "unicode.h"

#include <stdlib.h>

typedef struct bpe_bigram {
    int32_t left, right;
    int32_t rank;
    size_t size; /* bytes of the pair when queued */
} bpe_bigram;

/* Priority: lower rank first, then the smaller left index (llama.cpp's comparator). */
static bool bpe_before(const void *pa, const void *pb) {
    const bpe_bigram *a = pa, *b = pb;
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

/* Per-call scratch, grown as needed and reused across the words of one call. */
typedef struct bpe_scratch {
    uint32_t *cpts;
    size_t n_cpts;
    tok_sizes words;
    char *word; /* the current pre-token in the byte alphabet */
    size_t word_cap;
    tok_symbol *sym;
    size_t sym_cap;
    min_heap heap; /* of bpe_bigram */
} bpe_scratch;

static bool add_bigram(const tokenizer *tok, const char *word, const tok_symbol *sym, int32_t left,
                       int32_t right, min_heap *heap) {
    if (left < 0 || right < 0) {
        return true;
    }
    int32_t rank = tok_find_merge(tok, word + sym[left].start, sym[left].n, word + sym[right].start,
                                  sym[right].n);
    if (rank < 0) {
        return true;
    }
    bpe_bigram bg = {left, right, rank, sym[left].n + sym[right].n};
    return min_heap_push(heap, &bg, sizeof bg, bpe_before);
}

/* Merge and emit one pre-token already in the byte alphabet. */
static edgelm_status encode_word(const tokenizer *tok, bpe_scratch *s, size_t len, tok_out *out) {
    const char *word = s->word;
    if (tok->ignore_merges) {
        int32_t id = tok_find_token(tok, word, len);
        if (id >= 0) {
            tok_out_push(out, id);
            return EDGELM_OK;
        }
    }
    if (len > (size_t)INT32_MAX) {
        return EDGELM_ERR_TOO_LARGE; /* symbol indices are int32 */
    }
    if (len > s->sym_cap) {
        tok_symbol *grown = realloc(s->sym, len * sizeof *grown);
        if (grown == NULL) {
            return EDGELM_ERR_OUT_OF_MEMORY;
        }
        s->sym = grown;
        s->sym_cap = len;
    }
    tok_symbol *sym = s->sym;
    int32_t n_sym = tok_split_chars(word, len, sym);
    s->heap.n = 0;
    for (int32_t i = 1; i < n_sym; i++) {
        if (!add_bigram(tok, word, sym, i - 1, i, &s->heap)) {
            return EDGELM_ERR_OUT_OF_MEMORY;
        }
    }
    while (s->heap.n > 0) {
        bpe_bigram bg;
        min_heap_pop(&s->heap, &bg, sizeof bg, bpe_before);
        if (!tok_merge_symbols(sym, bg.left, bg.right, bg.size)) {
            continue;
        }
        const tok_symbol *l = &sym[bg.left];
        if (!add_bigram(tok, word, sym, l->prev, bg.left, &s->heap) ||
            !add_bigram(tok, word, sym, bg.left, l->next, &s->heap)) {
            return EDGELM_ERR_OUT_OF_MEMORY;
        }
    }
    for (int32_t i = 0; i != -1 && n_sym > 0; i = sym[i].next) {
        int32_t id = tok_find_token(tok, word + sym[i].start, sym[i].n);
        if (id >= 0) {
            tok_out_push(out, id);
            continue;
        }
        for (size_t k = 0; k < sym[i].n; k++) {
            int32_t b = tok_find_token(tok, word + sym[i].start + k, 1);
            if (b >= 0) {
                tok_out_push(out, b);
            }
        }
    }
    return EDGELM_OK;
}

edgelm_status tok_bpe_encode(const tokenizer *tok, const char *text, size_t len, tok_out *out) {
    edgelm_status st = EDGELM_OK;
    bpe_scratch s = {0};
    if (len == 0) {
        return EDGELM_OK;
    }
    s.cpts = malloc(len * sizeof *s.cpts);
    if (s.cpts == NULL) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    for (size_t off = 0; off < len;) {
        size_t used;
        s.cpts[s.n_cpts++] = unicode_utf8_decode((const uint8_t *)text + off, len - off, &used);
        off += used;
    }
    if ((st = tok_pretokenize(tok->pre, s.cpts, s.n_cpts, &s.words)) != EDGELM_OK) {
        goto done;
    }
    size_t c0 = 0;
    for (size_t w = 0; w < s.words.n; w++) {
        size_t n_c = s.words.v[w];
        /* each codepoint -> <= 4 bytes -> each byte <= 2 bytes in the alphabet */
        if (n_c > SIZE_MAX / 8) {
            st = EDGELM_ERR_TOO_LARGE;
            goto done;
        }
        size_t need = n_c * 8;
        if (need > s.word_cap) {
            char *grown = realloc(s.word, need);
            if (grown == NULL) {
                st = EDGELM_ERR_OUT_OF_MEMORY;
                goto done;
            }
            s.word = grown;
            s.word_cap = need;
        }
        size_t n = 0;
        for (size_t k = c0; k < c0 + n_c; k++) {
            uint8_t utf8[4];
            size_t nb = unicode_utf8_encode(s.cpts[k], utf8);
            for (size_t j = 0; j < nb; j++) {
                uint8_t enc[4];
                size_t ne = unicode_utf8_encode(unicode_byte_to_cpt(utf8[j]), enc);
                for (size_t e = 0; e < ne; e++) {
                    s.word[n++] = (char)enc[e];
                }
            }
        }
        c0 += n_c;
        if ((st = encode_word(tok, &s, n, out)) != EDGELM_OK) {
            goto done;
        }
    }
done:
    free(s.cpts);
    free(s.words.v);
    free(s.word);
    free(s.sym);
    min_heap_free(&s.heap);
    return st;
}
