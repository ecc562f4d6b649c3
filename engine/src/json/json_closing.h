/* json_closing.h - budget forcing: the shortest byte sequence that completes the document from
 * the current state, and the token that makes the most progress along it. Not part of the
 * automaton: it reads a walker's frames and lexer and emits only bytes the automaton accepts.
 */
#ifndef EDGELM_JSON_CLOSING_H
#define EDGELM_JSON_CLOSING_H

#include "json_grammar.h"

#include <stddef.h>
#include <stdint.h>

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

#endif /* EDGELM_JSON_CLOSING_H */
