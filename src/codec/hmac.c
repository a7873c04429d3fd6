/* HMAC-SHA256 with a prepared key schedule; see include/ot/codec/hmac.h. */
#include "ot/codec/hmac.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

static void slot_clear(ot_hmac *h, unsigned i)
{
    EVP_MAC_CTX_free(h->slot[i].keyed);
    if (h->slot[i].key) {
        OPENSSL_cleanse(h->slot[i].key, h->slot[i].key_len);
        free(h->slot[i].key);
    }
    h->slot[i].keyed = NULL;
    h->slot[i].key = NULL;
    h->slot[i].key_len = 0;
}

void ot_hmac_free(ot_hmac *h)
{
    for (unsigned i = 0; i < OT_HMAC_KEYS; i++)
        slot_clear(h, i);
    h->victim = 0;
}

static EVP_MAC_CTX *prepare(ot_hmac *h, ot_str key)
{
    /* Fetched once per process: the workers are single-threaded. */
    static EVP_MAC *mac;
    unsigned i = h->victim;
    h->victim = (i + 1) % OT_HMAC_KEYS;
    slot_clear(h, i);
    if (!mac && !(mac = EVP_MAC_fetch(NULL, "HMAC", NULL)))
        return NULL;
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);
    uint8_t *copy = malloc(key.len);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                            OSSL_PARAM_construct_end() };
    if (!c || !copy || !EVP_MAC_init(c, (const unsigned char *)key.base, key.len, params)) {
        EVP_MAC_CTX_free(c);
        free(copy);
        return NULL;
    }
    memcpy(copy, key.base, key.len);
    h->slot[i].keyed = c;
    h->slot[i].key = copy;
    h->slot[i].key_len = key.len;
    return c;
}

int ot_hmac_sha256(ot_hmac *h, ot_str key, const ot_str *parts, size_t nparts, uint8_t out[OT_HMAC_LEN])
{
    if (key.len == 0)
        return OT_ERR;
    EVP_MAC_CTX *keyed = NULL;
    /* Our own secret against our own copy, not attacker input: no
     * constant-time compare is needed here. */
    for (unsigned i = 0; !keyed && i < OT_HMAC_KEYS; i++)
        if (h->slot[i].keyed && h->slot[i].key_len == key.len && memcmp(h->slot[i].key, key.base, key.len) == 0)
            keyed = h->slot[i].keyed;
    if (!keyed && !(keyed = prepare(h, key)))
        return OT_ERR;
    /* Re-initialised without a key, HMAC restarts from the pads it hashed
     * when the key was set (EVP_MAC_init with key NULL; reliable for HMAC
     * since OpenSSL 3.0.3, openssl#18100). That is a copy of two digest
     * states, where EVP_MAC_CTX_dup would allocate and free three contexts
     * per MAC (about 4,000 instructions more, measured). */
    int ok = EVP_MAC_init(keyed, NULL, 0, NULL);
    for (size_t i = 0; ok && i < nparts; i++)
        ok = parts[i].len == 0 || EVP_MAC_update(keyed, (const unsigned char *)parts[i].base, parts[i].len);
    size_t n = 0;
    ok = ok && EVP_MAC_final(keyed, out, &n, OT_HMAC_LEN) && n == OT_HMAC_LEN;
    return ok ? 0 : OT_ERR;
}

bool ot_ct_equal(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    uint64_t diff = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, p + i, 8);
        memcpy(&y, q + i, 8);
        diff |= x ^ y;
        /* An empty asm that "changes" diff: the compiler can no longer prove
         * that a non-zero diff decides the result and exit the loop early. */
        __asm__ volatile("" : "+r"(diff));
    }
    for (; i < n; i++) {
        diff |= (uint64_t)(p[i] ^ q[i]);
        __asm__ volatile("" : "+r"(diff));
    }
    return diff == 0;
}
