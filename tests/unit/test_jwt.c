#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>

#include "ot/codec/base64.h"
#include "ot/codec/jwt.h"

static const ot_str SECRET = OT_STR("0123456789abcdef0123456789abcdef");
#define NOW 1700000000LL

static ot_buf tok;
static void setup(void) { ot_buf_init(&tok); }
static void teardown(void) { ot_buf_free(&tok); }

static ot_jwt_claims claims(const char *sub, ot_role role, int64_t iat, int64_t exp)
{
    ot_jwt_claims c = { .role = role, .iat = iat, .exp = exp };
    snprintf(c.sub, sizeof c.sub, "%s", sub);
    return c;
}

static void sign_ok(const ot_jwt_claims *c)
{
    ot_buf_reset(&tok);
    cr_assert_eq(ot_jwt_sign(SECRET, c, &tok), 0);
}

static int verify(ot_str t) { ot_jwt_claims out; return ot_jwt_verify(SECRET, t, NOW, &out); }
static int verify_c(const char *t) { return verify(ot_str_c(t)); }

/* Builds header.payload.sig from raw JSON texts, signed with HMAC-SHA256 by
 * OpenSSL directly (independent of ot_jwt_sign). */
static void forge(ot_buf *out, const char *hdr, const char *payload, ot_str key)
{
    char b[OT_B64URL_ENC_LEN(OT_JWT_MAX_LEN + 256)];
    ot_buf_reset(out);
    ot_buf_append(out, b, ot_b64_encode((const uint8_t *)hdr, strlen(hdr), b, true));
    ot_buf_append(out, ".", 1);
    ot_buf_append(out, b, ot_b64_encode((const uint8_t *)payload, strlen(payload), b, true));
    unsigned char mac[32];
    unsigned int mlen;
    cr_assert_not_null(HMAC(EVP_sha256(), key.base, (int)key.len, (const unsigned char *)out->data, out->len, mac,
                            &mlen));
    ot_buf_append(out, ".", 1);
    ot_buf_append(out, b, ot_b64_encode(mac, mlen, b, true));
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define GOODP "{\"sub\":\"u1\",\"role\":\"CUSTOMER\",\"iat\":1700000000,\"exp\":1700003600,\"ep\":0}"

Test(jwt, sign_then_verify_round_trips, .init = setup, .fini = teardown)
{
    ot_jwt_claims c = claims("user-42", OT_ROLE_ADMIN, NOW - 10, NOW + 3600), out;
    sign_ok(&c);
    cr_assert_eq(ot_jwt_verify(SECRET, ot_buf_str(&tok), NOW, &out), OT_JWT_OK);
    cr_assert_str_eq(out.sub, "user-42");
    cr_assert_eq(out.role, OT_ROLE_ADMIN);
    cr_assert_eq(out.iat, NOW - 10);
    cr_assert_eq(out.exp, NOW + 3600);
    /* Compact form: three segments of the base64url alphabet only. */
    int dots = 0;
    for (size_t i = 0; i < tok.len; i++) {
        char ch = tok.data[i];
        dots += ch == '.';
        cr_assert(ch == '.' || ch == '-' || ch == '_' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= 'A' && ch <= 'Z'));
    }
    cr_assert_eq(dots, 2);
}

Test(jwt, sign_appends_and_matches_independent_hmac, .init = setup, .fini = teardown)
{
    ot_jwt_claims c = claims("u1", OT_ROLE_CUSTOMER, NOW, NOW + 3600);
    ot_buf_append(&tok, "Bearer ", 7);
    cr_assert_eq(ot_jwt_sign(SECRET, &c, &tok), 0);
    ot_buf mine = OT_BUF_INIT;
    forge(&mine, HS256, GOODP, SECRET);
    cr_assert_eq(tok.len, 7 + mine.len);
    cr_assert_eq(memcmp(tok.data, "Bearer ", 7), 0);
    cr_assert_eq(memcmp(tok.data + 7, mine.data, mine.len), 0, "%.*s", (int)tok.len, tok.data);
    ot_buf_free(&mine);
}

