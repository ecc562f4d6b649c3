/* json_internal.h - what the JSON grammar files share: the compiled schema layout, the parse
 * state (frame stack + scalar lexer), the byte walker that is the one automaton behind allows,
 * accept, mask and closing, and the small schema-text parser. Not a public interface; tests may
 * include it to reach the byte-level entry points.
 * Invariants: a walker reads its state's stack and only ever writes to its own overlay; every
 * byte sequence the walker accepts can be completed (closing) into a valid document.
 */
#ifndef EDGELM_JSON_INTERNAL_H
#define EDGELM_JSON_INTERNAL_H

#include "json_grammar.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits ------------------------------------------------------------------------------- */

#define JS_MAX_DEPTH 128      /* open containers (plus the top frame) in one document */
#define JS_OVERLAY 12         /* containers one token may open (more: the token is refused) */
#define JS_NUM_MAX 32         /* bytes of one number (cJSON and most parsers read <= 63) */
#define JS_MIN_TEXT_MAX 65536 /* bytes of the minimal value of one schema node */
#define JS_PARSE_MAX_DEPTH 64 /* nesting of the schema text itself */
#define JS_SCHEMA_MAX_BYTES (1u << 20)

/* ---- compiled schema --------------------------------------------------------------------- */

/* First-byte classes of a JSON value: what a node may generate, and what anyOf alternatives
 * are told apart by. */
enum {
    JC_OBJ = 1,   /* { */
    JC_ARR = 2,   /* [ */
    JC_STR = 4,   /* " */
    JC_NUM = 8,   /* - 0-9 */
    JC_TRUE = 16, /* t */
    JC_FALSE = 32,
    JC_NULL = 64,
    JC_ALL = 127
};

enum { JN_PLAIN = 0, JN_ANYOF = 1, JN_ENUM = 2 };

typedef struct js_node {
    uint8_t kind;        /* JN_* */
    uint8_t classes;     /* JC_* this node generates (union over alternatives / enum values) */
    uint8_t integer;     /* numbers without fraction or exponent */
    uint8_t listed;      /* objects: keys only from props, in order (else free keys) */
    uint8_t sem;         /* JC_* of every value that validates (for the oneOf exclusivity check) */
    int32_t additional;  /* free-key objects: node of every value; -1 = no key at all */
    uint32_t prop_first; /* objects (listed): props[prop_first .. +n_props) in schema order */
    uint32_t n_props;
    uint32_t key_lit; /* lits[key_lit + i] is the key text of property i (escaped, + '"') */
    int32_t items;    /* arrays: element node */
    uint32_t min_items, max_items;
    uint32_t min_len, max_len;   /* strings, in characters (code points) */
    uint32_t alt_first, n_alts;  /* JN_ANYOF: alts[alt_first ..]: node ids, disjoint classes */
    uint32_t lit_first, n_lits;  /* JN_ENUM: lits[lit_first ..]: compact JSON texts */
    uint32_t min_off, min_bytes; /* shortest value text: text[min_off .. +min_bytes) */
} js_node;

typedef struct js_prop {
    int32_t node;
    uint32_t req_next; /* first required property index >= this one (n_props if none) */
    uint8_t required;
} js_prop;

typedef struct js_lit {
    uint32_t off, len; /* text[off .. +len) */
} js_lit;

struct json_schema {
    js_node *nodes; /* nodes[0] is "any value" */
    uint32_t n_nodes;
    js_prop *props;
    uint32_t n_props;
    int32_t *alts;
    uint32_t n_alts;
    js_lit *lits;
    uint32_t n_lits;
    char *text; /* literal and minimal-value bytes */
    size_t text_len;
    int32_t root;
};

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

