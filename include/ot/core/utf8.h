/* UTF-8 (RFC 3629 §4) and hex digits: the one validator and the one hex table
 * every layer uses. Core, because the logger (core) needs them as much as the
 * JSON, HTTP and WebSocket codecs do. */
#ifndef OT_CORE_UTF8_H
#define OT_CORE_UTF8_H

#include "ot/core/common.h"

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n) (RFC 3629 §4: no
 * overlongs, no surrogates, max U+10FFFF), or 0 if it is not one (n == 0, a
 * continuation or forbidden lead byte, a bad or missing continuation). */
size_t ot_utf8_seq_len(const unsigned char *s, size_t n);

/* Incremental UTF-8 validator (same rules) for text that arrives split across
 * frames and reads. Zero-initialised state is the initial state. */
typedef struct {
    uint32_t state;
} ot_utf8;

void ot_utf8_init(ot_utf8 *u);
/* 0 = valid so far (possibly mid-sequence), OT_ERR = invalid; once invalid it stays invalid. */
int ot_utf8_feed(ot_utf8 *u, const uint8_t *p, size_t n);
/* True if the bytes fed so far end on a character boundary (and are valid). */
bool ot_utf8_complete(const ot_utf8 *u);
/* True if p[0..n) is entirely well-formed UTF-8. */
bool ot_utf8_valid(const uint8_t *p, size_t n);

/* Value of one hex digit (either case), or -1. A table, not branches: the
 * HTTP parser calls it per byte of chunk sizes and percent-escapes. */
extern const uint8_t ot_hex_values1[256];
static inline int ot_hex_val(unsigned char c) { return (int)ot_hex_values1[c] - 1; }

/* Lower-case hex digits, for encoders (NUL-terminated, so a string too). */
extern const char ot_hex_lower[17];

#endif