Test(jwt, independently_built_token_verifies, .init = setup, .fini = teardown)
{
    ot_jwt_claims out;
    forge(&tok, "{\"typ\":\"JWT\",\"alg\":\"HS256\",\"kid\":\"k1\"}",
          "{\"exp\":1700003600,\"extra\":[1,{\"a\":null}],\"role\":\"ADMIN\",\"sub\":\"caf\\u00e9\",\"iat\":1699999000}",
          SECRET);
    cr_assert_eq(ot_jwt_verify(SECRET, ot_buf_str(&tok), NOW, &out), OT_JWT_OK);
    cr_assert_str_eq(out.sub, "caf\xC3\xA9");
    cr_assert_eq(out.role, OT_ROLE_ADMIN);
}

Test(jwt, tampering_any_segment_fails, .init = setup, .fini = teardown)
{
    ot_jwt_claims c = claims("u1", OT_ROLE_CUSTOMER, NOW, NOW + 3600);
    sign_ok(&c);
    char *d1 = memchr(tok.data, '.', tok.len), *d2 = memchr(d1 + 1, '.', tok.len - (size_t)(d1 + 1 - tok.data));
    size_t at[] = { 3, (size_t)(d1 - tok.data) + 5, (size_t)(d2 - tok.data) + 5, tok.len - 2 };
    for (size_t i = 0; i < OT_ARRAY_LEN(at); i++) {
        char saved = tok.data[at[i]];
        tok.data[at[i]] = saved == 'A' ? 'B' : 'A';
        int rc = verify(ot_buf_str(&tok));
        cr_assert(rc == OT_JWT_ESIG || rc == OT_JWT_EMALFORMED || rc == OT_JWT_EALG, "pos %zu rc %d", at[i], rc);
        tok.data[at[i]] = saved;
    }
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_OK);

    /* Payload swapped for an ADMIN one, signature kept. */
    ot_buf evil = OT_BUF_INIT;
    forge(&evil, HS256, "{\"sub\":\"u1\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":1700003600}", SECRET);
    char *e1 = memchr(evil.data, '.', evil.len), *e2 = memchr(e1 + 1, '.', evil.len - (size_t)(e1 + 1 - evil.data));
    ot_buf mix = OT_BUF_INIT;
    ot_buf_append(&mix, evil.data, (size_t)(e2 - evil.data));
    ot_buf_append(&mix, d2, tok.len - (size_t)(d2 - tok.data));
    cr_assert_eq(verify(ot_buf_str(&mix)), OT_JWT_ESIG);
    ot_buf_free(&evil);
    ot_buf_free(&mix);
}

Test(jwt, wrong_secret_fails, .init = setup, .fini = teardown)
{
    ot_jwt_claims c = claims("u1", OT_ROLE_CUSTOMER, NOW, NOW + 60), out;
    sign_ok(&c);
    cr_assert_eq(ot_jwt_verify(OT_STR("another secret"), ot_buf_str(&tok), NOW, &out), OT_JWT_ESIG);
    cr_assert_eq(ot_jwt_verify(OT_STR_NULL, ot_buf_str(&tok), NOW, &out), OT_JWT_ESIG, "empty secret never verifies");
    cr_assert_eq(ot_jwt_sign(OT_STR_NULL, &c, &tok), OT_ERR);
}

Test(jwt, only_hs256_is_accepted, .init = setup, .fini = teardown)
{
    const char *hdrs[] = { "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"HS512\"}", "{\"alg\":\"RS256\"}",
                           "{\"typ\":\"JWT\"}", "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}", "{\"alg\":null}",
                           "{\"alg\":[\"HS256\"]}", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}" };
    for (size_t i = 0; i < OT_ARRAY_LEN(hdrs); i++) {
        forge(&tok, hdrs[i], GOODP, SECRET); /* even correctly MACed */
        cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_EALG, "%s", hdrs[i]);
    }
    /* Duplicate alg: ambiguous, rejected by the JSON reader. */
    forge(&tok, "{\"alg\":\"HS256\",\"alg\":\"none\"}", GOODP, SECRET);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_EMALFORMED);
    /* Classic alg:none with an empty signature. */
    char t[300], h[128], p[128];
    const char *hn = "{\"alg\":\"none\"}";
    h[ot_b64_encode((const uint8_t *)hn, strlen(hn), h, true)] = 0;
    p[ot_b64_encode((const uint8_t *)GOODP, strlen(GOODP), p, true)] = 0;
    snprintf(t, sizeof t, "%s.%s.", h, p);
    cr_assert_eq(verify_c(t), OT_JWT_EALG);
}