enum { L_NONE = 0, L_STR, L_NUM, L_LIT, L_MATCH };
/* string sub-states */
enum { S_CHAR = 0, S_ESC, S_HEX, S_LOW_BS, S_LOW_U };
/* number sub-states (RFC 8259 section 6) */
enum { N_START = 0, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

/* The scalar being read (string, number, literal, enum text or object key) plus the
 * whitespace flag. Owned by the top frame: nothing is pushed while a scalar is open. */
typedef struct js_lex {
    uint8_t kind;                  /* L_* */
    uint8_t sub;                   /* S_* / N_* / literal index */
    uint8_t is_key;                /* the scalar is an object key */
    uint8_t ws;                    /* the previous byte was whitespace */
    uint8_t u8_need, u8_lo, u8_hi; /* UTF-8 continuation bytes still due, range of the next */
    uint8_t hex_n;                 /* \u digits read */
    uint8_t low;                   /* reading the low half of a surrogate pair */
    uint16_t hex;                  /* \u value so far */
    uint32_t n;                    /* string: characters; number/literal/match: bytes */
    uint32_t min_len, max_len;     /* string bounds */
    int32_t node;                  /* number: its node (integer flag) */
    uint32_t base, cand, hi;       /* match: lits[base + cand] best candidate, candidates <= hi */
} js_lex;

struct json_state {
    const json_vocab *vocab;
    const json_schema *schema;
    json_schema *own_schema; /* the default schema when created with NULL */
    js_frame *stack;         /* JS_MAX_DEPTH frames, stack[0] is F_TOP */
    uint32_t depth;
    js_lex lex;
};

/* A virtual state: the first `split` frames of a base stack, then frames of its own. */
typedef struct js_walker {
    const json_schema *schema;
    const js_frame *base;
    uint32_t split, n_ov;
    js_lex lex;
    js_frame ov[JS_OVERLAY + 1]; /* + the modified parent a token starts from */
} js_walker;

struct json_vocab {
    int32_t n_vocab;
    uint32_t *off; /* (n_vocab + 1) offsets into bytes */
    uint8_t *bytes;
    uint8_t *is_eog;       /* (n_vocab) */
    int32_t eog;           /* the end token budget forcing uses, -1 if none */
    int32_t n_sorted;      /* tokens with bytes and not end-of-generation, sorted by bytes */
    int32_t *sorted;       /* token ids */
    uint32_t *sorted_off;  /* (n_sorted + 1) offsets into sorted_bytes: the mask reads the */
    uint8_t *sorted_bytes; /* bytes in sorted order, sequentially */
    uint8_t *lcp;          /* common prefix with the previous sorted token, capped at 255 */
    int32_t *str_info;     /* from a plain in-string state: >= 0 characters added (no quote),
                            * -1 refused (or no bytes, or an end token), -2 contains a closing
                            * quote (walk it) */
    int32_t n_special;     /* end tokens and tokens without bytes */
    int32_t *special;
    uint32_t max_len; /* longest token in bytes */
};

/* ---- walker (json_grammar.c) --------------------------------------------------------------- */

void js_walker_init(js_walker *w, const json_state *state);
bool js_step(js_walker *w, uint8_t c);
bool js_walk(js_walker *w, const uint8_t *bytes, size_t len);
bool js_can_end(const js_walker *w);
bool js_walker_done(const js_walker *w); /* end of generation accepted */
bool js_clean_string(const js_lex *lx);
/* One string-content byte from lx (no parent frames involved): 1 ok, 0 refused, 2 closing
 * quote (bounds not checked). */
int js_str_byte(js_lex *lx, uint8_t c);
void js_lex_string(js_lex *lx, uint32_t min_len, uint32_t max_len, bool is_key);

/* ---- closing (json_closing.c) -------------------------------------------------------------- */

/* Shortest completion of the walker's state; writes at most buf_size - 1 bytes (NUL after
 * them if buf_size > 0) and returns the full length. */
size_t js_closing(const js_walker *w, char *buf, size_t buf_size);

/* ---- vocabulary (json_vocab.c) ------------------------------------------------------------- */

/* From explicit token bytes (tests build exact vocabularies this way). eog may be NULL. */
edgelm_status json_vocab_create_from_pieces(const char *const *pieces, const size_t *lens,
                                            int32_t n_vocab, const uint8_t *eog, json_vocab **out);
static inline const uint8_t *js_token_bytes(const json_vocab *v, int32_t t, size_t *len) {
    *len = v->off[t + 1] - v->off[t];
    return v->bytes + v->off[t];
}

/* ---- schema text parser (json_parse.c) ----------------------------------------------------- */

enum { JV_NULL = 0, JV_FALSE, JV_TRUE, JV_NUMBER, JV_STRING, JV_ARRAY, JV_OBJECT };

typedef struct js_value js_value;
struct js_value {
    uint8_t type;
    size_t len;      /* string: bytes; number: lexeme bytes; array/object: members */
    char *str;       /* string (decoded UTF-8, NUL-terminated) or number lexeme */
    js_value *items; /* array elements / object member values */
    char **keys;     /* object member names (decoded, NUL-terminated) */
    size_t *key_lens;
};

/* Strict RFC 8259 parse of one value (whitespace around it allowed), nesting at most
 * JS_PARSE_MAX_DEPTH, duplicate object keys refused. EDGELM_ERR_BAD_SCHEMA with
 * "offset N: why" in err. */
edgelm_status jv_parse(const char *text, size_t len, js_value *out, char *err, size_t err_size);
void jv_free(js_value *v);
/* Compact serialization (no whitespace, minimal escapes, numbers as written) appended to a
 * growing buffer; false when out of memory or over max_bytes. */
typedef struct js_buf {
    char *data;
    size_t len, cap;
} js_buf;
bool js_buf_put(js_buf *b, const void *bytes, size_t n);
bool jv_serialize(const js_value *v, js_buf *b);
bool js_serialize_string(const char *s, size_t len, js_buf *b);

#endif /* EDGELM_JSON_INTERNAL_H */
