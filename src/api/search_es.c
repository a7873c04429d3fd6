/* /search/orders and history on Elasticsearch. See search_es.h. */
#include "ot/api/search_es.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ot/adapters/curl.h"
#include "ot/api/helpers.h"
#include "ot/codec/cursor.h"
#include "ot/codec/json.h"
#include "ot/codec/lifecycle.h"
#include "ot/core/log.h"

#define URL_MAX 640

static struct {
    ot_curl *curl;
    char orders_url[URL_MAX], events_url[URL_MAX];
} E;

int ot_search_es_setup(ot_loop *loop, const ot_config *cfg)
{
    if (!cfg->elasticsearch_url)
        return 0;
    ot_curl_config cc;
    ot_curl_config_default(&cc);
    cc.timeout_ms = cfg->es_timeout_ms;
    cc.connect_timeout_ms = cfg->es_timeout_ms < cc.connect_timeout_ms ? cfg->es_timeout_ms : cc.connect_timeout_ms;
    /* A waiting client is better served by a fast 503 than by our retries. */
    cc.max_retries = 0;
    E.curl = ot_curl_new(loop, &cc);
    if (!E.curl)
        return OT_ERR;
    size_t ul = strlen(cfg->elasticsearch_url);
    while (ul > 0 && cfg->elasticsearch_url[ul - 1] == '/')
        ul--;
    const char *p = cfg->es_index_prefix ? cfg->es_index_prefix : "ordertrack";
    snprintf(E.orders_url, sizeof E.orders_url, "%.*s/%s-orders/_search", (int)ul, cfg->elasticsearch_url, p);
    snprintf(E.events_url, sizeof E.events_url, "%.*s/%s-events/_search", (int)ul, cfg->elasticsearch_url, p);
    return 0;
}

void ot_search_es_teardown(void)
{
    ot_curl_free(E.curl);
    E.curl = NULL;
}

bool ot_search_es_on(void) { return E.curl != NULL; }

/* ---- the request context ---- */

typedef struct {
    ot_api_ctx base;
    ot_curl_req *creq;
    int limit; /* orders: page + 1; history: max */
    bool admin;
    char id[37];
} es_ctx;

static void es_abort(ot_req *r)
{
    es_ctx *c = r->ctx;
    if (c && c->creq) {
        ot_curl_cancel(c->creq);
        c->creq = NULL;
    }
    ot_api_abort(r);
}

/* Highest seq the searched index shows. */
static const char fresh_agg[] = ",\"aggs\":{\"fresh\":{\"global\":{},\"aggs\":{\"seq\":{\"max\":{\"field\":\"seq\"}}}}}}";

static void send_search(es_ctx *c, const char *url, ot_buf *body, ot_curl_cb *cb)
{
    ot_req *r;
    bool ok = ot_buf_append(body, fresh_agg, sizeof fresh_agg - 1) >= 0;
    c->creq = ok ? ot_curl_send(E.curl, "POST", url, "application/json", body->data, body->len, cb, c) : NULL;
    ot_buf_free(body);
    if (!c->creq) {
        r = ot_api_finish(c);
        ot_respond_error(r, 500, "internal", "search request could not start");
    }
}

/* A parsed search answer: hits.hits is token `hits`, n elements long. */
typedef struct {
    ot_json d;
    ot_json_tok stack[512], *heap;
    int hits, n;
} es_doc;

/* Parses the answer into *a; false after answering the error (c is then
 * finished). a->heap is the caller's to free. */
static bool es_answer(es_ctx *c, const ot_curl_result *res, es_doc *a)
{
    ot_json *d = &a->d;
    ot_json_tok **heap = &a->heap;
    c->creq = NULL;
    *heap = NULL;
    ot_req *r = c->base.r;
    if (res->curl_code || res->status == 429 || res->status >= 500 || res->status == 404) {
        if (res->curl_code || res->status != 404)
            ot_logf(OT_LOG_WARN, "search: Elasticsearch unavailable (%s %ld)", res->curl_code ? res->error : "HTTP",
                    res->status);
        r = ot_api_finish(c);
        ot_resp_header(r, "Retry-After", "1");
        ot_respond_error(r, 503, "search_unavailable", "%s",
                         res->status == 404 ? "the search index does not exist yet" : "Elasticsearch is not reachable");
        return false;
    }
    int hh = -1;
    if (res->status == 200 &&
        ot_json_parse_grow(d, res->body, res->body_len, a->stack, OT_ARRAY_LEN(a->stack), heap) == 0) {
        int h = ot_json_obj_get(d, 0, "hits");
        hh = h >= 0 ? ot_json_obj_get(d, h, "hits") : -1;
    }
    if (hh < 0 || !ot_json_is_arr(d, hh)) {
        ot_logf(OT_LOG_ERROR, "search: unexpected Elasticsearch answer %ld: %.200s", res->status,
                res->body ? res->body : "");
        free(*heap);
        *heap = NULL;
        r = ot_api_finish(c);
        ot_respond_error(r, 500, "internal", "unexpected search answer");
        return false;
    }
    a->hits = hh;
    a->n = ot_json_arr_len(d, hh);
    return true;
}

