#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ot/codec/hmac.h"

static void hex(const uint8_t *m, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", m[i]);
}

static void one_shot(ot_str key, ot_str msg, uint8_t out[32])
{
    unsigned n = 0;
    cr_assert(HMAC(EVP_sha256(), key.base, (int)key.len, (const unsigned char *)msg.base, msg.len, out, &n));
}

Test(hmac, rfc4231_vectors)
{
    ot_hmac h = OT_HMAC_INIT;
    uint8_t m[32];
    char hx[65];
    /* RFC 4231 §4.2 (test case 1) and §4.3 (test case 2). */
    char k1[20];
    memset(k1, 0x0b, sizeof k1);
    ot_str p1 = ot_str_c("Hi There");
    cr_assert_eq(ot_hmac_sha256(&h, ot_str_make(k1, 20), &p1, 1, m), 0);
    hex(m, hx);
    cr_assert_str_eq(hx, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    ot_str p2[] = { ot_str_c("what do ya "), ot_str_c("want for nothing?") };
    cr_assert_eq(ot_hmac_sha256(&h, ot_str_c("Jefe"), p2, 2, m), 0);
    hex(m, hx);
    cr_assert_str_eq(hx, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    ot_hmac_free(&h);
}

Test(hmac, same_as_one_shot_across_reuse_and_key_changes)
{
    ot_hmac h = OT_HMAC_INIT;
    const char *keys[] = { "secret-one-0123456789abcdef0123456789", "secret-two-0123456789abcdef0123456789",
                           "secret-three-0123456789abcdef01234567" };
    ot_str msg = ot_str_c("header.payload");
    /* Alternating two keys (a rotation), then a third that evicts one, then
     * back: every answer equals the one-shot HMAC of that key. */
    int order[] = { 0, 1, 0, 1, 2, 0, 1, 2, 2, 0 };
    for (size_t i = 0; i < OT_ARRAY_LEN(order); i++) {
        uint8_t got[32], want[32];
        ot_str k = ot_str_c(keys[order[i]]);
        cr_assert_eq(ot_hmac_sha256(&h, k, &msg, 1, got), 0);
        one_shot(k, msg, want);
        cr_assert_eq(memcmp(got, want, 32), 0, "step %zu", i);
    }
    /* Same length, one byte different: must not reuse the schedule. */
    char a[] = "secret-one-0123456789abcdef0123456789";
    uint8_t m1[32], m2[32];
    cr_assert_eq(ot_hmac_sha256(&h, ot_str_c(a), &msg, 1, m1), 0);
    a[5] ^= 1;
    cr_assert_eq(ot_hmac_sha256(&h, ot_str_c(a), &msg, 1, m2), 0);
    cr_assert_neq(memcmp(m1, m2, 32), 0);
    ot_hmac_free(&h);
}

Test(hmac, parts_are_concatenated_and_empty_parts_allowed)
{
    ot_hmac h = OT_HMAC_INIT;
    ot_str k = ot_str_c("k-0123456789abcdef0123456789abcdef");
    ot_str whole = ot_str_c("ot:admin\n{\"seq\":1}");
    ot_str parts[] = { ot_str_c("ot:admin"), ot_str_make("", 0), ot_str_c("\n"), ot_str_c("{\"seq\":1}") };
    uint8_t a[32], b[32];
    cr_assert_eq(ot_hmac_sha256(&h, k, &whole, 1, a), 0);
    cr_assert_eq(ot_hmac_sha256(&h, k, parts, 4, b), 0);
    cr_assert_eq(memcmp(a, b, 32), 0);
    cr_assert_eq(ot_hmac_sha256(&h, ot_str_make("", 0), &whole, 1, a), OT_ERR, "empty key refused");
    ot_hmac_free(&h);
}

/* Every length around the 8-byte steps, and one flipped bit at every position
 * (the word loop and the byte tail both must see it). */
Test(hmac, ct_equal_finds_a_difference_anywhere)
{
    unsigned char a[72], b[72];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof a; n++) {
        cr_assert(ot_ct_equal(a, b, n), "equal, n=%zu", n);
        for (size_t at = 0; at < n; at++) {
            for (int bit = 0; bit < 8; bit += 7) {
                b[at] ^= (unsigned char)(1u << bit);
                cr_assert(!ot_ct_equal(a, b, n), "differ at %zu bit %d, n=%zu", at, bit, n);
                b[at] ^= (unsigned char)(1u << bit);
            }
        }
    }
    /* Unaligned starts: tokens sit anywhere in a read buffer. */
    cr_assert(ot_ct_equal(a + 1, b + 1, 40));
    b[41] ^= 1;
    cr_assert(!ot_ct_equal(a + 3, b + 3, 40));
}
