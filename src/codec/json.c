/* JSON reader (jsmn + validation) and writer. See include/ot/json.h. */
#define OT_JSON_JSMN_IMPL /* this TU compiles jsmn's implementation, once */
#include "ot/codec/json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- UTF-8 and escapes ---- */

/* The 4 hex digits at p[0..n), or -1. */
static long hex4(const unsigned char *p, size_t n)
{
    if (n < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = ot_hex_val(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* String contents between the quotes (RFC 8259 §7): no raw control
 * characters, only the eight short escapes and \uXXXX, UTF-16 surrogates only
 * as a high+low pair (a lone one names no character and cannot become UTF-8),
 * and well-formed UTF-8 (§8.1). */
static bool valid_string(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x20 || c == '"')
            return false;
        if (c >= 0x80) {
            size_t k = ot_utf8_seq_len(p + i, n - i);
            if (k == 0)
                return false;
            i += k;
            continue;
        }
        if (c != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= n)
            return false;
        switch (p[i + 1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            i += 2;
            continue;
        case 'u':
            break;
        default:
            return false;
        }
        long u = hex4(p + i + 2, n - i - 2);
        if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
            return false;
        i += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 6 > n || p[i] != '\\' || p[i + 1] != 'u')
                return false;
            long lo = hex4(p + i + 2, n - i - 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return false;
            i += 6;
        }
    }
    return true;
}

/* Byte-at-a-time reader of a VALIDATED string's unescaped value, so two keys
 * (or a key and a literal) compare without a scratch buffer. */
typedef struct {
    const unsigned char *p;
    size_t n, i;
    char pend[4];
    uint8_t plen, ppos;
} str_rd;

static void rd_init(str_rd *r, const ot_json *d, int t)
{
    r->p = (const unsigned char *)d->js + d->toks[t].start;
    r->n = (size_t)(d->toks[t].end - d->toks[t].start);
    r->i = 0;
    r->plen = r->ppos = 0;
}

static int rd_next(str_rd *r)
{
    if (r->ppos < r->plen)
        return (unsigned char)r->pend[r->ppos++];
    if (r->i >= r->n)
        return -1;
    unsigned char c = r->p[r->i];
    if (c != '\\') {
        r->i++;
        return c;
    }
    unsigned char e = r->p[r->i + 1];
    r->i += 2;
    switch (e) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return e; /* '"' '\\' '/' */
    }
    uint32_t cp = (uint32_t)hex4(r->p + r->i, 4);
    r->i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t lo = (uint32_t)hex4(r->p + r->i + 2, 4);
        r->i += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    r->plen = (uint8_t)utf8_put(cp, r->pend);
    r->ppos = 1;
    return (unsigned char)r->pend[0];
}

static bool tok_str_eq(const ot_json *d, int a, int b)
{
    const jsmntok_t *ta = &d->toks[a], *tb = &d->toks[b];
    str_rd ra, rb;
    rd_init(&ra, d, a);
    rd_init(&rb, d, b);
    /* Fast path: neither has escapes, so the raw bytes are the values. */
    if (!memchr(ra.p, '\\', ra.n) && !memchr(rb.p, '\\', rb.n))
        return ta->end - ta->start == tb->end - tb->start && memcmp(ra.p, rb.p, ra.n) == 0;
    for (;;) {
        int x = rd_next(&ra), y = rd_next(&rb);
        if (x != y)
            return false;
        if (x < 0)
            return true;
    }
}

/* ---- validation walk ---- */

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; } /* RFC 8259 §2 */

static size_t skip_ws(const ot_json *d, size_t p)
{
    while (p < d->len && is_ws(d->js[p]))
        p++;
    return p;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* RFC 8259 §6: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static bool valid_number(const char *s, size_t n)
{
    size_t i = 0, st;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && is_digit(s[i]))
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        for (st = ++i; i < n && is_digit(s[i]);)
            i++;
        if (i == st)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (st = i; i < n && is_digit(s[i]);)
            i++;
        if (i == st)
            return false;
    }
    return i == n;
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
static bool check_string(const ot_json *d, int i, size_t p, int want_size)
{
    const jsmntok_t *t = &d->toks[i];
    return t->type == JSMN_STRING && t->size == want_size && p < d->len && d->js[p] == '"' &&
           (size_t)t->start == p + 1 &&
           t->end >= t->start && (size_t)t->end < d->len && d->js[t->end] == '"' &&
           valid_string((const unsigned char *)d->js + t->start, (size_t)(t->end - t->start));
}

