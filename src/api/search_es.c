/* /search/orders and history on Elasticsearch. See search_es.h. */
#include "ot/api/search_es.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ot/adapters/curl.h"
#include "ot/api/helpers.h"
#include "ot/codec/cursor.h"
#include "ot/codec/iso8601.h"
#include "ot/codec/json.h"
#include "ot/codec/lifecycle.h"
#include "ot/core/log.h"

#define URL_MAX 640

static struct {
    ot_curl *curl;
    char msearch_url[URL_MAX];
    char prefix[80];
    /* The highest seq each index showed this worker: freshness is looked
     * for at or above it (see fresh_member). */
    int64_t floor_orders, floor_events;
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
    snprintf(E.msearch_url, sizeof E.msearch_url, "%.*s/_msearch", (int)ul, cfg->elasticsearch_url);
    snprintf(E.prefix, sizeof E.prefix, "%s", p);
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
    int64_t from, to, step; /* analytics */
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

/* Highest seq the searched index shows, among the documents at or above
 * `floor` (the highest it showed before): a max over the whole index read
 * every document's seq on every request (O(index): 340 ms p50 for a history
 * of three events at 2.3 million, scripts/bench-search-scale.sh), while the
 * range finds the few new ones through the points index. Seqs only grow; an
 * index that lost its newest documents shows nothing at or above the floor,
 * and the floor starts again from 0 (fresh_seq_of). For analytics (no hits)
 * it is an aggregation of its first search; for a list or a history it is a
 * search of its own beside it in one _msearch, since an aggregation in the
 * request turns off the sort's skipping of non-competitive documents (the
 * first page of a million orders then sorted all of them: seconds). */
static int fresh_member(ot_buf *b, int64_t floor)
{
    return ot_buf_printf(b, "\"fresh\":{\"global\":{},\"aggs\":{\"f\":{\"filter\":{\"range\":{\"seq\":{\"gte\":%lld}}},"
                            "\"aggs\":{\"seq\":{\"max\":{\"field\":\"seq\"}}}}}}",
                         (long long)floor);
}

/* Analytics: body is its whole _msearch. A list or a history: body is one
 * search of index <prefix>-<kind> (its object left open), sent with the
 * freshness search of the same index. */
static void send_search(es_ctx *c, const char *kind, ot_buf *body, ot_curl_cb *cb)
{
    ot_req *r;
    ot_buf m = OT_BUF_INIT;
    bool ok = true;
    if (kind) {
        int64_t floor = strcmp(kind, "orders") == 0 ? E.floor_orders : E.floor_events;
        ok = ot_buf_printf(&m, "{\"index\":\"%s-%s\"}\n%.*s}\n{\"index\":\"%s-%s\"}\n"
                               "{\"size\":0,\"track_total_hits\":false,\"query\":{\"range\":{\"seq\":{\"gte\":%lld}}},"
                               "\"aggs\":{\"seq\":{\"max\":{\"field\":\"seq\"}}}}\n",
                           E.prefix, kind, (int)body->len, body->data ? body->data : "", E.prefix, kind,
                           (long long)floor) >= 0;
        ot_buf_free(body);
        *body = m;
    }
    c->creq = ok ? ot_curl_send(E.curl, "POST", E.msearch_url, "application/x-ndjson", body->data, body->len, cb, c)
                 : NULL;
    ot_buf_free(body);
    if (!c->creq) {
        r = ot_api_finish(c);
        ot_respond_error(r, 500, "internal", "search request could not start");
    }
}

/* A parsed answer: of _search (one response: the root), or of _msearch
 * (resp[i]: the i-th response). hits.hits of the first is token `hits`, n
 * elements long. */
#define ES_MAX_RESP 3
typedef struct {
    ot_json d;
    ot_json_tok stack[512], *heap;
    int resp[ES_MAX_RESP];
    int hits, n;
} es_doc;

static bool es_unavailable(es_ctx *c, long status, const char *why)
{
    ot_req *r = ot_api_finish(c);
    ot_resp_header(r, "Retry-After", "1");
    ot_respond_error(r, 503, "search_unavailable", "%s",
                     status == 404 ? "the search index does not exist yet" : "Elasticsearch is not reachable");
    if (status != 404)
        ot_logf(OT_LOG_WARN, "search: Elasticsearch unavailable (%s %ld)", why, status);
    return false;
}

/* Parses the answer into *a (nresp: 0 for _search, else the _msearch
 * responses expected); false after answering the error (c is then finished).
 * a->heap is the caller's to free. */
static bool es_parse(es_ctx *c, const ot_curl_result *res, es_doc *a, int nresp)
{
    ot_json *d = &a->d;
    c->creq = NULL;
    a->heap = NULL;
    if (res->curl_code || res->status == 429 || res->status >= 500 || res->status == 404)
        return es_unavailable(c, res->status, res->curl_code ? res->error : "HTTP");
    bool ok = res->status == 200 &&
              ot_json_parse_grow(d, res->body, res->body_len, a->stack, OT_ARRAY_LEN(a->stack), &a->heap) == 0;
    int rs = ok && nresp ? ot_json_obj_get(d, 0, "responses") : -1;
    ok = ok && (nresp == 0 || ot_json_arr_len(d, rs) == nresp);
    for (int i = 0; ok && i < (nresp ? nresp : 1); i++) {
        a->resp[i] = nresp ? ot_json_arr_at(d, rs, i) : 0;
        int st = ot_json_obj_get(d, a->resp[i], "status");
        int64_t code = 200;
        if (st >= 0 && ot_json_get_int64(d, st, &code) == 0 && (code == 404 || code == 429 || code >= 500)) {
            free(a->heap);
            a->heap = NULL;
            return es_unavailable(c, (long)code, "_msearch item");
        }
        ok = ot_json_obj_get(d, a->resp[i], "error") < 0 && ot_json_obj_get(d, a->resp[i], "hits") >= 0;
    }
    int h = ok ? ot_json_obj_get(d, a->resp[0], "hits") : -1;
    int hh = h >= 0 ? ot_json_obj_get(d, h, "hits") : -1;
    if (hh < 0 || !ot_json_is_arr(d, hh)) {
        ot_logf(OT_LOG_ERROR, "search: unexpected Elasticsearch answer %ld: %.200s", res->status,
                res->body ? res->body : "");
        free(a->heap);
        a->heap = NULL;
        ot_respond_error(ot_api_finish(c), 500, "internal", "unexpected search answer");
        return false;
    }
    a->hits = hh;
    a->n = ot_json_arr_len(d, hh);
    return true;
}

/* Every callback's prologue: the answer parsed into *a, the context copied
 * to *k (c is released here) and the request to answer; NULL once an error
 * has been answered. */
static ot_req *es_answer(void *data, const ot_curl_result *res, es_doc *a, int nresp, es_ctx *k)
{
    es_ctx *c = data;
    if (!es_parse(c, res, a, nresp))
        return NULL;
    *k = *c;
    return ot_api_finish(c);
}

/* A value at aggregations.<path...> of response `root`, or -1. */
static int agg_at(const ot_json *d, int root, const char *const *path, int n)
{
    int t = ot_json_obj_get(d, root, "aggregations");
    for (int i = 0; i < n && t >= 0; i++)
        t = ot_json_obj_get(d, t, path[i]);
    return t;
}

static double num_of(const ot_json *d, int t, bool *ok)
{
    *ok = t >= 0 && ot_json_is_num(d, t);
    if (!*ok)
        return 0;
    ot_str v = ot_json_raw_value(d, t);
    char num[40];
    snprintf(num, sizeof num, "%.*s", (int)(v.len < 39 ? v.len : 39), v.base);
    return strtod(num, NULL);
}

/* The highest seq response `root`'s index shows (a double in the answer,
 * "123.0", exact below 2^53), raising *floor to it; 0 when empty, and then
 * the floor goes back to 0 (nothing at or above it any more). `own`: root is
 * the freshness search itself, else a search carrying fresh_member. */
static int64_t fresh_seq_of(const ot_json *d, int root, bool own, int64_t *floor)
{
    static const char *const member[] = { "fresh", "f", "seq", "value" };
    bool ok;
    double v = num_of(d, own ? agg_at(d, root, member + 2, 2) : agg_at(d, root, member, 4), &ok);
    int64_t seq = ok ? (int64_t)v : 0;
    *floor = seq;
    return seq;
}

static void put_field(ot_jw *w, const ot_json *d, int src, const char *key)
{
    int v = ot_json_obj_get(d, src, key);
    ot_jw_key(w, key);
    ot_jw_raw(w, v >= 0 ? ot_json_raw_value(d, v) : ot_str_c("null"));
}

static void put_fresh_close(ot_jw *w, const ot_json *d, int root, int64_t *floor)
{
    ot_jw_key(w, "freshness");
    ot_jw_obj_open(w);
    ot_jw_key(w, "seq");
    ot_jw_int(w, fresh_seq_of(d, root, true, floor));
    ot_jw_obj_close(w);
    ot_jw_obj_close(w);
}

/* ---- GET /search/orders ---- */

static const char *const order_fields[] = { "id", "userId", "status", "items", "createdAt", "updatedAt", "version" };

static void orders_cb(void *data, const ot_curl_result *res)
{
    es_ctx k;
    es_doc a;
    ot_req *r = es_answer(data, res, &a, 2, &k);
    if (!r)
        return;
    const ot_json d = a.d;
    int hits = a.hits, n = a.n;
    int limit = k.limit;
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
        for (size_t f = 0; f < OT_ARRAY_LEN(order_fields); f++)
            put_field(&ow, &d, src, order_fields[f]);
        ot_jw_obj_close(&ow);
        one.len = 0;
        /* The status is in the document already: splice, do not parse what was just written. */
        int st = ot_json_obj_get(&d, src, "status");
        ok = !ot_jw_error(&ow) && st >= 0 && ot_json_is_str(&d, st) &&
             ot_lifecycle_splice(ot_buf_str(&order), ot_json_raw(&d, st), r->auth.role, &one) == 0;
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
    put_fresh_close(&w, &d, a.resp[1], &E.floor_orders);
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
    send_search(c, "orders", &body, orders_cb);
}

/* ---- GET /search/orders/:id/history ---- */

static void history_cb(void *data, const ot_curl_result *res)
{
    es_ctx k;
    es_doc a;
    ot_req *r = es_answer(data, res, &a, 2, &k);
    if (!r)
        return;
    const ot_json d = a.d;
    int hits = a.hits, n = a.n;
    int max = k.limit;
    bool admin = k.admin;
    const char *id = k.id;
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
        for (size_t f = 0; f < OT_ARRAY_LEN(ev_fields) - (admin ? 0 : 1); f++)
            put_field(&w, &d, src, ev_fields[f]);
        ot_jw_obj_close(&w);
    }
    ot_jw_arr_close(&w);
    ot_jw_key(&w, "truncated");
    ot_jw_bool(&w, n > max);
    put_fresh_close(&w, &d, a.resp[1], &E.floor_events);
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
    send_search(c, "events", &body, history_cb);
}

