#include "ot/api/orders.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "ot/api/auth.h"
#include "ot/api/helpers.h"
#include "ot/codec/cursor.h"
#include "ot/app/events.h"
#include "ot/codec/json.h"
#include "ot/codec/lifecycle.h"

const ot_pg_stmt ot_orders_stmts[] = {
    { "order_create", "SELECT created, order_json, event_json, same_request FROM ot_create_order($1::uuid, $2::jsonb, $3, $4::uuid)",
      4, false },
    { "order_status",
      "SELECT result, order_json, event_json FROM ot_update_status($1::uuid, $2::order_status, $3::int, $4::uuid)", 4, false },
    { "order_get", "SELECT ot_order_json(o), o.user_id, o.status FROM orders o WHERE o.id = $1::uuid", 1, true },
    /* Keyset pagination on (created_at, id): stable under concurrent inserts.
     * The cursor carries created_at as integer microseconds since the epoch
     * (exact both ways, and checkable in C: a tampered cursor is a 400 before
     * any query, never a database error). */
    { "orders_by_user",
      "SELECT ot_order_json(o), (extract(epoch FROM o.created_at) * 1000000)::bigint, o.id, o.status FROM orders o "
      "WHERE o.user_id = $1::uuid AND ($2::bigint IS NULL OR (o.created_at, o.id) < "
      "('epoch'::timestamptz + $2::bigint * interval '1 microsecond', $3::uuid)) "
      "ORDER BY o.created_at DESC, o.id DESC LIMIT $4::int",
      4, true },
};
const size_t ot_orders_nstmts = OT_ARRAY_LEN(ot_orders_stmts);

static const char *const statuses[] = { "CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED", "CANCELED" };

int ot_order_status_valid(ot_str s)
{
    for (size_t i = 0; i < OT_ARRAY_LEN(statuses); i++)
        if (ot_str_eq_lit(s, statuses[i]))
            return (int)i;
    return OT_ERR;
}

/* ---- async plumbing (api/helpers.h) ---- */

typedef struct {
    ot_api_ctx base;
    char status[16];  /* PATCH: the requested status, for messages */
    int64_t seq;      /* lists: the event stream position the answer is consistent with */
} order_ctx;

/* Every order answered carries the moves the caller may make next
 * (codec/lifecycle.h), so a page never offers an illegal one. */
/* known: the order's status when the caller has it (a column, the request
 * that just set it), so the JSON is not parsed to find it; empty: parse. */
static void respond_order(ot_req *r, int status, ot_str order, ot_str known)
{
    ot_buf b = OT_BUF_INIT;
    if ((known.len ? ot_lifecycle_splice(order, known, r->auth.role, &b)
                   : ot_lifecycle_annotate(order, r->auth.role, &b)) == 0)
        ot_respond_json(r, status, ot_buf_str(&b));
    else
        ot_respond_error(r, 500, "internal", "order could not be encoded");
    ot_buf_free(&b);
}

/* The two refusals that are the client's fault, then the shared mapping. */
static bool db_error(ot_req *r, int status, PGresult *res)
{
    if (status == OT_PG_EQUERY) {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (st && !strcmp(st, "23503")) {
            ot_respond_error(r, 400, "invalid_field", "userId: no such user");
            return true;
        }
        if (st && !strcmp(st, "22P02")) {
            ot_respond_error(r, 400, "invalid_input", "malformed value");
            return true;
        }
    }
    return ot_api_db_error(r, status, res);
}

/* ---- POST /orders ---- */

static void created_cb(void *data, int status, PGresult *res)
{
    order_ctx *c = data;
    c->base.q = NULL;
    ot_req *r = ot_api_finish(c);
    if (db_error(r, status, res))
        return;
    bool created = PQgetvalue(res, 0, 0)[0] == 't';
    ot_str order = ot_str_make(PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    if (!created && PQgetvalue(res, 0, 3)[0] != 't') {
        /* Same key, different items: a client bug, not a retry (answering
         * with the first order would hide it). */
        ot_respond_error(r, 422, "idempotency_key_reused",
                         "this Idempotency-Key was already used for a different order");
        return;
    }
    ot_event ev = { 0 };
    /* The event names the order: its id gives Location and its status the
     * moves, without parsing the order's JSON as well. A new order's status
     * is its event's; an idempotent replay's may have moved on since (parsed). */
    if (created && ot_events_committed(ot_api_of(r)->events,
                                       ot_str_make(PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2)), &ev) < 0)
        ev = (ot_event){ 0 };
    if (ev.order_id.len) {
        char loc[96] = "/orders/";
        size_t n = ev.order_id.len < 40 ? ev.order_id.len : 40;
        memcpy(loc + 8, ev.order_id.base, n);
        loc[8 + n] = '\0';
        ot_resp_header(r, "Location", loc);
    }
    respond_order(r, created ? 201 : 200, order, ev.status);
}