/* RFC 8259 §4: names within an object SHOULD be unique; we require it (see
 * json.h). Pairwise, O(keys x tokens) per object: bounded by max_toks. */
static bool keys_unique(const ot_json *d, int obj)
{
    int n = d->toks[obj].size;
    int a = obj + 1;
    for (int x = 0; x < n; x++) {
        int b = ot_json_skip(d, a);
        for (int y = x + 1; y < n; y++) {
            if (tok_str_eq(d, a, b))
                return false;
            b = ot_json_skip(d, b);
        }
        a = ot_json_skip(d, a);
    }
    return true;
}

/* Checks token i against the text from *pos (leading whitespace allowed):
 * every byte between tokens must be whitespace or the one separator the
 * grammar expects there, which is what jsmn does not verify. Returns the
 * index after i's subtree, -1 if invalid. */
static int check_value(const ot_json *d, int i, size_t *pos, int depth)
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

int ot_json_parse(ot_json *doc, const char *js, size_t len, jsmntok_t *toks, int max_toks)
{
    *doc = (ot_json){ js, len, toks, 0 };
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

int ot_json_parse_grow(ot_json *doc, const char *js, size_t len, jsmntok_t *stack, int nstack, jsmntok_t **heap)
{
    *heap = NULL;
    int rc = ot_json_parse(doc, js, len, stack, nstack);
    if (rc == 0 || len / 2 + 2 <= (size_t)nstack || len / 2 + 2 >= INT32_MAX)
        return rc;
    *heap = malloc((len / 2 + 2) * sizeof(**heap));
    if (!*heap)
        return OT_ERR;
    return ot_json_parse(doc, js, len, *heap, (int)(len / 2 + 2));
}

/* ---- accessors ---- */

static const jsmntok_t *tok(const ot_json *d, int t) { return t >= 0 && t < d->ntoks ? &d->toks[t] : NULL; }

int ot_json_skip(const ot_json *d, int t)
{
    if (!tok(d, t))
        return d->ntoks;
    /* Each token's size counts its direct children (an object's keys, a key's
     * one value, an array's elements), all following it in document order. */
    int pending = 1;
    while (pending > 0 && t < d->ntoks)
        pending += d->toks[t++].size - 1;
    return t;
}

bool ot_json_is_obj(const ot_json *d, int t) { return tok(d, t) && d->toks[t].type == JSMN_OBJECT; }
bool ot_json_is_arr(const ot_json *d, int t) { return tok(d, t) && d->toks[t].type == JSMN_ARRAY; }
bool ot_json_is_str(const ot_json *d, int t) { return tok(d, t) && d->toks[t].type == JSMN_STRING; }

static char prim0(const ot_json *d, int t)
{
    return tok(d, t) && d->toks[t].type == JSMN_PRIMITIVE ? d->js[d->toks[t].start] : 0;
}
bool ot_json_is_null(const ot_json *d, int t) { return prim0(d, t) == 'n'; }
bool ot_json_is_bool(const ot_json *d, int t) { char c = prim0(d, t); return c == 't' || c == 'f'; }
bool ot_json_is_num(const ot_json *d, int t) { char c = prim0(d, t); return c == '-' || is_digit(c); }

int ot_json_obj_get(const ot_json *d, int obj, const char *key)
{
    if (!ot_json_is_obj(d, obj))
        return -1;
    int k = obj + 1;
    for (int i = 0; i < d->toks[obj].size; i++) {
        if (ot_json_str_eq(d, k, key))
            return k + 1;
        k = ot_json_skip(d, k);
    }
    return -1;
}

int ot_json_arr_len(const ot_json *d, int arr) { return ot_json_is_arr(d, arr) ? d->toks[arr].size : -1; }

int ot_json_arr_at(const ot_json *d, int arr, int i)
{
    if (!ot_json_is_arr(d, arr) || i < 0 || i >= d->toks[arr].size)
        return -1;
    int t = arr + 1;
    while (i-- > 0)
        t = ot_json_skip(d, t);
    return t;
}

/* Unescaped value of string t into o[0..cap); an unescaped value is never
 * longer than its escaped form, so cap >= raw length always suffices. */
static int unescape(const ot_json *d, int t, char *o, size_t cap, size_t *outlen)
{
    str_rd r;
    rd_init(&r, d, t);
    size_t n = 0;
    while (r.i < r.n || r.ppos < r.plen) {
        /* Copy runs without escapes in one go. */
        if (r.ppos >= r.plen && r.p[r.i] != '\\') {
            const unsigned char *bs = memchr(r.p + r.i, '\\', r.n - r.i);
            size_t run = bs ? (size_t)(bs - (r.p + r.i)) : r.n - r.i;
            if (run > cap - n)
                return OT_ERR;
            memcpy(o + n, r.p + r.i, run);
            n += run;
            r.i += run;
            continue;
        }
        if (n >= cap)
            return OT_ERR;
        o[n++] = (char)rd_next(&r);
    }
    *outlen = n;
    return 0;
}

int ot_json_get_str(const ot_json *d, int t, ot_buf *out)
{
    if (!ot_json_is_str(d, t))
        return OT_ERR;
    size_t raw = (size_t)(d->toks[t].end - d->toks[t].start), n;
    if (raw == 0) /* out->data may still be NULL: no pointer arithmetic on it */
        return 0;
    if (ot_buf_reserve(out, raw) < 0 || unescape(d, t, out->data + out->len, raw, &n) < 0)
        return OT_ERR;
    out->len += n;
    return 0;
}

int ot_json_get_str_buf(const ot_json *d, int t, char *out, size_t cap, size_t *outlen)
{
    if (!ot_json_is_str(d, t))
        return OT_ERR;
    return unescape(d, t, out, cap, outlen);
}

bool ot_json_str_eq(const ot_json *d, int t, const char *lit)
{
    if (!ot_json_is_str(d, t))
        return false;
    str_rd r;
    rd_init(&r, d, t);
    const unsigned char *l = (const unsigned char *)lit;
    for (size_t i = 0;; i++) {
        int c = rd_next(&r);
        if (c < 0)
            return l[i] == 0;
        if (l[i] == 0 || c != l[i])
            return false;
    }
}

ot_str ot_json_raw(const ot_json *d, int t)
{
    const jsmntok_t *k = tok(d, t);
    return k ? ot_str_make(d->js + k->start, (size_t)(k->end - k->start)) : OT_STR_NULL;
}

ot_str ot_json_raw_value(const ot_json *d, int t)
{
    const jsmntok_t *k = tok(d, t);
    if (!k)
        return OT_STR_NULL;
    if (k->type == JSMN_STRING)
        return ot_str_make(d->js + k->start - 1, (size_t)(k->end - k->start) + 2);
    return ot_json_raw(d, t);
}

int ot_json_get_int64(const ot_json *d, int t, int64_t *out)
{
    if (!ot_json_is_num(d, t))
        return OT_ERR;
    ot_str s = ot_json_raw(d, t);
    size_t i = 0;
    bool neg = s.base[0] == '-';
    if (neg)
        i++;
    /* Magnitude limit: |INT64_MIN| = INT64_MAX + 1. */
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (; i < s.len; i++) {
        if (!is_digit(s.base[i]))
            return OT_ERR; /* fraction or exponent: not an integer literal */
        unsigned dg = (unsigned)(s.base[i] - '0');
        if (v > (lim - dg) / 10)
            return OT_ERR;
        v = v * 10 + dg;
    }
    /* -v computed in unsigned arithmetic: defined for v = 2^63 too. */
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int ot_json_get_bool(const ot_json *d, int t, bool *out)
{
    if (!ot_json_is_bool(d, t))
        return OT_ERR;
    *out = prim0(d, t) == 't';
    return 0;
}

/* ---- writer ---- */

int ot_json_escape(ot_buf *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0, i = 0;
    while ((i = ot_json_esc_plain_run(p, i, n, OT_JSON_ESC_STD)) < n) {
        char esc[6];
        size_t adv, elen = ot_json_esc_one(p + i, n - i, OT_JSON_ESC_STD, esc, &adv);
        if (elen == 0) { /* valid UTF-8: part of the run */
            i += adv;
            continue;
        }
        if (ot_buf_append(out, s + run, i - run) < 0 || ot_buf_append(out, esc, elen) < 0)
            return OT_ERR;
        run = i += adv;
    }
    return ot_buf_append(out, s + run, n - run);
}

static void jw_put(ot_jw *w, const char *s, size_t n)
{
    if (!w->err && ot_buf_append(w->out, s, n) < 0)
        w->err = OT_ERR;
}

static uint64_t jw_bit(const ot_jw *w) { return 1ull << w->depth; }

/* Places the separator before a value; false (error latched) if a value is
 * not allowed here. */
static bool jw_value(ot_jw *w)
{
    if (w->err)
        return false;
    uint64_t bit = jw_bit(w);
    if (w->depth == 0) {
        if (!(w->first & bit)) /* a second root value would not be one JSON text */
            w->err = OT_ERR;
        w->first &= ~bit;
    } else if (w->is_obj & bit) {
        if (!w->after_key)
            w->err = OT_ERR;
        w->after_key = false;
    } else {
        if (!(w->first & bit))
            jw_put(w, ",", 1);
        w->first &= ~bit;
    }
    return !w->err;
}

void ot_jw_init(ot_jw *w, ot_buf *out) { *w = (ot_jw){ .out = out, .first = 1 }; }

static void jw_open(ot_jw *w, bool obj)
{
    if (!jw_value(w))
        return;
    if (w->depth >= OT_JW_MAX_DEPTH) {
        w->err = OT_ERR;
        return;
    }
    w->depth++;
    uint64_t bit = jw_bit(w);
    w->first |= bit;
    w->is_obj = obj ? (w->is_obj | bit) : (w->is_obj & ~bit);
    jw_put(w, obj ? "{" : "[", 1);
}

static void jw_close(ot_jw *w, bool obj)
{
    if (w->err)
        return;
    if (w->depth == 0 || !!(w->is_obj & jw_bit(w)) != obj || w->after_key) {
        w->err = OT_ERR;
        return;
    }
    jw_put(w, obj ? "}" : "]", 1);
    w->depth--;
}

void ot_jw_obj_open(ot_jw *w) { jw_open(w, true); }
void ot_jw_obj_close(ot_jw *w) { jw_close(w, true); }
void ot_jw_arr_open(ot_jw *w) { jw_open(w, false); }
void ot_jw_arr_close(ot_jw *w) { jw_close(w, false); }

void ot_jw_key_str(ot_jw *w, ot_str key)
{
    if (w->err)
        return;
    uint64_t bit = jw_bit(w);
    if (w->depth == 0 || !(w->is_obj & bit) || w->after_key) {
        w->err = OT_ERR;
        return;
    }
    jw_put(w, (w->first & bit) ? "\"" : ",\"", (w->first & bit) ? 1 : 2);
    w->first &= ~bit;
    if (!w->err && ot_json_escape(w->out, key.base, key.len) < 0)
        w->err = OT_ERR;
    jw_put(w, "\":", 2);
    w->after_key = true;
}

void ot_jw_key(ot_jw *w, const char *key) { ot_jw_key_str(w, ot_str_c(key)); }

void ot_jw_str(ot_jw *w, ot_str s)
{
    if (!jw_value(w))
        return;
    jw_put(w, "\"", 1);
    if (!w->err && ot_json_escape(w->out, s.base, s.len) < 0)
        w->err = OT_ERR;
    jw_put(w, "\"", 1);
}

void ot_jw_cstr(ot_jw *w, const char *s)
{
    if (s)
        ot_jw_str(w, ot_str_c(s));
    else
        ot_jw_null(w);
}

static void jw_scalar(ot_jw *w, const char *s, size_t n)
{
    if (jw_value(w))
        jw_put(w, s, n);
}

void ot_jw_int(ot_jw *w, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    jw_scalar(w, tmp, (size_t)n);
}

void ot_jw_uint(ot_jw *w, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    jw_scalar(w, tmp, (size_t)n);
}

void ot_jw_double(ot_jw *w, double v)
{
    if (!isfinite(v)) {
        ot_jw_null(w);
        return;
    }
    /* %g never yields a form JSON rejects for finite values ("1e+20", "-0",
     * "0.5"); the process must keep the "C" numeric locale (no setlocale). */
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v)
        n = snprintf(tmp, sizeof tmp, "%.17g", v);
    jw_scalar(w, tmp, (size_t)n);
}

void ot_jw_bool(ot_jw *w, bool v) { jw_scalar(w, v ? "true" : "false", v ? 4 : 5); }
void ot_jw_null(ot_jw *w) { jw_scalar(w, "null", 4); }
void ot_jw_raw(ot_jw *w, ot_str json) { jw_scalar(w, json.base, json.len); }

int ot_jw_error(const ot_jw *w)
{
    /* Open containers, a dangling key or no value at all: not a JSON text. */
    return (w->err || w->depth != 0 || w->after_key || (w->first & 1)) ? OT_ERR : 0;
}
