/* RFC 6455 frame codec, UTF-8 validator, close payloads and the accept key. */
#include <criterion/criterion.h>

#include "ot/codec/ws_frame.h"

static const uint8_t MASK[4] = { 0x37, 0xfa, 0x21, 0x3d }; /* the mask of the §5.7 examples */

/* Builds a client header the slow, obvious way: b0, b1 with the mask bit, the extended length as given
 * (possibly non-minimal), the mask. Returns its length. */
static size_t client_header(uint8_t *out, uint8_t b0, int len_form, uint64_t len)
{
    size_t n = 0;
    out[n++] = b0;
    if (len_form == 7) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len_form == 16) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    memcpy(out + n, MASK, 4);
    return n + 4;
}

/* ------------------------------------------------------------------ RFC 6455 §5.7 examples */

Test(ws_frame, rfc_masked_hello_text_parses_and_unmasks)
{
    uint8_t msg[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    ot_ws_frame f;
    cr_assert_eq(ot_ws_parse_header(msg, sizeof(msg), 1 << 20, &f), 6);
    cr_assert(f.fin);
    cr_assert_eq(f.opcode, OT_WS_OP_TEXT);
    cr_assert(f.masked);
    cr_assert_eq(f.payload_len, 5);
    cr_assert_eq(f.header_len, 6);
    cr_assert_arr_eq(f.mask, MASK, 4);
    ot_ws_unmask(msg + 6, 5, f.mask, 0);
    cr_assert_arr_eq(msg + 6, "Hello", 5);
}

Test(ws_frame, rfc_unmasked_hello_from_client_is_protocol_error)
{
    const uint8_t msg[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    ot_ws_frame f;
    cr_assert_eq(ot_ws_parse_header(msg, sizeof(msg), 1 << 20, &f), OT_WS_E_PROTOCOL);
}

Test(ws_frame, rfc_fragmented_hello_first_text_then_continuation)
{
    /* §5.7 sends these unmasked (server side): our writer must produce the same bytes... */
    uint8_t h[10];
    cr_assert_eq(ot_ws_write_header(h, OT_WS_OP_TEXT, false, 3), 2);
    cr_assert_eq(h[0], 0x01);
    cr_assert_eq(h[1], 0x03);
    cr_assert_eq(ot_ws_write_header(h, OT_WS_OP_CONT, true, 2), 2);
    cr_assert_eq(h[0], 0x80);
    cr_assert_eq(h[1], 0x02);

    /* ...and the same fragments sent masked by a client parse as TEXT/FIN=0 then CONT/FIN=1. */
    uint8_t a[] = { 0x01, 0x83, 0x37, 0xfa, 0x21, 0x3d, 'H', 'e', 'l' };
    uint8_t b[] = { 0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 'l', 'o' };
    ot_ws_unmask(a + 6, 3, MASK, 0);
    ot_ws_unmask(b + 6, 2, MASK, 0);
    ot_ws_frame f;
    cr_assert_eq(ot_ws_parse_header(a, sizeof(a), 100, &f), 6);
    cr_assert(!f.fin);
    cr_assert_eq(f.opcode, OT_WS_OP_TEXT);
    cr_assert_eq(f.payload_len, 3);
    ot_ws_unmask(a + 6, 3, f.mask, 0);
    cr_assert_arr_eq(a + 6, "Hel", 3);
    cr_assert_eq(ot_ws_parse_header(b, sizeof(b), 100, &f), 6);
    cr_assert(f.fin);
    cr_assert_eq(f.opcode, OT_WS_OP_CONT);
    cr_assert_eq(f.payload_len, 2);
    ot_ws_unmask(b + 6, 2, f.mask, 0);
    cr_assert_arr_eq(b + 6, "lo", 2);
}

Test(ws_frame, rfc_ping_written_and_masked_pong_parsed)
{
    uint8_t h[10];
    cr_assert_eq(ot_ws_write_header(h, OT_WS_OP_PING, true, 5), 2);
    cr_assert_eq(h[0], 0x89);
    cr_assert_eq(h[1], 0x05);

    uint8_t pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    ot_ws_frame f;
    cr_assert_eq(ot_ws_parse_header(pong, sizeof(pong), 0, &f), OT_WS_E_TOO_BIG);
    cr_assert_eq(ot_ws_parse_header(pong, sizeof(pong), 125, &f), 6);
    cr_assert_eq(f.opcode, OT_WS_OP_PONG);
    cr_assert(f.fin);
    ot_ws_unmask(pong + 6, 5, f.mask, 0);
    cr_assert_arr_eq(pong + 6, "Hello", 5);
}

Test(ws_frame, rfc_256_byte_and_64k_binary_length_encodings)
{
    uint8_t h[10];
    const uint8_t want256[] = { 0x82, 0x7E, 0x01, 0x00 };
    cr_assert_eq(ot_ws_write_header(h, OT_WS_OP_BINARY, true, 256), 4);
    cr_assert_arr_eq(h, want256, 4);
    const uint8_t want64k[] = { 0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00 };
    cr_assert_eq(ot_ws_write_header(h, OT_WS_OP_BINARY, true, 65536), 10);
    cr_assert_arr_eq(h, want64k, 10);

    uint8_t c[14];
    ot_ws_frame f;
    size_t n = client_header(c, 0x82, 16, 256);
    cr_assert_eq(ot_ws_parse_header(c, n, 1 << 20, &f), 8);
    cr_assert_eq(f.payload_len, 256);
    cr_assert_eq(f.opcode, OT_WS_OP_BINARY);
    n = client_header(c, 0x82, 64, 65536);
    cr_assert_eq(ot_ws_parse_header(c, n, 1 << 20, &f), 14);
    cr_assert_eq(f.payload_len, 65536);
    cr_assert_arr_eq(f.mask, MASK, 4);
}

/* ------------------------------------------------------------------ opcodes, RSV, mask, control rules */

Test(ws_frame, every_opcode_valid_or_reserved_with_and_without_fin)
{
    for (unsigned op = 0; op < 16; op++) {
        bool known = op <= 2 || (op >= 8 && op <= 0xA);
        for (int fin = 0; fin <= 1; fin++) {
            uint8_t c[14];
            size_t n = client_header(c, (uint8_t)((fin ? 0x80 : 0) | op), 7, 3);
            ot_ws_frame f;
            int r = ot_ws_parse_header(c, n, 1000, &f);
            bool want_ok = known && (fin || op < 8);
            if (want_ok) {
                cr_assert_eq(r, 6, "op %x fin %d", op, fin);
                cr_assert_eq(f.opcode, op);
                cr_assert_eq(f.fin, (bool)fin);
            } else {
                cr_assert_eq(r, OT_WS_E_PROTOCOL, "op %x fin %d -> %d", op, fin, r);
            }
        }
    }
}

Test(ws_frame, reserved_opcode_rejected_from_first_byte)
{
    const uint8_t b[] = { 0x83 };
    ot_ws_frame f;
    cr_assert_eq(ot_ws_parse_header(b, 1, 1000, &f), OT_WS_E_PROTOCOL);
}

Test(ws_frame, any_rsv_bit_is_protocol_error)
{
    const uint8_t rsv[] = { 0x40, 0x20, 0x10, 0x70 };
    for (size_t i = 0; i < sizeof(rsv); i++) {
        uint8_t c[14];
        size_t n = client_header(c, 0x81 | rsv[i], 7, 1);
        ot_ws_frame f;
        cr_assert_eq(ot_ws_parse_header(c, n, 1000, &f), OT_WS_E_PROTOCOL, "rsv %02x", rsv[i]);
        cr_assert_eq(ot_ws_parse_header(c, 1, 1000, &f), OT_WS_E_PROTOCOL, "rsv %02x first byte", rsv[i]);
    }
}

Test(ws_frame, unmasked_client_frame_rejected_for_every_opcode)
{
    const uint8_t ops[] = { 0x0, 0x1, 0x2, 0x8, 0x9, 0xA };
    for (size_t i = 0; i < sizeof(ops); i++) {
        const uint8_t b[] = { (uint8_t)(0x80 | ops[i]), 0x00 };
        ot_ws_frame f;
        cr_assert_eq(ot_ws_parse_header(b, 2, 1000, &f), OT_WS_E_PROTOCOL, "op %x", ops[i]);
    }
}

Test(ws_frame, control_frame_payload_over_125_rejected_125_accepted)
{
    const uint8_t ops[] = { 0x88, 0x89, 0x8A };
    for (size_t i = 0; i < sizeof(ops); i++) {
        uint8_t c[14];
        ot_ws_frame f;
        size_t n = client_header(c, ops[i], 7, 125);
        cr_assert_eq(ot_ws_parse_header(c, n, 1 << 20, &f), 6);
        cr_assert_eq(f.payload_len, 125);
        n = client_header(c, ops[i], 16, 126);
        cr_assert_eq(ot_ws_parse_header(c, n, 1 << 20, &f), OT_WS_E_PROTOCOL);
        cr_assert_eq(ot_ws_parse_header(c, 2, 1 << 20, &f), OT_WS_E_PROTOCOL, "known from byte 2");
        n = client_header(c, ops[i], 64, 70000);
        cr_assert_eq(ot_ws_parse_header(c, n, 1 << 20, &f), OT_WS_E_PROTOCOL);
    }
}

Test(ws_frame, fragmented_control_frame_rejected)
{
    const uint8_t ops[] = { 0x08, 0x09, 0x0A };
    for (size_t i = 0; i < sizeof(ops); i++) {
        uint8_t c[14];
        ot_ws_frame f;
        size_t n = client_header(c, ops[i], 7, 0);
        cr_assert_eq(ot_ws_parse_header(c, n, 1000, &f), OT_WS_E_PROTOCOL, "op %x", ops[i]);
    }
}

/* ------------------------------------------------------------------ lengths */

Test(ws_frame, length_boundaries_pick_7_16_64_bit_forms)
{
    static const struct { uint64_t len; int form; int hlen; } cases[] = {
        { 0, 7, 6 }, { 1, 7, 6 }, { 125, 7, 6 }, { 126, 16, 8 }, { 127, 16, 8 }, { 65535, 16, 8 },
        { 65536, 64, 14 }, { UINT64_C(0xFFFFFFFF), 64, 14 }, { UINT64_C(0x7FFFFFFFFFFFFFFF), 64, 14 },
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(cases); i++) {
        uint8_t c[14];
        size_t n = client_header(c, 0x82, cases[i].form, cases[i].len);
        ot_ws_frame f;
        cr_assert_eq(ot_ws_parse_header(c, n, UINT64_MAX, &f), cases[i].hlen, "len %llu",
                     (unsigned long long)cases[i].len);
        cr_assert_eq(f.payload_len, cases[i].len);
        cr_assert_eq(f.header_len, (size_t)cases[i].hlen);

        uint8_t w[10];
        cr_assert_eq(ot_ws_write_header(w, OT_WS_OP_BINARY, true, cases[i].len), (size_t)cases[i].hlen - 4);
    }
}

Test(ws_frame, non_minimal_length_encodings_rejected)
{
    static const struct { uint64_t len; int form; } cases[] = {
        { 0, 16 }, { 5, 16 }, { 125, 16 }, { 0, 64 }, { 125, 64 }, { 126, 64 }, { 65535, 64 },
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(cases); i++) {
        uint8_t c[14];
        size_t n = client_header(c, 0x82, cases[i].form, cases[i].len);
        ot_ws_frame f;
        cr_assert_eq(ot_ws_parse_header(c, n, UINT64_MAX, &f), OT_WS_E_PROTOCOL, "len %llu form %d",
                     (unsigned long long)cases[i].len, cases[i].form);
    }
}

Test(ws_frame, sixty_four_bit_length_with_msb_set_rejected_early)
{
    uint8_t c[14];
    size_t n = client_header(c, 0x82, 64, UINT64_C(0x8000000000000000));
    ot_ws_frame f;
    cr_assert_eq(ot_ws_parse_header(c, n, UINT64_MAX, &f), OT_WS_E_PROTOCOL);
    cr_assert_eq(ot_ws_parse_header(c, 3, UINT64_MAX, &f), OT_WS_E_PROTOCOL, "MSB is in byte 2");
    n = client_header(c, 0x82, 64, UINT64_MAX);
    cr_assert_eq(ot_ws_parse_header(c, n, UINT64_MAX, &f), OT_WS_E_PROTOCOL);
}

Test(ws_frame, payload_over_max_is_too_big_and_reported_before_mask)
{
    static const struct { uint64_t len; int form; size_t len_end; } cases[] = {
        { 100, 7, 2 }, { 1000, 16, 4 }, { 100000, 64, 10 },
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(cases); i++) {
        uint8_t c[14];
        size_t n = client_header(c, 0x82, cases[i].form, cases[i].len);
        ot_ws_frame f;
        cr_assert_eq(ot_ws_parse_header(c, n, cases[i].len, &f), (int)n, "exactly max is fine");
        cr_assert_eq(ot_ws_parse_header(c, n, cases[i].len - 1, &f), OT_WS_E_TOO_BIG);
        cr_assert_eq(ot_ws_parse_header(c, cases[i].len_end, cases[i].len - 1, &f), OT_WS_E_TOO_BIG);
        cr_assert_eq(ot_ws_parse_header(c, cases[i].len_end - 1, cases[i].len - 1, &f), OT_WS_INCOMPLETE);
    }
}

Test(ws_frame, header_split_at_every_byte_is_incomplete_until_complete)
{
    static const struct { uint8_t b0; int form; uint64_t len; } cases[] = {
        { 0x81, 7, 0 }, { 0x81, 7, 125 }, { 0x02, 16, 126 }, { 0x80, 16, 65535 }, { 0x82, 64, 65536 },
        { 0x89, 7, 4 }, { 0x88, 7, 2 },
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(cases); i++) {
        uint8_t c[14 + 3];
        size_t n = client_header(c, cases[i].b0, cases[i].form, cases[i].len);
        memset(c + n, 0xEE, 3); /* payload bytes after the header must not matter */
        for (size_t k = 0; k <= n + 3; k++) {
            ot_ws_frame f;
            int r = ot_ws_parse_header(c, k, UINT64_MAX, &f);
            if (k < n) {
                cr_assert_eq(r, OT_WS_INCOMPLETE, "case %zu k=%zu r=%d", i, k, r);
            } else {
                cr_assert_eq(r, (int)n, "case %zu k=%zu", i, k);
                cr_assert_eq(f.payload_len, cases[i].len);
            }
        }
    }
    ot_ws_frame f;
    cr_assert_eq(ot_ws_parse_header(NULL, 0, 100, &f), OT_WS_INCOMPLETE);
}

/* ------------------------------------------------------------------ masking */

Test(ws_frame, unmask_resumed_at_every_split_matches_one_shot)
{
    enum { N = 301 };
    uint8_t orig[N + 8], once[N + 8], split[N + 8];
    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)(i * 131 + 7);
    const uint8_t mask[4] = { 0xA1, 0x02, 0xF3, 0x44 };
    /* The reference: §5.3 "j = i MOD 4" byte by byte. */
    for (size_t i = 0; i < N; i++)
        once[i] = orig[i] ^ mask[i % 4];
    uint8_t tmp[N];
    memcpy(tmp, orig, N);
    ot_ws_unmask(tmp, N, mask, 0);
    cr_assert_arr_eq(tmp, once, N);

    for (size_t s = 0; s <= N; s++) {
        /* Start at an odd address too: the word path must not assume alignment. */
        uint8_t *p = split + (s & 7);
        memcpy(p, orig, N);
        ot_ws_unmask(p, s, mask, 0);
        ot_ws_unmask(p + s, N - s, mask, s);
        cr_assert_arr_eq(p, once, N, "split at %zu", s);
    }
    /* Three pieces with odd sizes. */
    for (size_t a = 0; a < 40; a++) {
        for (size_t b = a; b < 80; b += 3) {
            memcpy(split, orig, N);
            ot_ws_unmask(split, a, mask, 0);
            ot_ws_unmask(split + a, b - a, mask, a);
            ot_ws_unmask(split + b, N - b, mask, b);
            cr_assert_arr_eq(split, once, N, "pieces %zu %zu", a, b);
        }
    }
}

Test(ws_frame, unmask_uses_offset_modulo_4_even_for_huge_offsets)
{
    const uint8_t mask[4] = { 1, 2, 4, 8 };
    uint8_t p[20] = { 0 };
    uint64_t off = UINT64_C(0x7FFFFFFFFFFFFFFE); /* == 2 mod 4 */
    ot_ws_unmask(p, sizeof(p), mask, off);
    for (size_t i = 0; i < sizeof(p); i++)
        cr_assert_eq(p[i], mask[(i + 2) % 4], "byte %zu", i);
    ot_ws_unmask(p, sizeof(p), mask, off);
    for (size_t i = 0; i < sizeof(p); i++)
        cr_assert_eq(p[i], 0, "twice is identity, byte %zu", i);
    ot_ws_unmask(NULL, 0, mask, 0);
}

/* ------------------------------------------------------------------ writer */

Test(ws_frame, write_header_round_trips_through_parse_with_mask_bit)
{
    const uint8_t ops[] = { 0x0, 0x1, 0x2, 0x8, 0x9, 0xA };
    const uint64_t lens[] = { 0, 1, 124, 125, 126, 127, 255, 256, 65534, 65535, 65536, 65537,
                              UINT64_C(1) << 32, UINT64_C(0x7FFFFFFFFFFFFFFF) };
    for (size_t o = 0; o < sizeof(ops); o++) {
        for (size_t l = 0; l < OT_ARRAY_LEN(lens); l++) {
            for (int fin = 0; fin <= 1; fin++) {
                bool control = ops[o] >= 8;
                if (control && (!fin || lens[l] > 125))
                    continue;
                uint8_t buf[14];
                size_t n = ot_ws_write_header(buf, ops[o], fin, lens[l]);
                cr_assert(n == 2 || n == 4 || n == 10);
                cr_assert_eq(buf[1] & 0x80, 0, "server frames are unmasked");
                buf[1] |= 0x80;
                memcpy(buf + n, MASK, 4);
                ot_ws_frame f;
                cr_assert_eq(ot_ws_parse_header(buf, n + 4, UINT64_MAX, &f), (int)(n + 4));
                cr_assert_eq(f.opcode, ops[o]);
                cr_assert_eq(f.fin, (bool)fin);
                cr_assert_eq(f.payload_len, lens[l]);
                cr_assert_arr_eq(f.mask, MASK, 4);
            }
        }
    }
}

Test(ws_frame, write_header_refuses_caller_bugs)
{
    uint8_t buf[10];
    cr_assert_eq(ot_ws_write_header(buf, 0x10, true, 1), 0);
    cr_assert_eq(ot_ws_write_header(buf, OT_WS_OP_BINARY, true, UINT64_C(1) << 63), 0);
}

/* ------------------------------------------------------------------ UTF-8 */

/* Reference validator written the other way round: decode each sequence to a code point, then apply
 * RFC 3629's rules to the value. */
static bool ref_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t need;
        uint32_t cp, min;
        if (b < 0x80) { i++; continue; }
        else if ((b & 0xE0) == 0xC0) { need = 1; cp = b & 0x1F; min = 0x80; }
        else if ((b & 0xF0) == 0xE0) { need = 2; cp = b & 0x0F; min = 0x800; }
        else if ((b & 0xF8) == 0xF0) { need = 3; cp = b & 0x07; min = 0x10000; }
        else return false;
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

Test(utf8, valid_multibyte_text_accepted)
{
    static const struct { const char *s; size_t n; } ok[] = {
        { "", 0 }, { "hello", 5 },
        { "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11 }, /* κόσμε */
        { "\xc2\x80", 2 }, { "\xdf\xbf", 2 },                   /* U+0080, U+07FF */
        { "\xe0\xa0\x80", 3 }, { "\xef\xbf\xbf", 3 },           /* U+0800, U+FFFF */
        { "\xed\x9f\xbf", 3 }, { "\xee\x80\x80", 3 },           /* U+D7FF, U+E000 around the surrogates */
        { "\xf0\x90\x80\x80", 4 }, { "\xf4\x8f\xbf\xbf", 4 },   /* U+10000, U+10FFFF */
        { "\xef\xbb\xbf", 3 }, { "a\0b", 3 },                   /* BOM and NUL are characters */
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(ok); i++)
        cr_assert(ot_utf8_valid((const uint8_t *)ok[i].s, ok[i].n), "case %zu", i);
}

Test(utf8, overlongs_surrogates_and_above_10ffff_rejected)
{
    static const struct { const char *s; size_t n; } bad[] = {
        { "\xc0\x80", 2 }, { "\xc1\xbf", 2 },                        /* overlong 2-byte */
        { "\xe0\x80\x80", 3 }, { "\xe0\x9f\xbf", 3 },                /* overlong 3-byte */
        { "\xf0\x80\x80\x80", 4 }, { "\xf0\x8f\xbf\xbf", 4 },        /* overlong 4-byte */
        { "\xed\xa0\x80", 3 }, { "\xed\xbf\xbf", 3 },                /* surrogates D800, DFFF */
        { "\xf4\x90\x80\x80", 4 }, { "\xf5\x80\x80\x80", 4 },        /* > U+10FFFF */
        { "\xf8\x88\x80\x80\x80", 5 }, { "\xff", 1 }, { "\xfe", 1 },
        { "\x80", 1 }, { "\xbf", 1 }, { "a\x80z", 3 },               /* stray continuation */
        { "\xc3\x28", 2 }, { "\xe2\x28\xa1", 3 }, { "\xf0\x28\x8c\xbc", 4 },
        { "\xe2\x82", 2 }, { "\xf0\x9f\x98", 3 },                    /* truncated at end */
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++)
        cr_assert(!ot_utf8_valid((const uint8_t *)bad[i].s, bad[i].n), "case %zu", i);
}

Test(utf8, four_byte_char_split_at_every_byte_across_feeds)
{
    const uint8_t emoji[] = { 'x', 0xF0, 0x9F, 0x98, 0x80, 'y' }; /* x U+1F600 y */
    for (size_t a = 0; a <= sizeof(emoji); a++) {
        for (size_t b = a; b <= sizeof(emoji); b++) {
            ot_utf8 u;
            ot_utf8_init(&u);
            cr_assert_eq(ot_utf8_feed(&u, emoji, a), 0);
            cr_assert_eq(ot_utf8_complete(&u), a <= 1 || a >= 5, "after %zu bytes", a);
            cr_assert_eq(ot_utf8_feed(&u, emoji + a, b - a), 0);
            cr_assert_eq(ot_utf8_feed(&u, emoji + b, sizeof(emoji) - b), 0);
            cr_assert(ot_utf8_complete(&u));
        }
    }
}

Test(utf8, invalid_is_sticky_and_zeroed_state_is_initial)
{
    ot_utf8 u = { 0 };
    cr_assert(ot_utf8_complete(&u));
    cr_assert_eq(ot_utf8_feed(&u, (const uint8_t *)"ok", 2), 0);
    cr_assert_eq(ot_utf8_feed(&u, (const uint8_t *)"\xed\xa0", 2), OT_ERR);
    cr_assert_eq(ot_utf8_feed(&u, (const uint8_t *)"fine", 4), OT_ERR);
    cr_assert(!ot_utf8_complete(&u));
    cr_assert_eq(ot_utf8_feed(&u, NULL, 0), OT_ERR);
}

Test(utf8, bad_byte_found_at_every_position_of_long_ascii_run)
{
    /* Exercises the 8-bytes-at-a-time ASCII skip around its word boundaries. */
    uint8_t buf[64];
    for (size_t pos = 0; pos < sizeof(buf); pos++) {
        memset(buf, 'a', sizeof(buf));
        buf[pos] = 0xFF;
        cr_assert(!ot_utf8_valid(buf, sizeof(buf)), "bad byte at %zu", pos);
        buf[pos] = 0xC3; /* lead whose continuation is 'a' (or missing) */
        cr_assert(!ot_utf8_valid(buf, sizeof(buf)), "bad lead at %zu", pos);
        if (pos + 1 < sizeof(buf)) {
            buf[pos + 1] = 0xA9; /* é */
            cr_assert(ot_utf8_valid(buf, sizeof(buf)), "é at %zu", pos);
        }
    }
}

Test(utf8, agrees_with_reference_on_all_sequences_up_to_3_bytes)
{
    uint8_t b[3];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        cr_assert_eq(ot_utf8_valid(b, 1), ref_utf8_valid(b, 1), "%02x", x);
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            cr_assert_eq(ot_utf8_valid(b, 2), ref_utf8_valid(b, 2), "%02x %02x", x, y);
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (uint8_t)z;
                if (ot_utf8_valid(b, 3) != ref_utf8_valid(b, 3))
                    cr_assert_fail("%02x %02x %02x", x, y, z);
            }
        }
    }
}