/* ---- GET /search/analytics ---- */

static const char *const statuses[] = { "CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED", "CANCELED" };
#define NSTATUS 6
static const char *const day_names[] = { "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN" };

/* The buckets of terms aggregation `name` of response `root` as counts per
 * integer key (lo..lo + n - 1) or per status (keys == statuses). */
static void terms_counts(const ot_json *d, int root, const char *name, int64_t *out, int n, int lo, bool by_status)
{
    const char *path[] = { name, "buckets" };
    int bk = agg_at(d, root, path, 2);
    for (int i = 0; i < ot_json_arr_len(d, bk); i++) {
        int b = ot_json_arr_at(d, bk, i), k = ot_json_obj_get(d, b, "key"), dc = ot_json_obj_get(d, b, "doc_count");
        int64_t key = -1, cnt = 0;
        if (by_status) {
            for (int s = 0; s < NSTATUS; s++)
                if (k >= 0 && ot_json_str_eq(d, k, statuses[s]))
                    key = s;
        } else if (k >= 0 && ot_json_get_int64(d, k, &key) == 0) {
            key -= lo;
        }
        if (key >= 0 && key < n && dc >= 0 && ot_json_get_int64(d, dc, &cnt) == 0)
            out[key] += cnt;
    }
}

/* The first maximum among positive counts, or -1. */
static int peak(const int64_t *v, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (v[i] > 0 && (best < 0 || v[i] > v[best]))
            best = i;
    return best;
}