static int64_t fresh_seq(const ot_json *d)
{
    int a = ot_json_obj_get(d, 0, "aggregations");
    int f = a >= 0 ? ot_json_obj_get(d, a, "fresh") : -1;
    int s = f >= 0 ? ot_json_obj_get(d, f, "seq") : -1;
    int v = s >= 0 ? ot_json_obj_get(d, s, "value") : -1;
    if (v < 0 || !ot_json_is_num(d, v))
        return 0;
    ot_str t = ot_json_raw_value(d, v);
    char num[32];
    snprintf(num, sizeof num, "%.*s", (int)(t.len < 31 ? t.len : 31), t.base);
    return (int64_t)strtod(num, NULL); /* a double in the answer ("123.0"), exact below 2^53 */
}

static void put_field(ot_jw *w, const ot_json *d, int src, const char *key)
{
    int v = ot_json_obj_get(d, src, key);
    ot_jw_key(w, key);
    ot_jw_raw(w, v >= 0 ? ot_json_raw_value(d, v) : ot_str_c("null"));
}

static void put_fresh_close(ot_jw *w, const ot_json *d)
{
    ot_jw_key(w, "freshness");
    ot_jw_obj_open(w);
    ot_jw_key(w, "seq");
    ot_jw_int(w, fresh_seq(d));
    ot_jw_obj_close(w);
    ot_jw_obj_close(w);
}

/* ---- GET /search/orders ---- */

static const char *const order_fields[] = { "id", "userId", "status", "items", "createdAt", "updatedAt", "version" };

static void orders_cb(void *data, const ot_curl_result *res)
{
    es_ctx *c = data;
    es_doc a;
    if (!es_answer(c, res, &a))
        return;
    const ot_json d = a.d;
    int hits = a.hits, n = a.n;
    int limit = c->limit;
    ot_req *r = ot_api_finish(c);
    bool more = n >= limit;
    if (more)
        n = limit - 1;
    ot_buf b = OT_BUF_INIT, one = OT_BUF_INIT, order = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &b);
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "orders");
    ot_jw_arr_open(&w);
    bool ok = true;
    char last_us[24] = "", last_id[40] = "";
    for (int i = 0, t = hits + 1; i < n && ok; i++, t = ot_json_skip(&d, t)) {
        int src = ot_json_obj_get(&d, t, "_source");
        ok = src >= 0;
        if (!ok)
            break;
        order.len = 0;
        ot_jw ow;
        ot_jw_init(&ow, &order);
        ot_jw_obj_open(&ow);
        for (size_t k = 0; k < OT_ARRAY_LEN(order_fields); k++)
            put_field(&ow, &d, src, order_fields[k]);
        ot_jw_obj_close(&ow);
        one.len = 0;
        ok = !ot_jw_error(&ow) && ot_lifecycle_annotate(ot_buf_str(&order), r->auth.role, &one) == 0;
        if (ok)
            ot_jw_raw(&w, ot_buf_str(&one));
        int us = ot_json_obj_get(&d, src, "createdUs"), id = ot_json_obj_get(&d, src, "id");
        ot_str su = us >= 0 ? ot_json_raw_value(&d, us) : ot_str_c(""), si = id >= 0 ? ot_json_raw(&d, id) : ot_str_c("");
        snprintf(last_us, sizeof last_us, "%.*s", (int)(su.len < 23 ? su.len : 23), su.base);
        snprintf(last_id, sizeof last_id, "%.*s", (int)(si.len < 39 ? si.len : 39), si.base);
    }
    ot_buf_free(&one);
    ot_buf_free(&order);
    ot_jw_arr_close(&w);
    ot_jw_key(&w, "nextCursor");
    char enc[OT_CURSOR_MAX];
    size_t el = ok && more && n > 0 ? ot_cursor_encode(last_us, last_id, enc) : 0;
    if (el)
        ot_jw_str(&w, ot_str_make(enc, el));
    else
        ot_jw_null(&w);
    put_fresh_close(&w, &d);
    free(a.heap);
    if (!ok) {
        ot_buf_free(&b);
        ot_respond_error(r, 500, "internal", "order could not be encoded");
        return;
    }
    ot_api_respond_built(r, &w, &b);
}