void ot_h_order_create(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_CUSTOMER) || !ot_req_need_db(r) || !ot_req_json_content(r))
        return;
    ot_buf items = OT_BUF_INIT;
    char err[200];
    ot_str uid;
    if (ot_orders_validate_items(r->body.base, r->body.len, &items, err, sizeof(err), &uid) < 0) {
        ot_buf_free(&items);
        ot_respond_error(r, 400, "invalid_field", "%s", err);
        return;
    }
    /* UUIDs compare case-insensitively (RFC 4122 §3). */
    if (uid.len && r->auth.role != OT_ROLE_ADMIN && !ot_str_ieq(uid, r->auth.sub)) {
        ot_buf_free(&items);
        ot_respond_error(r, 403, "forbidden", "only an admin may create orders for another user");
        return;
    }
    if (!uid.len)
        uid = ot_str_c(r->auth.sub);
    ot_str idem = r->head.idempotency_key;
    if (idem.len > OT_IDEM_KEY_MAX) {
        ot_buf_free(&items);
        ot_respond_error(r, 400, "invalid_header", "Idempotency-Key: at most %d bytes", OT_IDEM_KEY_MAX);
        return;
    }
    for (size_t i = 0; i < idem.len; i++) {
        if ((unsigned char)idem.base[i] < 0x21 || (unsigned char)idem.base[i] > 0x7e) {
            ot_buf_free(&items);
            ot_respond_error(r, 400, "invalid_header", "Idempotency-Key: printable ASCII only");
            return;
        }
    }
    order_ctx *c = ot_api_ctx_new(r, sizeof(order_ctx), NULL);
    if (!c) {
        ot_buf_free(&items);
        return;
    }
    const char *vals[4] = { uid.base, ot_buf_rptr(&items), idem.len ? idem.base : NULL, r->auth.sub };
    int lens[4] = { (int)uid.len, (int)ot_buf_rlen(&items), (int)idem.len, (int)strlen(r->auth.sub) };
    if (ot_api_exec(c, "order_create", 4, vals, lens, created_cb))
        ot_events_write_queued(ot_api_of(r)->events, c->base.q);
    ot_buf_free(&items);
}

/* ---- GET /orders/:id ---- */

static void get_cb(void *data, int status, PGresult *res)
{
    order_ctx *c = data;
    c->base.q = NULL;
    ot_req *r = ot_api_finish(c);
    if (db_error(r, status, res))
        return;
    /* Someone else's order answers exactly like a missing one: no existence oracle. */
    if (PQntuples(res) != 1 ||
        (r->auth.role != OT_ROLE_ADMIN && strcasecmp(PQgetvalue(res, 0, 1), r->auth.sub) != 0)) {
        ot_respond_error(r, 404, "not_found", "no such order");
        return;
    }
    respond_order(r, 200, ot_str_make(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)),
                  ot_str_make(PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2)));
}

void ot_h_order_get(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_CUSTOMER) || !ot_req_need_db(r))
        return;
    if (!ot_uuid_valid(r->params[0])) {
        ot_respond_error(r, 400, "invalid_id", "order id must be a UUID");
        return;
    }
    order_ctx *c = ot_api_ctx_new(r, sizeof(order_ctx), NULL);
    if (!c)
        return;
    const char *vals[1] = { r->params[0].base };
    int lens[1] = { 36 };
    ot_api_exec(c, "order_get", 1, vals, lens, get_cb);
}

/* ---- GET /orders/user/:id?limit=&cursor= ---- */

