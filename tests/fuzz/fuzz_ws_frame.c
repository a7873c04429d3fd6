/* libFuzzer target for the RFC 6455 frame codec and the UTF-8 validator.
 * Input: byte 0 = split seed, bytes 1-8 = max_payload (shifted by byte 0 to spread its magnitude), rest = wire
 * bytes. Checks invariants rather than just "does not crash": see each block. */
#include <stdio.h>
#include <stdlib.h>

#include "ot/codec/ws_frame.h"

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* Independent reference: decode to a code point, then apply RFC 3629's value rules. */
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

static void check_header(const uint8_t *buf, size_t n, uint64_t max_payload)
{
    ot_ws_frame f;
    int r = ot_ws_parse_header(buf, n, max_payload, &f);
    CHECK(r == OT_WS_INCOMPLETE || r == OT_WS_E_PROTOCOL || r == OT_WS_E_TOO_BIG || r == 6 || r == 8 || r == 14);
    if (r == OT_WS_INCOMPLETE)
        CHECK(n < OT_WS_MAX_HEADER);

    if (r > 0) {
        CHECK((size_t)r <= n);
        CHECK(f.header_len == (size_t)r);
        CHECK(f.masked);
        CHECK(f.opcode <= 2 || (f.opcode >= 8 && f.opcode <= 0xA));
        CHECK(f.payload_len <= max_payload);
        if (ot_ws_is_control(f.opcode))
            CHECK(f.fin && f.payload_len <= OT_WS_MAX_CONTROL_PAYLOAD);
        /* Minimal encoding means header size is a function of the length... */
        CHECK((r == 6) == (f.payload_len <= 125));
        CHECK((r == 8) == (f.payload_len >= 126 && f.payload_len <= 0xFFFF));
        CHECK((r == 14) == (f.payload_len > 0xFFFF));
        CHECK(f.payload_len >> 63 == 0);
        CHECK(memcmp(f.mask, buf + r - 4, 4) == 0);
        /* ...so the writer reproduces the client's header byte for byte, bar the mask. */
        uint8_t w[OT_WS_MAX_HEADER];
        size_t wn = ot_ws_write_header(w, f.opcode, f.fin, f.payload_len);
        CHECK(wn + 4 == (size_t)r);
        w[1] |= 0x80;
        memcpy(w + wn, f.mask, 4);
        CHECK(memcmp(w, buf, (size_t)r) == 0);
    }

    /* Every prefix (in an exactly-sized heap copy, so ASan sees any over-read) is INCOMPLETE or already the same
     * verdict: checks run in byte order. */
    size_t lim = n < OT_WS_MAX_HEADER + 1 ? n : OT_WS_MAX_HEADER + 1;
    for (size_t k = 0; k <= lim; k++) {
        uint8_t *copy = malloc(k ? k : 1);
        CHECK(copy != NULL);
        memcpy(copy, buf, k);
        ot_ws_frame g;
        int rk = ot_ws_parse_header(copy, k, max_payload, &g);
        free(copy);
        if (r > 0 && k < (size_t)r)
            CHECK(rk == OT_WS_INCOMPLETE);
        else
            CHECK(rk == OT_WS_INCOMPLETE || rk == r);
        if (r > 0 && k >= (size_t)r)
            CHECK(rk == r && g.payload_len == f.payload_len && g.opcode == f.opcode && g.fin == f.fin);
    }
}

static void check_unmask(const uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset, size_t s1, size_t s2)
{
    uint8_t *ref = malloc(n ? n : 1), *one = malloc(n ? n : 1), *split = malloc(n ? n : 1);
    CHECK(ref && one && split);
    for (size_t i = 0; i < n; i++)
        ref[i] = p[i] ^ mask[(offset + i) & 3];
    memcpy(one, p, n);
    ot_ws_unmask(one, n, mask, offset);
    CHECK(n == 0 || memcmp(one, ref, n) == 0);

    if (s1 > n) s1 = n;
    if (s2 > n - s1) s2 = n - s1;
    memcpy(split, p, n);
    ot_ws_unmask(split, s1, mask, offset);
    ot_ws_unmask(split + s1, s2, mask, offset + s1);
    ot_ws_unmask(split + s1 + s2, n - s1 - s2, mask, offset + s1 + s2);
    CHECK(n == 0 || memcmp(split, ref, n) == 0);

    ot_ws_unmask(one, n, mask, offset); /* XOR twice is the identity */
    CHECK(n == 0 || memcmp(one, p, n) == 0);
    free(ref);
    free(one);
    free(split);
}

