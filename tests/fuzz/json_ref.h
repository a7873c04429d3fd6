/* The JSON reader as it was before the one-pass rewrite (jsmn's tokenizer,
 * then a second walk checking what jsmn does not), kept only as the fuzzing
 * oracle of tests/fuzz/fuzz_json.c: both must give the same verdict and the
 * same token count on every input. Not part of the server. */
#ifndef OT_FUZZ_JSON_REF_H
#define OT_FUZZ_JSON_REF_H

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>
#include <limits.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "ot/codec/json.h"

typedef struct {
    const char *js;
    size_t len;
    jsmntok_t *toks;
    int ntoks;
} ref_json;

/* ---- UTF-8 and escapes ---- */

/* The 4 hex digits at p[0..n), or -1. */
static long hex4(const unsigned char *p, size_t n)
{
    if (n < 4 || ot_hex_val(p[0]) < 0 || ot_hex_val(p[1]) < 0 || ot_hex_val(p[2]) < 0 || ot_hex_val(p[3]) < 0)
        return -1;
    return ((long)ot_hex_val(p[0]) << 12) | (ot_hex_val(p[1]) << 8) | (ot_hex_val(p[2]) << 4) | ot_hex_val(p[3]);
}

/* String contents between the quotes (RFC 8259 §7): no raw control
 * characters, only the eight short escapes and \uXXXX, UTF-16 surrogates only
 * as a high+low pair, and well-formed UTF-8 (§8.1). */
static bool valid_string(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k;
        if (p[i] == '"' || p[i] < 0x20)
            return false;
        if (p[i] != '\\') {
            if (!(k = ot_utf8_seq_len(p + i, n - i)))
                return false;
            i += k;
        } else if (i + 1 < n && p[i + 1] && strchr("\"\\/bfnrt", p[i + 1])) {
            i += 2;
        } else {
            long u = i + 1 < n && p[i + 1] == 'u' ? hex4(p + i + 2, n - i - 2) : -1;
            bool high = u >= 0xD800 && u <= 0xDBFF, low = u >= 0xDC00 && u <= 0xDFFF;
            if (u < 0 || low)
                return false;
            i += 6;
            if (high) {
                long v = i + 1 < n && p[i] == '\\' && p[i + 1] == 'u' ? hex4(p + i + 2, n - i - 2) : -1;
                if (!(v >= 0xDC00 && v <= 0xDFFF))
                    return false;
                i += 6;
            }
        }
    }
    return true;
}

/* Two keys' unescaped values are equal. The unescaping is the reader
 * under test's (ot_json_get_str), checked on its own by the unit tests and by
 * the walk in fuzz_json.c; what this oracle checks is the grammar. */
static bool tok_str_eq(const ref_json *d, int a, int b)
{
    static ot_buf x, y;
    ot_json_tok t[2];
    ot_json j;
    ot_buf_reset(&x);
    ot_buf_reset(&y);
    const jsmntok_t *ta = &d->toks[a], *tb = &d->toks[b];
    if (ot_json_parse(&j, d->js + ta->start - 1, (size_t)(ta->end - ta->start) + 2, t, 1) < 0 ||
        ot_json_get_str(&j, 0, &x) < 0 ||
        ot_json_parse(&j, d->js + tb->start - 1, (size_t)(tb->end - tb->start) + 2, t, 1) < 0 ||
        ot_json_get_str(&j, 0, &y) < 0)
        abort(); /* both were validated as strings already */
    return x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
}

static int ref_skip(const ref_json *d, int t)
{
    if (t < 0 || t >= d->ntoks)
        return d->ntoks;
    int pending = 1;
    while (pending > 0 && t < d->ntoks)
        pending += d->toks[t++].size - 1;
    return t;
}

/* ---- validation walk ---- */

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; } /* RFC 8259 §2 */

static size_t skip_ws(const ref_json *d, size_t p)
{
    while (p < d->len && is_ws(d->js[p]))
        p++;
    return p;
}


/* RFC 8259 §6, as a regular expression: an oracle independent of the
 * reader's hand-written scanner. */
static bool valid_number(const char *s, size_t n)
{
    static regex_t re;
    static bool ready;
    if (!ready) {
        if (regcomp(&re, "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$", REG_EXTENDED | REG_NOSUB) != 0)
            abort();
        ready = true;
    }
    char *buf = malloc(n + 1);
    if (!buf)
        abort();
    memcpy(buf, s, n);
    buf[n] = 0;
    /* A NUL inside would end the regex's input early: never a number. */
    bool ok = !memchr(s, 0, n) && regexec(&re, buf, 0, NULL, 0) == 0;
    free(buf);
    return ok;
}

static bool valid_primitive(const char *s, size_t n)
{
    /* RFC 8259 §3: the literal names are lowercase and exact. */
    if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
        (n == 4 && memcmp(s, "null", 4) == 0))
        return true;
    return valid_number(s, n);
}