static void put_iso(ot_jw *w, int64_t us)
{
    char iso[32];
    size_t n = ot_iso8601_format(us, iso);
    if (n)
        ot_jw_str(w, ot_str_make(iso, n));
    else
        ot_jw_null(w);
}

/* Seconds rounded to 3 decimals, as sql/007 rounds its numeric. */
static void put_secs(ot_jw *w, double v, bool ok)
{
    if (!ok) {
        ot_jw_null(w);
        return;
    }
    char num[48];
    snprintf(num, sizeof num, "%.3f", v);
    ot_jw_raw(w, ot_str_c(num));
}

static void put_trend(ot_jw *w, const ot_json *d, int root, const es_ctx *c)
{
    ot_jw_arr_open(w);
    if (c->from < c->to) {
        int64_t first = c->from >= 0 ? c->from / c->step * c->step : -((-c->from + c->step - 1) / c->step) * c->step;
        const char *path[] = { "trend", "buckets" };
        int bk = agg_at(d, root, path, 2), nb = ot_json_arr_len(d, bk), j = 0;
        for (int64_t b = first; b <= c->to - 1; b += c->step) {
            int64_t cnt = 0;
            /* Both in ascending order: one pass. */
            for (; j < nb; j++) {
                int e = ot_json_arr_at(d, bk, j), k = ot_json_obj_get(d, e, "key");
                int64_t key_ms = 0, dc = 0;
                if (k < 0 || ot_json_get_int64(d, k, &key_ms) < 0 || key_ms * 1000 > b)
                    break;
                if (key_ms * 1000 == b && ot_json_get_int64(d, ot_json_obj_get(d, e, "doc_count"), &dc) == 0)
                    cnt = dc;
            }
            ot_jw_obj_open(w);
            ot_jw_key(w, "start");
            put_iso(w, b);
            ot_jw_key(w, "count");
            ot_jw_int(w, cnt);
            ot_jw_obj_close(w);
        }
    }
    ot_jw_arr_close(w);
}

