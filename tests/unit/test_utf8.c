/* core/utf8: the one UTF-8 validator (RFC 3629 §4) and the hex table. The
 * one-shot and the streaming validator must agree on every case, so each case
 * is checked through both (and the streaming one byte by byte). */
#include <criterion/criterion.h>

#include "ot/core/utf8.h"

#define B(...) ((const unsigned char[]){ __VA_ARGS__ })

static bool streamed_bytewise(const unsigned char *p, size_t n)
{
    ot_utf8 u;
    ot_utf8_init(&u);
    for (size_t i = 0; i < n; i++)
        if (ot_utf8_feed(&u, p + i, 1) < 0)
            return false;
    return ot_utf8_complete(&u);
}

/* The sequence at p[0..n) is one character (want = n) or none (want = 0). */
static void check_one(const unsigned char *p, size_t n, size_t want)
{
    cr_expect_eq(ot_utf8_seq_len(p, n), want, "seq_len of %zu bytes starting %02x", n, p[0]);
    cr_expect_eq(ot_utf8_valid(p, n), want == n, "valid, lead %02x", p[0]);
    cr_expect_eq(streamed_bytewise(p, n), want == n, "streamed, lead %02x", p[0]);
}

Test(utf8, boundaries_of_each_length)
{
    check_one(B(0x00), 1, 1);
    check_one(B(0x7F), 1, 1);
    check_one(B(0xC2, 0x80), 2, 2);             /* U+0080 */
    check_one(B(0xDF, 0xBF), 2, 2);             /* U+07FF */
    check_one(B(0xE0, 0xA0, 0x80), 3, 3);       /* U+0800 */
    check_one(B(0xEF, 0xBF, 0xBF), 3, 3);       /* U+FFFF */
    check_one(B(0xED, 0x9F, 0xBF), 3, 3);       /* U+D7FF, just below the surrogates */
    check_one(B(0xEE, 0x80, 0x80), 3, 3);       /* U+E000, just above them */
    check_one(B(0xF0, 0x90, 0x80, 0x80), 4, 4); /* U+10000 */
    check_one(B(0xF4, 0x8F, 0xBF, 0xBF), 4, 4); /* U+10FFFF */
}

Test(utf8, overlongs_refused)
{
    check_one(B(0xC0, 0x80), 2, 0);             /* U+0000 in two bytes */
    check_one(B(0xC1, 0xBF), 2, 0);             /* U+007F in two bytes */
    check_one(B(0xE0, 0x9F, 0xBF), 3, 0);       /* U+07FF in three */
    check_one(B(0xE0, 0x80, 0x80), 3, 0);
    check_one(B(0xF0, 0x8F, 0xBF, 0xBF), 4, 0); /* U+FFFF in four */
}

Test(utf8, surrogates_refused)
{
    check_one(B(0xED, 0xA0, 0x80), 3, 0); /* U+D800 */
    check_one(B(0xED, 0xBF, 0xBF), 3, 0); /* U+DFFF */
}

Test(utf8, above_10ffff_refused)
{
    check_one(B(0xF4, 0x90, 0x80, 0x80), 4, 0); /* U+110000 */
    check_one(B(0xF5, 0x80, 0x80, 0x80), 4, 0);
    check_one(B(0xFF), 1, 0);
}

Test(utf8, truncated_and_stray_bytes)
{
    check_one(B(0x80), 1, 0);                   /* lone continuation */
    check_one(B(0xBF), 1, 0);
    check_one(B(0xC2), 1, 0);                   /* lead without its continuation */
    check_one(B(0xE2, 0x82), 2, 0);             /* € cut after two bytes */
    check_one(B(0xF0, 0x9F, 0x98), 3, 0);       /* emoji cut after three */
    check_one(B(0xC2, 0x41), 2, 0);             /* continuation replaced by ASCII */
    check_one(B(0xE2, 0x82, 0xC0), 3, 0);
    cr_expect_eq(ot_utf8_seq_len(B(0x41), 0), 0); /* nothing to read */
}

Test(utf8, streaming_keeps_state_across_feeds)
{
    const unsigned char euro[] = { 0xE2, 0x82, 0xAC };
    ot_utf8 u;
    ot_utf8_init(&u);
    cr_assert_eq(ot_utf8_feed(&u, euro, 1), 0);
    cr_expect(!ot_utf8_complete(&u), "mid-sequence is not complete");
    cr_assert_eq(ot_utf8_feed(&u, euro + 1, 2), 0);
    cr_expect(ot_utf8_complete(&u));
    /* Once rejected it stays rejected, even if valid bytes follow. */
    cr_assert_eq(ot_utf8_feed(&u, B(0xFF), 1), OT_ERR);
    cr_expect_eq(ot_utf8_feed(&u, B('a'), 1), OT_ERR);
    cr_expect(!ot_utf8_complete(&u));
}

Test(utf8, long_ascii_runs_with_one_bad_byte)
{
    /* The 8-at-a-time ASCII skip must still see a bad byte at every offset. */
    unsigned char s[40];
    for (size_t bad = 0; bad < sizeof s; bad++) {
        memset(s, 'a', sizeof s);
        s[bad] = 0x80;
        cr_expect(!ot_utf8_valid(s, sizeof s), "bad byte at %zu", bad);
    }
    memset(s, 'a', sizeof s);
    cr_expect(ot_utf8_valid(s, sizeof s));
}

Test(hex, every_byte)
{
    for (int c = 0; c < 256; c++) {
        int want = c >= '0' && c <= '9' ? c - '0'
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        cr_expect_eq(ot_hex_val((unsigned char)c), want, "byte %02x", c);
    }
    for (int v = 0; v < 16; v++)
        cr_expect_eq(ot_hex_val((unsigned char)ot_hex_lower[v]), v);
    cr_expect_eq(ot_hex_lower[16], '\0');
}

Test(utf8, valid_prefix_cuts_at_whole_sequences)
{
    const unsigned char s[] = { 'a', 0xE2, 0x82, 0xAC, 'b', 0xFF, 'c' }; /* a € b <bad> c */
    cr_expect_eq(ot_utf8_valid_prefix(s, sizeof s, 100), 5, "stops at the first invalid byte");
    cr_expect_eq(ot_utf8_valid_prefix(s, sizeof s, 4), 4);
    cr_expect_eq(ot_utf8_valid_prefix(s, sizeof s, 3), 1, "never cuts inside the euro sign");
    cr_expect_eq(ot_utf8_valid_prefix(s, sizeof s, 0), 0);
    cr_expect_eq(ot_utf8_valid_prefix(s, 3, 100), 1, "a sequence cut by n is dropped");
}
