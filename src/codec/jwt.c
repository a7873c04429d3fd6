/* HS256 JWT sign/verify. See include/ot/jwt.h. */
#include "ot/codec/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ot/codec/base64.h"
#include "ot/codec/hmac.h"
#include "ot/codec/json.h"

#define SIG_LEN 32 /* HMAC-SHA256 */
/* Base64url of {"alg":"HS256","typ":"JWT"}: fixed, so encoded once by hand. */
static const char HEADER_B64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/* Tokens for header/payload JSON: our payload needs 9, the header 5; room for
 * a few extra claims, anything bigger is not a token we issued. */
#define JWT_MAX_TOKS 64

const char *ot_role_name(ot_role r)
{
    switch (r) {
    case OT_ROLE_CUSTOMER: return "CUSTOMER";
    case OT_ROLE_ADMIN: return "ADMIN";
    default: return "NONE";
    }
}

int ot_role_parse(ot_str s, ot_role *out)
{
    if (ot_str_eq_lit(s, "CUSTOMER"))
        *out = OT_ROLE_CUSTOMER;
    else if (ot_str_eq_lit(s, "ADMIN"))
        *out = OT_ROLE_ADMIN;
    else
        return OT_ERR;
    return 0;
}

const char *ot_jwt_strerror(int err)
{
    switch (err) {
    case OT_JWT_OK: return "ok";
    case OT_JWT_EMALFORMED: return "malformed token";
    case OT_JWT_EALG: return "unsupported algorithm or header";
    case OT_JWT_ESIG: return "invalid signature";
    case OT_JWT_EEXPIRED: return "token expired";
    case OT_JWT_ECLAIMS: return "invalid claims";
    case OT_JWT_EREVOKED: return "token revoked";
    case OT_JWT_EUNVERIFIED: return "token not verifiable yet, retry";
    default: return "unknown error";
    }
}

/* The key schedules of the current and the previous secret, prepared once
 * (hmac.h); per process, and the workers are single-threaded. */
static ot_hmac jwt_keys = OT_HMAC_INIT;

static bool hmac(ot_str secret, const char *msg, size_t n, uint8_t mac[SIG_LEN])
{
    ot_str part = ot_str_make(msg, n);
    return ot_hmac_sha256(&jwt_keys, secret, &part, 1, mac) == 0;
}

static bool sub_ok(const char *s, size_t n)
{
    if (n == 0 || n > OT_JWT_SUB_MAX)
        return false;
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = ot_utf8_seq_len((const unsigned char *)s + i, n - i)))
            return false;
    return true;
}

/* Appends the base64url of in[0..n) to out. */
static int put_b64url(ot_buf *out, const void *in, size_t n)
{
    if (n == 0)
        return 0;
    if (ot_buf_reserve(out, OT_B64URL_ENC_LEN(n)) < 0)
        return OT_ERR;
    out->len += ot_b64_encode(in, n, out->data + out->len, true);
    return 0;
}

int ot_jwt_sign(ot_str secret, const ot_jwt_claims *c, ot_buf *out)
{
    size_t sublen = strnlen(c->sub, sizeof c->sub);
    if (secret.len == 0 || !sub_ok(c->sub, sublen) || (c->role != OT_ROLE_CUSTOMER && c->role != OT_ROLE_ADMIN) ||
        c->ep < 0)
        return OT_ERR;

    /* Signing happens at login, not per request: a heap scratch is fine. */
    ot_buf json = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &json);
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "sub");
    ot_jw_str(&w, ot_str_make(c->sub, sublen));
    ot_jw_key(&w, "role");
    ot_jw_cstr(&w, ot_role_name(c->role));
    ot_jw_key(&w, "iat");
    ot_jw_int(&w, c->iat);
    ot_jw_key(&w, "exp");
    ot_jw_int(&w, c->exp);
    ot_jw_key(&w, "ep");
    ot_jw_int(&w, c->ep);
    ot_jw_obj_close(&w);

    size_t start = out->len;
    uint8_t mac[SIG_LEN];
    int rc = OT_ERR;
    if (ot_jw_error(&w) == 0 && ot_buf_append(out, HEADER_B64, sizeof HEADER_B64 - 1) == 0 &&
        ot_buf_append(out, ".", 1) == 0 && put_b64url(out, json.data, json.len) == 0 &&
        hmac(secret, out->data + start, out->len - start, mac) && ot_buf_append(out, ".", 1) == 0 &&
        put_b64url(out, mac, sizeof mac) == 0)
        rc = 0;
    if (rc != 0)
        out->len = start;
    ot_buf_free(&json);
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

/* Decodes a base64url segment and parses it as a JSON object. */
static int decode_obj(ot_str seg, uint8_t *buf, size_t cap, ot_json *doc, ot_json_tok *toks)
{
    size_t n;
    if (seg.len == 0 || ot_b64_decode(seg.base, seg.len, buf, cap, &n, true) < 0 ||
        ot_json_parse(doc, (const char *)buf, n, toks, JWT_MAX_TOKS) < 0 || !ot_json_is_obj(doc, 0))
        return OT_JWT_EMALFORMED;
    return 0;
}

