/* The WebSocket opening handshake (RFC 6455 §4), on a parsed HTTP request
 * head: pure functions, unit-tested. */
#ifndef OT_WS_HANDSHAKE_H
#define OT_WS_HANDSHAKE_H

#include "ot/codec/http_parser.h"

/* RFC 6455 §4.2.1 on a parsed request head: 0 and accept filled, or the HTTP
 * status to answer: 400 (not a valid handshake) or 426 (Sec-WebSocket-Version
 * missing or not 13; answer with "Sec-WebSocket-Version: 13", §4.4).
 * *why gets a short message for the error body. */
int ot_ws_check_handshake(const ot_http_request *h, char accept[29], const char **why);
/* The bearer token of the upgrade: "Authorization: Bearer <t>" (scheme
 * case-insensitive, RFC 7235 §2.1), else the percent-decoded ?access_token=
 * (RFC 6750 §2.3: browsers cannot set headers on a WebSocket). 0 with the
 * token in out[0..*len), or OT_ERR (none, or malformed). */
int ot_ws_token(const ot_http_request *h, char *out, size_t cap, size_t *len);

/* The 101 response for accept (ot_ws_check_handshake) into out; its length,
 * or OT_ERR when it does not fit. */
int ot_ws_101(const char accept[29], char *out, size_t cap);

#endif
