/* json_grammar.c - the JSON pushdown automaton (RFC 8259, narrowed by a compiled schema) and
 * the per-generation state API. One byte-step function serves allows, accept, mask and
 * closing: a walker reads the state's frame stack and keeps what it changes (popped-then-
 * modified frames, pushed frames, the scalar lexer) in a small overlay, so testing a token
 * allocates nothing and accepting one is "walk, then commit the overlay".
 * Whitespace: at most one byte between lexemes inside containers, none at the top level.
 */
#include "json_grammar.h"

#include <stdlib.h>
#include <string.h>

enum { R_REJECT = 0, R_OK = 1, R_PASS = 2 }; /* PASS: the scalar ended before this byte */

static const char *const literal_text[3] = {"true", "false", "null"};
static const uint8_t literal_len[3] = {4, 5, 4};

/* ---- walker frame access --------------------------------------------------------------------- */

static const js_frame *top_peek(const js_walker *w) {
    return w->n_ov ? &w->ov[w->n_ov - 1] : &w->base[w->split - 1];
}

/* The top frame, copied into the overlay first if it still lives in the base stack. */
static js_frame *top_mut(js_walker *w) {
    if (w->n_ov == 0) {
        w->ov[0] = w->base[--w->split];
        w->n_ov = 1;
    }
    return &w->ov[w->n_ov - 1];
}

static bool push(js_walker *w, int32_t node, uint8_t kind, uint8_t phase) {
    if (w->n_ov > JS_OVERLAY || w->split + w->n_ov >= JS_MAX_DEPTH) {
        return false;
    }
    js_frame *f = &w->ov[w->n_ov++];
    f->node = node;
    f->a = 0;
    f->b = 0;
    f->kind = kind;
    f->phase = phase;
    return true;
}

static void pop(js_walker *w) {
    if (w->n_ov) {
        w->n_ov--;
    } else {
        w->split--;
    }
}

void js_walker_init(js_walker *w, const json_state *state) {
    w->schema = state->schema;
    w->base = state->stack;
    w->split = state->depth;
    w->n_ov = 0;
    w->lex = state->lex;
}

static void walker_commit(json_state *state, const js_walker *w) {
    memcpy(state->stack + w->split, w->ov, w->n_ov * sizeof w->ov[0]);
    state->depth = w->split + w->n_ov;
    state->lex = w->lex;
}

/* ---- strings --------------------------------------------------------------------------------- */

static int str_step(js_walker *w, uint8_t c) {
    int r = js_str_byte(&w->lex, c);
    if (r != 2) {
        return r;
    }
    if (w->lex.n < w->lex.min_len) {
        return R_REJECT;
    }
    w->lex.kind = L_NONE; /* a key leaves its object in P_OBJ_COLON: nothing to update */
    return R_OK;
}

/* ---- numbers, literals, literal sets --------------------------------------------------------- */

static bool num_endable(uint8_t sub) {
    return sub == N_ZERO || sub == N_INT || sub == N_FRAC || sub == N_EXP;
}

static int num_step(js_walker *w, uint8_t c) {
    js_lex *lx = &w->lex;
    bool digit = c >= '0' && c <= '9';
    bool integer = w->schema->nodes[lx->node].integer;
    uint8_t next;
    switch (lx->sub) {
    case N_START:
        next = c == '-' ? N_MINUS : c == '0' ? N_ZERO : digit ? N_INT : 0xFF;
        break;
    case N_MINUS:
        next = c == '0' ? N_ZERO : digit ? N_INT : 0xFF;
        break;
    case N_ZERO:
    case N_INT:
    case N_FRAC:
        if (digit && lx->sub != N_ZERO) {
            next = lx->sub;
        } else if (c == '.' && lx->sub != N_FRAC && !integer) {
            next = N_DOT;
        } else if ((c == 'e' || c == 'E') && !integer) {
            next = N_E;
        } else {
            lx->kind = L_NONE;
            return R_PASS;
        }
        break;
    case N_DOT:
        next = digit ? N_FRAC : 0xFF;
        break;
    case N_E:
        next = c == '+' || c == '-' ? N_ESIGN : digit ? N_EXP : 0xFF;
        break;
    case N_ESIGN:
        next = digit ? N_EXP : 0xFF;
        break;
    case N_EXP:
        if (digit) {
            next = N_EXP;
            break;
        }
        lx->kind = L_NONE;
        return R_PASS;
    default:
        next = 0xFF;
        break;
    }
    /* Keep room to finish: a state that needs a digit must leave one byte for it. */
    if (next == 0xFF || lx->n + 1 + (num_endable(next) ? 0 : 1) > JS_NUM_MAX) {
        return R_REJECT;
    }
    lx->sub = next;
    lx->n++;
    return R_OK;
}

