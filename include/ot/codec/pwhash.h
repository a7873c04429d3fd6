/* Password hashing with scrypt (RFC 7914) through OpenSSL.
 *
 * Stored form: "scrypt$<log2N>$<r>$<p>$<salt>$<key>" with standard padded
 * base64 for the 16-byte random salt and the 32-byte derived key. The cost is
 * read back from the stored string, so raising the default later keeps old
 * hashes verifiable; those parameters are capped (OT_PWHASH_MAX_MEM, p <= 4)
 * so a hostile stored string cannot make one verification eat the machine.
 *
 * Both calls are slow by design (~100 ms, ~32 MiB at the default cost): run
 * them off the event loop. They are thread-safe; the only shared state is the
 * cost setting. */
#ifndef OT_PWHASH_H
#define OT_PWHASH_H

#include "ot/core/common.h"

#define OT_PWHASH_MAX 192               /* buffer size incl. NUL */
#define OT_PWHASH_MAX_MEM (260u << 20)  /* scrypt working memory cap, bytes: room for log2N 18, p 1..4 */
/* Default cost for new hashes: N = 2^16, r = 8, p = 2 (64 MiB, the same work as
 * N = 2^17, p = 1): one of OWASP's Password Storage Cheat Sheet scrypt
 * settings, up from the former 2^15/8/1. Operators may raise it (config). */
#define OT_PWHASH_LOG2N_DEFAULT 16
#define OT_PWHASH_P_DEFAULT 2
#define OT_PWHASH_LOG2N_MAX 18

/* Writes a NUL-terminated stored hash of pw[0..n) to out. 0 or OT_ERR. */
int ot_pwhash_hash(const char *pw, size_t n, char out[OT_PWHASH_MAX]);

/* 0 if pw[0..n) matches the stored hash; OT_ERR on mismatch, malformed or
 * over-cost stored string (NUL-terminated within OT_PWHASH_MAX bytes), or
 * internal failure. The key comparison is constant-time. */
int ot_pwhash_verify(const char *pw, size_t n, const char *stored);

/* log2 of scrypt's N for NEW hashes (default OT_PWHASH_LOG2N_DEFAULT),
 * clamped to [1, OT_PWHASH_LOG2N_MAX]. Tests lower it for speed; the server's
 * configuration only accepts values at or above the default. */
void ot_pwhash_set_cost(int log2n);
/* scrypt's p for new hashes (default OT_PWHASH_P_DEFAULT), clamped to [1, 4]. */
void ot_pwhash_set_parallelism(int p);
/* True when `stored` is a well-formed hash of lower cost (N*r*p) than new
 * hashes get now: after a successful verify, store a fresh hash. */
bool ot_pwhash_needs_rehash(const char *stored);

/* Password policy (NIST SP 800-63B §5.1.1.2): length at least min_len (never
 * below OT_PASSWORD_MIN_FLOOR) and at most OT_PASSWORD_MAX_LEN, not the email
 * address (case-insensitive), not a well-known leaked password. NULL when
 * acceptable, else the reason ("is too common ..."). */
#define OT_PASSWORD_MIN_FLOOR 8
#define OT_PASSWORD_MAX_LEN 1024
const char *ot_password_check(const char *pw, size_t n, const char *email, size_t min_len);
bool ot_password_is_common(const char *pw, size_t n);

#endif
