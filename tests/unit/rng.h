/* A tiny seeded PRNG for the randomized property tests (xorshift64):
 * reproducible from the seed a failure prints. Seed `rng` non-zero. */
#ifndef OT_TEST_RNG_H
#define OT_TEST_RNG_H

#include <stdint.h>

static uint64_t rng;
static inline uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

#endif