static void end_match(js_walker *w) {
    if (w->lex.is_key) {
        js_frame *f = top_mut(w);
        f->b = w->lex.cand;
        f->a = w->lex.cand + 1;
    }
    w->lex.kind = L_NONE;
}

/* The candidate whose whole text is the bytes read so far, -1 if none. Not necessarily cand:
 * the first candidate sharing those bytes may be a longer one (enum [22, 2] after "2"). */
static int64_t match_complete(const js_walker *w) {
    const js_lex *lx = &w->lex;
    const js_lit *lits = w->schema->lits + lx->base;
    const char *ctext = w->schema->text + lits[lx->cand].off;
    for (uint32_t j = lx->cand; j <= lx->hi; j++) {
        if (lits[j].len == lx->n && memcmp(w->schema->text + lits[j].off, ctext, lx->n) == 0) {
            return j;
        }
    }
    return -1;
}

/* Candidates are lits[base + cand .. base + hi]; cand is the first whose text starts with the
 * bytes read so far (the set of such candidates shrinks, so its minimum only moves up). */
static int match_step(js_walker *w, uint8_t c) {
    js_lex *lx = &w->lex;
    const js_lit *lits = w->schema->lits + lx->base;
    const char *text = w->schema->text;
    uint32_t pos = lx->n;
    const char *ctext = text + lits[lx->cand].off;
    for (uint32_t j = lx->cand; j <= lx->hi; j++) {
        const char *t = text + lits[j].off;
        if (lits[j].len <= pos || (uint8_t)t[pos] != c ||
            (j != lx->cand && memcmp(t, ctext, pos) != 0)) {
            continue;
        }
        lx->cand = j;
        lx->n = ++pos;
        if (lits[j].len == pos) {
            /* complete: end now unless a longer candidate shares it (numbers: 1 and 12) */
            for (uint32_t k = j + 1; k <= lx->hi; k++) {
                if (lits[k].len > pos && memcmp(text + lits[k].off, t, pos) == 0) {
                    return R_OK;
                }
            }
            end_match(w);
        }
        return R_OK;
    }
    int64_t complete = match_complete(w);
    if (complete >= 0) {
        lx->cand = (uint32_t)complete;
        end_match(w);
        return R_PASS;
    }
    return R_REJECT;
}

/* ---- structure ------------------------------------------------------------------------------- */

static uint8_t class_of_byte(uint8_t c) {
    switch (c) {
    case '{':
        return JC_OBJ;
    case '[':
        return JC_ARR;
    case '"':
        return JC_STR;
    case 't':
        return JC_TRUE;
    case 'f':
        return JC_FALSE;
    case 'n':
        return JC_NULL;
    default:
        return (c >= '0' && c <= '9') || c == '-' ? JC_NUM : 0;
    }
}

static void start_match(js_walker *w, uint32_t base, uint32_t lo, uint32_t hi, bool is_key) {
    js_lex *lx = &w->lex;
    lx->kind = L_MATCH;
    lx->is_key = is_key;
    lx->base = base;
    lx->cand = lo;
    lx->hi = hi;
    lx->n = 0;
}