/* String token i whose opening quote must sit at text position p. */
static bool check_string(const ref_json *d, int i, size_t p, int want_size)
{
    const jsmntok_t *t = &d->toks[i];
    return t->type == JSMN_STRING && t->size == want_size && p < d->len && d->js[p] == '"' &&
           (size_t)t->start == p + 1 &&
           t->end >= t->start && (size_t)t->end < d->len && d->js[t->end] == '"' &&
           valid_string((const unsigned char *)d->js + t->start, (size_t)(t->end - t->start));
}

/* RFC 8259 §4: names within an object SHOULD be unique; we require it (see
 * json.h). Pairwise, O(keys x tokens) per object: bounded by max_toks. */
static bool keys_unique(const ref_json *d, int obj)
{
    int n = d->toks[obj].size;
    int a = obj + 1;
    for (int x = 0; x < n; x++) {
        int b = ref_skip(d, a);
        for (int y = x + 1; y < n; y++) {
            if (tok_str_eq(d, a, b))
                return false;
            b = ref_skip(d, b);
        }
        a = ref_skip(d, a);
    }
    return true;
}

/* Checks token i against the text from *pos (leading whitespace allowed):
 * every byte between tokens must be whitespace or the one separator the
 * grammar expects there, which is what jsmn does not verify. Returns the
 * index after i's subtree, -1 if invalid. */
static int check_value(const ref_json *d, int i, size_t *pos, int depth)
{
    if (i >= d->ntoks)
        return -1;
    const jsmntok_t *t = &d->toks[i];
    size_t p = skip_ws(d, *pos);
    if (t->type == JSMN_STRING) {
        if (!check_string(d, i, p, 0))
            return -1;
        *pos = (size_t)t->end + 1;
        return i + 1;
    }
    if (t->type == JSMN_PRIMITIVE) {
        if (t->size != 0 || (size_t)t->start != p || t->end < t->start ||
            !valid_primitive(d->js + t->start, (size_t)(t->end - t->start)))
            return -1;
        *pos = (size_t)t->end;
        return i + 1;
    }
    if ((t->type != JSMN_OBJECT && t->type != JSMN_ARRAY) || (size_t)t->start != p || depth >= OT_JSON_MAX_DEPTH)
        return -1;
    bool obj = t->type == JSMN_OBJECT;
    int next = i + 1;
    p++;
    for (int k = 0; k < t->size; k++) {
        p = skip_ws(d, p);
        if (k > 0) {
            if (p >= d->len || d->js[p] != ',')
                return -1;
            p = skip_ws(d, p + 1);
        }
        if (obj) {
            if (next >= d->ntoks || !check_string(d, next, p, 1))
                return -1;
            p = skip_ws(d, (size_t)d->toks[next].end + 1);
            if (p >= d->len || d->js[p] != ':')
                return -1;
            p++;
            next++;
        }
        next = check_value(d, next, &p, depth + 1);
        if (next < 0)
            return -1;
    }
    p = skip_ws(d, p);
    if (p >= d->len || d->js[p] != (obj ? '}' : ']') || (size_t)t->end != p + 1)
        return -1;
    if (obj && !keys_unique(d, i))
        return -1;
    *pos = p + 1;
    return next;
}

static int ref_parse(ref_json *doc, const char *js, size_t len, jsmntok_t *toks, int max_toks)
{
    *doc = (ref_json){ js, len, toks, 0 };
    /* jsmn keeps offsets in int. */
    if (max_toks < 1 || len >= INT_MAX)
        return OT_ERR;
    size_t p = skip_ws(doc, 0);
    if (p == len)
        return OT_ERR;
    char c = js[p];
    if (c == '{' || c == '[' || c == '"') {
        jsmn_parser jp;
        jsmn_init(&jp);
        if (jsmn_parse(&jp, js, len, toks, (unsigned)max_toks) < 0)
            return OT_ERR;
        doc->ntoks = (int)jp.toknext;
    } else {
        /* A bare scalar root (RFC 8259 §2 allows it): strict jsmn wants a
         * delimiter after a primitive and reports end of input as partial,
         * so the token is made here and validated like any other. */
        size_t e = p;
        while (e < len && !is_ws(js[e]))
            e++;
        toks[0] = (jsmntok_t){ .type = JSMN_PRIMITIVE, .start = (int)p, .end = (int)e, .size = 0, .parent = -1 };
        doc->ntoks = 1;
    }
    size_t pos = 0;
    /* Exactly one value, then only whitespace (RFC 8259 §2: JSON-text). */
    if (check_value(doc, 0, &pos, 0) != doc->ntoks || skip_ws(doc, pos) != len) {
        doc->ntoks = 0;
        return OT_ERR;
    }
    return 0;
}

/* ---- accessors ---- */

#endif
