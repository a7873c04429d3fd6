/* HTTP/1.1 request-head parser and chunked decoder: see include/ot/http_parser.h
 * for the contract and the strictness decisions. One pass over the bytes, one
 * table lookup per byte, no allocation. */
#include "ot/codec/http_parser.h"

#include "ot/core/utf8.h"

/* Byte classes, one table so every hot loop is a load and a mask. */
enum {
    C_TCHAR = 1,  /* token (RFC 9110 §5.6.2): methods, field names, codings */
    C_URI = 2,    /* request-target byte: 0x21..0x7E except '#' (no fragment, §3.2) */
    C_VALUE = 4,  /* field-value byte: HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5) */
    C_HEX = 8,    /* HEXDIG: chunk sizes, %XX */
    C_HOST = 16,  /* uri-host [":" port] byte (RFC 3986 §3.2.2): unreserved, sub-delims, ":[]%" */
};

static const uint8_t ch_class[256] = {
    /*        0   1   2   3   4   5   6   7   8   9   A   B   C   D   E   F */
    /* 0x00 */ 0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0,
    /* 0x10 */ 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    /* 0x20 */ 4, 23,  6,  5, 23, 23, 23, 23, 22, 22, 23, 23, 22, 23, 23,  6,
    /* 0x30 */31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 22, 22,  6, 22,  6,  6,
    /* 0x40 */ 6, 31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23,
    /* 0x50 */23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 22,  6, 22,  7, 23,
    /* 0x60 */ 7, 31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23,
    /* 0x70 */23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23,  6,  7,  6, 23,  0,
    /* 0x80..0xFF: obs-text, allowed in field values only */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

static inline bool is_c(unsigned char c, int k) { return (ch_class[c] & k) != 0; }
static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* ASCII case-insensitive compare against a lowercase literal. */
static bool ieq(ot_str s, const char *lit, size_t n)
{
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.base[i]) != (unsigned char)lit[i])
            return false;
    return true;
}
#define IEQ(s, lit) ieq((s), (lit), sizeof(lit) - 1)

static inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* Comma-separated list walker (RFC 9110 §5.6.1): yields each element with OWS
 * trimmed, empty ones included, so each caller decides what "," means. */
typedef struct {
    const char *p, *e;
    bool done;
} list_iter;

static list_iter list_of(ot_str v) { return (list_iter){ v.base, v.base + v.len, false }; }

static bool list_next(list_iter *it, ot_str *out)
{
    if (it->done)
        return false;
    const char *c = memchr(it->p, ',', (size_t)(it->e - it->p));
    const char *b = it->p, *e = c ? c : it->e;
    while (b < e && is_ows(*b))
        b++;
    while (e > b && is_ows(e[-1]))
        e--;
    *out = ot_str_make(b, (size_t)(e - b));
    if (c)
        it->p = c + 1;
    else
        it->done = true;
    return true;
}

void ot_http_limits_default(ot_http_limits *l)
{
    l->max_uri = 8192;
    l->max_head = 8192;
    l->max_headers = 100;
}

/* What the header walk learns; folded into the request once the head is complete. */
typedef struct {
    bool cl_seen, te_seen, te_chunked, host_seen;
    bool conn_close, conn_keep_alive, conn_upgrade, upgrade_ws, expect_100;
} head_state;

static int on_content_length(ot_http_request *req, head_state *st, ot_str v)
{
    /* 1*DIGIT only: no sign, no hex, no empty element. Repeats and "5, 5" are
     * tolerated only when equal (RFC 9112 §6.3 item 5, RFC 9110 §8.6); a
     * differing value means two parsers may disagree on framing. */
    list_iter it = list_of(v);
    ot_str e;
    while (list_next(&it, &e)) {
        if (e.len == 0)
            return OT_HTTP_E_SMUGGLING;
        int64_t n = 0;
        for (size_t i = 0; i < e.len; i++) {
            unsigned d = (unsigned char)e.base[i] - (unsigned)'0';
            if (d > 9 || n > (INT64_MAX - (int64_t)d) / 10)
                return OT_HTTP_E_SMUGGLING;
            n = n * 10 + (int64_t)d;
        }
        if (st->cl_seen && n != req->content_length)
            return OT_HTTP_E_SMUGGLING;
        st->cl_seen = true;
        req->content_length = n;
    }
    return 0;
}