/* Integer NumericDate claim (RFC 7519 §2): 1 if present, 0 if absent,
 * OT_ERR if present but not an integer. */
static int get_time(const ot_json *d, const char *name, int64_t *v)
{
    int t = ot_json_obj_get(d, 0, name);
    if (t < 0)
        return 0;
    return ot_json_get_int64(d, t, v) < 0 ? OT_ERR : 1;
}

/* a > b + skew, without overflow. */
static bool after(int64_t a, int64_t b, uint64_t skew) { return a > b && (uint64_t)a - (uint64_t)b > skew; }

int ot_jwt_verify(ot_str secret, ot_str token, int64_t now_s, ot_jwt_claims *out)
{
    if (token.len == 0 || token.len > OT_JWT_MAX_LEN)
        return OT_JWT_EMALFORMED;
    /* RFC 7515 §7.1: exactly three dot-separated segments. */
    const char *d1 = memchr(token.base, '.', token.len);
    if (!d1)
        return OT_JWT_EMALFORMED;
    const char *end = token.base + token.len;
    const char *d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return OT_JWT_EMALFORMED;
    ot_str hseg = ot_str_make(token.base, (size_t)(d1 - token.base));
    ot_str pseg = ot_str_make(d1 + 1, (size_t)(d2 - d1 - 1));
    ot_str sseg = ot_str_make(d2 + 1, (size_t)(end - d2 - 1));

    uint8_t buf[OT_B64_DEC_MAX(OT_JWT_MAX_LEN)];
    ot_json_tok toks[JWT_MAX_TOKS];
    ot_json doc;
    if (decode_obj(hseg, buf, sizeof buf, &doc, toks) < 0)
        return OT_JWT_EMALFORMED;
    /* RFC 7515 §4.1.1 / RFC 8725 §3.1: the algorithm is ours to choose; the
     * header may only confirm it, byte for byte. */
    if (!ot_json_str_eq(&doc, ot_json_obj_get(&doc, 0, "alg"), "HS256"))
        return OT_JWT_EALG;
    /* RFC 7515 §4.1.11: we understand no extensions, so any "crit" means the
     * token must be rejected. */
    if (ot_json_obj_get(&doc, 0, "crit") >= 0)
        return OT_JWT_EALG;

    /* The header is done with: buf now holds the signature. */
    uint8_t mac[SIG_LEN];
    size_t siglen;
    if (sseg.len == 0 || ot_b64_decode(sseg.base, sseg.len, buf, sizeof buf, &siglen, true) < 0)
        return OT_JWT_EMALFORMED;
    if (siglen != SIG_LEN || !hmac(secret, token.base, (size_t)(d2 - token.base), mac))
        return OT_JWT_ESIG;
    /* Constant time: a byte-wise early exit would leak how much of a forged
     * signature is right. */
    bool same = ot_ct_equal(buf, mac, SIG_LEN);
    OPENSSL_cleanse(mac, sizeof mac);
    if (!same)
        return OT_JWT_ESIG;

    if (decode_obj(pseg, buf, sizeof buf, &doc, toks) < 0)
        return OT_JWT_EMALFORMED;
    ot_jwt_claims c = { .role = OT_ROLE_NONE };
    size_t sublen;
    int64_t nbf = 0; /* absent: no constraint */
    int sub = ot_json_obj_get(&doc, 0, "sub"), role = ot_json_obj_get(&doc, 0, "role");
    /* role is matched on its raw text: we never escape it, so only the plain
     * JSON strings "CUSTOMER" and "ADMIN" are accepted. */
    if (ot_json_get_str_buf(&doc, sub, c.sub, OT_JWT_SUB_MAX, &sublen) < 0 || sublen == 0 ||
        memchr(c.sub, '\0', sublen) || !ot_json_is_str(&doc, role) ||
        ot_role_parse(ot_json_raw(&doc, role), &c.role) < 0 || get_time(&doc, "iat", &c.iat) != 1 ||
        get_time(&doc, "exp", &c.exp) != 1 || get_time(&doc, "nbf", &nbf) < 0 ||
        get_time(&doc, "ep", &c.ep) < 0 || c.ep < 0)
        return OT_JWT_ECLAIMS;
    c.sub[sublen] = '\0';
    /* RFC 7519 §4.1.4: not accepted on or after exp. */
    if (c.exp <= now_s)
        return OT_JWT_EEXPIRED;
    /* A token issued (or valid from) the future beyond clock skew was not
     * minted by a sane clock of ours (§4.1.5, §4.1.6). */
    if (after(c.iat, now_s, OT_JWT_SKEW_S) || after(nbf, now_s, OT_JWT_SKEW_S))
        return OT_JWT_ECLAIMS;
    *out = c;
    return OT_JWT_OK;
}
