/*
 * rng.h — the small pseudo-random generators of the tests: reproducible
 * from a printed seed, never cryptographic. Free of Criterion (the crash
 * harness and the TSan harness runs use them).
 */
#ifndef BO_TEST_RNG_H
#define BO_TEST_RNG_H

#include <stdint.h>

/* xorshift64*: the next number of the sequence in *state, which it
 * advances. *state must not be 0 (the sequence would stay 0). */
uint64_t trng_xorshift(uint64_t *state);

/* splitmix64's output function of x: a bijection that spreads every input
 * bit over the whole word; mix64(seed ^ mix64(i)) derives independent
 * seeds from one. The crash test and its harness derive the same seeds
 * from it, so it must not change. */
uint64_t trng_mix64(uint64_t x);

#endif /* BO_TEST_RNG_H */