static int on_transfer_encoding(head_state *st, ot_str v)
{
    /* Codings apply in order across all TE fields (RFC 9112 §6.1). We decode
     * only chunked, and it must be the final one and appear once (§6.3), so
     * the only acceptable list is exactly "chunked". Empty elements are
     * ignored as §5.6.1 requires. Coding names are case-insensitive. */
    st->te_seen = true;
    list_iter it = list_of(v);
    ot_str e;
    while (list_next(&it, &e)) {
        if (e.len == 0)
            continue;
        if (!IEQ(e, "chunked") || st->te_chunked)
            return OT_HTTP_E_TE;
        st->te_chunked = true;
    }
    return 0;
}

static void on_tokens(head_state *st, ot_str v, bool is_upgrade)
{
    list_iter it = list_of(v);
    ot_str e;
    while (list_next(&it, &e)) {
        if (is_upgrade) {
            if (IEQ(e, "websocket"))
                st->upgrade_ws = true;
        } else if (IEQ(e, "close")) {
            st->conn_close = true;
        } else if (IEQ(e, "keep-alive")) {
            st->conn_keep_alive = true;
        } else if (IEQ(e, "upgrade")) {
            st->conn_upgrade = true;
        }
    }
}

/* Sets a singleton convenience field; a second occurrence is ambiguous (which
 * one did the front proxy check?) so it is an error. */
static int set_once(ot_str *slot, ot_str v)
{
    if (slot->base)
        return OT_HTTP_E_BAD_HEADER;
    *slot = v;
    return 0;
}

/* Dispatch on name length first: every field we interpret has a distinct length. */
static int on_header(ot_http_request *req, head_state *st, ot_str name, ot_str v)
{
    switch (name.len) {
    case 4:
        if (IEQ(name, "host")) {
            /* §3.2: more than one Host, or an invalid one, is 400. */
            if (st->host_seen)
                return OT_HTTP_E_BAD;
            for (size_t i = 0; i < v.len; i++)
                if (!is_c((unsigned char)v.base[i], C_HOST))
                    return OT_HTTP_E_BAD;
            st->host_seen = true;
            if (!req->absolute_form) /* the target's authority wins (§3.2.2) */
                req->host = v;
        }
        break;
    case 6:
        if (IEQ(name, "expect") && IEQ(v, "100-continue"))
            st->expect_100 = true;
        break;
    case 7:
        if (IEQ(name, "upgrade"))
            on_tokens(st, v, true);
        break;
    case 8:
        if (IEQ(name, "if-match") && !req->if_match.base)
            req->if_match = v;
        break;
    case 10:
        if (IEQ(name, "connection"))
            on_tokens(st, v, false);
        break;
    case 12:
        if (IEQ(name, "content-type"))
            return set_once(&req->content_type, v);
        break;
    case 13:
        if (IEQ(name, "authorization"))
            return set_once(&req->authorization, v);
        break;
    case 14:
        if (IEQ(name, "content-length"))
            return on_content_length(req, st, v);
        break;
    case 15:
        if (IEQ(name, "idempotency-key"))
            return set_once(&req->idempotency_key, v);
        break;
    case 17:
        if (IEQ(name, "transfer-encoding"))
            return on_transfer_encoding(st, v);
        break;
    default:
        break;
    }
    return 0;
}

static const char slash[] = "/";

