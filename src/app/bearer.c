/* Bearer-token verification shared by the API and the WebSocket gateway. */
#include "ot/app/bearer.h"

#include <time.h>

#include "ot/app/principals.h"
#include "ot/codec/jwt_cache.h"
#include "ot/codec/uuid.h"
#include "ot/core/metrics.h"

/* One worker per process: set once by the app wiring. */
static struct {
    ot_principals *principals; /* NULL without a database: signature checks only */
    ot_jwt_cache *jwt_cache;   /* recently verified tokens (NULL: verify every time) */
} g_bearer;

int ot_bearer_setup(const ot_config *cfg, ot_principals *p)
{
    ot_bearer_teardown();
    g_bearer.principals = p;
    if (cfg->jwt_cache_entries > 0 && !(g_bearer.jwt_cache = ot_jwt_cache_new(cfg->jwt_cache_entries)))
        return OT_ERR;
    return 0;
}

void ot_bearer_teardown(void)
{
    ot_jwt_cache_free(g_bearer.jwt_cache);
    g_bearer.jwt_cache = NULL;
    g_bearer.principals = NULL;
}

ot_principals *ot_bearer_principals(void) { return g_bearer.principals; }

int ot_bearer_check(const ot_config *cfg, ot_str token, ot_jwt_claims *out, uint8_t id[16])
{
    int64_t now = (int64_t)time(NULL);
    /* A keep-alive client presents the same bytes again and again: the cache
     * answers those without HMAC, base64 or JSON (codec/jwt_cache.h). */
    int rc = ot_jwt_verify_cached(g_bearer.jwt_cache, ot_str_c(cfg->jwt_secret), token, now, out);
    /* Secret rotation: tokens minted before it keep working for the overlap. */
    if (rc == OT_JWT_ESIG && cfg->jwt_secret_previous && now < cfg->jwt_previous_until_s)
        rc = ot_jwt_verify(ot_str_c(cfg->jwt_secret_previous), token, now, out);
    if (rc != OT_JWT_OK)
        return rc;
    /* Every id we issue is a users.id; anything else was not minted for a user. */
    if (ot_uuid_to_bytes(ot_str_c(out->sub), id) < 0)
        return OT_JWT_ECLAIMS;
    if (!g_bearer.principals)
        return OT_JWT_OK;
    switch (ot_principals_check(g_bearer.principals, id, out->ep, out->role)) {
    case OT_PRINCIPAL_OK: return OT_JWT_OK;
    case OT_PRINCIPAL_REVOKED: ot_metrics_inc(OT_C_AUTH_REVOKED, 1); return OT_JWT_EREVOKED;
    default: return OT_JWT_EUNVERIFIED;
    }
}

int ot_bearer_verify(const ot_config *cfg, ot_str token, ot_jwt_claims *out)
{
    uint8_t id[16];
    int rc = ot_bearer_check(cfg, token, out, id);
    if (rc == OT_JWT_EUNVERIFIED)
        ot_principals_prefetch(g_bearer.principals, id); /* no one waits here: the next try finds it */
    return rc;
}
