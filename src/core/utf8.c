/* UTF-8 validation (RFC 3629 §4) and the hex table. See include/ot/core/utf8.h. */
#include "ot/core/utf8.h"

/* ---------------------------------------------------------------- one sequence */

size_t ot_utf8_seq_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    /* RFC 3629 §4 table: the second byte's range excludes overlong forms
     * (E0, F0), UTF-16 surrogates (ED) and code points past U+10FFFF (F4). */
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c == 0xE0)
        len = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        len = 3;
    else if (c == 0xED)
        len = 3, hi = 0x9F;
    else if (c == 0xF0)
        len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        len = 4;
    else if (c == 0xF4)
        len = 4, hi = 0x8F;
    else
        return 0; /* continuation byte, C0/C1 (always overlong), F5..FF */
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

size_t ot_utf8_valid_prefix(const unsigned char *s, size_t n, size_t max)
{
    size_t ok = 0;
    if (n > max)
        n = max;
    for (size_t k; ok < n; ok += k)
        if (!(k = ot_utf8_seq_len(s + ok, n - ok)))
            break;
    return ok;
}

/* ---------------------------------------------------------------- streaming (RFC 3629 §4) */

/* A DFA over byte classes. Classes split the lead and continuation bytes exactly where RFC 3629's
 * UTF8-2/3/4 productions narrow the second byte's range (E0, ED, F0, F4), which is what rejects overlongs,
 * surrogates and code points above U+10FFFF without decoding. */
enum {
    U8C_ASCII,    /* 00-7F */
    U8C_CONT_LO,  /* 80-8F */
    U8C_CONT_MID, /* 90-9F */
    U8C_CONT_HI,  /* A0-BF */
    U8C_BAD,      /* C0-C1 (always overlong), F5-FF (above U+10FFFF) */
    U8C_LEAD2,    /* C2-DF */
    U8C_E0,       /* E0: second byte A0-BF, else overlong */
    U8C_LEAD3,    /* E1-EC, EE-EF */
    U8C_ED,       /* ED: second byte 80-9F, else a surrogate */
    U8C_F0,       /* F0: second byte 90-BF, else overlong */
    U8C_LEAD4,    /* F1-F3 */
    U8C_F4,       /* F4: second byte 80-8F, else above U+10FFFF */
    U8C_COUNT
};

enum {
    U8S_ACCEPT, /* on a character boundary */
    U8S_NEED1,  /* one continuation byte left */
    U8S_NEED2,  /* two left, any continuation */
    U8S_E0,     /* after E0 */
    U8S_ED,     /* after ED */
    U8S_F0,     /* after F0 */
    U8S_NEED3,  /* after F1-F3 */
    U8S_F4,     /* after F4 */
    U8S_REJECT, /* sticky */
    U8S_COUNT
};

/* GNU range designators (gcc and clang) keep the byte map readable against the comments above. */
static const uint8_t utf8_classes[256] = {
    [0x00 ... 0x7F] = U8C_ASCII,    [0x80 ... 0x8F] = U8C_CONT_LO, [0x90 ... 0x9F] = U8C_CONT_MID,
    [0xA0 ... 0xBF] = U8C_CONT_HI,  [0xC0 ... 0xC1] = U8C_BAD,     [0xC2 ... 0xDF] = U8C_LEAD2,
    [0xE0] = U8C_E0,                [0xE1 ... 0xEC] = U8C_LEAD3,   [0xED] = U8C_ED,
    [0xEE ... 0xEF] = U8C_LEAD3,    [0xF0] = U8C_F0,               [0xF1 ... 0xF3] = U8C_LEAD4,
    [0xF4] = U8C_F4,                [0xF5 ... 0xFF] = U8C_BAD,
};

#define R_ U8S_REJECT
static const uint8_t utf8_next[U8S_COUNT][U8C_COUNT] = {
    /*               ASCII       80-8F       90-9F       A0-BF       bad  C2-DF      E0      E1-EF      ED      F0      F1-F3      F4 */
    [U8S_ACCEPT] = { U8S_ACCEPT, R_,         R_,         R_,         R_,  U8S_NEED1, U8S_E0, U8S_NEED2, U8S_ED, U8S_F0, U8S_NEED3, U8S_F4 },
    [U8S_NEED1]  = { R_,         U8S_ACCEPT, U8S_ACCEPT, U8S_ACCEPT, R_,  R_,        R_,     R_,        R_,     R_,     R_,        R_ },
    [U8S_NEED2]  = { R_,         U8S_NEED1,  U8S_NEED1,  U8S_NEED1,  R_,  R_,        R_,     R_,        R_,     R_,     R_,        R_ },
    [U8S_E0]     = { R_,         R_,         R_,         U8S_NEED1,  R_,  R_,        R_,     R_,        R_,     R_,     R_,        R_ },
    [U8S_ED]     = { R_,         U8S_NEED1,  U8S_NEED1,  R_,         R_,  R_,        R_,     R_,        R_,     R_,     R_,        R_ },
    [U8S_F0]     = { R_,         R_,         U8S_NEED2,  U8S_NEED2,  R_,  R_,        R_,     R_,        R_,     R_,     R_,        R_ },
    [U8S_NEED3]  = { R_,         U8S_NEED2,  U8S_NEED2,  U8S_NEED2,  R_,  R_,        R_,     R_,        R_,     R_,     R_,        R_ },
    [U8S_F4]     = { R_,         U8S_NEED2,  R_,         R_,         R_,  R_,        R_,     R_,        R_,     R_,     R_,        R_ },
    [U8S_REJECT] = { R_,         R_,         R_,         R_,         R_,  R_,        R_,     R_,        R_,     R_,     R_,        R_ },
};
#undef R_

void ot_utf8_init(ot_utf8 *u) { u->state = U8S_ACCEPT; }

int ot_utf8_feed(ot_utf8 *u, const uint8_t *p, size_t n)
{
    uint32_t s = u->state;
    if (s >= U8S_COUNT) /* a corrupted state must not index past the table */
        s = U8S_REJECT;
    size_t i = 0;
    while (i < n) {
        if (s == U8S_ACCEPT) {
            /* Chat and JSON text is mostly ASCII: skip it 8 bytes at a time. */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            if (i == n)
                break;
        }
        s = utf8_next[s][utf8_classes[p[i++]]];
        if (s == U8S_REJECT)
            break;
    }
    u->state = s;
    return s == U8S_REJECT ? OT_ERR : OT_OK;
}

bool ot_utf8_complete(const ot_utf8 *u) { return u->state == U8S_ACCEPT; }

bool ot_utf8_valid(const uint8_t *p, size_t n)
{
    ot_utf8 u;
    ot_utf8_init(&u);
    return ot_utf8_feed(&u, p, n) == OT_OK && ot_utf8_complete(&u);
}

/* ---------------------------------------------------------------- hex */

/* Digit value + 1, so the zero of every unlisted byte means "not a digit". */
const uint8_t ot_hex_values1[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

const char ot_hex_lower[17] = "0123456789abcdef";

/* ---------------------------------------------------------------- JSON string escapes */

#define STD_ OT_JSON_ESC_STD
#define LOG_ OT_JSON_ESC_LOG
const uint8_t ot_json_esc_care[256] = {
    [0 ... 0x1F] = STD_ | LOG_, ['"'] = STD_ | LOG_, ['\\'] = STD_ | LOG_,
    [0x7F] = LOG_,              [0x80 ... 0xFF] = STD_ | LOG_,
};
#undef STD_
#undef LOG_