/* Splits a validated target into path and query and checks its form (§3.2). */
static int split_target(ot_http_request *req)
{
    const char *t = req->target.base, *e = t + req->target.len;
    const char *rest = t;

    if (*t == '*') {
        /* asterisk-form: exactly "*", and only for OPTIONS (§3.2.4). */
        if (req->target.len != 1 || !ot_str_eq_lit(req->method, "OPTIONS"))
            return OT_HTTP_E_BAD;
        req->path = req->target;
        return 0;
    }
    if (*t != '/') {
        /* absolute-form (§3.2.2): "http" / "https" "://" authority path-abempty ["?" query]. */
        const char *c = memchr(t, ':', req->target.len);
        if (!c || !(IEQ(ot_str_make(t, (size_t)(c - t)), "http") || IEQ(ot_str_make(t, (size_t)(c - t)), "https")))
            return OT_HTTP_E_BAD;
        if (e - c < 3 || c[1] != '/' || c[2] != '/')
            return OT_HTTP_E_BAD;
        const char *a = c + 3, *ae = a;
        while (ae < e && *ae != '/' && *ae != '?') {
            /* userinfo is deprecated and a recipient SHOULD treat it as an
             * error (RFC 9110 §4.2.4); '@' is not a C_HOST byte. */
            if (!is_c((unsigned char)*ae, C_HOST))
                return OT_HTTP_E_BAD;
            ae++;
        }
        if (ae == a)
            return OT_HTTP_E_BAD; /* http URIs need a host (RFC 9110 §4.2.1) */
        req->absolute_form = true;
        req->host = ot_str_make(a, (size_t)(ae - a));
        rest = ae;
    }
    const char *q = memchr(rest, '?', (size_t)(e - rest));
    const char *pe = q ? q : e;
    req->path = pe > rest ? ot_str_make(rest, (size_t)(pe - rest)) : ot_str_make(slash, 1);
    if (q)
        req->query = ot_str_make(q + 1, (size_t)(e - q - 1));
    return 0;
}

