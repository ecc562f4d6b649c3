/* tokenizer_encode.c - tokenizer_encode(): cut the text at special tokens (llama.cpp's
 * tokenizer_st_partition), add BOS, and hand each plain-text fragment to the SPM or BPE encoder.
 * Special tokens are taken longest first; CONTROL and UNKNOWN ones only with parse_special,
 * USER_DEFINED ones always (as llama.cpp and Hugging Face do). Scratch is per call.
 */
#include "tokenizer.h"
#include "tokenizer_bpe.h"
#include "tokenizer_impl.h"
#include "tokenizer_spm.h"
#include "unicode.h"

#include "base/byte_search.h"
#include "base/growable_array.h"

#include <stdlib.h>
#include <string.h>

/* A piece of the input: a special token (token >= 0) or text[off, off + len). */
typedef struct fragment {
    int32_t token;
    size_t off;
    size_t len;
} fragment;

typedef struct frag_list {
    fragment *v;
    size_t n;
    size_t cap;
} frag_list;

static bool frag_push(frag_list *l, int32_t token, size_t off, size_t len) {
    if (!array_reserve(&l->v, &l->cap, l->n + 1, sizeof *l->v, 16)) {
        return false;
    }
    l->v[l->n++] = (fragment){token, off, len};
    return true;
}

/* C isspace() in the "C" locale, which llama.cpp uses for LSTRIP/RSTRIP. */
static bool c_space(char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }

/* Split every text fragment of *in at the occurrences of special token id, into *out. */
static bool split_on_special(const tokenizer *tok, const char *text, int32_t id,
                             const frag_list *in, frag_list *out) {
    const char *needle = tok_text(tok, id);
    size_t needle_len = tok_text_len(tok, id);
    uint16_t attr = tok->attr[id];
    out->n = 0;
    for (size_t f = 0; f < in->n; f++) {
        fragment fr = in->v[f];
        if (fr.token >= 0) {
            if (!frag_push(out, fr.token, 0, 0)) {
                return false;
            }
            continue;
        }
        size_t base = fr.off, len = fr.len;
        for (;;) {
            size_t at = bytes_find(text + base, len, needle, needle_len);
            if (at == SIZE_MAX) {
                if (len > 0 && !frag_push(out, -1, base, len)) {
                    return false;
                }
                break;
            }
            size_t left_len = at;
            if (attr & TOK_ATTR_LSTRIP) {
                while (left_len > 0 && c_space(text[base + left_len - 1])) {
                    left_len--;
                }
            }
            if (left_len > 0 && !frag_push(out, -1, base, left_len)) {
                return false;
            }
            if (!frag_push(out, id, 0, 0)) {
                return false;
            }
            size_t right = base + at + needle_len;
            size_t right_len = len - at - needle_len;
            if (attr & TOK_ATTR_RSTRIP) {
                while (right_len > 0 && c_space(text[right])) {
                    right++;
                    right_len--;
                }
            }
            base = right;
            len = right_len;
            if (len == 0) {
                break;
            }
        }
    }
    return true;
}

int32_t tokenizer_encode(const tokenizer *tok, const char *text, size_t len, bool add_bos,
                         bool parse_special, int32_t *tokens, int32_t max_tokens) {
    if (tok == NULL || (text == NULL && len > 0) || max_tokens < 0 ||
        (tokens == NULL && max_tokens > 0) || len > (size_t)INT32_MAX) {
        return -(int32_t)EDGELM_ERR_INVALID_ARGUMENT;
    }
    edgelm_status st = EDGELM_OK;
    tok_out out = {tokens, max_tokens, 0};
    frag_list a = {NULL, 0, 0}, b = {NULL, 0, 0};
    frag_list *cur = &a, *next = &b;
    char *spm_text = NULL;

    if (len > 0 && !frag_push(cur, -1, 0, len)) {
        st = EDGELM_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (int32_t s = 0; s < tok->n_special && cur->n > 0; s++) {
        int32_t id = tok->special[s];
        if (!parse_special && (tok->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) {
            continue;
        }
        if (!split_on_special(tok, text, id, cur, next)) {
            st = EDGELM_ERR_OUT_OF_MEMORY;
            goto done;
        }
        frag_list *t = cur;
        cur = next;
        next = t;
    }

    if (add_bos && tok->bos >= 0) {
        tok_out_push(&out, tok->bos);
    }
    if (tok->kind == TOK_KIND_SPM) {
        /* A space goes before text that starts the input or follows a special token; then every
         * ' ' becomes U+2581. The buffer is sized for the longest fragment. */
        size_t longest = 0;
        for (size_t f = 0; f < cur->n; f++) {
            if (cur->v[f].token < 0 && cur->v[f].len > longest) {
                longest = cur->v[f].len;
            }
        }
        if (longest > 0) {
            spm_text = malloc(3 * (longest + 1));
            if (spm_text == NULL) {
                st = EDGELM_ERR_OUT_OF_MEMORY;
                goto done;
            }
        }
        bool prev_special = true;
        for (size_t f = 0; f < cur->n && st == EDGELM_OK; f++) {
            fragment fr = cur->v[f];
            if (fr.token >= 0) {
                tok_out_push(&out, fr.token);
                prev_special = true;
                continue;
            }
            size_t n = 0;
            if (tok->add_space_prefix && prev_special) {
                memcpy(spm_text, "\xe2\x96\x81", 3);
                n = 3;
            }
            for (size_t i = 0; i < fr.len; i++) {
                char ch = text[fr.off + i];
                if (ch == ' ') {
                    memcpy(spm_text + n, "\xe2\x96\x81", 3);
                    n += 3;
                } else {
                    spm_text[n++] = ch;
                }
            }
            st = tok_spm_encode(tok, spm_text, n, &out);
            prev_special = false;
        }
    } else {
        for (size_t f = 0; f < cur->n && st == EDGELM_OK; f++) {
            fragment fr = cur->v[f];
            if (fr.token >= 0) {
                tok_out_push(&out, fr.token);
            } else {
                st = tok_bpe_encode(tok, text + fr.off, fr.len, &out);
            }
        }
    }
done:
    free(a.v);
    free(b.v);
    free(spm_text);
    if (st != EDGELM_OK) {
        return -(int32_t)st;
    }
    if (out.n > INT32_MAX) {
        return -(int32_t)EDGELM_ERR_TOO_LARGE;
    }
    return (int32_t)out.n;
}
