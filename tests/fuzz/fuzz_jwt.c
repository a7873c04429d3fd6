/* libFuzzer: ot_jwt_verify on arbitrary tokens. Two passes: the raw input
 * (exercises segment splitting and base64url), and the input as a PAYLOAD
 * correctly signed with the fuzz secret (reaches the claim checks, which an
 * unsigned input never does). Invariant: OK implies sane claims. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

#include "ot/codec/base64.h"
#include "ot/codec/jwt.h"

static const ot_str KEY = OT_STR("fuzz-secret-fuzz-secret-fuzz-sec");

static void check(int rc, const ot_jwt_claims *c)
{
    if (rc == OT_JWT_OK && (c->sub[0] == 0 || strlen(c->sub) > OT_JWT_SUB_MAX ||
                            (c->role != OT_ROLE_CUSTOMER && c->role != OT_ROLE_ADMIN) || c->exp <= 1700000000))
        abort();
    if (rc > 0 || rc < OT_JWT_ECLAIMS)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ot_jwt_claims c;
    int rc = ot_jwt_verify(KEY, ot_str_make((const char *)data, size), 1700000000, &c);
    check(rc, &c);

    if (size > 2048)
        return 0;
    static const char hdr[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."; /* {"alg":"HS256","typ":"JWT"} */
    char tok[sizeof hdr + OT_B64URL_ENC_LEN(2048) + 64];
    size_t n = sizeof hdr - 1;
    memcpy(tok, hdr, n);
    n += ot_b64_encode(data, size, tok + n, true);
    unsigned char mac[32];
    unsigned int mlen;
    if (!HMAC(EVP_sha256(), KEY.base, (int)KEY.len, (const unsigned char *)tok, n, mac, &mlen))
        abort();
    tok[n++] = '.';
    n += ot_b64_encode(mac, mlen, tok + n, true);
    rc = ot_jwt_verify(KEY, ot_str_make(tok, n), 1700000000, &c);
    check(rc, &c);
    if (rc == OT_JWT_ESIG || rc == OT_JWT_EALG)
        abort(); /* header and signature are right by construction */
    return 0;
}
