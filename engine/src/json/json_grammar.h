/* json_grammar.h - grammar-constrained generation: a pushdown automaton for RFC 8259 JSON
 * (optionally narrowed by a compiled JSON Schema) applied per token.
 *
 * Three objects:
 *  - json_vocab: every token's output bytes, precomputed once per model (immutable, shareable);
 *  - json_schema: a compiled schema (immutable); NULL means "any JSON, object at the top level";
 *  - json_state: the parse state of one generation (stack of open containers + lexer state),
 *    sized at creation; accepting a token or testing one allocates nothing.
 * A token is allowed only if every one of its bytes is accepted from the current state
 * (multi-lexeme tokens, byte-fallback tokens and partial UTF-8 included). At most one
 * whitespace byte between lexemes and none at the top level. End of text only after a complete
 * top-level value.
 */
#ifndef EDGELM_JSON_GRAMMAR_H
#define EDGELM_JSON_GRAMMAR_H

#include "edgelm.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct json_vocab json_vocab;
typedef struct json_schema json_schema;
typedef struct json_state json_state;

/* Token bytes from the tokenizer (token_to_piece of every token); control tokens have no bytes
 * and are never allowed inside JSON. */
edgelm_status json_vocab_create(const tokenizer *tok, json_vocab **out);
void json_vocab_free(json_vocab *vocab);

/* Compile a schema (len bytes of JSON text). Unsupported keywords and invalid schemas are
 * EDGELM_ERR_BAD_SCHEMA with a message naming the keyword and its JSON pointer in err.
 * What is supported and how (property order, anyOf/oneOf, enum) is listed in json_schema.c. */
edgelm_status json_schema_compile(const char *text, size_t len, json_schema **out, char *err,
                                  size_t err_size);
void json_schema_free(json_schema *schema);

/* schema may be NULL (plain JSON, object at the top level). vocab and schema must outlive it. */
edgelm_status json_state_create(const json_vocab *vocab, const json_schema *schema,
                                json_state **out);
void json_state_free(json_state *state);
void json_state_reset(json_state *state);

/* Would the whole token be accepted from the current state? (No state change.) */
bool json_state_allows(const json_state *state, int32_t token);
/* Advance over an allowed token's bytes. Returns false (state unchanged) if it is not allowed. */
bool json_state_accept(json_state *state, int32_t token);
/* Set logits[t] = -INFINITY for every token not allowed now (n_vocab entries). The end-of-
 * generation token(s) are allowed exactly when the value may end here: when it is complete,
 * and also after a top-level number that could still grow (schema "type": "number"). */
void json_state_mask(const json_state *state, float *logits, int32_t n_vocab);
/* True when a complete top-level value has been read (generation should end). */
bool json_state_complete(const json_state *state);
/* Bytes of the shortest continuation that completes the value (for budget forcing), written to
 * buf (NUL-terminated when it fits); returns its length. */
size_t json_state_closing(const json_state *state, char *buf, size_t buf_size);
/* Budget forcing: the allowed token that makes the most progress along the shortest closing
 * sequence (longest token that is a prefix of it), or -1 when complete. When the closing is
 * empty but the value is not complete (a top-level number), the end token (-1 if the
 * vocabulary has none). */
int32_t json_state_closing_token(const json_state *state);
/* Length json_state_closing would return after accepting token (state unchanged); SIZE_MAX
 * when the token is not allowed, 0 for an allowed end token. For a budget: accepting only
 * tokens whose closing_after fits in the tokens left minus one, and forcing otherwise, always
 * ends with a complete value when every byte has a token of its own (byte-fallback and
 * byte-level vocabularies). */
size_t json_state_closing_after(const json_state *state, int32_t token);

#endif /* EDGELM_JSON_GRAMMAR_H */
