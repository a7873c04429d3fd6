#include "ot/api/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "ot/api/auth.h"
#include "ot/api/helpers.h"
#include "ot/api/orders.h"
#include "ot/api/search_es.h"
#include "ot/codec/cursor.h"
#include "ot/codec/iso8601.h"
#include "ot/codec/json.h"
#include "ot/codec/uuid.h"

#define STR_(x) #x
#define STR(x) STR_(x)
/* One statement parameter as text: a UUID, a bigint, the SLA array literal
 * (at most 41 bytes) or a token subject (OT_JWT_SUB_MAX). */
#define VAL_MAX 64

const ot_pg_stmt ot_search_stmts[] = {
    { "search_orders",
      "SELECT order_json, cursor_us, id FROM ot_search_orders($1::uuid, $2::order_status, $3::uuid, $4::bigint, "
      "$5::bigint, $6::bigint, $7::uuid, $8::int)",
      8, true },
    /* ?asOf=S: the same page as the orders stood at seq S (sql/010). */
    { "search_orders_at",
      "SELECT order_json, cursor_us, id FROM ot_search_orders_at($1::uuid, $2::order_status, $3::uuid, $4::bigint, "
      "$5::bigint, $6::bigint, $7::uuid, $8::int, $9::bigint)",
      9, true },
    /* One row past the cap tells "exactly the cap" from "more". */
    { "search_history",
      "SELECT user_id, event_json FROM ot_search_history($1::uuid, $2::boolean, " STR(OT_SEARCH_HISTORY_MAX) " + 1)",
      2, true },
    { "search_analytics", "SELECT ot_search_analytics($1::uuid, $2::bigint, $3::bigint, $4, $5::int[], $6::int)", 6,
      true },
};
const size_t ot_search_nstmts = OT_ARRAY_LEN(ot_search_stmts);

/* Per process (one worker each): set once by ot_search_setup. */
static struct {
    const ot_events *events;
    char sla[VAL_MAX]; /* int[] literal, seconds per status in enum order */
    uint32_t sla_s[4];  /* the same for the Elasticsearch backend */
    uint32_t max_buckets, delayed_max;
} S = { .sla = "{3600,3600,3600,3600,0,0}", .max_buckets = 1000, .delayed_max = 100 };

void ot_search_setup(const ot_config *cfg, const ot_events *events)
{
    S.events = events;
    uint32_t v[4];
    for (int i = 0; i < 4; i++)
        v[i] = cfg->search_sla_status_s[i] ? cfg->search_sla_status_s[i] : cfg->search_sla_s;
    /* DELIVERED and CANCELED are terminal: never late. */
    snprintf(S.sla, sizeof S.sla, "{%u,%u,%u,%u,0,0}", v[0], v[1], v[2], v[3]);
    memcpy(S.sla_s, v, sizeof S.sla_s);
    S.max_buckets = cfg->search_max_buckets;
    S.delayed_max = cfg->search_delayed_max;
}

typedef struct {
    ot_api_ctx base;
    int64_t fresh;  /* freshness.seq, read before the query */
    int limit;      /* search_orders: rows asked for (page + 1) */
    bool admin;
    char id[37];
    char vals[9][VAL_MAX];
} search_ctx;

/* Every event below the reader's watermark was committed before this point,
 * so a snapshot taken after it holds them all. */
static int64_t freshness(void)
{
    int64_t w = S.events ? ot_events_watermark(S.events) : 0;
    return w > 0 ? w - 1 : 0;
}

static void put_freshness(ot_jw *w, int64_t seq)
{
    ot_jw_key(w, "freshness");
    ot_jw_obj_open(w);
    ot_jw_key(w, "seq");
    ot_jw_int(w, seq);
    ot_jw_obj_close(w);
}

/* ---- query parameters ---- */

/* The decoded value of `name` into out (NUL-terminated). 1: present and
 * non-empty; 0: absent or empty (a form that leaves a field blank means "no
 * filter"); -1: undecodable or longer than cap - 1, answered 400. */
static int qparam(ot_req *r, const char *name, char *out, size_t cap)
{
    ot_str v;
    size_t n;
    out[0] = 0;
    if (!ot_http_query_get(r->head.query, name, &v) || v.len == 0)
        return 0;
    if (ot_url_decode(v, out, cap - 1, &n) < 0) {
        ot_respond_error(r, 400, "invalid_query", "%s: malformed or too long", name);
        return -1;
    }
    out[n] = 0;
    return n > 0;
}

