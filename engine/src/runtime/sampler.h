/* sampler.h - choose the next token from logits: greedy, or repetition penalty -> top-k ->
 * top-p -> min-p -> temperature -> draw (llama.cpp's default chain order).
 *
 * All scratch is allocated once at creation for the vocabulary size: sampling allocates nothing
 * and never sorts the whole vocabulary (top-k by partial selection; top-p/min-p on the
 * survivors). Deterministic for a given seed.
 */
#ifndef EDGELM_SAMPLER_H
#define EDGELM_SAMPLER_H

#include "edgelm.h"

typedef struct sampler sampler;

/* NULL when out of memory. */
sampler *sampler_create(int32_t n_vocab);
void sampler_free(sampler *s);

/* Set parameters, reset the RNG to params->seed and clear the penalty history. */
void sampler_configure(sampler *s, const edgelm_sampler_params *params);
/* Pick a token from n_vocab logits (logits are not modified). */
int32_t sampler_sample(sampler *s, const float *logits);
/* Record a token (prompt or generated) in the repetition-penalty history. */
void sampler_accept(sampler *s, int32_t token);

#endif /* EDGELM_SAMPLER_H */
