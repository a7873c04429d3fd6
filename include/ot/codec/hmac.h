/* HMAC-SHA256 with the key schedule prepared once per key.
 *
 * HMAC's set-up (hash the key's inner and outer pads, and OpenSSL's fetch and
 * parameter plumbing around it) costs about as much as MACing a short message;
 * a one-shot HMAC() pays it on every token and every pub/sub message. An
 * ot_hmac keeps one keyed EVP_MAC_CTX and duplicates it per use, so each MAC
 * costs only the message. It remembers the keys it was prepared for (two:
 * the JWT secret and the previous one during a rotation) and prepares again
 * when called with other key bytes, so a changed secret never uses a stale
 * schedule.
 *
 * Not thread-safe: one ot_hmac per thread (the workers are single-threaded). */
#ifndef OT_CODEC_HMAC_H
#define OT_CODEC_HMAC_H

#include "ot/core/common.h"

#define OT_HMAC_LEN 32
#define OT_HMAC_KEYS 2

typedef struct {
    struct {
        void *keyed;  /* EVP_MAC_CTX * holding the prepared key */
        uint8_t *key; /* the key it was prepared for (heap copy, cleansed when replaced) */
        size_t key_len;
    } slot[OT_HMAC_KEYS];
    unsigned victim; /* the slot a new key replaces next */
} ot_hmac;

#define OT_HMAC_INIT { 0 }

/* out = HMAC-SHA256(key, parts[0] || parts[1] || ...). 0, or OT_ERR (empty
 * key, allocation or OpenSSL failure). */
int ot_hmac_sha256(ot_hmac *h, ot_str key, const ot_str *parts, size_t nparts, uint8_t out[OT_HMAC_LEN]);
void ot_hmac_free(ot_hmac *h);

/* a[0..n) == b[0..n) in time that depends on n only, never on where they
 * differ: for MACs, signatures and cached secrets, where an early exit would
 * tell a forger how much of a guess is right. Eight bytes per step, so a
 * 300-byte token costs ~150 instructions (OpenSSL's CRYPTO_memcmp walks bytes:
 * ~2,000). */
bool ot_ct_equal(const void *a, const void *b, size_t n);

#endif