/* A UUID parameter: 1 set, 0 absent, -1 answered. */
static int q_uuid(ot_req *r, const char *name, char out[VAL_MAX])
{
    int rc = qparam(r, name, out, VAL_MAX);
    if (rc > 0 && !ot_uuid_valid(ot_str_c(out))) {
        ot_respond_error(r, 400, "invalid_query", "%s: must be a UUID", name);
        return -1;
    }
    return rc;
}

/* An ISO-8601 time parameter, as microseconds. */
static int q_time(ot_req *r, const char *name, int64_t *us)
{
    char tmp[64];
    int rc = qparam(r, name, tmp, sizeof tmp);
    if (rc > 0 && ot_iso8601_parse(ot_str_c(tmp), us) < 0) {
        ot_respond_error(r, 400, "invalid_query",
                         "%s: an ISO-8601 time such as 2026-01-31T09:30:00Z or a date such as 2026-01-31", name);
        return -1;
    }
    return rc;
}

/* from/to of a range, checked together. */
static int q_range(ot_req *r, int64_t *from, bool *has_from, int64_t *to, bool *has_to)
{
    int a = q_time(r, "from", from), b = a < 0 ? 0 : q_time(r, "to", to);
    if (a < 0 || b < 0)
        return -1;
    *has_from = a > 0;
    *has_to = b > 0;
    if (*has_from && *has_to && *from > *to) {
        ot_respond_error(r, 400, "invalid_query", "from: must not be later than to");
        return -1;
    }
    return 0;
}

/* The userId a request may see: a customer only their own (asking for someone
 * else's is refused, not silently narrowed, so a client bug shows); an admin
 * the one given, or everyone (out[0] = 0). */
static int q_scope_user(ot_req *r, char out[VAL_MAX])
{
    int rc = q_uuid(r, "userId", out);
    if (rc < 0)
        return -1;
    if (r->auth.role == OT_ROLE_ADMIN) {
        if (rc == 0)
            out[0] = 0;
        return 0;
    }
    if (rc > 0 && strcasecmp(out, r->auth.sub) != 0) {
        ot_respond_error(r, 403, "forbidden", "userId: customers may search only their own orders");
        return -1;
    }
    snprintf(out, VAL_MAX, "%s", r->auth.sub);
    return 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s | 0x20);
}

static void exec_vals(search_ctx *c, const char *stmt, int n, ot_pg_cb *cb)
{
    const char *vals[9];
    for (int i = 0; i < n; i++)
        vals[i] = c->vals[i][0] ? c->vals[i] : NULL;
    ot_api_exec(c, stmt, n, vals, NULL, cb);
}

/* ---- GET /search/orders ---- */

static void orders_cb(void *data, int status, PGresult *res)
{
    search_ctx *c = data;
    int limit = c->limit;
    int64_t fresh = c->fresh;
    ot_req *r = ot_api_finish(c);
    if (ot_api_db_error(r, status, res))
        return;
    int n = PQntuples(res);
    bool more = n >= limit;
    if (more)
        n = limit - 1;
    ot_buf b = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &b);
    ot_jw_obj_open(&w);
    if (!ot_api_put_order_page(&w, res, n, more, r->auth.role, -1)) {
        ot_buf_free(&b);
        ot_respond_error(r, 500, "internal", "order could not be encoded");
        return;
    }
    put_freshness(&w, fresh);
    ot_jw_obj_close(&w);
    ot_api_respond_built(r, &w, &b);
}

