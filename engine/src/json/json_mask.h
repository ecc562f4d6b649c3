/* json_mask.h - the grammar applied to a whole logits array at once: one pass over the
 * vocabulary that refuses every token the automaton would refuse. Not a second automaton: it
 * only drives json_grammar.h's walker (and json_vocab.h's precomputed tables), so the mask and
 * json_state_allows agree on every token (the tests compare them).
 */
#ifndef EDGELM_JSON_MASK_H
#define EDGELM_JSON_MASK_H

#include "json_grammar.h"

#include <stdint.h>

/* Set logits[t] = -INFINITY for every token not allowed now (n_vocab entries). The end-of-
 * generation token(s) are allowed exactly when the value may end here: when it is complete,
 * and also after a top-level number that could still grow (schema "type": "number"). */
void json_state_mask(const json_state *state, float *logits, int32_t n_vocab);

#endif /* EDGELM_JSON_MASK_H */
