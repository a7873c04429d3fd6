#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <time.h>

#include "ot/codec/base64.h"
#include "ot/codec/pwhash.h"

/* Low cost keeps the suite fast; the format and checks are the same. */
/* Cheap parameters for speed; p = 1 keeps the stored strings below as they were. */
static void low_cost(void)
{
    ot_pwhash_set_cost(4);
    ot_pwhash_set_parallelism(1);
}

static char h[OT_PWHASH_MAX];

static void hash(const char *pw)
{
    cr_assert_eq(ot_pwhash_hash(pw, strlen(pw), h), 0);
}

Test(pwhash, verify_accepts_the_right_password, .init = low_cost)
{
    hash("correct horse");
    cr_assert_eq(strncmp(h, "scrypt$4$8$1$", 13), 0, "%s", h);
    cr_assert_eq(ot_pwhash_verify("correct horse", 13, h), 0);
}

Test(pwhash, verify_rejects_wrong_password, .init = low_cost)
{
    hash("correct horse");
    cr_assert_eq(ot_pwhash_verify("correct hors", 12, h), OT_ERR);
    cr_assert_eq(ot_pwhash_verify("correct horsf", 13, h), OT_ERR);
    cr_assert_eq(ot_pwhash_verify("Correct horse", 13, h), OT_ERR);
    cr_assert_eq(ot_pwhash_verify("", 0, h), OT_ERR);
}

Test(pwhash, password_bytes_count_by_length_not_nul, .init = low_cost)
{
    cr_assert_eq(ot_pwhash_hash("a\0b", 3, h), 0);
    cr_assert_eq(ot_pwhash_verify("a\0b", 3, h), 0);
    cr_assert_eq(ot_pwhash_verify("a\0c", 3, h), OT_ERR);
    cr_assert_eq(ot_pwhash_verify("a", 1, h), OT_ERR);
    cr_assert_eq(ot_pwhash_hash(NULL, 0, h), 0, "empty password still hashes");
    cr_assert_eq(ot_pwhash_verify("", 0, h), 0);
}

Test(pwhash, same_password_gets_different_salts, .init = low_cost)
{
    char a[OT_PWHASH_MAX];
    hash("pw");
    memcpy(a, h, sizeof a);
    hash("pw");
    cr_assert_str_neq(a, h);
    cr_assert_eq(ot_pwhash_verify("pw", 2, a), 0);
    cr_assert_eq(ot_pwhash_verify("pw", 2, h), 0);
}

/* Flips one base64 character of field `field` (4 = salt, 5 = key). */
static void tamper(char *s, int field)
{
    char *p = s;
    for (int i = 0; i < field; i++)
        p = strchr(p, '$') + 1;
    *p = *p == 'A' ? 'B' : 'A';
}

Test(pwhash, tampered_salt_or_key_fails, .init = low_cost)
{
    char t[OT_PWHASH_MAX];
    hash("pw");
    memcpy(t, h, sizeof t);
    tamper(t, 4);
    cr_assert_eq(ot_pwhash_verify("pw", 2, t), OT_ERR);
    memcpy(t, h, sizeof t);
    tamper(t, 5);
    cr_assert_eq(ot_pwhash_verify("pw", 2, t), OT_ERR);
    memcpy(t, h, sizeof t);
    t[7] = '5'; /* log2N 4 -> 5: same salt, different cost */
    cr_assert_eq(ot_pwhash_verify("pw", 2, t), OT_ERR);
}

Test(pwhash, cost_is_read_from_the_stored_string, .init = low_cost)
{
    hash("pw");
    ot_pwhash_set_cost(5);
    cr_assert_eq(ot_pwhash_verify("pw", 2, h), 0, "old cost still verifies");
    char b[OT_PWHASH_MAX];
    cr_assert_eq(ot_pwhash_hash("pw", 2, b), 0);
    cr_assert_eq(strncmp(b, "scrypt$5$", 9), 0, "%s", b);
}

Test(pwhash, malformed_and_hostile_strings_rejected, .init = low_cost)
{
    hash("pw");
    const char *salt = strchr(h + 13, '$') ? h + 13 : NULL; /* "<salt>$<key>" */
    cr_assert_not_null(salt);
    char s[512];
    const char *fmts[] = {
        "",
        "scrypt$",
        "bcrypt$4$8$1$%s",
        "scrypt$4$8$%s",            /* missing p */
        "scrypt$04$8$1$%s",         /* leading zero */
        "scrypt$0$8$1$%s",          /* N = 1 */
        "scrypt$-4$8$1$%s",
        "scrypt$4$0$1$%s",          /* r = 0 */
        "scrypt$4$8$0$%s",          /* p = 0 */
        "scrypt$4$8$5$%s",          /* p over cap */
        "scrypt$4$33$1$%s",         /* r over cap */
        "scrypt$30$8$1$%s",         /* 2^30 * 1 KiB: must not even try */
        "scrypt$17$8$1$%s",         /* 128 MiB > cap */
        "scrypt$4$8$1$%s$",         /* extra field */
        "scrypt$4$8$1$%s=",
        "scrypt$4$8$1$ %s",
        "scrypt$4444$8$1$%s",
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(fmts); i++) {
        snprintf(s, sizeof s, fmts[i], salt);
        cr_assert_eq(ot_pwhash_verify("pw", 2, s), OT_ERR, "%s", s);
    }
    /* Key of the wrong size, salt too short. */
    snprintf(s, sizeof s, "scrypt$4$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA");
    cr_assert_eq(ot_pwhash_verify("pw", 2, s), OT_ERR);
    snprintf(s, sizeof s, "scrypt$4$8$1$AAAA$%s", strchr(salt, '$') + 1);
    cr_assert_eq(ot_pwhash_verify("pw", 2, s), OT_ERR);
    /* Not NUL-terminated within OT_PWHASH_MAX bytes. */
    memset(s, 'a', sizeof s);
    cr_assert_eq(ot_pwhash_verify("pw", 2, s), OT_ERR);
    cr_assert_eq(ot_pwhash_verify("pw", 2, NULL), OT_ERR);
}

