/* Users and tokens: register, login, and the bearer-token check every
 * protected route starts with. */
#ifndef OT_AUTH_H
#define OT_AUTH_H

#include "ot/http/http.h"
#include "ot/adapters/pg.h"
#include "ot/codec/uuid.h"

typedef struct ot_principals ot_principals;

extern const ot_pg_stmt ot_auth_stmts[];
extern const size_t ot_auth_nstmts;

void ot_h_register(ot_req *r);
void ot_h_login(ot_req *r);

/* Keys the /auth/... per-address bucket tracks (LRU-ish beyond, see ratelimit.h). */
#define OT_AUTH_RL_KEYS 65536

/* Once per worker, at start: the user cache (NULL: no database, signatures
 * only), the /auth/... throttle and the password-hash queue bounds from cfg.
 * OT_ERR on allocation failure or a zero kdf bound. */
int ot_auth_setup(const ot_config *cfg, ot_principals *p);
void ot_auth_teardown(void);

/* Verifies `Authorization: Bearer <jwt>` (r->auth filled, r->authed set), that
 * its user exists, is active and has the token's role and epoch, and the
 * per-user rate limit. On failure it has already answered 401/403/429/503 and
 * returns false. When this worker has not seen the user yet it returns false
 * WITHOUT answering: the request waits for one query (r->ctx/on_abort are
 * taken), then the route's handler runs again from the start. So call it
 * first in a handler, before taking r->ctx. `need` = OT_ROLE_ADMIN for
 * admin-only routes, else CUSTOMER (which admins also pass). */
bool ot_auth_require(ot_req *r, ot_role need);
/* POST /auth/refresh: a new token for the caller's live one. */
void ot_h_refresh(ot_req *r);
/* GET /ws/orders: loads the token's user if this worker has not seen it, then
 * hands over to ot_h_ws (which checks the token with ot_bearer_verify, app/bearer.h). */
void ot_h_ws_auth(ot_req *r);

#endif