static void put_time_in_status(ot_jw *w, const ot_json *d, int root)
{
    const char *path[] = { "st", "buckets" };
    int bk = agg_at(d, root, path, 2);
    ot_jw_obj_open(w);
    for (int s = 0; s < NSTATUS; s++) {
        double avg = 0, p95 = 0;
        bool ok = false, ok2 = false;
        for (int i = 0; i < ot_json_arr_len(d, bk); i++) {
            int b = ot_json_arr_at(d, bk, i), k = ot_json_obj_get(d, b, "key");
            if (k < 0 || !ot_json_str_eq(d, k, statuses[s]))
                continue;
            int a = ot_json_obj_get(d, b, "avg"), p = ot_json_obj_get(d, b, "p95");
            int pv = p >= 0 ? ot_json_obj_get(d, p, "values") : -1;
            avg = num_of(d, a >= 0 ? ot_json_obj_get(d, a, "value") : -1, &ok);
            p95 = num_of(d, pv >= 0 ? ot_json_obj_get(d, pv, "95.0") : -1, &ok2);
        }
        ot_jw_key(w, statuses[s]);
        ot_jw_obj_open(w);
        ot_jw_key(w, "avgSeconds");
        put_secs(w, avg, ok);
        ot_jw_key(w, "p95Seconds");
        put_secs(w, p95, ok2);
        ot_jw_obj_close(w);
    }
    ot_jw_obj_close(w);
}

