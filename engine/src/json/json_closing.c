/* json_closing.c - budget forcing: the shortest byte sequence that completes the document
 * from any state, and the token that makes the most progress along it.
 * Order of work: finish the open scalar (UTF-8 continuation, escape, \u digits and the low
 * surrogate, padding to minLength, the rest of a literal, key or enum text, a digit a number
 * still needs), then close every frame from the top down, emitting what the schema still
 * requires (required properties, minItems elements) as each node's precomputed minimal value.
 * Every byte emitted is one the automaton accepts from that state (tests replay it).
 */
#include "json_closing.h"

#include <string.h>

typedef struct writer {
    char *buf;
    size_t cap; /* bytes buf can hold, the NUL included */
    size_t len; /* bytes of the full sequence (may exceed cap) */
} writer;

static void put(writer *o, const void *bytes, size_t n) {
    if (o->cap > 0 && o->len < o->cap - 1) {
        size_t room = o->cap - 1 - o->len;
        memcpy(o->buf + o->len, bytes, n < room ? n : room);
    }
    o->len += n;
}

static void put_c(writer *o, char c) { put(o, &c, 1); }

static void put_min(writer *o, const json_schema *s, int32_t node) {
    put(o, s->text + s->nodes[node].min_off, s->nodes[node].min_bytes);
}

static const js_frame *frame_at(const js_walker *w, uint32_t i) {
    return i < w->split ? &w->base[i] : &w->ov[i - w->split];
}

/* ---- listed objects ------------------------------------------------------------------------ */

static size_t prop_cost(const json_schema *s, const js_node *n, uint32_t k) {
    return 1 + s->lits[n->key_lit + k].len + 1 +
           s->nodes[s->props[n->prop_first + k].node].min_bytes;
}

static size_t tail_cost(const json_schema *s, const js_node *n, uint32_t from) {
    size_t cost = 0;
    for (uint32_t k = from; k < n->n_props; k++) {
        if (s->props[n->prop_first + k].required) {
            cost += 1 + prop_cost(s, n, k);
        }
    }
    return cost;
}

static void put_prop(writer *o, const json_schema *s, const js_node *n, uint32_t k) {
    const js_lit *key = &s->lits[n->key_lit + k];
    put_c(o, '"');
    put(o, s->text + key->off, key->len);
    put_c(o, ':');
    put_min(o, s, s->props[n->prop_first + k].node);
}

/* Required properties from index `from` on, each preceded by a comma unless first_bare. */
static void put_required(writer *o, const json_schema *s, const js_node *n, uint32_t from,
                         bool first_bare) {
    for (uint32_t k = from; k < n->n_props; k++) {
        if (!s->props[n->prop_first + k].required) {
            continue;
        }
        if (!first_bare) {
            put_c(o, ',');
        }
        first_bare = false;
        put_prop(o, s, n, k);
    }
}

/* ---- the open scalar ---------------------------------------------------------------------- */

static void close_string(writer *o, const js_lex *lx) {
    static const char fill_high[] = "0020"; /* completes any allowed prefix to a valid char */
    static const char fill_low[] = "DC00";
    if (lx->u8_need) {
        put_c(o, (char)lx->u8_lo);
        for (uint8_t i = 1; i < lx->u8_need; i++) {
            put_c(o, (char)0x80);
        }
    }
    switch (lx->sub) {
    case S_ESC:
        put_c(o, 'n');
        break;
    case S_HEX: {
        uint32_t v = lx->hex;
        for (uint8_t k = lx->hex_n; k < 4; k++) {
            char d = lx->low ? fill_low[k] : fill_high[k];
            if (!lx->low && k == 3 && v == 0) {
                d = '1'; /* never U+0000 */
            }
            put_c(o, d);
            v = v * 16 + (uint32_t)(d >= 'A' ? d - 'A' + 10 : d - '0');
        }
        if (!lx->low && v >= 0xD800 && v <= 0xDBFF) {
            put(o, "\\uDC00", 6);
        }
        break;
    }
    case S_LOW_BS:
        put(o, "\\uDC00", 6);
        break;
    case S_LOW_U:
        put(o, "uDC00", 5);
        break;
    default:
        break;
    }
    for (uint32_t i = lx->n; i < lx->min_len; i++) {
        put_c(o, 'a');
    }
    put_c(o, '"');
}