Test(pwhash, over_cost_string_is_refused_without_running_scrypt, .init = low_cost)
{
    /* 2^20 * r=16 would be 2 GiB and seconds of CPU: the cap must refuse it
     * up front, so the call returns at once. */
    hash("pw");
    char s[2 * OT_PWHASH_MAX];
    snprintf(s, sizeof s, "scrypt$20$16$1$%s", h + 13);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(ot_pwhash_verify("pw", 2, s), OT_ERR);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    cr_assert_lt(ms, 200.0, "took %.1f ms", ms);
}

Test(pwhash, default_cost_format_and_fit)
{
    /* One hash at the production cost: it must run under the memory cap and
     * fit the buffer. */
    ot_pwhash_set_cost(OT_PWHASH_LOG2N_DEFAULT);
    ot_pwhash_set_parallelism(OT_PWHASH_P_DEFAULT);
    hash("production");
    /* OWASP's scrypt guidance (N=2^16, r=8, p=2), up from 2^15/8/1 (issue 16). */
    cr_assert_eq(strncmp(h, "scrypt$16$8$2$", 14), 0, "%s", h);
    cr_assert_lt(strlen(h), OT_PWHASH_MAX);
    cr_assert_eq(ot_pwhash_verify("production", 10, h), 0);
}

Test(pwhash, matches_independent_openssl_scrypt, .init = low_cost)
{
    hash("pw");
    char *salt = h + 13, *key = strchr(salt, '$') + 1;
    uint8_t sb[32], kb[40], mine[32];
    size_t sn, kn;
    cr_assert_eq(ot_b64_decode(salt, (size_t)(key - 1 - salt), sb, sizeof sb, &sn, false), 0);
    cr_assert_eq(ot_b64_decode(key, strlen(key), kb, sizeof kb, &kn, false), 0);
    cr_assert_eq(sn, 16);
    cr_assert_eq(kn, 32);
    cr_assert_eq(EVP_PBE_scrypt("pw", 2, sb, sn, 16, 8, 1, 0, mine, sizeof mine), 1);
    cr_assert_eq(memcmp(mine, kb, 32), 0);
}

Test(pwhash, rehash_only_upward)
{
    ot_pwhash_set_cost(4);
    ot_pwhash_set_parallelism(1);
    hash("pw-rehash");
    cr_assert_not(ot_pwhash_needs_rehash(h), "same cost: nothing to do");
    ot_pwhash_set_cost(5);
    cr_assert(ot_pwhash_needs_rehash(h), "N raised");
    ot_pwhash_set_cost(4);
    ot_pwhash_set_parallelism(2);
    cr_assert(ot_pwhash_needs_rehash(h), "p raised");
    char stronger[OT_PWHASH_MAX];
    cr_assert_eq(ot_pwhash_hash("pw-rehash", 9, stronger), 0);
    ot_pwhash_set_parallelism(1);
    cr_assert_not(ot_pwhash_needs_rehash(stronger), "a stronger hash is never downgraded");
    cr_assert_not(ot_pwhash_needs_rehash("not-a-hash"));
    cr_assert_not(ot_pwhash_needs_rehash(NULL));
}

Test(pwhash, password_policy)
{
    cr_assert_null(ot_password_check("b7#kq2!mzpt", 11, "ann@example.test", 8));
    cr_assert_not_null(ot_password_check("b7#kq2!", 7, NULL, 8), "shorter than 8");
    cr_assert_not_null(ot_password_check("b7#kq2!mzpt", 11, NULL, 12), "configured minimum");
    cr_assert_not_null(ot_password_check("b7#kq2!", 7, NULL, 2), "a minimum below 8 still means 8");
    cr_assert_not_null(ot_password_check("PassWord123", 11, NULL, 8), "common, any case");
    cr_assert_not_null(ot_password_check("12345678", 8, NULL, 8));
    cr_assert_not_null(ot_password_check("aaaaaaaaaaaa", 12, NULL, 8), "one repeated character");
    cr_assert_not_null(ot_password_check("Ann@Example.TEST", 16, "ann@example.test", 8), "the email");
    cr_assert_not_null(ot_password_check("abc\0defgh", 9, NULL, 8), "NUL byte");
}
