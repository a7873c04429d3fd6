/* Users and tokens: register, login, and the bearer-token check every
 * protected route starts with. */
#ifndef OT_AUTH_H
#define OT_AUTH_H

#include "ot/http/http.h"
#include "ot/adapters/pg.h"

extern const ot_pg_stmt ot_auth_stmts[];
extern const size_t ot_auth_nstmts;

void ot_h_register(ot_req *r);
void ot_h_login(ot_req *r);

/* Verifies `Authorization: Bearer <jwt>` (r->auth filled, r->authed set) and
 * the per-user rate limit. On failure it has already answered 401/403/429 and
 * returns false. `need` = OT_ROLE_ADMIN for admin-only routes, else CUSTOMER
 * (which admins also pass). */
bool ot_auth_require(ot_req *r, ot_role need);
/* Token from a header value or a query string, without responding. */
int ot_auth_token(const ot_config *cfg, ot_str token, ot_jwt_claims *out);

/* UUID text check (8-4-4-4-12 hex), so bad ids are a 400 before any query. */
bool ot_uuid_valid(ot_str s);

#endif