static void put_delayed(ot_jw *w, const ot_json *d, int root)
{
    int h = ot_json_obj_get(d, root, "hits"), hh = h >= 0 ? ot_json_obj_get(d, h, "hits") : -1;
    int64_t now = ot_wall_us();
    ot_jw_arr_open(w);
    for (int i = 0; i < ot_json_arr_len(d, hh); i++) {
        int src = ot_json_obj_get(d, ot_json_arr_at(d, hh, i), "_source");
        int up = src >= 0 ? ot_json_obj_get(d, src, "updatedAt") : -1;
        if (up < 0)
            continue;
        int64_t since = 0;
        ot_str u = ot_json_raw(d, up);
        char iso[40];
        snprintf(iso, sizeof iso, "%.*s", (int)(u.len < 39 ? u.len : 39), u.base);
        if (ot_iso8601_parse(ot_str_c(iso), &since) < 0)
            continue;
        ot_jw_obj_open(w);
        int id = ot_json_obj_get(d, src, "id");
        ot_jw_key(w, "orderId");
        ot_jw_raw(w, id >= 0 ? ot_json_raw_value(d, id) : ot_str_c("null"));
        put_field(w, d, src, "userId");
        put_field(w, d, src, "status");
        ot_jw_key(w, "since");
        ot_jw_raw(w, ot_json_raw_value(d, up));
        ot_jw_key(w, "seconds");
        /* floor, as sql/007 (now > since: it is past an SLA of at least 1 s) */
        ot_jw_int(w, (now - since) / 1000000);
        ot_jw_obj_close(w);
    }
    ot_jw_arr_close(w);
}

static void analytics_cb(void *data, const ot_curl_result *res)
{
    es_ctx k;
    es_doc a;
    ot_req *r = es_answer(data, res, &a, 3, &k);
    if (!r)
        return;
    const ot_json *d = &a.d;
    int64_t st[NSTATUS] = { 0 }, hours[24] = { 0 }, days[7] = { 0 };
    terms_counts(d, a.resp[0], "status", st, NSTATUS, 0, true);
    terms_counts(d, a.resp[0], "hours", hours, 24, 0, false);
    terms_counts(d, a.resp[0], "days", days, 7, 1, false);
    ot_buf b = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &b);
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "from");
    put_iso(&w, k.from);
    ot_jw_key(&w, "to");
    put_iso(&w, k.to);
    ot_jw_key(&w, "interval");
    ot_jw_cstr(&w, k.step == 3600000000LL ? "hour" : "day");
    ot_jw_key(&w, "countsByStatus");
    ot_jw_obj_open(&w);
    for (int s = 0; s < NSTATUS; s++) {
        ot_jw_key(&w, statuses[s]);
        ot_jw_int(&w, st[s]);
    }
    ot_jw_obj_close(&w);
    ot_jw_key(&w, "trend");
    put_trend(&w, d, a.resp[0], &k);
    ot_jw_key(&w, "busiest");
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "hourOfDay");
    ot_jw_arr_open(&w);
    for (int i = 0; i < 24; i++)
        ot_jw_int(&w, hours[i]);
    ot_jw_arr_close(&w);
    ot_jw_key(&w, "dayOfWeek");
    ot_jw_arr_open(&w);
    for (int i = 0; i < 7; i++)
        ot_jw_int(&w, days[i]);
    ot_jw_arr_close(&w);
    int ph = peak(hours, 24), pd = peak(days, 7);
    ot_jw_key(&w, "peakHour");
    if (ph >= 0)
        ot_jw_int(&w, ph);
    else
        ot_jw_null(&w);
    ot_jw_key(&w, "peakDay");
    ot_jw_cstr(&w, pd >= 0 ? day_names[pd] : NULL);
    ot_jw_obj_close(&w);
    ot_jw_key(&w, "timeInStatus");
    put_time_in_status(&w, d, a.resp[1]);
    ot_jw_key(&w, "delayed");
    put_delayed(&w, d, a.resp[2]);
    ot_jw_key(&w, "freshness");
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "seq");
    ot_jw_int(&w, fresh_seq_of(d, a.resp[0], false, &E.floor_orders));
    ot_jw_obj_close(&w);
    ot_jw_obj_close(&w);
    free(a.heap);
    ot_api_respond_built(r, &w, &b);
}

/* The shared filter: created in [from, to) (field), of user unless "". */
static int put_scope(ot_buf *b, const char *field, const ot_search_es_analytics_q *q)
{
    int rc = ot_buf_printf(b, "{\"range\":{\"%s\":{\"gte\":%lld,\"lt\":%lld}}}", field, (long long)q->from_us,
                           (long long)q->to_us);
    if (q->user[0])
        rc |= ot_buf_printf(b, ",{\"term\":{\"userId\":\"%s\"}}", q->user);
    return rc;
}