void ot_search_es_orders(ot_req *r, const ot_search_es_orders_q *q)
{
    es_ctx *c = ot_api_ctx_new(r, sizeof *c, es_abort);
    if (!c)
        return;
    c->limit = q->limit + 1;
    ot_buf body = OT_BUF_INIT;
    int rc = ot_buf_printf(&body, "{\"size\":%d,\"track_total_hits\":false,\"query\":{\"bool\":{\"filter\":[",
                           c->limit);
    const char *sep = "";
    const struct {
        const char *field, *v;
    } terms[] = { { "userId", q->user }, { "status", q->status }, { "orderId", q->order } };
    for (size_t i = 0; i < OT_ARRAY_LEN(terms); i++)
        if (terms[i].v[0]) {
            rc |= ot_buf_printf(&body, "%s{\"term\":{\"%s\":\"%s\"}}", sep, terms[i].field, terms[i].v);
            sep = ",";
        }
    if (q->has_from || q->has_to) {
        rc |= ot_buf_printf(&body, "%s{\"range\":{\"createdUs\":{", sep);
        if (q->has_from)
            rc |= ot_buf_printf(&body, "\"gte\":%lld%s", (long long)q->from_us, q->has_to ? "," : "");
        if (q->has_to)
            rc |= ot_buf_printf(&body, "\"lt\":%lld", (long long)q->to_us);
        rc |= ot_buf_append_str(&body, "}}}");
    }
    /* Newest first, the id breaking ties: the keyset of the PostgreSQL
     * backend (a uuid orders like its lower-case text). */
    rc |= ot_buf_append_str(&body, "]}},\"sort\":[{\"createdUs\":{\"order\":\"desc\"}},{\"orderId\":{\"order\":\"desc\"}}]");
    if (q->cur_us[0])
        rc |= ot_buf_printf(&body, ",\"search_after\":[%s,\"%s\"]", q->cur_us, q->cur_id);
    rc |= ot_buf_append_str(&body, ",\"_source\":[\"id\",\"userId\",\"status\",\"items\",\"createdAt\",\"updatedAt\","
                                   "\"version\",\"createdUs\"]");
    if (rc) {
        ot_buf_free(&body);
        ot_respond_error(ot_api_finish(c), 500, "internal", "out of memory");
        return;
    }
    send_search(c, E.orders_url, &body, orders_cb);
}

/* ---- GET /search/orders/:id/history ---- */

static void history_cb(void *data, const ot_curl_result *res)
{
    es_ctx *c = data;
    es_doc a;
    if (!es_answer(c, res, &a))
        return;
    const ot_json d = a.d;
    int hits = a.hits, n = a.n;
    int max = c->limit;
    bool admin = c->admin;
    char id[37];
    memcpy(id, c->id, sizeof id);
    ot_req *r = ot_api_finish(c);
    int first = n > 0 ? ot_json_obj_get(&d, hits + 1, "_source") : -1;
    int owner = first >= 0 ? ot_json_obj_get(&d, first, "userId") : -1;
    char who[40] = "";
    if (owner >= 0) {
        ot_str o = ot_json_raw(&d, owner);
        snprintf(who, sizeof who, "%.*s", (int)(o.len < 39 ? o.len : 39), o.base);
    }
    /* Someone else's order answers exactly like a missing one. */
    if (n == 0 || (r->auth.role != OT_ROLE_ADMIN && strcasecmp(who, r->auth.sub) != 0)) {
        free(a.heap);
        ot_respond_error(r, 404, "not_found", "no such order");
        return;
    }
    static const char *const ev_fields[] = { "eventId", "seq", "version", "type", "status", "timestamp", "actor" };
    ot_buf b = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &b);
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "orderId");
    ot_jw_cstr(&w, id);
    ot_jw_key(&w, "events");
    ot_jw_arr_open(&w);
    for (int i = 0, t = hits + 1; i < n && i < max; i++, t = ot_json_skip(&d, t)) {
        int src = ot_json_obj_get(&d, t, "_source");
        if (src < 0)
            continue;
        ot_jw_obj_open(&w);
        for (size_t k = 0; k < OT_ARRAY_LEN(ev_fields) - (admin ? 0 : 1); k++)
            put_field(&w, &d, src, ev_fields[k]);
        ot_jw_obj_close(&w);
    }
    ot_jw_arr_close(&w);
    ot_jw_key(&w, "truncated");
    ot_jw_bool(&w, n > max);
    put_fresh_close(&w, &d);
    free(a.heap);
    ot_api_respond_built(r, &w, &b);
}

void ot_search_es_history(ot_req *r, const char *id, int max)
{
    es_ctx *c = ot_api_ctx_new(r, sizeof *c, es_abort);
    if (!c)
        return;
    c->limit = max;
    c->admin = r->auth.role == OT_ROLE_ADMIN;
    snprintf(c->id, sizeof c->id, "%s", id);
    ot_buf body = OT_BUF_INIT;
    /* One more than max tells "exactly max" from "more"; collapse on the
     * event id: a replay after a rollover may have put one event in two
     * indices of the alias. */
    if (ot_buf_printf(&body,
                      "{\"size\":%d,\"query\":{\"term\":{\"orderId\":\"%s\"}},\"sort\":[{\"seq\":{\"order\":\"asc\"}}],"
                      "\"collapse\":{\"field\":\"eventId\"},\"_source\":[\"eventId\",\"seq\",\"version\",\"type\","
                      "\"status\",\"timestamp\",\"actor\",\"userId\"]",
                      max + 1, id) < 0) {
        ot_buf_free(&body);
        ot_respond_error(ot_api_finish(c), 500, "internal", "out of memory");
        return;
    }
    send_search(c, E.events_url, &body, history_cb);
}
