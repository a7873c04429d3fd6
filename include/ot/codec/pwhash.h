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
#define OT_PWHASH_MAX_MEM (64u << 20)   /* scrypt working memory cap, bytes */

/* Writes a NUL-terminated stored hash of pw[0..n) to out. 0 or OT_ERR. */
int ot_pwhash_hash(const char *pw, size_t n, char out[OT_PWHASH_MAX]);

/* 0 if pw[0..n) matches the stored hash; OT_ERR on mismatch, malformed or
 * over-cost stored string (NUL-terminated within OT_PWHASH_MAX bytes), or
 * internal failure. The key comparison is constant-time. */
int ot_pwhash_verify(const char *pw, size_t n, const char *stored);

/* log2 of scrypt's N for NEW hashes (default 15: N = 32768, r = 8, p = 1,
 * about 32 MiB). Clamped to [1, 15] so the result stays under the memory cap.
 * Tests lower it for speed. */
void ot_pwhash_set_cost(int log2n);

#endif
