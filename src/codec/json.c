/* JSON reader: one validating pass. See include/ot/codec/json.h. */
#include "ot/codec/json.h"


#include <limits.h>
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

/* Two string tokens' unescaped values are equal. */
static bool tok_str_eq(const ot_json *d, int a, int b)
{
    const ot_json_tok *ta = &d->toks[a], *tb = &d->toks[b];
    /* Neither has escapes: the raw bytes are the values. */
    if (!ta->esc && !tb->esc)
        return ta->end - ta->start == tb->end - tb->start &&
               memcmp(d->js + ta->start, d->js + tb->start, (size_t)(ta->end - ta->start)) == 0;
    str_rd ra, rb;
    rd_init(&ra, d, a);
    rd_init(&rb, d, b);
    for (;;) {
        int x = rd_next(&ra), y = rd_next(&rb);
        if (x != y)
            return false;
        if (x < 0)
            return true;
    }
}

/* ---- the one-pass reader ---- */

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; } /* RFC 8259 §2 */
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

typedef struct {
    ot_json *d;
    const unsigned char *p;
    size_t n, i;
    int max;
} rdr;

static void skip_ws(rdr *r)
{
    while (r->i < r->n && is_ws(r->p[r->i]))
        r->i++;
}

static int new_tok(rdr *r, uint8_t type, size_t start)
{
    if (r->d->ntoks >= r->max)
        return -1;
    int t = r->d->ntoks++;
    r->d->toks[t] = (ot_json_tok){ .type = type, .start = (int32_t)start };
    return t;
}

/* A string at r->i (its opening quote), RFC 8259 §7: no raw control
 * characters, only the eight short escapes and \uXXXX, UTF-16 surrogates only
 * as a high+low pair (a lone one names no character and cannot become UTF-8),
 * and well-formed UTF-8 (§8.1). size: 1 for a key, 0 for a value. */