static bool value_start(js_walker *w, int32_t id, uint8_t c) {
    const json_schema *s = w->schema;
    uint8_t cls = class_of_byte(c);
    const js_node *n = &s->nodes[id];
    while (n->kind == JN_ANYOF) {
        uint32_t i = 0;
        while (i < n->n_alts && !(s->nodes[s->alts[n->alt_first + i]].classes & cls)) {
            i++;
        }
        if (i == n->n_alts) {
            return false;
        }
        id = s->alts[n->alt_first + i];
        n = &s->nodes[id];
    }
    if (!(n->classes & cls)) {
        return false;
    }
    if (n->kind == JN_ENUM) {
        start_match(w, n->lit_first, 0, n->n_lits - 1, false);
        return match_step(w, c) == R_OK;
    }
    switch (cls) {
    case JC_OBJ:
        return push(w, id, F_OBJ, P_OBJ_OPEN);
    case JC_ARR:
        return push(w, id, F_ARR, P_ARR_OPEN);
    case JC_STR:
        js_lex_string(&w->lex, n->min_len, n->max_len, false);
        return true;
    case JC_NUM:
        w->lex.kind = L_NUM;
        w->lex.sub = N_START;
        w->lex.n = 0;
        w->lex.node = id;
        return num_step(w, c) == R_OK;
    default:
        w->lex.kind = L_LIT;
        w->lex.sub = cls == JC_TRUE ? 0 : cls == JC_FALSE ? 1 : 2;
        w->lex.n = 1;
        return true;
    }
}

static bool obj_can_close(const json_schema *s, const js_node *n, uint32_t next) {
    return !n->listed || next >= n->n_props ||
           s->props[n->prop_first + next].req_next >= n->n_props;
}

static bool key_start(js_walker *w) {
    const json_schema *s = w->schema;
    js_frame *f = top_mut(w);
    const js_node *n = &s->nodes[f->node];
    f->phase = P_OBJ_COLON;
    if (n->listed) {
        if (f->a >= n->n_props) {
            return false;
        }
        /* any property from the next one up to and including the next required one */
        uint32_t hi = s->props[n->prop_first + f->a].req_next;
        if (hi >= n->n_props) {
            hi = n->n_props - 1;
        }
        start_match(w, n->key_lit, f->a, hi, true);
        return true;
    }
    if (n->additional < 0) {
        return false;
    }
    js_lex_string(&w->lex, 0, UINT32_MAX, true);
    return true;
}

static bool struct_step(js_walker *w, uint8_t c) {
    const json_schema *s = w->schema;
    const js_frame *top = top_peek(w);
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        if (top->kind == F_TOP || w->lex.ws) {
            return false;
        }
        w->lex.ws = 1;
        return true;
    }
    w->lex.ws = 0;
    const js_node *n = &s->nodes[top->node];
    switch (top->phase) {
    case P_TOP_START:
        top_mut(w)->phase = P_TOP_DONE;
        return value_start(w, s->root, c);
    case P_OBJ_OPEN:
        if (c == '}') {
            if (!obj_can_close(s, n, top->a)) {
                return false;
            }
            pop(w);
            return true;
        }
        return c == '"' && key_start(w);
    case P_OBJ_KEY:
        return c == '"' && key_start(w);
    case P_OBJ_COLON:
        if (c != ':') {
            return false;
        }
        top_mut(w)->phase = P_OBJ_VALUE;
        return true;
    case P_OBJ_VALUE: {
        js_frame *f = top_mut(w);
        f->phase = P_OBJ_NEXT;
        return value_start(w, n->listed ? s->props[n->prop_first + f->b].node : n->additional, c);
    }
    case P_OBJ_NEXT:
        if (c == ',') {
            if (n->listed ? top->a >= n->n_props : n->additional < 0) {
                return false;
            }
            top_mut(w)->phase = P_OBJ_KEY;
            return true;
        }
        if (c == '}' && obj_can_close(s, n, top->a)) {
            pop(w);
            return true;
        }
        return false;
    case P_ARR_OPEN:
        if (c == ']') {
            if (n->min_items > 0) {
                return false;
            }
            pop(w);
            return true;
        }
        /* anything else starts the first element */
        /* fall through */
    case P_ARR_VALUE: {
        if (top->a >= n->max_items) {
            return false;
        }
        js_frame *f = top_mut(w);
        f->a++;
        f->phase = P_ARR_NEXT;
        return value_start(w, n->items, c);
    }
    case P_ARR_NEXT:
        if (c == ',') {
            if (top->a >= n->max_items) {
                return false;
            }
            top_mut(w)->phase = P_ARR_VALUE;
            return true;
        }
        if (c == ']' && top->a >= n->min_items) {
            pop(w);
            return true;
        }
        return false;
    default:
        return false; /* P_TOP_DONE, P_TOP_EOG */
    }
}

