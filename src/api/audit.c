#include "ot/api/audit.h"

#include <stdio.h>
#include <stdlib.h>

#include "ot/api/auth.h"
#include "ot/api/helpers.h"
#include "ot/codec/json.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const ot_pg_stmt ot_audit_stmts[] = {
    /* One row past the cap tells "exactly the cap" from "more". */
    { "audit_order_events",
      "SELECT ot_event_json(e) FROM order_events e WHERE e.order_id = $1::uuid ORDER BY e.version LIMIT "
      STR(OT_AUDIT_MAX_EVENTS) " + 1",
      1, true },
};
const size_t ot_audit_nstmts = OT_ARRAY_LEN(ot_audit_stmts);

typedef struct {
    ot_api_ctx base;
    char id[37];
} audit_ctx;

static void events_cb(void *data, int status, PGresult *res)
{
    audit_ctx *c = data;
    char id[37];
    memcpy(id, c->id, sizeof id);
    ot_req *r = ot_api_finish(c);
    if (ot_api_db_error(r, status, res))
        return;
    int n = PQntuples(res);
    if (n == 0) {
        ot_respond_error(r, 404, "not_found", "no such order");
        return;
    }
    ot_buf b = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &b);
    ot_jw_obj_open(&w);
    ot_api_put_event_list(&w, id, res, 0, OT_AUDIT_MAX_EVENTS);
    ot_jw_obj_close(&w);
    ot_api_respond_built(r, &w, &b);
}

void ot_h_order_events(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_ADMIN) || !ot_req_need_db(r))
        return;
    if (!ot_uuid_valid(r->params[0])) {
        ot_respond_error(r, 400, "invalid_id", "order id must be a UUID");
        return;
    }
    audit_ctx *c = ot_api_ctx_new(r, sizeof *c, NULL);
    if (!c)
        return;
    memcpy(c->id, r->params[0].base, 36);
    const char *vals[1] = { c->id };
    ot_api_exec(c, "audit_order_events", 1, vals, NULL, events_cb);
}