Test(jwt, expiry_and_issue_time, .init = setup, .fini = teardown)
{
    ot_jwt_claims c = claims("u1", OT_ROLE_CUSTOMER, NOW - 100, NOW), out;
    sign_ok(&c);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_EEXPIRED, "dead at exp exactly");
    cr_assert_eq(ot_jwt_verify(SECRET, ot_buf_str(&tok), NOW - 1, &out), OT_JWT_OK);

    c = claims("u1", OT_ROLE_CUSTOMER, NOW + 61, NOW + 3600);
    sign_ok(&c);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_ECLAIMS, "issued in the future");
    c.iat = NOW + 60;
    sign_ok(&c);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_OK, "within clock skew");

    forge(&tok, HS256, "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":1,\"exp\":9223372036854775807,\"nbf\":1700000061}",
          SECRET);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_ECLAIMS, "nbf in the future");
    forge(&tok, HS256, "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":-9223372036854775808,\"exp\":9223372036854775807}",
          SECRET);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_OK, "extreme but valid times do not overflow");
}

Test(jwt, malformed_tokens, .init = setup, .fini = teardown)
{
    ot_jwt_claims c = claims("u1", OT_ROLE_CUSTOMER, NOW, NOW + 60);
    sign_ok(&c);
    char t[1024];
    snprintf(t, sizeof t, "%.*s", (int)tok.len, tok.data);
    char *d2 = strrchr(t, '.');

    cr_assert_eq(verify_c(""), OT_JWT_EMALFORMED);
    cr_assert_eq(verify_c("."), OT_JWT_EMALFORMED);
    cr_assert_eq(verify_c(".."), OT_JWT_EMALFORMED);
    cr_assert_eq(verify_c("abc"), OT_JWT_EMALFORMED);
    cr_assert_eq(verify(ot_str_make(t, (size_t)(d2 - t))), OT_JWT_EMALFORMED, "two parts");
    cr_assert_eq(verify(ot_str_make(t, (size_t)(d2 - t) + 1)), OT_JWT_EMALFORMED, "empty signature");
    char four[1100];
    snprintf(four, sizeof four, "%s.%s", t, d2 + 1);
    cr_assert_eq(verify_c(four), OT_JWT_EMALFORMED, "four parts");
    snprintf(four, sizeof four, "%s.", t);
    cr_assert_eq(verify_c(four), OT_JWT_EMALFORMED, "trailing dot");

    char bad[1100];
    memcpy(bad, t, sizeof t);
    bad[2] = '+'; /* standard alphabet char in header */
    cr_assert_eq(verify_c(bad), OT_JWT_EMALFORMED);
    memcpy(bad, t, sizeof t);
    bad[strlen(bad) - 1] = '='; /* padding is not base64url */
    cr_assert_eq(verify_c(bad), OT_JWT_EMALFORMED);
    snprintf(bad, sizeof bad, "%s=", t);
    cr_assert_eq(verify_c(bad), OT_JWT_EMALFORMED);
    snprintf(bad, sizeof bad, "%s ", t);
    cr_assert_eq(verify_c(bad), OT_JWT_EMALFORMED);
    snprintf(bad, sizeof bad, "%sAAAA", t);
    cr_assert_eq(verify_c(bad), OT_JWT_ESIG, "signature of the wrong length");

    /* Header that is not a JSON object. */
    forge(&tok, "[\"HS256\"]", GOODP, SECRET);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_EMALFORMED);
    forge(&tok, "{\"alg\":\"HS256\"", GOODP, SECRET);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_EMALFORMED);
    forge(&tok, HS256, "not json", SECRET);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_EMALFORMED);

    /* Over the length bound, even if otherwise fine. */
    char pad[OT_JWT_MAX_LEN];
    memset(pad, 'a', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    char big[OT_JWT_MAX_LEN + 256];
    snprintf(big, sizeof big, "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":1700003600,\"x\":\"%.*s\"}",
             3000, pad);
    forge(&tok, HS256, big, SECRET);
    cr_assert_gt(tok.len, OT_JWT_MAX_LEN);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_EMALFORMED);
}