/* Candidates of a literal set that agree with the bytes read so far. */
static bool match_candidate(const js_walker *w, uint32_t j) {
    const js_lex *lx = &w->lex;
    const js_lit *lits = w->schema->lits + lx->base;
    return lits[j].len >= lx->n &&
           memcmp(w->schema->text + lits[j].off, w->schema->text + lits[lx->cand].off, lx->n) == 0;
}

/* Returns the property a key being matched is completed to (-1 for anything else). */
static int64_t close_lexer(writer *o, const js_walker *w) {
    const js_lex *lx = &w->lex;
    const json_schema *s = w->schema;
    switch (lx->kind) {
    case L_STR:
        close_string(o, lx);
        return -1;
    case L_NUM:
        if (lx->sub == N_MINUS || lx->sub == N_DOT || lx->sub == N_E || lx->sub == N_ESIGN) {
            put_c(o, '0');
        }
        return -1;
    case L_LIT: {
        static const char *const text[3] = {"true", "false", "null"};
        const char *t = text[lx->sub];
        put(o, t + lx->n, strlen(t) - lx->n);
        return -1;
    }
    case L_MATCH: {
        const js_node *obj = NULL;
        uint32_t best = lx->cand;
        size_t best_cost = SIZE_MAX;
        if (lx->is_key) {
            obj = &s->nodes[frame_at(w, w->split + w->n_ov - 1)->node];
        }
        for (uint32_t j = lx->cand; j <= lx->hi; j++) {
            if (!match_candidate(w, j)) {
                continue;
            }
            size_t cost = s->lits[lx->base + j].len - lx->n;
            if (obj != NULL) {
                cost += 1 + s->nodes[s->props[obj->prop_first + j].node].min_bytes +
                        tail_cost(s, obj, j + 1);
            }
            if (cost < best_cost) {
                best_cost = cost;
                best = j;
            }
        }
        const js_lit *l = &s->lits[lx->base + best];
        put(o, s->text + l->off + lx->n, l->len - lx->n);
        return obj != NULL ? (int64_t)best : -1;
    }
    default:
        return -1;
    }
}

/* ---- frames -------------------------------------------------------------------------------- */

static void close_object(writer *o, const json_schema *s, const js_frame *f, int64_t key) {
    const js_node *n = &s->nodes[f->node];
    if (!n->listed) {
        switch (f->phase) {
        case P_OBJ_KEY:
            put(o, "\"\":", 3);
            put_min(o, s, n->additional);
            break;
        case P_OBJ_COLON:
            put_c(o, ':');
            put_min(o, s, n->additional);
            break;
        case P_OBJ_VALUE:
            put_min(o, s, n->additional);
            break;
        default:
            break;
        }
        put_c(o, '}');
        return;
    }
    switch (f->phase) {
    case P_OBJ_OPEN:
        put_required(o, s, n, f->a, true);
        break;
    case P_OBJ_KEY:
        if (f->a < n->n_props && s->props[n->prop_first + f->a].req_next < n->n_props) {
            put_required(o, s, n, f->a, true);
        } else {
            /* a key must come but none is required: the cheapest one left */
            uint32_t best = f->a;
            for (uint32_t k = f->a + 1; k < n->n_props; k++) {
                if (prop_cost(s, n, k) < prop_cost(s, n, best)) {
                    best = k;
                }
            }
            put_prop(o, s, n, best);
        }
        break;
    case P_OBJ_COLON: {
        uint32_t cur = key >= 0 ? (uint32_t)key : f->b;
        put_c(o, ':');
        put_min(o, s, s->props[n->prop_first + cur].node);
        put_required(o, s, n, cur + 1, false);
        break;
    }
    case P_OBJ_VALUE:
        put_min(o, s, s->props[n->prop_first + f->b].node);
        put_required(o, s, n, f->b + 1, false);
        break;
    case P_OBJ_NEXT:
        put_required(o, s, n, f->a, false);
        break;
    default:
        break;
    }
    put_c(o, '}');
}