int ot_http_parse_request(const char *buf, size_t len, ot_http_request *req, const ot_http_limits *lim)
{
    ot_http_limits defaults;
    if (!lim) {
        ot_http_limits_default(&defaults);
        lim = &defaults;
    }
    ot_http_header *const hdrs = req->headers;
    size_t cap = req->num_headers < lim->max_headers ? req->num_headers : lim->max_headers;
    size_t nh = 0;
    head_state st = { 0 };

    req->method = req->target = req->path = req->query = OT_STR_NULL;
    req->host = req->authorization = req->content_type = req->idempotency_key = req->if_match = OT_STR_NULL;
    req->minor_version = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->expect_continue = req->upgrade_websocket = false;
    req->absolute_form = false;

    /* Everything but the request-target is scanned only within the first
     * max_head bytes: running out of that window is "incomplete" while the
     * buffer is shorter, and 431 once it is not, so a slow drip of a huge
     * head is refused as soon as it crosses the limit. */
    const char *p = buf;
    const char *const end = buf + (len < lim->max_head ? len : lim->max_head);
#define NEED(ptr)                                                                              \
    do {                                                                                       \
        if ((ptr) >= end)                                                                      \
            return len >= lim->max_head ? OT_HTTP_E_HEAD_TOO_LARGE : OT_HTTP_INCOMPLETE;       \
    } while (0)

    /* §2.2: SHOULD ignore at least one empty line before the request-line
     * (some clients send CRLF after a body); a few, not unbounded. */
    for (int i = 0; i < 4; i++) {
        NEED(p);
        if (*p != '\r')
            break;
        NEED(p + 1);
        if (p[1] != '\n')
            return OT_HTTP_E_BAD;
        p += 2;
    }

    /* method SP request-target SP HTTP-version CRLF, exactly one SP (§3). */
    const char *m = p;
    for (;;) {
        NEED(p);
        if (!is_c((unsigned char)*p, C_TCHAR))
            break;
        p++;
    }
    if (*p != ' ' || p == m)
        return (*p == '\r' || *p == '\n') ? OT_HTTP_E_BAD : OT_HTTP_E_METHOD;
    req->method = ot_str_make(m, (size_t)(p - m));
    p++;

    /* The target has its own limit, checked first. A target that runs past the
     * max_head window is also 414: the request line cannot fit because of it,
     * and deciding within the same window keeps every prefix's answer stable. */
    const char *t = p;
    size_t avail = (size_t)(end - t);
    const char *se = t + (avail < lim->max_uri ? avail : lim->max_uri);
    while (p < se && is_c((unsigned char)*p, C_URI))
        p++;
    if (p == se) {
        if (p == end)
            return len >= lim->max_head ? OT_HTTP_E_URI_TOO_LONG : OT_HTTP_INCOMPLETE;
        if (is_c((unsigned char)*p, C_URI))
            return OT_HTTP_E_URI_TOO_LONG;
    }
    if (*p != ' ' || p == t)
        return OT_HTTP_E_BAD; /* empty target, CTL, SP run, '#', non-ASCII, HTTP/0.9 */
    req->target = ot_str_make(t, (size_t)(p - t));
    p++;

    static const char http_name[] = "HTTP/";
    for (int i = 0; i < 5; i++, p++) {
        NEED(p);
        if (*p != http_name[i])
            return OT_HTTP_E_BAD; /* HTTP-name is case-sensitive (§2.3) */
    }
    NEED(p + 3);
    if (p[0] < '0' || p[0] > '9' || p[1] != '.' || p[2] < '0' || p[2] > '9' || p[3] != '\r')
        return OT_HTTP_E_BAD;
    NEED(p + 4);
    if (p[4] != '\n')
        return OT_HTTP_E_BAD;
    int major = p[0] - '0', minor = p[2] - '0';
    p += 5;
    /* RFC 9110 §6.2: process a higher 1.x minor as the highest we implement.
     * 0.9 has no headers to frame by, 2+ is not spoken on this port. */
    if (major != 1)
        return OT_HTTP_E_VERSION;
    req->minor_version = minor == 0 ? 0 : 1;

    int rc = split_target(req);
    if (rc < 0)
        return rc;

    for (;;) {
        NEED(p);
        unsigned char c = (unsigned char)*p;
        if (c == '\r') {
            NEED(p + 1);
            if (p[1] != '\n')
                return OT_HTTP_E_BAD_HEADER;
            p += 2;
            break;
        }
        /* A line starting with SP/HTAB is obs-fold, or whitespace before the
         * first field: both rejected (§5.2, §2.2). Also catches bare LF. */
        if (!is_c(c, C_TCHAR))
            return OT_HTTP_E_BAD_HEADER;
        if (nh >= cap)
            return OT_HTTP_E_HEAD_TOO_LARGE;
        const char *name = p;
        do {
            p++;
            NEED(p);
        } while (is_c((unsigned char)*p, C_TCHAR));
        /* No whitespace between name and colon (§5.1): a classic smuggling vector. */
        if (*p != ':')
            return OT_HTTP_E_BAD_HEADER;
        size_t nlen = (size_t)(p - name);
        p++;
        for (;;) {
            NEED(p);
            if (!is_ows(*p))
                break;
            p++;
        }
        const char *v = p;
        while (p < end && is_c((unsigned char)*p, C_VALUE))
            p++;
        NEED(p);
        /* NUL, CTLs, DEL, bare CR and bare LF inside a value (RFC 9110 §5.5). */
        if (*p != '\r')
            return OT_HTTP_E_BAD_HEADER;
        NEED(p + 1);
        if (p[1] != '\n')
            return OT_HTTP_E_BAD_HEADER;
        const char *ve = p;
        while (ve > v && is_ows(ve[-1]))
            ve--;
        p += 2;
        ot_http_header *h = &hdrs[nh++];
        h->name = ot_str_make(name, nlen);
        h->value = ot_str_make(v, (size_t)(ve - v));
        rc = on_header(req, &st, h->name, h->value);
        if (rc < 0)
            return rc;
    }
#undef NEED

    if (st.te_seen) {
        /* §6.1: TE on 1.0 means faulty framing; §6.3: CL with TE is a
         * smuggling attempt, answer 400 and close rather than pick one. */
        if (req->minor_version == 0 || st.cl_seen)
            return OT_HTTP_E_SMUGGLING;
        if (!st.te_chunked)
            return OT_HTTP_E_TE;
        req->chunked = true;
    }
    if (req->minor_version == 1 && !st.host_seen)
        return OT_HTTP_E_BAD; /* §3.2: a 1.1 request without Host is 400 */

    if (req->minor_version == 1) {
        req->keep_alive = !st.conn_close;
        req->expect_continue = st.expect_100;
        req->upgrade_websocket = st.conn_upgrade && st.upgrade_ws; /* RFC 6455 §4.1 needs 1.1 */
    } else {
        req->keep_alive = st.conn_keep_alive && !st.conn_close;
    }
    req->num_headers = nh;
    return (int)(p - buf);
}

