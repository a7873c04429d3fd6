/* JSON Web Tokens signed with HS256 (RFC 7519 over RFC 7515 compact JWS).
 *
 * Only HS256 is accepted, whatever the header asks for: letting the token
 * choose its own algorithm is how "alg":"none" and RS256/HS256 key-confusion
 * forgeries work (RFC 8725 §2.1, §3.1). The signature is checked in constant
 * time before the payload is even decoded, so nothing an attacker wrote in
 * the claims is parsed until the token is known to be ours.
 *
 * ot_jwt_verify runs on every request: it allocates nothing itself (stack
 * buffers, bounded by OT_JWT_MAX_LEN), and the HMAC key schedule of each
 * secret is prepared once and reused (codec/hmac.h). */
#ifndef OT_JWT_H
#define OT_JWT_H

#include "ot/core/buf.h"
#include "ot/core/common.h"

typedef enum { OT_ROLE_NONE = 0, OT_ROLE_CUSTOMER = 1, OT_ROLE_ADMIN = 2 } ot_role;

/* "CUSTOMER" / "ADMIN" ("NONE" for anything else). */
const char *ot_role_name(ot_role r);
/* Exact, case-sensitive match of "CUSTOMER" or "ADMIN"; else OT_ERR. */
int ot_role_parse(ot_str s, ot_role *out);

#define OT_JWT_SUB_MAX 63     /* bytes of sub, without the NUL */
#define OT_JWT_MAX_LEN 4096   /* longest token accepted (whole compact form) */
#define OT_JWT_SKEW_S 60      /* tolerated clock skew for iat/nbf in the future */

typedef struct {
    char sub[OT_JWT_SUB_MAX + 1]; /* NUL-terminated; never contains NUL itself */
    ot_role role;
    int64_t iat, exp; /* seconds since the epoch (RFC 7519 §2 NumericDate) */
    int64_t ep;       /* the user's token epoch at issue ("ep"; absent = 0): see sql/003 */
} ot_jwt_claims;

enum {
    OT_JWT_OK = 0,
    OT_JWT_EMALFORMED = -1, /* not three base64url segments of JSON objects, or too long */
    OT_JWT_EALG = -2,       /* alg is not exactly "HS256", or a "crit" header we cannot honour */
    OT_JWT_ESIG = -3,       /* signature does not match (or empty secret) */
    OT_JWT_EEXPIRED = -4,   /* exp <= now (no leeway: a token is dead at exp) */
    OT_JWT_ECLAIMS = -5,    /* sub/role/iat/exp/ep missing or invalid, iat or nbf > now + skew */
    /* Not produced by ot_jwt_verify: the auth layer's verdicts on a valid
     * signature, named here so every caller prints them the same way. */
    OT_JWT_EREVOKED = -6,   /* the user is gone or disabled, or its role or epoch changed since issue */
    OT_JWT_EUNVERIFIED = -7,/* the user's current state is not known to this worker yet: retry */
};

/* Appends header.payload.signature for claims c to out, with the header
 * {"alg":"HS256","typ":"JWT"} and payload {"sub","role","iat","exp","ep"}.
 * OT_ERR if the secret is empty, sub is empty / over OT_JWT_SUB_MAX / not
 * UTF-8, the role is not CUSTOMER or ADMIN, or on allocation failure; out is
 * then left as it was. */
int ot_jwt_sign(ot_str secret, const ot_jwt_claims *c, ot_buf *out);

/* OT_JWT_OK and *out filled, or one of the OT_JWT_E* codes (out untouched).
 * Extra claims are ignored except nbf, which is honoured (RFC 7519 §4.1.5),
 * and ep, which must be a non-negative integer when present. */
int ot_jwt_verify(ot_str secret, ot_str token, int64_t now_s, ot_jwt_claims *out);

const char *ot_jwt_strerror(int err);

#endif