static int read_string(rdr *r, int32_t size)
{
    const unsigned char *p = r->p;
    size_t n = r->n, i = r->i + 1;
    int t = new_tok(r, OT_JSON_STR, i);
    if (t < 0)
        return -1;
    uint8_t esc = 0;
    for (;;) {
        /* The common bytes first, in a tight loop. */
        while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
            i++;
        if (i >= n)
            return -1;
        unsigned c = p[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        if (c >= 0x80) {
            size_t k = ot_utf8_seq_len(p + i, n - i);
            if (k == 0)
                return -1;
            i += k;
            continue;
        }
        esc = 1; /* c == '\\' */
        if (i + 1 >= n)
            return -1;
        switch (p[i + 1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            i += 2;
            continue;
        case 'u':
            break;
        default:
            return -1;
        }
        long u = hex4(p + i + 2, n - i - 2);
        if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
            return -1;
        i += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 6 > n || p[i] != '\\' || p[i + 1] != 'u')
                return -1;
            long lo = hex4(p + i + 2, n - i - 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return -1;
            i += 6;
        }
    }
    ot_json_tok *k = &r->d->toks[t];
    k->end = (int32_t)i;
    k->esc = esc;
    k->size = size;
    k->next = t + 1;
    r->i = i + 1;
    return t;
}

/* RFC 8259 §6: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?
 * §3: the literal names are lowercase and exact. What follows is the caller's
 * to check (a separator, a closer, or the end). */
static int read_primitive(rdr *r)
{
    const unsigned char *p = r->p;
    size_t n = r->n, i = r->i, st;
    unsigned char c = p[i];
    if (c == 't' || c == 'f' || c == 'n') {
        const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t ln = c == 'f' ? 5 : 4;
        if (n - i < ln || memcmp(p + i, lit, ln) != 0)
            return -1;
        i += ln;
    } else {
        if (p[i] == '-')
            i++;
        if (i < n && p[i] == '0')
            i++;
        else if (i < n && p[i] >= '1' && p[i] <= '9')
            while (i < n && is_digit(p[i]))
                i++;
        else
            return -1;
        if (i < n && p[i] == '.') {
            for (st = ++i; i < n && is_digit(p[i]);)
                i++;
            if (i == st)
                return -1;
        }
        if (i < n && (p[i] == 'e' || p[i] == 'E')) {
            i++;
            if (i < n && (p[i] == '+' || p[i] == '-'))
                i++;
            for (st = i; i < n && is_digit(p[i]);)
                i++;
            if (i == st)
                return -1;
        }
    }
    int t = new_tok(r, OT_JSON_PRIM, r->i);
    if (t < 0)
        return -1;
    r->d->toks[t].end = (int32_t)i;
    r->d->toks[t].next = t + 1;
    r->i = i;
    return t;
}

/* RFC 8259 §4: names within an object SHOULD be unique; we require it (see
 * json.h). Pairwise over the object's keys, O(keys^2): bounded by max_toks,
 * and a length check settles most pairs without touching the bytes. */
static bool keys_unique(const ot_json *d, int obj)
{
    for (int a = obj + 1; a < d->toks[obj].next; a = d->toks[a].next)
        for (int b = d->toks[a].next; b < d->toks[obj].next; b = d->toks[b].next)
            if (tok_str_eq(d, a, b))
                return false;
    return true;
}

/* One value at r->i (leading whitespace allowed); returns its token. */
static int read_value(rdr *r, int depth)
{
    skip_ws(r);
    if (r->i >= r->n)
        return -1;
    unsigned char c = r->p[r->i];
    if (c == '"')
        return read_string(r, 0);
    if (c != '{' && c != '[')
        return read_primitive(r);
    if (depth >= OT_JSON_MAX_DEPTH)
        return -1;
    bool obj = c == '{';
    unsigned char close = obj ? '}' : ']';
    int t = new_tok(r, obj ? OT_JSON_OBJ : OT_JSON_ARR, r->i);
    if (t < 0)
        return -1;
    r->i++;
    skip_ws(r);
    int32_t size = 0;
    if (r->i < r->n && r->p[r->i] == close) {
        r->i++;
    } else {
        for (;;) {
            if (obj) {
                skip_ws(r);
                if (r->i >= r->n || r->p[r->i] != '"')
                    return -1;
                int k = read_string(r, 1);
                if (k < 0)
                    return -1;
                skip_ws(r);
                if (r->i >= r->n || r->p[r->i] != ':')
                    return -1;
                r->i++;
                if (read_value(r, depth + 1) < 0)
                    return -1;
                r->d->toks[k].next = r->d->ntoks;
            } else if (read_value(r, depth + 1) < 0) {
                return -1;
            }
            size++;
            skip_ws(r);
            if (r->i >= r->n)
                return -1;
            c = r->p[r->i++];
            if (c == close)
                break;
            if (c != ',')
                return -1;
        }
    }
    ot_json_tok *k = &r->d->toks[t];
    k->end = (int32_t)r->i;
    k->size = size;
    k->next = r->d->ntoks;
    if (obj && size > 1 && !keys_unique(r->d, t))
        return -1;
    return t;
}

int ot_json_parse(ot_json *doc, const char *js, size_t len, ot_json_tok *toks, int max_toks)
{
    *doc = (ot_json){ js, len, toks, 0 };
    /* Offsets are kept in int32. */
    if (max_toks < 1 || len >= INT32_MAX)
        return OT_ERR;
    rdr r = { doc, (const unsigned char *)js, len, 0, max_toks };
    /* Exactly one value, then only whitespace (RFC 8259 §2: JSON-text). */
    if (read_value(&r, 0) < 0 || (skip_ws(&r), r.i != len)) {
        doc->ntoks = 0;
        return OT_ERR;
    }
    return 0;
}

int ot_json_parse_grow(ot_json *doc, const char *js, size_t len, ot_json_tok *stack, int nstack, ot_json_tok **heap)
{
    *heap = NULL;
    int rc = ot_json_parse(doc, js, len, stack, nstack);
    if (rc == 0 || len / 2 + 2 <= (size_t)nstack || len / 2 + 2 >= INT32_MAX)
        return rc;
    *heap = malloc((len / 2 + 2) * sizeof(**heap));
    if (!*heap)
        return OT_ERR;
    rc = ot_json_parse(doc, js, len, *heap, (int)(len / 2 + 2));
    if (rc < 0) { /* nothing for the caller to free on an error path */
        free(*heap);
        *heap = NULL;
    }
    return rc;
}

/* ---- accessors ---- */

static const ot_json_tok *tok(const ot_json *d, int t) { return t >= 0 && t < d->ntoks ? &d->toks[t] : NULL; }

int ot_json_skip(const ot_json *d, int t) { return tok(d, t) ? d->toks[t].next : d->ntoks; }

bool ot_json_is_obj(const ot_json *d, int t) { return tok(d, t) && d->toks[t].type == OT_JSON_OBJ; }
bool ot_json_is_arr(const ot_json *d, int t) { return tok(d, t) && d->toks[t].type == OT_JSON_ARR; }
bool ot_json_is_str(const ot_json *d, int t) { return tok(d, t) && d->toks[t].type == OT_JSON_STR; }

static char prim0(const ot_json *d, int t)
{
    return tok(d, t) && d->toks[t].type == OT_JSON_PRIM ? d->js[d->toks[t].start] : 0;
}
bool ot_json_is_null(const ot_json *d, int t) { return prim0(d, t) == 'n'; }
bool ot_json_is_bool(const ot_json *d, int t) { char c = prim0(d, t); return c == 't' || c == 'f'; }
bool ot_json_is_num(const ot_json *d, int t) { char c = prim0(d, t); return c == '-' || is_digit(c); }

int ot_json_obj_get(const ot_json *d, int obj, const char *key)
{
    if (!ot_json_is_obj(d, obj))
        return -1;
    for (int k = obj + 1; k < d->toks[obj].next; k = d->toks[k].next)
        if (ot_json_str_eq(d, k, key))
            return k + 1;
    return -1;
}

int ot_json_arr_len(const ot_json *d, int arr) { return ot_json_is_arr(d, arr) ? d->toks[arr].size : -1; }

int ot_json_arr_at(const ot_json *d, int arr, int i)
{
    if (!ot_json_is_arr(d, arr) || i < 0 || i >= d->toks[arr].size)
        return -1;
    int t = arr + 1;
    while (i-- > 0)
        t = d->toks[t].next;
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
    if (!d->toks[t].esc) {
        size_t n = (size_t)(d->toks[t].end - d->toks[t].start);
        return strncmp(d->js + d->toks[t].start, lit, n) == 0 && lit[n] == 0;
    }
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
    const ot_json_tok *k = tok(d, t);
    return k ? ot_str_make(d->js + k->start, (size_t)(k->end - k->start)) : OT_STR_NULL;
}

ot_str ot_json_raw_value(const ot_json *d, int t)
{
    const ot_json_tok *k = tok(d, t);
    if (!k)
        return OT_STR_NULL;
    if (k->type == OT_JSON_STR)
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
