/* Base64 and base64url (RFC 4648 §4, §5), strict in both directions.
 *
 * Strictness matters for signatures: if "abc" and "abd" decoded to the same
 * bytes, one JWT would have several valid spellings, so decoding rejects
 * anything that is not the canonical encoding (RFC 4648 §3.5 lets a decoder
 * refuse non-zero pad bits). */
#ifndef OT_BASE64_H
#define OT_BASE64_H

#include "ot/core/common.h"

/* Output length of encoding n bytes. */
#define OT_B64_ENC_LEN(n) ((((n) + 2) / 3) * 4)            /* standard, padded */
#define OT_B64URL_ENC_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0)) /* url, unpadded */
/* Upper bound of the decoded length of n characters. */
#define OT_B64_DEC_MAX(n) ((((n) + 3) / 4) * 3)

/* Writes the encoding of in[0..n) to out (no NUL added; out must hold
 * OT_B64_ENC_LEN / OT_B64URL_ENC_LEN bytes). url: base64url alphabet without
 * padding (RFC 7515 §2); else the standard alphabet with '=' padding.
 * Returns the number of characters written. */
size_t ot_b64_encode(const uint8_t *in, size_t n, char *out, bool url);

/* Decodes in[0..n) into out[0..cap), *outlen = bytes written. url: '-' '_'
 * and no padding; standard: '+' '/' and exactly the canonical padding. Any
 * other byte (whitespace included), a length that cannot occur, non-zero pad
 * bits, or more than cap output bytes -> OT_ERR. */
int ot_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen, bool url);

#endif
