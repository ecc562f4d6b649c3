/* json_vocab.c - per-model token bytes for the JSON grammar (the table json_mask.c and the
 * automaton read). Built once per vocabulary: every token's output bytes, the end-of-generation
 * flags, the tokens sorted by bytes (with the common prefix of neighbours) and each token's
 * effect from a plain in-string state (json_lex.c's string automaton, run once per token), so
 * the mask costs one pass over the vocabulary. No walker here: nothing depends on a state.
 */
#include "json_vocab.h"

#include "json_lex.h"

#include <stdlib.h>
#include <string.h>

typedef struct sort_entry {
    const uint8_t *p;
    uint32_t len;
    int32_t id;
} sort_entry;

static int cmp_entry(const void *a, const void *b) {
    const sort_entry *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    if (c != 0) {
        return c;
    }
    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

/* What a token does from a plain in-string state (no bounds): characters started, or -1
 * (refused) / -2 (reaches an unescaped quote: depends on what encloses the string). */
static int32_t string_info(const uint8_t *b, size_t len) {
    js_lex lx;
    memset(&lx, 0, sizeof lx);
    js_lex_string(&lx, 0, UINT32_MAX, false);
    for (size_t i = 0; i < len; i++) {
        int r = js_str_byte(&lx, b[i]);
        if (r == 0) {
            return -1;
        }
        if (r == 2) {
            return -2;
        }
    }
    return lx.n > INT32_MAX ? -1 : (int32_t)lx.n;
}

void json_vocab_free(json_vocab *vocab) {
    if (vocab == NULL) {
        return;
    }
    free(vocab->off);
    free(vocab->bytes);
    free(vocab->is_eog);
    free(vocab->sorted);
    free(vocab->sorted_off);
    free(vocab->sorted_bytes);
    free(vocab->special);
    free(vocab->lcp);
    free(vocab->str_info);
    free(vocab);
}

edgelm_status json_vocab_create_from_pieces(const char *const *pieces, const size_t *lens,
                                            int32_t n_vocab, const uint8_t *eog, json_vocab **out) {
    sort_entry *entries = NULL;
    if (out == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (n_vocab <= 0 || pieces == NULL || lens == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    json_vocab *v = calloc(1, sizeof *v);
    if (v == NULL) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    size_t n = (size_t)n_vocab;
    size_t total = 0;
    for (size_t t = 0; t < n; t++) {
        if (lens[t] > UINT32_MAX - total) {
            json_vocab_free(v);
            return EDGELM_ERR_TOO_LARGE;
        }
        total += lens[t];
    }
    v->n_vocab = n_vocab;
    v->eog = -1;
    v->off = malloc((n + 1) * sizeof *v->off);
    v->bytes = malloc(total ? total : 1);
    v->is_eog = calloc(n, 1);
    v->sorted = malloc(n * sizeof *v->sorted);
    v->sorted_off = malloc((n + 1) * sizeof *v->sorted_off);
    v->sorted_bytes = malloc(total ? total : 1);
    v->special = malloc(n * sizeof *v->special);
    v->lcp = calloc(n, 1);
    v->str_info = malloc(n * sizeof *v->str_info);
    entries = malloc(n * sizeof *entries);
    if (v->off == NULL || v->bytes == NULL || v->is_eog == NULL || v->sorted == NULL ||
        v->sorted_off == NULL || v->sorted_bytes == NULL || v->special == NULL || v->lcp == NULL ||
        v->str_info == NULL || entries == NULL) {
        free(entries);
        json_vocab_free(v);
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    uint32_t off = 0;
    size_t n_entries = 0;
    for (size_t t = 0; t < n; t++) {
        v->off[t] = off;
        if (lens[t] > 0) {
            memcpy(v->bytes + off, pieces[t], lens[t]);
        }
        off += (uint32_t)lens[t];
        v->is_eog[t] = eog != NULL && eog[t];
        if (v->is_eog[t] && v->eog < 0) {
            v->eog = (int32_t)t;
        }
        v->str_info[t] =
            lens[t] && !v->is_eog[t] ? string_info((const uint8_t *)pieces[t], lens[t]) : -1;
        if (lens[t] > v->max_len) {
            v->max_len = (uint32_t)lens[t];
        }
    }
    v->off[n] = off;
    for (size_t t = 0; t < n; t++) {
        if (!v->is_eog[t] && lens[t] > 0) {
            entries[n_entries].p = v->bytes + v->off[t];
            entries[n_entries].len = (uint32_t)lens[t];
            entries[n_entries].id = (int32_t)t;
            n_entries++;
        } else {
            v->special[v->n_special++] = (int32_t)t;
        }
    }
    qsort(entries, n_entries, sizeof *entries, cmp_entry);
    uint32_t sorted_off = 0;
    for (size_t i = 0; i < n_entries; i++) {
        v->sorted[i] = entries[i].id;
        v->sorted_off[i] = sorted_off;
        memcpy(v->sorted_bytes + sorted_off, entries[i].p, entries[i].len);
        sorted_off += entries[i].len;
        uint32_t l = 0;
        if (i > 0) {
            const sort_entry *a = &entries[i - 1], *b = &entries[i];
            uint32_t m = a->len < b->len ? a->len : b->len;
            while (l < m && l < 255 && a->p[l] == b->p[l]) {
                l++;
            }
        }
        v->lcp[i] = (uint8_t)l;
    }
    v->sorted_off[n_entries] = sorted_off;
    v->n_sorted = (int32_t)n_entries;
    free(entries);
    *out = v;
    return EDGELM_OK;
}

edgelm_status json_vocab_create(const tokenizer *tok, json_vocab **out) {
    if (out == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (tok == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    int32_t n = tokenizer_n_vocab(tok);
    if (n <= 0) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    edgelm_status st = EDGELM_OK;
    size_t total = 0;
    for (int32_t t = 0; t < n; t++) {
        int32_t len = tokenizer_token_to_piece(tok, t, NULL, 0);
        if (len < 0) {
            return (edgelm_status)-len;
        }
        total += (size_t)len;
    }
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    uint8_t *eog = malloc((size_t)n);
    char *bytes = malloc(total ? total : 1);
    if (pieces == NULL || lens == NULL || eog == NULL || bytes == NULL) {
        st = EDGELM_ERR_OUT_OF_MEMORY;
        goto done;
    }
    size_t off = 0;
    for (int32_t t = 0; t < n; t++) {
        int32_t len = tokenizer_token_to_piece(tok, t, bytes + off, total - off);
        if (len < 0 || (size_t)len > total - off) {
            st = len < 0 ? (edgelm_status)-len : EDGELM_ERR_TOKENIZER;
            goto done;
        }
        eog[t] = tokenizer_is_eog(tok, t);
        /* control tokens have no output bytes: never allowed inside JSON */
        lens[t] = tokenizer_is_control(tok, t) ? 0 : (size_t)len;
        pieces[t] = bytes + off;
        off += (size_t)len;
    }
    st = json_vocab_create_from_pieces(pieces, lens, n, eog, out);
    if (st == EDGELM_OK && tokenizer_eos(tok) >= 0 && tokenizer_eos(tok) < n &&
        eog[tokenizer_eos(tok)]) {
        (*out)->eog = tokenizer_eos(tok);
    }
done:
    free(pieces);
    free(lens);
    free(eog);
    free(bytes);
    return st;
}