static void close_array(writer *o, const json_schema *s, const js_frame *f) {
    const js_node *n = &s->nodes[f->node];
    uint32_t count = f->a;
    if (f->phase == P_ARR_VALUE) {
        put_min(o, s, n->items);
        count++;
    }
    for (; count < n->min_items; count++) {
        if (count > 0) {
            put_c(o, ',');
        }
        put_min(o, s, n->items);
    }
    put_c(o, ']');
}

/* Shortest completion of the walker's state; writes at most buf_size - 1 bytes (NUL after
 * them if buf_size > 0) and returns the full length. */
static size_t js_closing(const js_walker *w, char *buf, size_t buf_size) {
    writer o = {buf, buf != NULL ? buf_size : 0, 0};
    const json_schema *s = w->schema;
    int64_t key = close_lexer(&o, w);
    for (uint32_t i = w->split + w->n_ov; i-- > 0;) {
        const js_frame *f = frame_at(w, i);
        switch (f->kind) {
        case F_OBJ:
            close_object(&o, s, f, key);
            break;
        case F_ARR:
            close_array(&o, s, f);
            break;
        default:
            if (f->phase == P_TOP_START) {
                put_min(&o, s, s->root);
            }
            break;
        }
        key = -1;
    }
    if (o.cap > 0) {
        o.buf[o.len < o.cap - 1 ? o.len : o.cap - 1] = '\0';
    }
    return o.len;
}

/* ---- public entry points ------------------------------------------------------------------- */

size_t json_state_closing(const json_state *state, char *buf, size_t buf_size) {
    if (state == NULL) {
        if (buf != NULL && buf_size > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    js_walker w;
    js_walker_init(&w, state);
    if (js_walker_done(&w)) {
        if (buf != NULL && buf_size > 0) {
            buf[0] = '\0';
        }
        return 0;
    }
    return js_closing(&w, buf, buf_size);
}

size_t json_state_closing_after(const json_state *state, int32_t token) {
    if (!json_state_allows(state, token)) {
        return SIZE_MAX;
    }
    if (state->vocab->is_eog[token]) {
        return 0;
    }
    size_t len;
    const uint8_t *b = js_token_bytes(state->vocab, token, &len);
    js_walker w;
    js_walker_init(&w, state);
    js_walk(&w, b, len);
    return js_closing(&w, NULL, 0);
}

/* Index in the sorted order of a token whose bytes are exactly p[0..n), -1 if none. */
static int32_t find_exact(const json_vocab *v, const uint8_t *p, size_t n) {
    int32_t lo = 0, hi = v->n_sorted - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        size_t len;
        const uint8_t *b = js_token_bytes(v, v->sorted[mid], &len);
        int c = memcmp(b, p, len < n ? len : n);
        if (c == 0) {
            c = len < n ? -1 : len > n ? 1 : 0;
        }
        if (c == 0) {
            return v->sorted[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return -1;
}

int32_t json_state_closing_token(const json_state *state) {
    if (state == NULL || json_state_complete(state)) {
        return -1;
    }
    const json_vocab *v = state->vocab;
    char seq[512];
    js_walker w;
    js_walker_init(&w, state);
    size_t len = js_closing(&w, seq, sizeof seq);
    if (len == 0) {
        return v->eog; /* a top-level number (or enum) that may end here: end it */
    }
    size_t l = len < sizeof seq - 1 ? len : sizeof seq - 1;
    if (l > v->max_len) {
        l = v->max_len;
    }
    for (; l > 0; l--) {
        int32_t t = find_exact(v, (const uint8_t *)seq, l);
        if (t >= 0 && json_state_allows(state, t)) {
            return t;
        }
    }
    /* No token spells a prefix (a vocabulary without some single bytes): the allowed token
     * that leaves the shortest closing, if it is shorter than now. */
    int32_t best = -1;
    size_t best_len = len;
    for (int32_t t = 0; t < v->n_vocab; t++) {
        if (v->is_eog[t]) {
            continue;
        }
        size_t after = json_state_closing_after(state, t);
        if (after < best_len) {
            best_len = after;
            best = t;
        }
    }
    return best;
}