static void list_cb(void *data, int status, PGresult *res)
{
    order_ctx *c = data;
    c->base.q = NULL;
    int limit = atoi(c->status); /* the page size asked for, kept in the ctx */
    int64_t seq = c->seq;
    ot_req *r = ot_api_finish(c);
    if (db_error(r, status, res))
        return;
    int n = PQntuples(res);
    ot_buf b = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &b);
    ot_jw_obj_open(&w);
    if (!ot_api_put_order_page(&w, res, n, n > 0 && n == limit, r->auth.role, 3)) {
        ot_buf_free(&b);
        ot_respond_error(r, 500, "internal", "order could not be encoded");
        return;
    }
    /* A page loads this snapshot, then resumes the socket with since=seq:
     * events it already reflects are told apart by the order's version. */
    ot_jw_key(&w, "seq");
    ot_jw_int(&w, seq);
    ot_jw_obj_close(&w);
    ot_respond_json(r, 200, ot_buf_str(&b));
    ot_buf_free(&b);
}

void ot_h_orders_by_user(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_CUSTOMER) || !ot_req_need_db(r))
        return;
    ot_str uid = r->params[0];
    if (!ot_uuid_valid(uid)) {
        ot_respond_error(r, 400, "invalid_id", "user id must be a UUID");
        return;
    }
    if (r->auth.role != OT_ROLE_ADMIN && !ot_str_ieq(uid, r->auth.sub)) { /* RFC 4122 §3: any case */
        ot_respond_error(r, 403, "forbidden", "customers may list only their own orders");
        return;
    }
    int limit = 20;
    ot_str v;
    char tmp[256];
    size_t tl;
    if (ot_http_query_get(r->head.query, "limit", &v)) {
        if (ot_url_decode(v, tmp, sizeof(tmp) - 1, &tl) < 0 || tl == 0 || tl > 3) {
            ot_respond_error(r, 400, "invalid_query", "limit: integer 1..%d", OT_LIST_LIMIT_MAX);
            return;
        }
        tmp[tl] = 0;
        char *end;
        long l = strtol(tmp, &end, 10);
        if (*end || l < 1 || l > OT_LIST_LIMIT_MAX) {
            ot_respond_error(r, 400, "invalid_query", "limit: integer 1..%d", OT_LIST_LIMIT_MAX);
            return;
        }
        limit = (int)l;
    }
    char ts[24] = "", id[40] = "";
    bool have_cursor = false;
    if (ot_http_query_get(r->head.query, "cursor", &v)) {
        if (ot_url_decode(v, tmp, sizeof(tmp), &tl) < 0 || ot_cursor_decode(ot_str_make(tmp, tl), ts, id) < 0) {
            ot_respond_error(r, 400, "invalid_query", "cursor: malformed");
            return;
        }
        have_cursor = true;
    }
    order_ctx *c = ot_api_ctx_new(r, sizeof(order_ctx), NULL);
    if (!c)
        return;
    snprintf(c->status, sizeof(c->status), "%d", limit);
    /* Read before the query: every event below the watermark was delivered,
     * so the snapshot reflects at least those (maybe more, which the page's
     * version check drops). */
    c->seq = ot_api_of(r)->events ? ot_events_watermark(ot_api_of(r)->events) - 1 : 0;
    const char *vals[4] = { uid.base, have_cursor ? ts : NULL, have_cursor ? id : NULL, c->status };
    int lens[4] = { 36, (int)strlen(ts), (int)strlen(id), (int)strlen(c->status) };
    ot_api_exec(c, "orders_by_user", 4, vals, lens, list_cb);
}

/* ---- PATCH /orders/:id/status ---- */

