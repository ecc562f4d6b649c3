/* random.h - the engine's pseudo-random numbers: splitmix64 (Steele, Lea, Flood 2014) to expand
 * a 64-bit seed, xoshiro256** (Blackman, Vigna 2018) for the stream. Deterministic for a seed on
 * every target; the state is the caller's (no globals), so any number of streams may run.
 */
#ifndef EDGELM_RANDOM_H
#define EDGELM_RANDOM_H

#include <stdint.h>

/* Advance a splitmix64 state and return the next word; any state, 0 included, is valid. */
uint64_t splitmix64_next(uint64_t *state);
/* A xoshiro256** state from one seed: its four words are the next four splitmix64 words. */
void xoshiro_seed(uint64_t state[4], uint64_t seed);
uint64_t xoshiro_next(uint64_t state[4]);

#endif /* EDGELM_RANDOM_H */
