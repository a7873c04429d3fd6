/* Bearer tokens: is this JWT one we honour? The signature (current secret,
 * or the previous one during a rotation overlap), then the user it names
 * (principals.h): it exists, is active, and still has the token's role and
 * epoch. Below the HTTP handlers and the WebSocket gateway, which both ask. */
#ifndef OT_BEARER_H
#define OT_BEARER_H

#include "ot/codec/jwt.h"
#include "ot/core/config.h"

typedef struct ot_principals ot_principals;

/* Once per worker (one per process): the user cache (NULL: no database,
 * signatures only) and the verified-token cache sized from cfg. OT_ERR on
 * allocation failure. */
int ot_bearer_setup(const ot_config *cfg, ot_principals *p);
void ot_bearer_teardown(void);
/* The cache given to ot_bearer_setup (NULL: none). */
ot_principals *ot_bearer_principals(void);

/* Without waiting: OT_JWT_OK, an ot_jwt_verify error, OT_JWT_ECLAIMS for a
 * sub that is not a UUID, OT_JWT_EREVOKED, or OT_JWT_EUNVERIFIED when the
 * user is not cached here (id then holds it, for ot_principals_load). */
int ot_bearer_check(const ot_config *cfg, ot_str token, ot_jwt_claims *out, uint8_t id[16]);
/* ot_bearer_check for callers that cannot wait: an unknown user is loaded in
 * the background, so the next try finds it. */
int ot_bearer_verify(const ot_config *cfg, ot_str token, ot_jwt_claims *out);

#endif
