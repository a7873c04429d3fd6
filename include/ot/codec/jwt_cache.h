/* A small cache of recently verified tokens, so a keep-alive client does not
 * pay HMAC-SHA256, base64 and JSON on every request (issue 12: verification
 * was two thirds of a GET /orders/:id).
 *
 * Keyed by the token's exact bytes: only a token that verified under the
 * current secret is ever stored, and a hit needs every byte of the presented
 * token to equal a stored one (compared in constant time), so a forged or
 * altered token can never hit; it takes the full ot_jwt_verify path. The
 * bucket index is a SipHash-2-4 of the token under a per-process random key,
 * so a client cannot aim its tokens at a chosen bucket to evict others.
 * A hit still honours `exp` against the caller's clock; a secret different
 * from the one the entries were verified under empties the cache.
 *
 * Direct-mapped: a new token replaces whatever shared its bucket. Fixed
 * memory (slots × ~600 bytes), no allocation after creation. Single-threaded
 * (one per worker loop). */
#ifndef OT_JWT_CACHE_H
#define OT_JWT_CACHE_H

#include "ot/codec/jwt.h"
#include "ot/core/common.h"

#define OT_JWT_CACHE_TOKEN_MAX 512 /* longer tokens are verified every time */

typedef struct ot_jwt_cache ot_jwt_cache;

/* `slots` is rounded up to a power of two (at least 16). NULL on ENOMEM. */
ot_jwt_cache *ot_jwt_cache_new(size_t slots);
void ot_jwt_cache_free(ot_jwt_cache *c);
void ot_jwt_cache_clear(ot_jwt_cache *c);

/* Same contract as ot_jwt_verify; consults the cache first and stores what
 * verified. c may be NULL (plain ot_jwt_verify). */
int ot_jwt_verify_cached(ot_jwt_cache *c, ot_str secret, ot_str token, int64_t now_s, ot_jwt_claims *out);

typedef struct {
    uint64_t hits, misses, stores;
} ot_jwt_cache_stats;
ot_jwt_cache_stats ot_jwt_cache_get_stats(const ot_jwt_cache *c);

/* SipHash-2-4 (Aumasson & Bernstein) of data under a 128-bit key; exposed for
 * its test vectors. */
uint64_t ot_siphash24(const uint8_t key[16], const void *data, size_t len);

#endif
