/* RFC 6455 framing, close frames and the handshake accept key (UTF-8 is core/utf8.c). Pure functions over bytes. */
#include "ot/codec/ws_frame.h"

#include "ot/codec/base64.h"

#include <openssl/sha.h>

/* ---------------------------------------------------------------- frame header (§5.2) */

/* Defined opcodes 0x0-0x2 and 0x8-0xA as a bit set; 0x3-0x7 and 0xB-0xF are reserved (§5.2). */
#define OT_WS_KNOWN_OPCODES 0x0707u

int ot_ws_parse_header(const uint8_t *buf, size_t len, uint64_t max_payload, ot_ws_frame *f)
{
    if (len < 1)
        return OT_WS_INCOMPLETE;
    uint8_t b0 = buf[0];
    bool fin = (b0 & 0x80) != 0;
    uint8_t opcode = b0 & 0x0F;
    /* §5.2: RSV1-3 MUST be 0 unless an extension defines them; we negotiate none. */
    if (b0 & 0x70)
        return OT_WS_E_PROTOCOL;
    if (!((OT_WS_KNOWN_OPCODES >> opcode) & 1u))
        return OT_WS_E_PROTOCOL;
    /* §5.5: control frames MUST NOT be fragmented. */
    if (ot_ws_is_control(opcode) && !fin)
        return OT_WS_E_PROTOCOL;

    if (len < 2)
        return OT_WS_INCOMPLETE;
    uint8_t b1 = buf[1];
    /* §5.1: a server MUST close the connection on an unmasked client frame. */
    if (!(b1 & 0x80))
        return OT_WS_E_PROTOCOL;
    uint64_t plen = b1 & 0x7F;
    /* §5.5: control payloads are <= 125, so they always use the 7-bit form. */
    if (ot_ws_is_control(opcode) && plen > OT_WS_MAX_CONTROL_PAYLOAD)
        return OT_WS_E_PROTOCOL;

    size_t pos = 2;
    if (plen == 126) {
        if (len < 4)
            return OT_WS_INCOMPLETE;
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        /* §5.2: "the minimal number of bytes MUST be used to encode the length". */
        if (plen < 126)
            return OT_WS_E_PROTOCOL;
        pos = 4;
    } else if (plen == 127) {
        /* §5.2: the most significant bit of the 64-bit length MUST be 0; known from its first byte. */
        if (len >= 3 && (buf[2] & 0x80))
            return OT_WS_E_PROTOCOL;
        if (len < 10)
            return OT_WS_INCOMPLETE;
        plen = 0;
        for (size_t i = 2; i < 10; i++)
            plen = (plen << 8) | buf[i];
        if (plen <= 0xFFFF)
            return OT_WS_E_PROTOCOL;
        pos = 10;
    }
    /* Known before the mask arrives: fail early, the peer may be about to stream gigabytes. */
    if (plen > max_payload)
        return OT_WS_E_TOO_BIG;
    if (len < pos + 4)
        return OT_WS_INCOMPLETE;

    f->fin = fin;
    f->opcode = opcode;
    f->masked = true;
    memcpy(f->mask, buf + pos, 4);
    f->payload_len = plen;
    f->header_len = pos + 4;
    return (int)f->header_len;
}

size_t ot_ws_write_header(uint8_t out[10], uint8_t opcode, bool fin, uint64_t payload_len)
{
    if (opcode > 0x0F || (payload_len >> 63) != 0)
        return 0;
    out[0] = (uint8_t)((fin ? 0x80 : 0x00) | opcode);
    if (payload_len <= 125) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (8 * (7 - i)));
    return 10;
}

/* ---------------------------------------------------------------- masking (§5.3) */

void ot_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    /* The mask repeats every 4 bytes, so an 8-byte word of it rotated to `offset` applies to every aligned
     * 8-byte step. Bytes are laid out in memory order, so the word is endian-neutral; memcpy keeps the loads
     * legal on unaligned p and compiles to plain moves. */
    uint8_t m8[8];
    for (unsigned i = 0; i < 8; i++)
        m8[i] = mask[(offset + i) & 3];
    size_t i = 0;
    if (n >= 8) {
        uint64_t m;
        memcpy(&m, m8, 8);
        for (; i + 32 <= n; i += 32) {
            uint64_t w[4];
            memcpy(w, p + i, 32);
            w[0] ^= m;
            w[1] ^= m;
            w[2] ^= m;
            w[3] ^= m;
            memcpy(p + i, w, 32);
        }
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= m;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= m8[i & 7];
}

/* ---------------------------------------------------------------- close frames (§5.5.1, §7.4) */

bool ot_ws_close_code_valid(uint16_t code)
{
    if (code >= 3000 && code <= 4999) /* 3000-3999 IANA-registered, 4000-4999 private use (§7.4.2) */
        return true;
    if (code < 1000 || code > 1014)
        return false; /* < 1000 unused; 1015 local-only (TLS failure); 1016-2999 unassigned */
    /* 1004 reserved, 1005 and 1006 local-only ("MUST NOT be set as a status code in a Close control frame"). */
    return code < 1004 || code > 1006;
}

int ot_ws_parse_close(const uint8_t *p, size_t n, uint16_t *code, ot_str *reason)
{
    if (n == 0) {
        *code = 1005;
        *reason = OT_STR_NULL;
        return 1000;
    }
    /* §5.5.1: if there is a body, its first two bytes are the code; §5.5: control payload <= 125. */
    if (n == 1 || n > OT_WS_MAX_CONTROL_PAYLOAD)
        return OT_WS_E_PROTOCOL;
    uint16_t c = (uint16_t)((p[0] << 8) | p[1]);
    if (!ot_ws_close_code_valid(c))
        return OT_WS_E_PROTOCOL;
    /* §5.5.1: the reason is UTF-8; §8.1: invalid UTF-8 fails the connection with 1007. */
    if (!ot_utf8_valid(p + 2, n - 2))
        return OT_WS_E_INVALID_DATA;
    *code = c;
    *reason = ot_str_make((const char *)p + 2, n - 2);
    return c;
}

/* ---------------------------------------------------------------- opening handshake (§4.2.2) */

int ot_ws_accept_key(ot_str client_key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /* §4.1: the key is a random 16-byte value, base64-encoded: 22 symbols + "==". */
    if (client_key.len != 24 || client_key.base == NULL)
        return OT_ERR;
    /* Canonical base64 of exactly 16 bytes (RFC 4648 §3.5: the pad bits of the 22nd symbol must be 0). */
    uint8_t raw[16];
    size_t rawlen;
    if (ot_b64_decode(client_key.base, 24, raw, sizeof raw, &rawlen, false) < 0 || rawlen != sizeof raw)
        return OT_ERR;
    unsigned char in[24 + sizeof(guid) - 1];
    memcpy(in, client_key.base, 24);
    memcpy(in + 24, guid, sizeof(guid) - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    /* SHA-1 is fixed by the RFC; it is a framing check here, not a security primitive. */
    if (SHA1(in, sizeof(in), digest) == NULL)
        return OT_ERR;
    /* 20 bytes -> 28 base64 chars. */
    out[ot_b64_encode(digest, SHA_DIGEST_LENGTH, out, false)] = '\0';
    return OT_OK;
}
