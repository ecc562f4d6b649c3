/* tokenizer_symbols.c - see tokenizer_symbols.h: the symbol list of the SPM and BPE merge loops.
 */
#include "tokenizer_symbols.h"
#include "unicode.h"

int32_t tok_split_chars(const char *text, size_t len, tok_symbol *sym) {
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
    return n_sym;
}

bool tok_merge_symbols(tok_symbol *sym, int32_t left, int32_t right, size_t size) {
    tok_symbol *l = &sym[left], *r = &sym[right];
    if (l->n == 0 || r->n == 0 || l->n + r->n != size) {
        return false;
    }
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0) {
        sym[r->next].prev = left;
    }
    return true;
}