static void check_utf8(const uint8_t *p, size_t n, size_t s1, size_t s2)
{
    bool whole = ot_utf8_valid(p, n);
    CHECK(whole == ref_utf8_valid(p, n));

    if (s1 > n) s1 = n;
    if (s2 > n - s1) s2 = n - s1;
    ot_utf8 u;
    ot_utf8_init(&u);
    int r1 = ot_utf8_feed(&u, p, s1);
    int r2 = ot_utf8_feed(&u, p + s1, s2);
    int r3 = ot_utf8_feed(&u, p + s1 + s2, n - s1 - s2);
    CHECK(r1 == OT_OK || r1 == OT_ERR);
    CHECK(r1 != OT_ERR || r2 == OT_ERR); /* invalid is sticky */
    CHECK(r2 != OT_ERR || r3 == OT_ERR);
    CHECK(whole == (r3 == OT_OK && ot_utf8_complete(&u)));
    /* A valid whole has no invalid prefix. */
    if (whole)
        CHECK(r1 == OT_OK && r2 == OT_OK);
    /* When not rejected, "complete" after s1 bytes must mean exactly that those s1 bytes are valid UTF-8. */
    if (r1 == OT_OK) {
        ot_utf8 v;
        ot_utf8_init(&v);
        ot_utf8_feed(&v, p, s1);
        CHECK(ot_utf8_complete(&v) == ref_utf8_valid(p, s1));
    }

    ot_utf8 b;
    ot_utf8_init(&b);
    int rb = OT_OK;
    for (size_t i = 0; i < n; i++)
        rb = ot_utf8_feed(&b, p + i, 1);
    CHECK(whole == (rb == OT_OK && ot_utf8_complete(&b)));
}

static void check_close(const uint8_t *p, size_t n)
{
    uint16_t code = 0;
    ot_str reason = OT_STR_NULL;
    int r = ot_ws_parse_close(p, n, &code, &reason);
    CHECK(r == OT_WS_E_PROTOCOL || r == OT_WS_E_INVALID_DATA || (r >= 1000 && r <= 4999));
    if (r < 0)
        return;
    if (n == 0) {
        CHECK(r == 1000 && code == 1005 && reason.len == 0);
        return;
    }
    CHECK(n >= 2 && n <= 125);
    CHECK(code == r && ot_ws_close_code_valid(code));
    CHECK(code == ((p[0] << 8) | p[1]));
    CHECK((const uint8_t *)reason.base == p + 2 && reason.len == n - 2);
    CHECK(ot_utf8_valid((const uint8_t *)reason.base, reason.len));
}

static void check_accept(const uint8_t *p, size_t n)
{
    char out[29], again[29];
    int r = ot_ws_accept_key(ot_str_make((const char *)p, n), out);
    CHECK(r == OT_OK || r == OT_ERR);
    if (r != OT_OK)
        return;
    CHECK(n == 24 && p[22] == '=' && p[23] == '=');
    CHECK(strlen(out) == 28 && out[27] == '=');
    CHECK(ot_ws_accept_key(ot_str_make((const char *)p, n), again) == OT_OK && memcmp(out, again, 29) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    uint8_t seed = data[0];
    uint64_t max_payload = 0;
    for (int i = 0; i < 8; i++)
        max_payload |= (uint64_t)data[1 + i] << (8 * i);
    max_payload >>= seed & 63;
    const uint8_t *buf = data + 9;
    size_t n = size - 9;

    check_header(buf, n, max_payload);

    ot_ws_frame f;
    int r = ot_ws_parse_header(buf, n, max_payload, &f);
    const uint8_t *payload = buf;
    size_t plen = n;
    uint8_t mask[4] = { seed, (uint8_t)(seed * 3), 0x5A, 0xA5 };
    uint64_t offset = max_payload;
    if (r > 0) {
        payload = buf + r;
        plen = n - (size_t)r;
        memcpy(mask, f.mask, 4);
        offset = 0;
    }
    size_t s1 = plen ? (size_t)seed % (plen + 1) : 0;
    size_t s2 = plen ? (size_t)(seed * 7 + 1) % (plen + 1) : 0;
    check_unmask(payload, plen, mask, offset, s1, s2);
    check_utf8(payload, plen, s1, s2);
    check_close(payload, plen);
    check_accept(payload, plen < 24 ? plen : 24);
    return 0;
}