void ot_h_search_orders(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_CUSTOMER) || !ot_req_need_db(r))
        return;
    char user[VAL_MAX], order[VAL_MAX], st[VAL_MAX], tmp[256];
    if (q_scope_user(r, user) < 0 || q_uuid(r, "orderId", order) < 0)
        return;
    int rc = qparam(r, "status", st, sizeof st);
    if (rc < 0)
        return;
    if (rc == 0) {
        st[0] = 0;
    } else if (ot_order_status_valid(ot_str_c(st)) < 0) {
        ot_respond_error(r, 400, "invalid_query",
                         "status: must be one of CREATED, ACCEPTED, PREPARED, SHIPPED, DELIVERED, CANCELED");
        return;
    }
    int64_t from = 0, to = 0;
    bool has_from, has_to;
    if (q_range(r, &from, &has_from, &to, &has_to) < 0)
        return;
    long limit = OT_SEARCH_LIMIT_DEFAULT;
    rc = qparam(r, "limit", tmp, sizeof tmp);
    if (rc < 0)
        return;
    if (rc > 0) {
        char *end = tmp;
        size_t len = strlen(tmp);
        limit = len <= 3 && tmp[0] >= '0' && tmp[0] <= '9' ? strtol(tmp, &end, 10) : -1;
        if (limit < 1 || limit > OT_SEARCH_LIMIT_MAX || *end) {
            ot_respond_error(r, 400, "invalid_query", "limit: integer 1..%d", OT_SEARCH_LIMIT_MAX);
            return;
        }
    }
    char cur_us[20] = "", cur_id[37] = "";
    rc = qparam(r, "cursor", tmp, sizeof tmp);
    if (rc < 0)
        return;
    if (rc > 0 && ot_cursor_decode(ot_str_c(tmp), cur_us, cur_id) < 0) {
        ot_respond_error(r, 400, "invalid_query", "cursor: malformed (pass nextCursor of the previous page)");
        return;
    }
    /* asOf: a stream position this worker has seen committed (at most its
     * freshness); beyond it the state is not final yet, so "retry", not 400:
     * another worker may be a moment ahead of this one. */
    int64_t as_of = -1, fresh = freshness();
    rc = qparam(r, "asOf", tmp, sizeof tmp);
    if (rc < 0)
        return;
    if (rc > 0) {
        char *end = tmp;
        as_of = strlen(tmp) <= 18 && tmp[0] >= '0' && tmp[0] <= '9' ? strtoll(tmp, &end, 10) : -1;
        if (as_of < 0 || *end) {
            ot_respond_error(r, 400, "invalid_query", "asOf: a stream position (freshness.seq of an earlier answer)");
            return;
        }
        if (as_of > fresh) {
            ot_respond_error(r, 409, "not_yet", "asOf: %lld is beyond this server's stream position %lld; retry",
                             (long long)as_of, (long long)fresh);
            return;
        }
    }
    /* asOf belongs to PostgreSQL: the index keeps only the latest state. */
    if (as_of < 0 && ot_search_es_on()) {
        lower(user);
        lower(order);
        ot_search_es_orders(r, &(ot_search_es_orders_q){ .user = user, .status = st, .order = order,
                                                         .has_from = has_from, .has_to = has_to, .from_us = from,
                                                         .to_us = to, .cur_us = cur_us, .cur_id = cur_id,
                                                         .limit = (int)limit });
        return;
    }
    search_ctx *c = ot_api_ctx_new(r, sizeof *c, NULL);
    if (!c)
        return;
    c->fresh = as_of >= 0 ? as_of : fresh;
    c->limit = (int)limit + 1;
    snprintf(c->vals[0], VAL_MAX, "%s", user);
    snprintf(c->vals[1], VAL_MAX, "%s", st);
    snprintf(c->vals[2], VAL_MAX, "%s", order);
    if (has_from)
        snprintf(c->vals[3], VAL_MAX, "%lld", (long long)from);
    if (has_to)
        snprintf(c->vals[4], VAL_MAX, "%lld", (long long)to);
    snprintf(c->vals[5], VAL_MAX, "%s", cur_us);
    snprintf(c->vals[6], VAL_MAX, "%s", cur_id);
    snprintf(c->vals[7], VAL_MAX, "%d", c->limit);
    if (as_of < 0) {
        exec_vals(c, "search_orders", 8, orders_cb);
        return;
    }
    snprintf(c->vals[8], VAL_MAX, "%lld", (long long)as_of);
    exec_vals(c, "search_orders_at", 9, orders_cb);
}

/* ---- GET /search/orders/:id/history ---- */

static void history_cb(void *data, int status, PGresult *res)
{
    search_ctx *c = data;
    char id[37];
    memcpy(id, c->id, sizeof id);
    int64_t fresh = c->fresh;
    ot_req *r = ot_api_finish(c);
    if (ot_api_db_error(r, status, res))
        return;
    int n = PQntuples(res);
    /* Someone else's order answers exactly like a missing one: no existence oracle. */
    if (n == 0 || (r->auth.role != OT_ROLE_ADMIN && strcasecmp(PQgetvalue(res, 0, 0), r->auth.sub) != 0)) {
        ot_respond_error(r, 404, "not_found", "no such order");
        return;
    }
    ot_buf b = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &b);
    ot_jw_obj_open(&w);
    ot_api_put_event_list(&w, id, res, 1, OT_SEARCH_HISTORY_MAX);
    put_freshness(&w, fresh);
    ot_jw_obj_close(&w);
    ot_api_respond_built(r, &w, &b);
}

void ot_h_search_history(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_CUSTOMER) || !ot_req_need_db(r))
        return;
    if (!ot_uuid_valid(r->params[0])) {
        ot_respond_error(r, 400, "invalid_id", "order id must be a UUID");
        return;
    }
    /* Lower case, as the database prints UUIDs. */
    char id[37];
    snprintf(id, sizeof id, "%.*s", (int)r->params[0].len, r->params[0].base);
    lower(id);
    if (ot_search_es_on()) {
        ot_search_es_history(r, id, OT_SEARCH_HISTORY_MAX);
        return;
    }
    search_ctx *c = ot_api_ctx_new(r, sizeof *c, NULL);
    if (!c)
        return;
    c->fresh = freshness();
    memcpy(c->id, id, sizeof id);
    memcpy(c->vals[0], c->id, 37);
    snprintf(c->vals[1], VAL_MAX, "%s", r->auth.role == OT_ROLE_ADMIN ? "true" : "false");
    exec_vals(c, "search_history", 2, history_cb);
}

