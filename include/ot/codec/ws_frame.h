/* RFC 6455 WebSocket framing as pure functions over bytes: no sockets, no allocation.
 * The server side of the protocol: frames we parse come from clients (masked), frames we write are unmasked.
 * Message-level rules (a CONT frame without a started message, a new data frame while one is in progress,
 * reassembly limits) need per-connection state and live in ws.c. */
#ifndef OT_WS_FRAME_H
#define OT_WS_FRAME_H

#include "ot/core/common.h"
#include "ot/core/utf8.h"

enum {
    OT_WS_OP_CONT = 0x0,
    OT_WS_OP_TEXT = 0x1,
    OT_WS_OP_BINARY = 0x2,
    OT_WS_OP_CLOSE = 0x8,
    OT_WS_OP_PING = 0x9,
    OT_WS_OP_PONG = 0xA,
};

/* Largest header a client can send: 2 + 8 (64-bit length) + 4 (mask). */
#define OT_WS_MAX_HEADER 14
/* Control frames carry at most 125 payload bytes (§5.5). */
#define OT_WS_MAX_CONTROL_PAYLOAD 125

typedef struct {
    bool fin;
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len; /* payload starts at buf + header_len */
} ot_ws_frame;

/* Error codes are minus the close status code (§7.4.1) the connection should be failed with. */
enum {
    OT_WS_INCOMPLETE = -2,         /* header not complete yet: read more */
    OT_WS_E_PROTOCOL = -1002,      /* 1002: see ot_ws_parse_header */
    OT_WS_E_INVALID_DATA = -1007,  /* 1007: text or close reason that is not UTF-8 (§8.1) */
    OT_WS_E_TOO_BIG = -1009,       /* 1009: payload_len > max_payload */
};

static inline bool ot_ws_is_control(uint8_t opcode) { return (opcode & 0x8) != 0; }

/* Parses a frame header sent by a CLIENT. Returns header_len (2..14) once the whole header is in buf (the payload
 * may still be arriving), OT_WS_INCOMPLETE, or an error. Never reads past len; *f is meaningful only on success.
 * Checks run in byte order, so an error is reported as soon as the byte that proves it has arrived, and a prefix
 * of a header yields either OT_WS_INCOMPLETE or the same error as the whole header.
 * OT_WS_E_PROTOCOL for: RSV1-3 set (§5.2, no extension is negotiated), reserved opcode 3-7/B-F, control frame with
 * FIN=0 or payload > 125 (§5.5), unmasked frame (§5.1), 64-bit length with MSB set (§5.2), and a length not in its
 * minimal encoding (126 with a 16-bit value < 126, 127 with a 64-bit value < 65536): §5.2 says the minimal number
 * of bytes MUST be used, and accepting two spellings of one header only helps smuggling/fingerprinting.
 * OT_WS_E_TOO_BIG when payload_len > max_payload (checked before the mask arrives). */
int ot_ws_parse_header(const uint8_t *buf, size_t len, uint64_t max_payload, ot_ws_frame *f);

/* XOR-unmasks n bytes in place (§5.3); `offset` is the position of p[0] within the payload, so unmasking can
 * resume across reads. */
void ot_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Writes an unmasked SERVER frame header (§5.1: servers must not mask) into out and returns its length (2, 4 or
 * 10), always using the minimal length encoding. Returns 0 for a caller bug: opcode > 0xF or payload_len >= 2^63. */
size_t ot_ws_write_header(uint8_t out[10], uint8_t opcode, bool fin, uint64_t payload_len);

/* True if `code` may appear in a Close frame on the wire (§7.4): 1000-1003, 1007-1014, 3000-4999. 1004-1006 and
 * 1015 are reserved for local use only; 1012-1014 are IANA-registered (service restart, try again later, bad
 * gateway) and accepted. */
bool ot_ws_close_code_valid(uint16_t code);

/* Close frame payload (§5.5.1): empty, or a 2-byte code + UTF-8 reason. On success the return value is the code
 * to echo in our reply (§5.5.1 "typically echos"), *code the status to report to the application and *reason the
 * reason bytes (pointing into p). An empty payload returns 1000 with *code = 1005 "no status received" (§7.1.5:
 * 1005 must never be sent, so it is only what the app is told). Errors: OT_WS_E_PROTOCOL for length 1, length
 * > 125, or an invalid code; OT_WS_E_INVALID_DATA for a reason that is not UTF-8. */
int ot_ws_parse_close(const uint8_t *p, size_t n, uint16_t *code, ot_str *reason);

/* Sec-WebSocket-Accept (§4.2.2): base64(SHA-1(key + GUID)). The key must be the canonical base64 of exactly 16
 * bytes (§4.1: 24 chars, "==" padding, unused bits zero), else OT_ERR. out receives 28 chars + NUL. */
int ot_ws_accept_key(ot_str client_key, char out[29]);

#endif