int ot_http_error_status(int err)
{
    switch (err) {
    case OT_HTTP_E_URI_TOO_LONG: return 414;
    case OT_HTTP_E_HEAD_TOO_LARGE: return 431;
    case OT_HTTP_E_VERSION: return 505;
    case OT_HTTP_E_TE: return 501; /* §6.1: a coding we do not implement */
    default: return 400;
    }
}

const char *ot_http_error_message(int err)
{
    switch (err) {
    case OT_HTTP_E_URI_TOO_LONG: return "request target too long";
    case OT_HTTP_E_HEAD_TOO_LARGE: return "request header section too large";
    case OT_HTTP_E_VERSION: return "HTTP version not supported";
    case OT_HTTP_E_SMUGGLING: return "ambiguous message framing (Content-Length / Transfer-Encoding)";
    case OT_HTTP_E_TE: return "unsupported transfer coding (only a single chunked is accepted)";
    case OT_HTTP_E_BAD_HEADER: return "malformed header field";
    case OT_HTTP_E_METHOD: return "malformed request method";
    default: return "malformed request";
    }
}

const char *ot_http_error_code(int err)
{
    switch (err) {
    case OT_HTTP_E_URI_TOO_LONG: return "uri_too_long";
    case OT_HTTP_E_HEAD_TOO_LARGE: return "header_too_large";
    case OT_HTTP_E_VERSION: return "http_version_not_supported";
    case OT_HTTP_E_SMUGGLING: return "bad_framing";
    case OT_HTTP_E_TE: return "unsupported_transfer_encoding";
    case OT_HTTP_E_BAD_HEADER: return "bad_header";
    case OT_HTTP_E_METHOD: return "bad_method";
    default: return "bad_request";
    }
}

/* ---- chunked decoder (RFC 9112 §7.1) ---- */

enum {
    CH_SIZE,     /* hex digits of chunk-size */
    CH_SIZE_WS,  /* BWS after the size: only ';' may follow */
    CH_EXT,      /* chunk-ext, skipped up to CR */
    CH_SIZE_LF,  /* CR of the size line seen */
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TR_START, /* start of a trailer line, or of the final empty line */
    CH_TR_NAME,
    CH_TR_VALUE,
    CH_TR_LF,
    CH_END_LF,   /* CR of the final empty line seen */
    CH_ERR,
};

/* 16 hex digits already exceed 2^62; more are only a way to stall us. */
#define CH_MAX_DIGITS 16

void ot_http_chunked_init(ot_http_chunked *d) { memset(d, 0, sizeof(*d)); d->state = CH_SIZE; }

