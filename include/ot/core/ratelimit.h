/* Token-bucket rate limiting per key (client IP bytes, user id), per worker.
 *
 * Memory is fixed at creation: an open-addressing table of `capacity` slots
 * (rounded up to a power of two) that never allocates again. A key may live
 * only in the OT_RATELIMIT_WAYS slots after its hash position (like a
 * set-associative cache), so lookup and eviction cost O(ways), never a table
 * scan. When a new key finds those slots taken, the victim is chosen in this
 * order: a bucket that has refilled to full (indistinguishable from a key we
 * never saw, so forgetting it loses nothing), else the least recently touched
 * one. Forgetting a non-full bucket hands that key a fresh burst: the price of
 * bounded memory under a flood of distinct keys; size `capacity` above the
 * number of clients active within burst/rate seconds to make it rare.
 *
 * Keys longer than OT_RATELIMIT_KEY_MAX are told apart by their length, a
 * seeded 64-bit hash and their first OT_RATELIMIT_KEY_MAX bytes. The hash seed
 * is random per table, so clients cannot aim keys at one slot group. */
#ifndef OT_RATELIMIT_H
#define OT_RATELIMIT_H

#include "ot/core/common.h"

#define OT_RATELIMIT_KEY_MAX 64
#define OT_RATELIMIT_WAYS 8

typedef struct ot_ratelimit ot_ratelimit;

/* rate tokens/s, burst tokens (at least 1), capacity = keys tracked (at least
 * OT_RATELIMIT_WAYS). rate <= 0 disables: the limiter allows everything and
 * holds no table. Returns NULL on allocation failure or a non-finite argument. */
ot_ratelimit *ot_ratelimit_new(double rate, double burst, size_t capacity);
void ot_ratelimit_free(ot_ratelimit *rl);

/* Takes one token for key at time now_ms (a monotonic clock; a step backwards
 * is treated as no time passing). Returns 0 if allowed; else OT_ERR with
 * *retry_after_s = whole seconds until a token is available (>= 1), for the
 * Retry-After header (RFC 9110 §10.2.3). A NULL or disabled limiter allows. */
int ot_ratelimit_take(ot_ratelimit *rl, const void *key, size_t keylen, uint64_t now_ms,
                      uint32_t *retry_after_s);

/* ---- concurrency caps per key (expensive jobs in flight) ----
 *
 * How many jobs (password hashes) may be queued or running at once: at most
 * max_total in all and max_per_key for one key (client address), so one
 * client cannot fill the queue others wait in. Memory is fixed: one slot per
 * job that can be in flight, searched linearly (max_total is small: each job
 * is tens of milliseconds of a pool thread). */
typedef struct ot_inflight ot_inflight;

enum { OT_INFLIGHT_EKEY = -2, OT_INFLIGHT_EFULL = -3 };

/* NULL on allocation failure or a zero bound. */
ot_inflight *ot_inflight_new(uint32_t max_total, uint32_t max_per_key);
void ot_inflight_free(ot_inflight *f);
/* 0: the job may start (release it later with the same key); OT_INFLIGHT_EKEY:
 * this key has max_per_key in flight (checked first); OT_INFLIGHT_EFULL:
 * max_total in flight.
 * Keys longer than OT_RATELIMIT_KEY_MAX are compared on their first bytes. */
int ot_inflight_acquire(ot_inflight *f, const void *key, size_t keylen);
void ot_inflight_release(ot_inflight *f, const void *key, size_t keylen);
uint32_t ot_inflight_count(const ot_inflight *f);

#endif
