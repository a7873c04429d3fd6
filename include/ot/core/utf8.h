/* UTF-8 (RFC 3629 §4), hex digits and JSON string escapes: the one validator,
 * the one hex table and the one escaper every layer uses. Core, because the logger (core) needs them as much as the
 * JSON, HTTP and WebSocket codecs do. */
#ifndef OT_CORE_UTF8_H
#define OT_CORE_UTF8_H

#include "ot/core/common.h"

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n) (RFC 3629 §4: no
 * overlongs, no surrogates, max U+10FFFF), or 0 if it is not one (n == 0, a
 * continuation or forbidden lead byte, a bad or missing continuation). */
size_t ot_utf8_seq_len(const unsigned char *s, size_t n);

/* Length of the longest prefix of s[0..n) that is whole well-formed sequences
 * and at most max bytes: where to cut text so it stays valid UTF-8. */
size_t ot_utf8_valid_prefix(const unsigned char *s, size_t n, size_t max);

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

/* ---- JSON string escapes (RFC 8259 §7) ---- */

/* The two forms. STD (responses, ot_json_escape): DEL passes, \b and \f are
 * short escapes, invalid UTF-8 becomes U+FFFD (a client sees a replacement
 * character, never bytes that break its decoder). LOG (the logger's fallback
 * flag): DEL (terminal safety) and each byte of invalid UTF-8 as \u00XX, so a
 * line shows the bytes that came; \b and \f as \u0008 and \u000c. */
#define OT_JSON_ESC_STD 1u
#define OT_JSON_ESC_LOG 2u

/* Bit OT_JSON_ESC_STD / OT_JSON_ESC_LOG set for the bytes that are not copied
 * as they are in that form: controls, '"', '\\', >= 0x80 (checked as UTF-8), and DEL for the log. */
extern const uint8_t ot_json_esc_care[256];

/* Length of the run of bytes from s[i] on that are copied as they are. */
static inline size_t ot_json_esc_plain_run(const unsigned char *s, size_t i, size_t n, unsigned form)
{
    while (i < n && !(ot_json_esc_care[s[i]] & form))
        i++;
    return i;
}

/* What to write for the byte at s[0] (one the run stopped at; n >= 1): 0 and
 * *adv = k when s[0..k) is a valid UTF-8 sequence to copy as it is; else the
 * length of the escape written to esc, and *adv = 1. */
static inline size_t ot_json_esc_one(const unsigned char *s, size_t n, unsigned form, char esc[6], size_t *adv)
{
    unsigned c = s[0];
    char short_esc = 0;
    *adv = 1;
    switch (c) {
    case '"': short_esc = '"'; break;
    case '\\': short_esc = '\\'; break;
    case '\n': short_esc = 'n'; break;
    case '\r': short_esc = 'r'; break;
    case '\t': short_esc = 't'; break;
    case '\b': short_esc = form == OT_JSON_ESC_LOG ? 0 : 'b'; break;
    case '\f': short_esc = form == OT_JSON_ESC_LOG ? 0 : 'f'; break;
    default: break;
    }
    if (short_esc) {
        esc[0] = '\\', esc[1] = short_esc;
        return 2;
    }
    if (c >= 0x80) {
        size_t k = ot_utf8_seq_len(s, n);
        if (k) {
            *adv = k;
            return 0;
        }
        if (form != OT_JSON_ESC_LOG) {
            memcpy(esc, "\xEF\xBF\xBD", 3); /* U+FFFD REPLACEMENT CHARACTER */
            return 3;
        }
    }
    memcpy(esc, "\\u00", 4);
    esc[4] = ot_hex_lower[c >> 4], esc[5] = ot_hex_lower[c & 15];
    return 6;
}

#endif