bool js_step(js_walker *w, uint8_t c) {
    int r;
    switch (w->lex.kind) {
    case L_STR:
        return str_step(w, c) == R_OK;
    case L_LIT: {
        js_lex *lx = &w->lex;
        if ((uint8_t)literal_text[lx->sub][lx->n] != c) {
            return false;
        }
        if (++lx->n == literal_len[lx->sub]) {
            lx->kind = L_NONE;
        }
        return true;
    }
    case L_NUM:
        r = num_step(w, c);
        break;
    case L_MATCH:
        r = match_step(w, c);
        break;
    default:
        r = R_PASS;
        break;
    }
    if (r != R_PASS) {
        return r == R_OK;
    }
    return struct_step(w, c);
}

bool js_walk(js_walker *w, const uint8_t *bytes, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (!js_step(w, bytes[i])) {
            return false;
        }
    }
    return true;
}

bool js_can_end(const js_walker *w) {
    if (w->split + w->n_ov != 1) {
        return false;
    }
    const js_frame *top = top_peek(w);
    if (top->phase != P_TOP_DONE) {
        return false;
    }
    switch (w->lex.kind) {
    case L_NONE:
        return true;
    case L_NUM:
        return num_endable(w->lex.sub);
    case L_MATCH:
        return match_complete(w) >= 0;
    default:
        return false;
    }
}

bool js_walker_done(const js_walker *w) { return top_peek(w)->phase == P_TOP_EOG; }

/* ---- state API ------------------------------------------------------------------------------- */

void json_state_free(json_state *state) {
    if (state == NULL) {
        return;
    }
    json_schema_free(state->own_schema);
    free(state);
}

edgelm_status json_state_create(const json_vocab *vocab, const json_schema *schema,
                                json_state **out) {
    if (out == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (vocab == NULL) {
        return EDGELM_ERR_INVALID_ARGUMENT;
    }
    json_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        return EDGELM_ERR_OUT_OF_MEMORY;
    }
    st->vocab = vocab;
    if (schema == NULL) {
        static const char object_schema[] = "{\"type\":\"object\"}";
        char err[128];
        edgelm_status rc = json_schema_compile(object_schema, sizeof object_schema - 1,
                                               &st->own_schema, err, sizeof err);
        if (rc != EDGELM_OK) {
            json_state_free(st);
            return rc;
        }
        schema = st->own_schema;
    }
    st->schema = schema;
    json_state_reset(st);
    *out = st;
    return EDGELM_OK;
}

void json_state_reset(json_state *state) {
    if (state == NULL) {
        return;
    }
    memset(&state->lex, 0, sizeof state->lex);
    memset(&state->stack[0], 0, sizeof state->stack[0]);
    state->stack[0].kind = F_TOP;
    state->stack[0].phase = P_TOP_START;
    state->stack[0].node = state->schema->root;
    state->depth = 1;
}

static bool state_can_end(const json_state *state) {
    js_walker w;
    js_walker_init(&w, state);
    return js_can_end(&w);
}

bool json_state_allows(const json_state *state, int32_t token) {
    if (state == NULL || token < 0 || token >= state->vocab->n_vocab) {
        return false;
    }
    const json_vocab *v = state->vocab;
    if (v->is_eog[token]) {
        return state_can_end(state);
    }
    size_t len;
    const uint8_t *b = js_token_bytes(v, token, &len);
    if (len == 0) {
        return false;
    }
    js_walker w;
    js_walker_init(&w, state);
    return js_walk(&w, b, len);
}

bool json_state_accept(json_state *state, int32_t token) {
    if (state == NULL || token < 0 || token >= state->vocab->n_vocab) {
        return false;
    }
    const json_vocab *v = state->vocab;
    if (v->is_eog[token]) {
        if (!state_can_end(state)) {
            return false;
        }
        state->lex.kind = L_NONE;
        state->stack[0].phase = P_TOP_EOG;
        return true;
    }
    size_t len;
    const uint8_t *b = js_token_bytes(v, token, &len);
    js_walker w;
    js_walker_init(&w, state);
    if (len == 0 || !js_walk(&w, b, len)) {
        return false;
    }
    walker_commit(state, &w);
    return true;
}

bool json_state_complete(const json_state *state) {
    if (state == NULL) {
        return false;
    }
    if (state->stack[0].phase == P_TOP_EOG) {
        return true;
    }
    return state->lex.kind == L_NONE && state_can_end(state);
}
