/* json_grammar.h - grammar-constrained generation: a pushdown automaton for RFC 8259 JSON
 * (optionally narrowed by a compiled JSON Schema) applied per token. Three objects:
 *  - json_vocab (json_vocab.h): every token's output bytes, precomputed once per model;
 *  - json_schema (json_schema.h): a compiled schema; NULL means "any JSON, object at the top";
 *  - json_state (here): the parse state of one generation (stack of open containers + lexer
 *    state), sized at creation; accepting a token or testing one allocates nothing.
 * The mask over the whole vocabulary is json_mask.h, budget forcing json_closing.h.
 * A token is allowed only if every one of its bytes is accepted from the current state
 * (multi-lexeme tokens, byte-fallback tokens and partial UTF-8 included). At most one
 * whitespace byte between lexemes and none at the top level. End of text only after a complete
 * top-level value.
 * Invariants: a walker reads its state's stack and only ever writes to its own overlay; every
 * byte sequence the walker accepts can be completed (closing) into a valid document.
 */
#ifndef EDGELM_JSON_GRAMMAR_H
#define EDGELM_JSON_GRAMMAR_H

#include "edgelm.h"
#include "json_lex.h"
#include "json_schema.h"
#include "json_vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct json_state json_state;

/* schema may be NULL (plain JSON, object at the top level). vocab and schema must outlive it. */
edgelm_status json_state_create(const json_vocab *vocab, const json_schema *schema,
                                json_state **out);
void json_state_free(json_state *state);
void json_state_reset(json_state *state);

/* Would the whole token be accepted from the current state? (No state change.) */
bool json_state_allows(const json_state *state, int32_t token);
/* Advance over an allowed token's bytes. Returns false (state unchanged) if it is not allowed. */
bool json_state_accept(json_state *state, int32_t token);
/* True when a complete top-level value has been read (generation should end). */
bool json_state_complete(const json_state *state);

/* ---- limits ------------------------------------------------------------------------------- */

#define JS_MAX_DEPTH 128 /* open containers (plus the top frame) in one document */
#define JS_OVERLAY 12    /* containers one token may open (more: the token is refused) */
#define JS_NUM_MAX 32    /* bytes of one number (cJSON and most parsers read <= 63) */

/* ---- parse state ------------------------------------------------------------------------- */

enum { F_TOP = 0, F_OBJ = 1, F_ARR = 2 };
enum {
    P_TOP_START = 0, /* nothing yet */
    P_TOP_DONE,      /* the value started (complete once the stack is back to the top frame) */
    P_TOP_EOG,       /* end of generation accepted: nothing more */
    P_OBJ_OPEN,      /* after '{': key or '}' */
    P_OBJ_KEY,       /* after ',': key */
    P_OBJ_COLON,     /* key started or read: ':' next */
    P_OBJ_VALUE,     /* after ':': value */
    P_OBJ_NEXT,      /* value started or read: ',' or '}' */
    P_ARR_OPEN,      /* after '[': value or ']' */
    P_ARR_VALUE,     /* after ',': value */
    P_ARR_NEXT       /* value started or read: ',' or ']' */
};

typedef struct js_frame {
    int32_t node;
    uint32_t a; /* object: first property that may still come; array: elements started */
    uint32_t b; /* object (listed): the current property once its key is read */
    uint8_t kind, phase;
} js_frame;

struct json_state {
    const json_vocab *vocab;
    const json_schema *schema;
    json_schema *own_schema;      /* the default schema when created with NULL */
    js_frame stack[JS_MAX_DEPTH]; /* stack[0] is F_TOP */
    uint32_t depth;
    js_lex lex;
};

/* ---- walker ------------------------------------------------------------------------------- */

/* A virtual state: the first `split` frames of a base stack, then frames of its own. */
typedef struct js_walker {
    const json_schema *schema;
    const js_frame *base;
    uint32_t split, n_ov;
    js_lex lex;
    js_frame ov[JS_OVERLAY + 1]; /* + the modified parent a token starts from */
} js_walker;

void js_walker_init(js_walker *w, const json_state *state);
bool js_step(js_walker *w, uint8_t c);
bool js_walk(js_walker *w, const uint8_t *bytes, size_t len);
bool js_can_end(const js_walker *w);
bool js_walker_done(const js_walker *w); /* end of generation accepted */

#endif /* EDGELM_JSON_GRAMMAR_H */
