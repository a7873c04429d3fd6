/* scrypt password hashing. See include/ot/pwhash.h. */
#include "ot/codec/pwhash.h"

#include <stdatomic.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ot/codec/base64.h"

#define SALT_LEN 16
#define KEY_LEN 32
#define SCRYPT_R 8 /* RFC 7914 §2 recommended block size */
#define SCRYPT_P 1
/* Caps on stored parameters; p multiplies CPU time at constant memory. */
#define MAX_LOG2N 20
#define MAX_R 32
#define MAX_P 4
#define MIN_SALT 8
#define MAX_SALT 64

/* Written by configuration/tests, read by worker threads: atomic so that is
 * not a data race. */
static _Atomic int g_log2n = 15;

void ot_pwhash_set_cost(int log2n)
{
    if (log2n < 1)
        log2n = 1;
    if (log2n > 15)
        log2n = 15;
    atomic_store_explicit(&g_log2n, log2n, memory_order_relaxed);
}

/* OpenSSL's own accounting (crypto/evp/pbe_scrypt.c): B is 128*r*p bytes, V is
 * 128*r*(N+2). Checked here first so a hostile string fails fast, and passed
 * as maxmem because OpenSSL's default (32 MiB) is below our default cost. */
static bool cost_ok(unsigned log2n, unsigned r, unsigned p, uint64_t *mem)
{
    if (log2n < 1 || log2n > MAX_LOG2N || r < 1 || r > MAX_R || p < 1 || p > MAX_P)
        return false;
    *mem = 128ull * r * p + 128ull * r * ((1ull << log2n) + 2);
    return *mem <= OT_PWHASH_MAX_MEM;
}

static int derive(const char *pw, size_t n, const uint8_t *salt, size_t saltlen, unsigned log2n, unsigned r,
                  unsigned p, uint8_t key[KEY_LEN])
{
    uint64_t mem;
    if (!cost_ok(log2n, r, p, &mem))
        return OT_ERR;
    /* Slack over the exact need: OpenSSL compares with its own rounding. */
    if (EVP_PBE_scrypt(n ? pw : "", n, salt, saltlen, 1ull << log2n, r, p, mem + 4096, key, KEY_LEN) != 1)
        return OT_ERR;
    return 0;
}

int ot_pwhash_hash(const char *pw, size_t n, char out[OT_PWHASH_MAX])
{
    unsigned log2n = (unsigned)atomic_load_explicit(&g_log2n, memory_order_relaxed);
    uint8_t salt[SALT_LEN], key[KEY_LEN];
    char s64[OT_B64_ENC_LEN(SALT_LEN) + 1], k64[OT_B64_ENC_LEN(KEY_LEN) + 1];
    if (RAND_bytes(salt, sizeof salt) != 1 || derive(pw, n, salt, sizeof salt, log2n, SCRYPT_R, SCRYPT_P, key) < 0)
        return OT_ERR;
    s64[ot_b64_encode(salt, sizeof salt, s64, false)] = '\0';
    k64[ot_b64_encode(key, sizeof key, k64, false)] = '\0';
    OPENSSL_cleanse(key, sizeof key);
    int w = snprintf(out, OT_PWHASH_MAX, "scrypt$%u$%u$%u$%s$%s", log2n, SCRYPT_R, SCRYPT_P, s64, k64);
    return w > 0 && w < OT_PWHASH_MAX ? 0 : OT_ERR;
}

/* Decimal field of 1..3 digits without a leading zero, then '$'. */
static bool field_uint(const char **pp, const char *end, unsigned *v)
{
    const char *p = *pp;
    unsigned x = 0;
    int nd = 0;
    while (p < end && *p >= '0' && *p <= '9' && nd < 4) {
        x = x * 10 + (unsigned)(*p++ - '0');
        nd++;
    }
    if (nd == 0 || nd > 3 || (**pp == '0') || p >= end || *p != '$')
        return false;
    *v = x;
    *pp = p + 1;
    return true;
}

int ot_pwhash_verify(const char *pw, size_t n, const char *stored)
{
    if (!stored)
        return OT_ERR;
    size_t len = strnlen(stored, OT_PWHASH_MAX);
    if (len == OT_PWHASH_MAX || len < 7 || memcmp(stored, "scrypt$", 7) != 0)
        return OT_ERR;
    const char *p = stored + 7, *end = stored + len;
    unsigned log2n, r, par;
    if (!field_uint(&p, end, &log2n) || !field_uint(&p, end, &r) || !field_uint(&p, end, &par))
        return OT_ERR;
    const char *d = memchr(p, '$', (size_t)(end - p));
    if (!d)
        return OT_ERR;
    uint8_t salt[MAX_SALT], want[KEY_LEN + 2], key[KEY_LEN];
    size_t saltlen, keylen;
    if (ot_b64_decode(p, (size_t)(d - p), salt, sizeof salt, &saltlen, false) < 0 || saltlen < MIN_SALT ||
        ot_b64_decode(d + 1, (size_t)(end - d - 1), want, sizeof want, &keylen, false) < 0 || keylen != KEY_LEN)
        return OT_ERR;
    if (derive(pw, n, salt, saltlen, log2n, r, par, key) < 0)
        return OT_ERR;
    int diff = CRYPTO_memcmp(key, want, KEY_LEN);
    OPENSSL_cleanse(key, sizeof key);
    return diff == 0 ? 0 : OT_ERR;
}
