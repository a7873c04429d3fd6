/* Verified-token cache. See include/ot/codec/jwt_cache.h for the policy. */
#include "ot/codec/jwt_cache.h"

#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <endian.h>
#include <string.h>

#include "ot/codec/hmac.h"

#include <openssl/crypto.h>

#define SECRET_MAX 512 /* the secret the entries were verified under, kept to compare */

typedef struct {
    uint64_t hash;
    uint16_t len; /* 0 = empty */
    char token[OT_JWT_CACHE_TOKEN_MAX];
    ot_jwt_claims claims;
} entry;

struct ot_jwt_cache {
    size_t mask;
    uint8_t key[16];
    size_t secret_len;
    char secret[SECRET_MAX];
    ot_jwt_cache_stats stats;
    entry slots[];
};

/* ---- SipHash-2-4 ---------------------------------------------------------- */

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v); /* one load on x86; the byte loop was not always folded into one */
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);                                  \
        v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);                                  \
    } while (0)

uint64_t ot_siphash24(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- cache ---------------------------------------------------------------- */

ot_jwt_cache *ot_jwt_cache_new(size_t slots)
{
    size_t n = 16;
    while (n < slots && n < ((size_t)1 << 24))
        n <<= 1;
    ot_jwt_cache *c = calloc(1, sizeof(*c) + n * sizeof(entry));
    if (!c)
        return NULL;
    c->mask = n - 1;
    if (getrandom(c->key, sizeof c->key, GRND_NONBLOCK) != (ssize_t)sizeof c->key) {
        /* No entropy yet (early boot): the index stays correct, only less
         * resistant to chosen collisions; mix what varies. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t a = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        memcpy(c->key, &a, 8);
        memcpy(c->key + 8, &c, sizeof(void *) < 8 ? sizeof(void *) : 8);
    }
    return c;
}

void ot_jwt_cache_free(ot_jwt_cache *c)
{
    if (c)
        OPENSSL_cleanse(c->secret, sizeof c->secret);
    free(c);
}

void ot_jwt_cache_clear(ot_jwt_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i <= c->mask; i++)
        c->slots[i].len = 0;
}

ot_jwt_cache_stats ot_jwt_cache_get_stats(const ot_jwt_cache *c)
{
    return c ? c->stats : (ot_jwt_cache_stats){ 0 };
}

/* Entries are only valid under the secret they were verified with. */
static bool same_secret(ot_jwt_cache *c, ot_str secret)
{
    if (secret.len == c->secret_len && ot_ct_equal(secret.base, c->secret, secret.len))
        return true;
    ot_jwt_cache_clear(c);
    if (secret.len > SECRET_MAX) {
        c->secret_len = SIZE_MAX; /* never matches: such a secret is not cached under */
        return false;
    }
    memcpy(c->secret, secret.base, secret.len);
    c->secret_len = secret.len;
    return true;
}

int ot_jwt_verify_cached(ot_jwt_cache *c, ot_str secret, ot_str token, int64_t now_s, ot_jwt_claims *out)
{
    if (!c || token.len == 0 || token.len > OT_JWT_CACHE_TOKEN_MAX || !same_secret(c, secret))
        return ot_jwt_verify(secret, token, now_s, out);
    uint64_t h = ot_siphash24(c->key, token.base, token.len);
    entry *e = &c->slots[h & c->mask];
    if (e->len == token.len && e->hash == h && ot_ct_equal(e->token, token.base, token.len)) {
        if (now_s >= e->claims.exp) {
            e->len = 0; /* dead for good: a token never comes back to life */
            return OT_JWT_EEXPIRED;
        }
        c->stats.hits++;
        *out = e->claims;
        return OT_JWT_OK;
    }
    c->stats.misses++;
    int rc = ot_jwt_verify(secret, token, now_s, out);
    if (rc == OT_JWT_OK) {
        e->hash = h;
        e->len = (uint16_t)token.len;
        memcpy(e->token, token.base, token.len);
        e->claims = *out;
        c->stats.stores++;
    }
    return rc;
}