Test(utf8, agrees_with_reference_on_4_byte_boundaries)
{
    const uint8_t edges[] = { 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF };
    uint8_t b[4];
    for (unsigned w = 0xE0; w < 256; w++) {
        for (unsigned x = 0; x < 256; x++) {
            for (size_t y = 0; y < sizeof(edges); y++) {
                for (size_t z = 0; z < sizeof(edges); z++) {
                    b[0] = (uint8_t)w; b[1] = (uint8_t)x; b[2] = edges[y]; b[3] = edges[z];
                    if (ot_utf8_valid(b, 4) != ref_utf8_valid(b, 4))
                        cr_assert_fail("%02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ close payloads */

Test(ws_close, valid_codes_accepted_with_reason)
{
    const uint16_t ok[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                            3000, 3999, 4000, 4999 };
    for (size_t i = 0; i < OT_ARRAY_LEN(ok); i++) {
        uint8_t p[2 + 5] = { (uint8_t)(ok[i] >> 8), (uint8_t)ok[i], 'b', 'y', 0xC3, 0xA9, '!' };
        uint16_t code = 0;
        ot_str reason = OT_STR_NULL;
        cr_assert_eq(ot_ws_parse_close(p, sizeof(p), &code, &reason), ok[i]);
        cr_assert_eq(code, ok[i]);
        cr_assert_eq(reason.len, 5);
        cr_assert_eq((const uint8_t *)reason.base, p + 2, "reason points into the payload");
        cr_assert_eq(ot_ws_parse_close(p, 2, &code, &reason), ok[i]);
        cr_assert_eq(reason.len, 0);
    }
}

Test(ws_close, invalid_codes_rejected)
{
    const uint16_t bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++) {
        uint8_t p[2] = { (uint8_t)(bad[i] >> 8), (uint8_t)bad[i] };
        uint16_t code;
        ot_str reason;
        cr_assert_eq(ot_ws_parse_close(p, 2, &code, &reason), OT_WS_E_PROTOCOL, "code %u", bad[i]);
        cr_assert(!ot_ws_close_code_valid(bad[i]));
    }
}

Test(ws_close, empty_payload_means_no_status_and_echo_1000)
{
    uint16_t code = 0;
    ot_str reason = OT_STR("junk");
    cr_assert_eq(ot_ws_parse_close(NULL, 0, &code, &reason), 1000);
    cr_assert_eq(code, 1005);
    cr_assert_eq(reason.len, 0);
}

Test(ws_close, length_one_and_over_125_are_protocol_errors)
{
    uint8_t p[126] = { 0x03, 0xE8 };
    memset(p + 2, 'a', sizeof(p) - 2);
    uint16_t code;
    ot_str reason;
    cr_assert_eq(ot_ws_parse_close(p, 1, &code, &reason), OT_WS_E_PROTOCOL);
    cr_assert_eq(ot_ws_parse_close(p, 126, &code, &reason), OT_WS_E_PROTOCOL);
    cr_assert_eq(ot_ws_parse_close(p, 125, &code, &reason), 1000);
}

Test(ws_close, reason_that_is_not_utf8_is_1007)
{
    const uint8_t bad[][5] = {
        { 0x03, 0xE8, 0xC0, 0x80, 'x' }, { 0x03, 0xE8, 0xED, 0xA0, 0x80 }, { 0x03, 0xE8, 'o', 'k', 0xE2 },
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++) {
        uint16_t code;
        ot_str reason;
        cr_assert_eq(ot_ws_parse_close(bad[i], 5, &code, &reason), OT_WS_E_INVALID_DATA, "case %zu", i);
    }
}

/* ------------------------------------------------------------------ handshake */

Test(ws_accept, rfc_sample_key)
{
    char out[29];
    memset(out, 'Z', sizeof(out));
    cr_assert_eq(ot_ws_accept_key(OT_STR("dGhlIHNhbXBsZSBub25jZQ=="), out), OT_OK);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws_accept, other_key_gives_other_accept)
{
    char a[29], b[29];
    cr_assert_eq(ot_ws_accept_key(OT_STR("AAAAAAAAAAAAAAAAAAAAAA=="), a), OT_OK);
    cr_assert_eq(ot_ws_accept_key(OT_STR("/////////////////////w=="), b), OT_OK);
    cr_assert_eq(strlen(a), 28);
    cr_assert_str_neq(a, b);
}

Test(ws_accept, keys_not_base64_of_16_bytes_rejected)
{
    const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",        /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZQ===",      /* 25 chars */
        "dGhlIHNhbXBsZSBub25jZQAA",       /* no padding: 18 bytes */
        "dGhlIHNhbXBsZSBub25jZR==",       /* non-canonical: leftover bits set */
        "dGhlIHNhbXBsZSBub25j*Q==",       /* not in the alphabet */
        "dGhlIHNhbXBsZSBub25jZQ= ",
        " dGhlIHNhbXBsZSBub25jZQ=",
        "dGhlIHNhbXBsZSBub25jZQ=A",
        "dGhlIHNhbXBsZSBub25jZ===",
    };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++) {
        char out[29];
        cr_assert_eq(ot_ws_accept_key(ot_str_c(bad[i]), out), OT_ERR, "'%s'", bad[i]);
    }
    char out[29];
    cr_assert_eq(ot_ws_accept_key(OT_STR_NULL, out), OT_ERR);
    /* Length travels with the bytes: a valid key followed by junk in the same buffer is judged on its 24. */
    const char longer[] = "dGhlIHNhbXBsZSBub25jZQ==trailing";
    cr_assert_eq(ot_ws_accept_key(ot_str_make(longer, 24), out), OT_OK);
    cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