static void status_cb(void *data, int status, PGresult *res)
{
    order_ctx *c = data;
    c->base.q = NULL;
    char want[16];
    snprintf(want, sizeof(want), "%s", c->status);
    ot_req *r = ot_api_finish(c);
    if (db_error(r, status, res))
        return;
    const char *result = PQgetvalue(res, 0, 0);
    ot_str order = ot_str_make(PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    if (!strcmp(result, "ok")) {
        ot_events_committed(ot_api_of(r)->events, ot_str_make(PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2)), NULL);
        respond_order(r, 200, order, ot_str_c(want));
        return;
    }
    if (!strcmp(result, "not_found")) {
        ot_respond_error(r, 404, "not_found", "no such order");
        return;
    }
    /* Name the current state so the caller can decide what to do. */
    char now[16] = "?";
    long long ver = 0;
    ot_json_tok toks[OT_ITEMS_MAX * 5 + 32];
    ot_json d;
    if (ot_json_parse(&d, order.base, order.len, toks, (int)OT_ARRAY_LEN(toks)) == 0) {
        int t = ot_json_obj_get(&d, 0, "status");
        if (t >= 0) {
            ot_str s = ot_json_raw(&d, t);
            snprintf(now, sizeof(now), "%.*s", (int)s.len, s.base);
        }
        int64_t v;
        t = ot_json_obj_get(&d, 0, "version");
        if (t >= 0 && ot_json_get_int64(&d, t, &v) == 0)
            ver = (long long)v;
    }
    if (!strcmp(result, "version_mismatch")) {
        ot_respond_error(r, 412, "version_mismatch", "order is at version %lld (status %s)", ver, now);
        return;
    }
    ot_respond_error(r, 409, "invalid_transition", "cannot change status from %s to %s (current status %s)", now, want,
                     now);
}

void ot_h_order_status(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_ADMIN) || !ot_req_need_db(r) || !ot_req_json_content(r))
        return;
    if (!ot_uuid_valid(r->params[0])) {
        ot_respond_error(r, 400, "invalid_id", "order id must be a UUID");
        return;
    }
    ot_json_tok toks[16];
    ot_json d;
    if (ot_json_parse(&d, r->body.base, r->body.len, toks, 16) < 0 || !ot_json_is_obj(&d, 0)) {
        ot_respond_error(r, 400, "invalid_json", "body must be a JSON object like {\"status\":\"ACCEPTED\"}");
        return;
    }
    /* Refused rather than ignored, as on POST: a typo must not pass silently. */
    for (int k = 1; k < d.ntoks; k = ot_json_skip(&d, k + 1)) {
        if (!ot_json_str_eq(&d, k, "status")) {
            ot_respond_error(r, 400, "invalid_field", "unknown field: %.*s", (int)ot_json_raw(&d, k).len,
                             ot_json_raw(&d, k).base);
            return;
        }
    }
    int t = ot_json_obj_get(&d, 0, "status");
    if (t < 0 || !ot_json_is_str(&d, t)) {
        ot_respond_error(r, 400, "invalid_field", "status: required string");
        return;
    }
    ot_str st = ot_json_raw(&d, t);
    if (ot_order_status_valid(st) < 0) {
        ot_respond_error(r, 400, "invalid_field",
                         "status: must be one of CREATED, ACCEPTED, PREPARED, SHIPPED, DELIVERED, CANCELED");
        return;
    }
    /* If-Match carries the version the client last saw: 3, "3" or W/"3". */
    char ver[16] = "";
    ot_str im = r->head.if_match;
    if (im.len) {
        const char *p = im.base, *e = im.base + im.len;
        if (e - p > 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if (e - p >= 2 && *p == '"' && e[-1] == '"') {
            p++;
            e--;
        }
        size_t n = (size_t)(e - p);
        bool ok = n > 0 && n < 10;
        for (size_t i = 0; ok && i < n; i++)
            ok = p[i] >= '0' && p[i] <= '9';
        if (!ok) {
            ot_respond_error(r, 400, "invalid_header", "If-Match: must be the order version, e.g. \"3\"");
            return;
        }
        memcpy(ver, p, n);
        ver[n] = 0;
    }
    order_ctx *c = ot_api_ctx_new(r, sizeof(order_ctx), NULL);
    if (!c)
        return;
    snprintf(c->status, sizeof(c->status), "%.*s", (int)st.len, st.base);
    const char *vals[4] = { r->params[0].base, c->status, ver[0] ? ver : NULL, r->auth.sub };
    int lens[4] = { 36, (int)strlen(c->status), (int)strlen(ver), (int)strlen(r->auth.sub) };
    if (ot_api_exec(c, "order_status", 4, vals, lens, status_cb))
        ot_events_write_queued(ot_api_of(r)->events, c->base.q);
}
