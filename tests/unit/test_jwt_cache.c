#include <criterion/criterion.h>
#include <stdio.h>

#include "ot/codec/jwt.h"
#include "ot/codec/jwt_cache.h"

static const ot_str SECRET = OT_STR("0123456789abcdef0123456789abcdef");
static const ot_str OTHER = OT_STR("fedcba9876543210fedcba9876543210");
#define NOW 1700000000LL

static ot_buf tok;
static ot_jwt_cache *cache;
static void setup(void)
{
    ot_buf_init(&tok);
    cache = ot_jwt_cache_new(64);
    cr_assert_not_null(cache);
}
static void teardown(void)
{
    ot_buf_free(&tok);
    ot_jwt_cache_free(cache);
}

static ot_str sign(ot_str secret, const char *sub, ot_role role, int64_t exp)
{
    ot_jwt_claims c = { .role = role, .iat = NOW - 10, .exp = exp };
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    ot_buf_reset(&tok);
    cr_assert_eq(ot_jwt_sign(secret, &c, &tok), 0);
    return ot_str_make(tok.data, tok.len);
}

TestSuite(jwt_cache, .init = setup, .fini = teardown);

Test(jwt_cache, siphash24_matches_the_reference_vectors)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* The paper's appendix A vector (15 bytes) and the first and 64-byte-long
     * entries of the reference implementation's vectors. */
    cr_assert_eq(ot_siphash24(key, msg, 15), 0xa129ca6149be45e5ull);
    cr_assert_eq(ot_siphash24(key, msg, 0), 0x726fdb47dd0e0e31ull);
    cr_assert_eq(ot_siphash24(key, msg, 8), 0x93f5f5799a932462ull);
}

Test(jwt_cache, second_verification_is_a_hit_with_the_same_claims)
{
    ot_str t = sign(SECRET, "11111111-2222-3333-4444-555555555555", OT_ROLE_ADMIN, NOW + 600);
    ot_jwt_claims a, b;
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, t, NOW, &a), OT_JWT_OK);
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, t, NOW + 1, &b), OT_JWT_OK);
    ot_jwt_cache_stats s = ot_jwt_cache_get_stats(cache);
    cr_assert_eq(s.hits, 1);
    cr_assert_eq(s.stores, 1);
    cr_assert_str_eq(b.sub, a.sub);
    cr_assert_eq(b.role, OT_ROLE_ADMIN);
    cr_assert_eq(b.exp, NOW + 600);
}

Test(jwt_cache, expiry_is_honoured_on_a_hit)
{
    ot_str t = sign(SECRET, "u1", OT_ROLE_CUSTOMER, NOW + 5);
    ot_jwt_claims out;
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, t, NOW, &out), OT_JWT_OK);
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, t, NOW + 5, &out), OT_JWT_EEXPIRED);
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, t, NOW + 4, &out), OT_JWT_OK,
                 "an earlier clock verifies again (fully): the cache holds no verdict of its own");
}

Test(jwt_cache, a_changed_secret_invalidates_every_entry)
{
    ot_str t = sign(SECRET, "u1", OT_ROLE_ADMIN, NOW + 600);
    char copy[1024];
    memcpy(copy, t.base, t.len);
    ot_str tc = ot_str_make(copy, t.len);
    ot_jwt_claims out;
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, tc, NOW, &out), OT_JWT_OK);
    cr_assert_eq(ot_jwt_verify_cached(cache, OTHER, tc, NOW, &out), OT_JWT_ESIG,
                 "a token of the old secret must not hit under the new one");
    cr_assert_eq(ot_jwt_cache_get_stats(cache).hits, 0);
}

Test(jwt_cache, a_forged_or_altered_token_never_hits)
{
    ot_str t = sign(SECRET, "u1", OT_ROLE_CUSTOMER, NOW + 600);
    char good[1024], bad[1024];
    memcpy(good, t.base, t.len);
    ot_jwt_claims out;
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, ot_str_make(good, t.len), NOW, &out), OT_JWT_OK);
    /* Same length, one byte of the signature changed, and a prefix. */
    memcpy(bad, good, t.len);
    bad[t.len - 2] = bad[t.len - 2] == 'A' ? 'B' : 'A';
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, ot_str_make(bad, t.len), NOW, &out), OT_JWT_ESIG);
    cr_assert_neq(ot_jwt_verify_cached(cache, SECRET, ot_str_make(good, t.len - 1), NOW, &out), OT_JWT_OK);
    /* A token signed with another key for an admin. */
    ot_str f = sign(OTHER, "u1", OT_ROLE_ADMIN, NOW + 600);
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, f, NOW, &out), OT_JWT_ESIG);
    cr_assert_eq(ot_jwt_cache_get_stats(cache).hits, 0);
    cr_assert_eq(ot_jwt_verify_cached(cache, SECRET, ot_str_make(good, t.len), NOW, &out), OT_JWT_OK);
    cr_assert_eq(ot_jwt_cache_get_stats(cache).hits, 1, "the genuine entry is still there");
}

Test(jwt_cache, a_colliding_token_replaces_the_entry_and_both_stay_correct)
{
    ot_jwt_cache *tiny = ot_jwt_cache_new(1); /* 16 slots: 64 tokens must collide */
    char toks[64][512];
    size_t lens[64];
    for (int i = 0; i < 64; i++) {
        char sub[24];
        snprintf(sub, sizeof sub, "user-%d", i);
        ot_str t = sign(SECRET, sub, OT_ROLE_CUSTOMER, NOW + 600);
        memcpy(toks[i], t.base, t.len);
        lens[i] = t.len;
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 64; i++) {
            ot_jwt_claims out;
            cr_assert_eq(ot_jwt_verify_cached(tiny, SECRET, ot_str_make(toks[i], lens[i]), NOW, &out), OT_JWT_OK);
            char want[24];
            snprintf(want, sizeof want, "user-%d", i);
            cr_assert_str_eq(out.sub, want);
        }
    ot_jwt_cache_free(tiny);
}

Test(jwt_cache, null_cache_and_long_tokens_fall_back_to_full_verification)
{
    ot_str t = sign(SECRET, "u1", OT_ROLE_CUSTOMER, NOW + 600);
    ot_jwt_claims out;
    cr_assert_eq(ot_jwt_verify_cached(NULL, SECRET, t, NOW, &out), OT_JWT_OK);
    cr_assert_eq(ot_jwt_verify_cached(NULL, OTHER, t, NOW, &out), OT_JWT_ESIG);
}