Test(jwt, claims_are_validated, .init = setup, .fini = teardown)
{
    const char *bad[] = {
        "{\"role\":\"CUSTOMER\",\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":\"\",\"role\":\"CUSTOMER\",\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":7,\"role\":\"CUSTOMER\",\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":\"a\\u0000b\",\"role\":\"CUSTOMER\",\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":\"u\",\"role\":\"SUPERUSER\",\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":\"u\",\"role\":\"admin\",\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":\"u\",\"role\":\"\\u0041DMIN\",\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":\"u\",\"role\":2,\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":\"u\",\"iat\":1700000000,\"exp\":1700003600}",
        "{\"sub\":\"u\",\"role\":\"ADMIN\",\"exp\":1700003600}",
        "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":1700000000}",
        "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":\"1700003600\"}",
        "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":1700003600.5}",
        "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":1.7e9}",
        "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":99999999999999999999}",
        "{\"sub\":\"u\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":1700003600,\"nbf\":\"x\"}",
        "{\"sub\":\"u\",\"role\":\"ADMIN\",\"role\":\"CUSTOMER\",\"iat\":1700000000,\"exp\":1700003600}",
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++) {
        forge(&tok, HS256, bad[i], SECRET);
        int rc = verify(ot_buf_str(&tok));
        cr_assert(rc == OT_JWT_ECLAIMS || rc == OT_JWT_EMALFORMED, "%s -> %d", bad[i], rc);
    }
}

Test(jwt, sub_length_limit, .init = setup, .fini = teardown)
{
    char p[256], sub[80];
    memset(sub, 'x', sizeof sub);
    snprintf(p, sizeof p, "{\"sub\":\"%.*s\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":1700003600}",
             OT_JWT_SUB_MAX, sub);
    forge(&tok, HS256, p, SECRET);
    ot_jwt_claims out;
    cr_assert_eq(ot_jwt_verify(SECRET, ot_buf_str(&tok), NOW, &out), OT_JWT_OK);
    cr_assert_eq(strlen(out.sub), OT_JWT_SUB_MAX);
    snprintf(p, sizeof p, "{\"sub\":\"%.*s\",\"role\":\"ADMIN\",\"iat\":1700000000,\"exp\":1700003600}",
             OT_JWT_SUB_MAX + 1, sub);
    forge(&tok, HS256, p, SECRET);
    cr_assert_eq(verify(ot_buf_str(&tok)), OT_JWT_ECLAIMS);

    /* The signer refuses what the verifier would refuse. */
    ot_jwt_claims c = claims("", OT_ROLE_ADMIN, NOW, NOW + 1);
    ot_buf_reset(&tok);
    cr_assert_eq(ot_jwt_sign(SECRET, &c, &tok), OT_ERR);
    cr_assert_eq(tok.len, 0, "out untouched on failure");
    c = claims("u", OT_ROLE_NONE, NOW, NOW + 1);
    cr_assert_eq(ot_jwt_sign(SECRET, &c, &tok), OT_ERR);
    c = claims("bad\xFF", OT_ROLE_ADMIN, NOW, NOW + 1);
    cr_assert_eq(ot_jwt_sign(SECRET, &c, &tok), OT_ERR);
    memset(c.sub, 'x', sizeof c.sub); /* no NUL inside the array */
    cr_assert_eq(ot_jwt_sign(SECRET, &c, &tok), OT_ERR);
}