void ot_search_es_analytics(ot_req *r, const ot_search_es_analytics_q *q)
{
    es_ctx *c = ot_api_ctx_new(r, sizeof *c, es_abort);
    if (!c)
        return;
    c->from = q->from_us;
    c->to = q->to_us;
    c->step = q->hourly ? 3600000000LL : 86400000000LL;
    ot_buf b = OT_BUF_INIT;
    /* 1: the orders created in the range: counts, trend, busiest, freshness. */
    int rc = ot_buf_printf(&b, "{\"index\":\"%s-orders\"}\n{\"size\":0,\"track_total_hits\":false,"
                               "\"query\":{\"bool\":{\"filter\":[", E.prefix);
    rc |= put_scope(&b, "createdUs", q);
    rc |= ot_buf_printf(&b, "]}},\"aggs\":{\"status\":{\"terms\":{\"field\":\"status\",\"size\":10}},"
                            "\"hours\":{\"terms\":{\"field\":\"createdHour\",\"size\":24}},"
                            "\"days\":{\"terms\":{\"field\":\"createdDow\",\"size\":7}},"
                            "\"trend\":{\"date_histogram\":{\"field\":\"createdAt\",\"calendar_interval\":\"%s\","
                            "\"min_doc_count\":1}},",
                     q->hourly ? "1h" : "1d");
    rc |= fresh_member(&b, E.floor_orders);
    rc |= ot_buf_append_str(&b, "}}\n");
    /* 2: the stints that began and ended in the range (events carry the one
     * they end); p95 is Elasticsearch's percentiles (exact for small samples,
     * a t-digest estimate beyond). */
    rc |= ot_buf_printf(&b, "{\"index\":\"%s-events\"}\n{\"size\":0,\"track_total_hits\":false,"
                            "\"query\":{\"bool\":{\"filter\":[", E.prefix);
    rc |= put_scope(&b, "prevUs", q);
    rc |= ot_buf_printf(&b, ",{\"range\":{\"tsUs\":{\"gte\":%lld,\"lt\":%lld}}}]}},"
                            "\"aggs\":{\"st\":{\"terms\":{\"field\":\"prevStatus\",\"size\":10},\"aggs\":{"
                            "\"avg\":{\"avg\":{\"field\":\"stintSeconds\"}},"
                            "\"p95\":{\"percentiles\":{\"field\":\"stintSeconds\",\"percents\":[95]}}}}}}\n",
                     (long long)q->from_us, (long long)q->to_us);
    /* 3: delayed: a non-terminal status older than its SLA, oldest first. */
    rc |= ot_buf_printf(&b, "{\"index\":\"%s-orders\"}\n{\"size\":%u,\"track_total_hits\":false,\"query\":", E.prefix,
                        q->delayed_max);
    bool any = false;
    for (int s = 0; s < 4; s++)
        any |= q->sla_s[s] > 0;
    if (any) {
        rc |= ot_buf_append_str(&b, "{\"bool\":{\"filter\":[");
        rc |= put_scope(&b, "createdUs", q);
        rc |= ot_buf_append_str(&b, "],\"minimum_should_match\":1,\"should\":[");
        const char *sep = "";
        for (int s = 0; s < 4; s++)
            if (q->sla_s[s] > 0) {
                rc |= ot_buf_printf(&b, "%s{\"bool\":{\"filter\":[{\"term\":{\"status\":\"%s\"}},"
                                        "{\"range\":{\"updatedAt\":{\"lt\":\"now-%us\"}}}]}}",
                                    sep, statuses[s], q->sla_s[s]);
                sep = ",";
            }
        rc |= ot_buf_append_str(&b, "]}}");
    } else {
        rc |= ot_buf_append_str(&b, "{\"match_none\":{}}");
    }
    rc |= ot_buf_append_str(&b, ",\"sort\":[{\"updatedAt\":{\"order\":\"asc\"}},{\"orderId\":{\"order\":\"asc\"}}],"
                                "\"_source\":[\"id\",\"userId\",\"status\",\"updatedAt\"]}\n");
    if (rc) {
        ot_buf_free(&b);
        ot_respond_error(ot_api_finish(c), 500, "internal", "out of memory");
        return;
    }
    send_search(c, NULL, &b, analytics_cb);
}