/* ---- GET /search/analytics ---- */

#define US_PER_HOUR 3600000000LL
#define US_PER_DAY (24 * US_PER_HOUR)

static void analytics_cb(void *data, int status, PGresult *res)
{
    search_ctx *c = data;
    int64_t fresh = c->fresh;
    ot_req *r = ot_api_finish(c);
    if (ot_api_db_error(r, status, res))
        return;
    /* The function builds the whole object but "freshness": spliced in
     * before its closing brace. */
    size_t len = (size_t)PQgetlength(res, 0, 0);
    const char *body = PQgetvalue(res, 0, 0);
    if (PQntuples(res) != 1 || len < 2 || body[len - 1] != '}') {
        ot_respond_error(r, 500, "internal", "unexpected analytics answer");
        return;
    }
    ot_buf b = OT_BUF_INIT;
    char tail[64];
    int tl = snprintf(tail, sizeof tail, ", \"freshness\" : {\"seq\" : %lld}}", (long long)fresh);
    if (ot_buf_append(&b, body, len - 1) < 0 || ot_buf_append(&b, tail, (size_t)tl) < 0) {
        ot_buf_free(&b);
        ot_respond_error(r, 500, "internal", "out of memory");
        return;
    }
    ot_respond_json(r, 200, ot_buf_str(&b));
    ot_buf_free(&b);
}

void ot_h_search_analytics(ot_req *r)
{
    if (!ot_auth_require(r, OT_ROLE_CUSTOMER) || !ot_req_need_db(r))
        return;
    char user[VAL_MAX], iv[16];
    if (q_scope_user(r, user) < 0)
        return;
    int64_t from = 0, to = 0;
    bool has_from, has_to;
    if (q_range(r, &from, &has_from, &to, &has_to) < 0)
        return;
    int rc = qparam(r, "interval", iv, sizeof iv);
    if (rc < 0)
        return;
    if (rc == 0)
        snprintf(iv, sizeof iv, "hour");
    else if (strcmp(iv, "hour") != 0 && strcmp(iv, "day") != 0) {
        ot_respond_error(r, 400, "invalid_query", "interval: hour or day");
        return;
    }
    /* Defaults: the last 24 hours up to now. */
    if (!has_to) {
        to = ot_wall_us();
        if (has_from && from > to) {
            ot_respond_error(r, 400, "invalid_query", "from: must not be later than to (default: now)");
            return;
        }
    }
    if (!has_from)
        from = to - US_PER_DAY;
    /* UTC hours and days both start at multiples of their length since the
     * epoch, so the first bucket starts at from rounded down. */
    int64_t step = iv[0] == 'h' ? US_PER_HOUR : US_PER_DAY;
    int64_t first = from >= 0 ? from / step * step : -((-from + step - 1) / step) * step;
    int64_t buckets = to > first ? (to - first + step - 1) / step : 0;
    if (buckets > (int64_t)S.max_buckets) {
        ot_respond_error(r, 400, "invalid_query", "interval: %lld buckets from from to to, at most %u (--search-max-buckets)",
                         (long long)buckets, S.max_buckets);
        return;
    }
    if (ot_search_es_on()) {
        lower(user);
        ot_search_es_analytics_q q = { .user = user, .from_us = from, .to_us = to, .hourly = iv[0] == 'h',
                                       .delayed_max = S.delayed_max };
        memcpy(q.sla_s, S.sla_s, sizeof q.sla_s);
        ot_search_es_analytics(r, &q);
        return;
    }
    search_ctx *c = ot_api_ctx_new(r, sizeof *c, NULL);
    if (!c)
        return;
    c->fresh = freshness();
    snprintf(c->vals[0], VAL_MAX, "%s", user);
    snprintf(c->vals[1], VAL_MAX, "%lld", (long long)from);
    snprintf(c->vals[2], VAL_MAX, "%lld", (long long)to);
    snprintf(c->vals[3], VAL_MAX, "%s", iv);
    snprintf(c->vals[4], VAL_MAX, "%s", S.sla);
    snprintf(c->vals[5], VAL_MAX, "%u", S.delayed_max);
    exec_vals(c, "search_analytics", 6, analytics_cb);
}
