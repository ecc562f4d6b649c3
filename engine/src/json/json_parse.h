/* json_parse.h - a small strict JSON reader (a DOM of js_value) and a compact serializer, for
 * schema text only: the schema compiler is its one user. Not the grammar (generation never
 * parses a document) and not a general-purpose parser. The bottom of the json modules: it
 * includes none of the others.
 * Invariants: a parsed value owns all its memory (jv_free releases it); strings are valid UTF-8.
 */
#ifndef EDGELM_JSON_PARSE_H
#define EDGELM_JSON_PARSE_H

#include "edgelm.h"

#include "base/byte_buffer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JS_PARSE_MAX_DEPTH 64 /* nesting of the schema text itself */
#define JS_SCHEMA_MAX_BYTES (1u << 20)

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
 * growing buffer; false when out of memory. */
bool jv_serialize(const js_value *v, byte_buffer *b);
bool js_serialize_string(const char *s, size_t len, byte_buffer *b);

#endif /* EDGELM_JSON_PARSE_H */
