/* codec/base64: RFC 4648 §10 test vectors in both alphabets, padding rules,
 * canonical-form (pad bit) rejection and every kind of invalid input. */
#include <criterion/criterion.h>

#include "ot/codec/base64.h"

static const struct {
    const char *raw, *std, *url;
} VEC[] = {
    /* RFC 4648 §10; url is the same text without padding (RFC 7515 §2). */
    { "", "", "" },
    { "f", "Zg==", "Zg" },
    { "fo", "Zm8=", "Zm8" },
    { "foo", "Zm9v", "Zm9v" },
    { "foob", "Zm9vYg==", "Zm9vYg" },
    { "fooba", "Zm9vYmE=", "Zm9vYmE" },
    { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

static void expect_decodes(const char *in, bool url, const void *want, size_t want_len)
{
    uint8_t out[64];
    size_t n = 999;
    cr_assert_eq(ot_b64_decode(in, strlen(in), out, sizeof out, &n, url), 0, "decode \"%s\" (url=%d)", in, url);
    cr_assert_eq(n, want_len, "length of \"%s\"", in);
    cr_expect_eq(memcmp(out, want, n), 0, "bytes of \"%s\"", in);
}

static void expect_refused(const char *in, bool url)
{
    uint8_t out[64];
    size_t n = 0;
    cr_expect_eq(ot_b64_decode(in, strlen(in), out, sizeof out, &n, url), OT_ERR, "\"%s\" (url=%d) must be refused",
                 in, url);
}

Test(base64, rfc4648_vectors_encode)
{
    for (size_t i = 0; i < sizeof VEC / sizeof VEC[0]; i++) {
        size_t n = strlen(VEC[i].raw);
        char out[16];
        size_t k = ot_b64_encode((const uint8_t *)VEC[i].raw, n, out, false);
        cr_expect_eq(k, strlen(VEC[i].std));
        cr_expect_eq(k, (size_t)OT_B64_ENC_LEN(n));
        cr_expect_eq(memcmp(out, VEC[i].std, k), 0, "std of \"%s\"", VEC[i].raw);
        k = ot_b64_encode((const uint8_t *)VEC[i].raw, n, out, true);
        cr_expect_eq(k, strlen(VEC[i].url));
        cr_expect_eq(k, (size_t)OT_B64URL_ENC_LEN(n));
        cr_expect_eq(memcmp(out, VEC[i].url, k), 0, "url of \"%s\"", VEC[i].raw);
    }
}

Test(base64, rfc4648_vectors_decode)
{
    for (size_t i = 0; i < sizeof VEC / sizeof VEC[0]; i++) {
        expect_decodes(VEC[i].std, false, VEC[i].raw, strlen(VEC[i].raw));
        expect_decodes(VEC[i].url, true, VEC[i].raw, strlen(VEC[i].raw));
    }
}

Test(base64, alphabets_differ_in_62_and_63)
{
    const uint8_t raw[] = { 0xfb, 0xff, 0xbf }; /* 111110 111111 111110 111111 */
    char out[8];
    cr_assert_eq(ot_b64_encode(raw, 3, out, false), 4);
    cr_expect_eq(memcmp(out, "+/+/", 4), 0);
    cr_assert_eq(ot_b64_encode(raw, 3, out, true), 4);
    cr_expect_eq(memcmp(out, "-_-_", 4), 0);
    expect_decodes("+/+/", false, raw, 3);
    expect_decodes("-_-_", true, raw, 3);
    expect_refused("-_-_", false); /* each alphabet refuses the other's symbols */
    expect_refused("+/+/", true);
}

Test(base64, padding_rules)
{
    expect_refused("Zg", false);    /* standard needs whole quads */
    expect_refused("Zg=", false);
    expect_refused("Zm8", false);
    expect_refused("Zg===", false);
    expect_refused("Z===", false);  /* one symbol can never make a byte */
    expect_refused("Zm8==", false);
    expect_refused("Zg=a", false);  /* '=' only at the end */
    expect_refused("Z=g=", false);
    expect_refused("Zg==", true);   /* url is unpadded */
    expect_refused("Zm8=", true);
    expect_refused("Z", true);      /* a length that cannot occur */
    expect_refused("Zm9vY", true);
}

Test(base64, non_canonical_pad_bits_refused)
{
    /* "Zg==" is "f"; "Zh==" decodes to the same byte with a stray low bit. */
    expect_refused("Zh==", false);
    expect_refused("Zm9=", false); /* "Zm8=" with a stray bit */
    expect_refused("Zh", true);
    expect_refused("Zm9", true);
}

Test(base64, invalid_bytes_refused)
{
    expect_refused("Zm9v Yg==", false); /* whitespace */
    expect_refused("Zm9v\nYmFy", false);
    expect_refused("Zm9*", false);
    expect_refused("Zm9\x80", false);
    expect_refused("Zm9.", true);
    uint8_t out[8];
    size_t n;
    cr_expect_eq(ot_b64_decode("Zm\0v", 4, out, sizeof out, &n, false), OT_ERR, "NUL inside");
}

Test(base64, output_capacity_respected)
{
    uint8_t out[6];
    size_t n;
    cr_expect_eq(ot_b64_decode("Zm9vYmFy", 8, out, 5, &n, false), OT_ERR);
    cr_expect_eq(ot_b64_decode("Zm9vYmFy", 8, out, 6, &n, false), 0);
    cr_expect_eq(n, 6);
    cr_expect_eq(ot_b64_decode("Zm9vYg", 6, out, 3, &n, true), OT_ERR);
}

Test(base64, round_trip_every_length)
{
    uint8_t raw[40], back[40];
    char enc[64];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof raw; n++) {
        for (int url = 0; url < 2; url++) {
            size_t k = ot_b64_encode(raw, n, enc, url), m = 999;
            cr_assert_eq(ot_b64_decode(enc, k, back, sizeof back, &m, url), 0, "n=%zu url=%d", n, url);
            cr_assert_eq(m, n);
            cr_expect_eq(memcmp(raw, back, n), 0);
            cr_expect_leq(m, (size_t)OT_B64_DEC_MAX(k));
        }
    }
}
