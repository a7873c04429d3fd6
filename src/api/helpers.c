/* Shared handler plumbing. See include/ot/api/helpers.h. */
#include "ot/api/helpers.h"

#include <stdlib.h>

#include "ot/codec/cursor.h"
#include "ot/codec/lifecycle.h"

static void release(ot_api_ctx *c)
{
    if (c->release)
        c->release(c);
    else
        free(c);
}

void ot_api_abort(ot_req *r)
{
    ot_api_ctx *c = r->ctx;
    if (c->q)
        ot_pg_cancel(c->q);
    release(c);
}

void *ot_api_ctx_new(ot_req *r, size_t size, void (*on_abort)(ot_req *r))
{
    ot_api_ctx *c = calloc(1, size);
    if (!c) {
        ot_respond_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    c->r = r;
    r->ctx = c;
    r->on_abort = on_abort ? on_abort : ot_api_abort;
    return c;
}

ot_req *ot_api_detach(ot_api_ctx *c)
{
    ot_req *r = c->r;
    r->on_abort = NULL;
    r->ctx = NULL;
    return r;
}

ot_req *ot_api_finish(void *ctx)
{
    ot_req *r = ot_api_detach(ctx);
    release(ctx);
    return r;
}

bool ot_api_exec(void *ctx, const char *stmt, int n, const char *const *vals, const int *lens, ot_pg_cb *cb)
{
    ot_api_ctx *c = ctx;
    c->q = ot_pg_exec(ot_api_of(c->r)->pg, stmt, n, vals, lens, cb, c);
    if (c->q)
        return true;
    ot_respond_error(ot_api_finish(c), 500, "internal", "out of memory");
    return false;
}

bool ot_api_sqlstate_transient(const char *st)
{
    if (!st)
        return false;
    return !strncmp(st, "08", 2) || !strncmp(st, "40", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2) ||
           !strcmp(st, "55P03");
}

bool ot_api_db_error(ot_req *r, int status, const PGresult *res)
{
    if (status == OT_PG_OK)
        return false;
    if (status == OT_PG_EQUERY && !ot_api_sqlstate_transient(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL)) {
        ot_respond_error(r, 500, "internal", "database error");
        return true;
    }
    ot_resp_header(r, "Retry-After", "1");
    ot_respond_error(r, 503, "database_unavailable", "the database is not reachable, retry shortly");
    return true;
}

/* ---- request guards ---- */

bool ot_req_json_content(ot_req *r)
{
    /* RFC 9110 §8.3.1: the media type ends at optional whitespace or ';'
     * (parameters); a longer token such as application/jsonp is another type. */
    ot_str ct = r->head.content_type;
    if (ct.len < 16 || !ot_str_ieq(ot_str_make(ct.base, 16), "application/json") ||
        (ct.len > 16 && ct.base[16] != ';' && ct.base[16] != ' ' && ct.base[16] != '\t')) {
        ot_respond_error(r, 415, "unsupported_media_type", "Content-Type must be application/json");
        return false;
    }
    return true;
}

bool ot_req_need_db(ot_req *r)
{
    if (ot_api_of(r)->pg)
        return true;
    ot_resp_header(r, "Retry-After", "5");
    ot_respond_error(r, 503, "database_unavailable", "no database configured");
    return false;
}

bool ot_api_put_order_page(ot_jw *w, const PGresult *res, int n, bool more, ot_role role, int status_col)
{
    ot_jw_key(w, "orders");
    ot_jw_arr_open(w);
    ot_buf one = OT_BUF_INIT;
    for (int i = 0; i < n; i++) {
        one.len = 0;
        ot_str order = ot_str_make(PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
        int rc = status_col >= 0 ? ot_lifecycle_splice(order,
                                                       ot_str_make(PQgetvalue(res, i, status_col),
                                                                   (size_t)PQgetlength(res, i, status_col)),
                                                       role, &one)
                                 : ot_lifecycle_annotate(order, role, &one);
        if (rc < 0) {
            ot_buf_free(&one);
            return false;
        }
        ot_jw_raw(w, ot_buf_str(&one));
    }
    ot_buf_free(&one);
    ot_jw_arr_close(w);
    ot_jw_key(w, "nextCursor");
    char enc[OT_CURSOR_MAX];
    size_t el = more && n > 0 ? ot_cursor_encode(PQgetvalue(res, n - 1, 1), PQgetvalue(res, n - 1, 2), enc) : 0;
    if (el)
        ot_jw_str(w, ot_str_make(enc, el));
    else
        ot_jw_null(w);
    return true;
}

void ot_api_put_event_list(ot_jw *w, const char *order_id, const PGresult *res, int col, int max)
{
    int n = PQntuples(res);
    ot_jw_key(w, "orderId");
    ot_jw_cstr(w, order_id);
    ot_jw_key(w, "events");
    ot_jw_arr_open(w);
    for (int i = 0; i < n && i < max; i++)
        ot_jw_raw(w, ot_str_make(PQgetvalue(res, i, col), (size_t)PQgetlength(res, i, col)));
    ot_jw_arr_close(w);
    ot_jw_key(w, "truncated");
    ot_jw_bool(w, n > max);
}

void ot_api_respond_built(ot_req *r, const ot_jw *w, ot_buf *b)
{
    if (ot_jw_error(w) != 0)
        ot_respond_error(r, 500, "internal", "out of memory");
    else
        ot_respond_json(r, 200, ot_buf_str(b));
    ot_buf_free(b);
}
