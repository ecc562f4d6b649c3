/* json_schema.h - JSON Schema compiled into the node graph the grammar walks: the compiler and
 * the compiled layout (nodes, properties, anyOf alternatives, literal texts). Not the
 * automaton (json_grammar.h) and not the schema-text parser (json_parse.h, used by the
 * compiler only). A compiled schema is immutable; every node in it is satisfiable and has a
 * precomputed shortest value (text[min_off .. +min_bytes)).
 */
#ifndef EDGELM_JSON_SCHEMA_H
#define EDGELM_JSON_SCHEMA_H

#include "edgelm.h"

#include <stddef.h>
#include <stdint.h>

#define JS_MIN_TEXT_MAX 65536 /* bytes of the minimal value of one schema node */

typedef struct json_schema json_schema;

/* Compile a schema (len bytes of JSON text). Unsupported keywords and invalid schemas are
 * EDGELM_ERR_BAD_SCHEMA with a message naming the keyword and its JSON pointer in err.
 * What is supported and how (property order, anyOf/oneOf, enum) is listed in json_schema.c. */
edgelm_status json_schema_compile(const char *text, size_t len, json_schema **out, char *err,
                                  size_t err_size);
void json_schema_free(json_schema *schema);

/* ---- compiled layout ---------------------------------------------------------------------- */

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

#endif /* EDGELM_JSON_SCHEMA_H */
