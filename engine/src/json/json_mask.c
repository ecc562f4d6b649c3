/* json_mask.c - the full logit mask in one pass over the vocabulary. Inside a string the
 * vocabulary's str_info table decides every token without a closing quote; elsewhere a
 * depth-first walk of the sorted order shares the walk of common prefixes and skips every token
 * under a refused one. Every decision is the walker's (json_grammar.c): the mask only orders
 * and shares the work, so it equals json_state_allows token by token.
 */
#include "json_mask.h"

#include <math.h>
#include <string.h>

#define MASK_DFS_DEPTH 16 /* prefix states kept by the sorted walk; deeper bytes are re-walked */

/* Copies only the live part of a walker (the overlay frames in use). */
static void walker_copy(js_walker *dst, const js_walker *src) {
    dst->schema = src->schema;
    dst->base = src->base;
    dst->split = src->split;
    dst->n_ov = src->n_ov;
    dst->lex = src->lex;
    memcpy(dst->ov, src->ov, src->n_ov * sizeof src->ov[0]);
}

static void mask_in_string(const json_state *state, float *logits) {
    const json_vocab *v = state->vocab;
    const js_lex *lx = &state->lex;
    const int32_t *info = v->str_info;
    uint64_t room = (uint64_t)lx->max_len - lx->n;
    for (int32_t t = 0; t < v->n_vocab; t++) {
        if (info[t] >= 0 && (uint64_t)info[t] <= room) {
            continue;
        }
        if (info[t] == -2) {
            size_t len;
            const uint8_t *b = js_token_bytes(v, t, &len);
            js_walker w;
            js_walker_init(&w, state);
            if (js_walk(&w, b, len)) {
                continue;
            }
        }
        logits[t] = -INFINITY;
    }
}

static void mask_sorted(const json_state *state, float *logits) {
    const json_vocab *v = state->vocab;
    const uint8_t *lcp = v->lcp;
    js_walker levels[MASK_DFS_DEPTH + 1];
    js_walker tail;
    uint32_t valid = 0; /* levels[0 .. valid] hold the states after the current prefix */
    js_walker_init(&levels[0], state);
    for (int32_t i = 0; i < v->n_sorted;) {
        const uint8_t *b = v->sorted_bytes + v->sorted_off[i];
        uint32_t len = v->sorted_off[i + 1] - v->sorted_off[i];
        uint32_t k = lcp[i] < valid ? lcp[i] : valid;
        uint32_t dead = UINT32_MAX; /* the prefix b[0 .. dead] is refused */
        for (; k < len && k < MASK_DFS_DEPTH; k++) {
            walker_copy(&levels[k + 1], &levels[k]);
            if (!js_step(&levels[k + 1], b[k])) {
                dead = k;
                break;
            }
        }
        valid = k;
        if (dead == UINT32_MAX && k < len) {
            walker_copy(&tail, &levels[k]);
            for (; k < len; k++) {
                if (!js_step(&tail, b[k])) {
                    dead = k;
                    break;
                }
            }
        }
        if (dead == UINT32_MAX) {
            i++;
            continue;
        }
        /* refuse this token and every following one that shares the refused prefix */
        do {
            logits[v->sorted[i++]] = -INFINITY;
        } while (i < v->n_sorted && lcp[i] > dead);
    }
}

void json_state_mask(const json_state *state, float *logits, int32_t n_vocab) {
    if (state == NULL || logits == NULL || n_vocab <= 0) {
        return;
    }
    const json_vocab *v = state->vocab;
    int32_t n = n_vocab < v->n_vocab ? n_vocab : v->n_vocab;
    for (int32_t t = n; t < n_vocab; t++) {
        logits[t] = -INFINITY; /* ids the grammar does not know */
    }
    js_walker w;
    js_walker_init(&w, state);
    if (js_walker_done(&w)) {
        for (int32_t t = 0; t < n; t++) {
            logits[t] = -INFINITY;
        }
        return;
    }
    if (n < v->n_vocab) {
        /* a logits array shorter than the vocabulary: decide token by token */
        for (int32_t t = 0; t < n; t++) {
            if (!json_state_allows(state, t)) {
                logits[t] = -INFINITY;
            }
        }
        return;
    }
    bool can_end = js_can_end(&w);
    if (js_clean_string(&state->lex)) {
        mask_in_string(state, logits);
    } else {
        mask_sorted(state, logits);
    }
    for (int32_t i = 0; i < v->n_special; i++) {
        int32_t t = v->special[i];
        if (!v->is_eog[t] || !can_end) {
            logits[t] = -INFINITY;
        }
    }
}