ssize_t ot_http_chunked_decode(ot_http_chunked *d, const char *in, size_t len, char *out, size_t *outlen)
{
    size_t i = 0, o = 0;
    *outlen = 0;
    if (d->done)
        return 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        switch (d->state) {
        case CH_SIZE: {
            int h = ot_hex_val(c);
            if (h >= 0) {
                /* Sizes over 2^62 are refused well before uint64_t wraps. */
                if (++d->digits > CH_MAX_DIGITS || d->chunk_left > (OT_HTTP_CHUNK_MAX - (uint64_t)h) / 16)
                    goto bad;
                d->chunk_left = d->chunk_left * 16 + (uint64_t)h;
                break;
            }
            if (d->digits == 0)
                goto bad;
            if (c == ';')
                d->state = CH_EXT;
            else if (c == ' ' || c == '\t')
                d->state = CH_SIZE_WS;
            else if (c == '\r')
                d->state = CH_SIZE_LF;
            else
                goto bad;
            break;
        }
        case CH_SIZE_WS:
            if (++d->ext_bytes > OT_HTTP_CHUNK_EXT_MAX)
                goto bad;
            if (c == ';')
                d->state = CH_EXT;
            else if (c != ' ' && c != '\t')
                goto bad; /* BWS is only allowed before ';' (§7.1.1) */
            break;
        case CH_EXT:
            /* Extensions carry nothing we use; bound and charset-check them so a
             * CTL or bare LF cannot hide a line break from us. */
            if (++d->ext_bytes > OT_HTTP_CHUNK_EXT_MAX)
                goto bad;
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (!is_c(c, C_VALUE))
                goto bad;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                goto bad;
            d->digits = 0;
            d->ext_bytes = 0;
            d->state = d->chunk_left ? CH_DATA : CH_TR_START;
            break;
        case CH_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > d->chunk_left)
                n = (size_t)d->chunk_left;
            memmove(out + o, in + i, n); /* out may alias in, and o <= i */
            o += n;
            i += n;
            d->chunk_left -= n;
            if (d->chunk_left == 0)
                d->state = CH_DATA_CR;
            continue;
        }
        case CH_DATA_CR:
            if (c != '\r')
                goto bad;
            d->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                goto bad;
            d->state = CH_SIZE;
            break;
        default:
            /* Trailer section (§7.1.2): field lines, validated like header
             * lines and discarded, then the empty line. */
            if (++d->trailer_bytes > OT_HTTP_TRAILER_MAX)
                goto bad;
            switch (d->state) {
            case CH_TR_START:
                if (c == '\r')
                    d->state = CH_END_LF;
                else if (is_c(c, C_TCHAR))
                    d->state = CH_TR_NAME;
                else
                    goto bad; /* obs-fold, bare LF, empty name */
                break;
            case CH_TR_NAME:
                if (c == ':')
                    d->state = CH_TR_VALUE;
                else if (!is_c(c, C_TCHAR))
                    goto bad;
                break;
            case CH_TR_VALUE:
                if (c == '\r')
                    d->state = CH_TR_LF;
                else if (!is_c(c, C_VALUE))
                    goto bad;
                break;
            case CH_TR_LF:
                if (c != '\n')
                    goto bad;
                d->state = CH_TR_START;
                break;
            case CH_END_LF:
                if (c != '\n')
                    goto bad;
                d->done = true;
                *outlen = o;
                return (ssize_t)(i + 1);
            default:
                goto bad; /* CH_ERR: stays failed */
            }
            break;
        }
        i++;
    }
    *outlen = o;
    return (ssize_t)i;
bad:
    d->state = CH_ERR;
    *outlen = o;
    return OT_HTTP_E_BAD;
}

/* ---- URL helpers ---- */

static int url_decode(ot_str in, char *out, size_t cap, size_t *outlen, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.base[i];
        if (c == '%') {
            if (in.len - i < 3)
                return OT_ERR;
            int hi = ot_hex_val((unsigned char)in.base[i + 1]), lo = ot_hex_val((unsigned char)in.base[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return OT_ERR; /* bad escape, or %00 */
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (o >= cap)
            return OT_ERR;
        out[o++] = (char)c;
    }
    *outlen = o;
    return OT_OK;
}

int ot_url_decode(ot_str in, char *out, size_t cap, size_t *outlen)
{
    return url_decode(in, out, cap, outlen, true);
}

int ot_url_decode_path(ot_str in, char *out, size_t cap, size_t *outlen)
{
    return url_decode(in, out, cap, outlen, false);
}

bool ot_http_query_get(ot_str query, const char *key, ot_str *raw_value)
{
    if (!query.base)
        return false;
    size_t klen = strlen(key); /* key is the caller's literal, not request data */
    const char *p = query.base, *e = query.base + query.len;
    while (p < e) {
        const char *amp = memchr(p, '&', (size_t)(e - p));
        const char *pe = amp ? amp : e;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - p) == klen && memcmp(p, key, klen) == 0) {
            *raw_value = eq ? ot_str_make(eq + 1, (size_t)(pe - eq - 1)) : ot_str_make(pe, 0);
            return true;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return false;
}