Test(jwt, out_untouched_on_failure, .init = setup, .fini = teardown)
{
    ot_jwt_claims c = claims("u1", OT_ROLE_CUSTOMER, NOW, NOW), out = claims("keep", OT_ROLE_ADMIN, 1, 2);
    sign_ok(&c);
    cr_assert_eq(ot_jwt_verify(SECRET, ot_buf_str(&tok), NOW, &out), OT_JWT_EEXPIRED);
    cr_assert_str_eq(out.sub, "keep");
    cr_assert_eq(out.role, OT_ROLE_ADMIN);
}

Test(jwt, role_names_and_strerror)
{
    ot_role r = OT_ROLE_NONE;
    cr_assert_str_eq(ot_role_name(OT_ROLE_CUSTOMER), "CUSTOMER");
    cr_assert_str_eq(ot_role_name(OT_ROLE_ADMIN), "ADMIN");
    cr_assert_eq(ot_role_parse(OT_STR("ADMIN"), &r), 0);
    cr_assert_eq(r, OT_ROLE_ADMIN);
    cr_assert_eq(ot_role_parse(OT_STR("CUSTOMER"), &r), 0);
    cr_assert_eq(r, OT_ROLE_CUSTOMER);
    cr_assert_eq(ot_role_parse(OT_STR("ADMINX"), &r), OT_ERR);
    cr_assert_eq(ot_role_parse(OT_STR("ADMI"), &r), OT_ERR);
    cr_assert_eq(ot_role_parse(OT_STR_NULL, &r), OT_ERR);
    int codes[] = { OT_JWT_OK, OT_JWT_EMALFORMED, OT_JWT_EALG, OT_JWT_ESIG, OT_JWT_EEXPIRED, OT_JWT_ECLAIMS };
    for (size_t i = 1; i < OT_ARRAY_LEN(codes); i++)
        cr_assert_str_neq(ot_jwt_strerror(codes[i]), ot_jwt_strerror(codes[i - 1]));
}

/* ---- the token epoch (issue 10: revocation) ---- */

Test(jwt, epoch_round_trips_and_defaults_to_zero_when_absent, .init = setup, .fini = teardown)
{
    ot_jwt_claims c = claims("u1", OT_ROLE_CUSTOMER, NOW, NOW + 3600), out;
    c.ep = 9007199254740993LL;
    sign_ok(&c);
    cr_assert_eq(ot_jwt_verify(SECRET, ot_buf_str(&tok), NOW, &out), OT_JWT_OK);
    cr_assert_eq(out.ep, 9007199254740993LL);
    ot_buf_free(&tok);
    tok = (ot_buf)OT_BUF_INIT;
    forge(&tok, HS256, "{\"sub\":\"u1\",\"role\":\"CUSTOMER\",\"iat\":1700000000,\"exp\":1700003600}", SECRET);
    out.ep = 77;
    cr_assert_eq(ot_jwt_verify(SECRET, ot_buf_str(&tok), NOW, &out), OT_JWT_OK);
    cr_assert_eq(out.ep, 0);
}

Test(jwt, epoch_that_is_not_a_non_negative_integer_is_eclaims, .init = setup, .fini = teardown)
{
    static const char *const bad[] = { "-1", "1.5", "\"3\"", "null", "true", "[0]", "1e3" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "{\"sub\":\"u1\",\"role\":\"CUSTOMER\",\"iat\":1700000000,\"exp\":1700003600,\"ep\":%s}",
                 bad[i]);
        ot_buf_free(&tok);
        tok = (ot_buf)OT_BUF_INIT;
        forge(&tok, HS256, p, SECRET);
        ot_jwt_claims out;
        cr_assert_eq(ot_jwt_verify(SECRET, ot_buf_str(&tok), NOW, &out), OT_JWT_ECLAIMS, "ep=%s", bad[i]);
    }
    ot_jwt_claims c = claims("u1", OT_ROLE_CUSTOMER, NOW, NOW + 3600);
    c.ep = -1;
    cr_assert_eq(ot_jwt_sign(SECRET, &c, &tok), OT_ERR);
}

Test(jwt, auth_layer_verdicts_have_messages)
{
    cr_assert_str_eq(ot_jwt_strerror(OT_JWT_EREVOKED), "token revoked");
    cr_assert_str_neq(ot_jwt_strerror(OT_JWT_EUNVERIFIED), "unknown error");
}
