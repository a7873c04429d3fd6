/* Rollover and retention of the events indices. See search_lifecycle.h. */
#include "ot/app/search_lifecycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ot/adapters/curl.h"
#include "ot/app/indexer.h"
#include "ot/codec/json.h"
#include "ot/core/buf.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"

#define URL_MAX 512

struct ot_search_lifecycle {
    ot_loop *loop;
    const ot_config *cfg;
    ot_curl *curl;
    ot_curl_req *req;
    ot_timer tick;
    uint64_t deleting; /* indices named in the DELETE in flight */
    char base[URL_MAX / 2], prefix[OT_ES_PREFIX_MAX];
    bool warned; /* Elasticsearch unreachable: said once until it answers */
};

bool ot_search_lifecycle_wanted(const ot_config *cfg)
{
    return cfg->elasticsearch_url && (cfg->es_rollover_max_age_s || cfg->es_rollover_max_docs ||
                                      cfg->es_rollover_max_primary_mb || cfg->es_events_retention_s);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ot_search_lifecycle_expired(const char *json, size_t len, int64_t now, int64_t keep_ms, ot_search_expired_cb *cb,
                                void *data)
{
    ot_json_tok stack[256], *heap = NULL;
    ot_json d;
    if (ot_json_parse_grow(&d, json, len, stack, OT_ARRAY_LEN(stack), &heap) < 0 || !ot_json_is_arr(&d, 0)) {
        free(heap);
        return -1;
    }
    int n = ot_json_arr_len(&d, 0), newest = -1;
    ot_str newest_name = { 0 };
    /* The newest by name: rollover numbers indices -000001, -000002, ... with
     * equal widths, so the highest name is the write index whatever the order
     * of the listing. */
    for (int i = 0; i < n; i++) {
        int e = ot_json_arr_at(&d, 0, i), t = ot_json_obj_get(&d, e, "index");
        if (t < 0 || !ot_json_is_str(&d, t)) {
            free(heap);
            return -1;
        }
        ot_str s = ot_json_raw(&d, t);
        int c = newest < 0 ? 1 : memcmp(s.base, newest_name.base, s.len < newest_name.len ? s.len : newest_name.len);
        if (c > 0 || (c == 0 && s.len > newest_name.len)) {
            newest = i;
            newest_name = s;
        }
    }
    for (int i = 0; i < n; i++) {
        int e = ot_json_arr_at(&d, 0, i);
        int t = ot_json_obj_get(&d, e, "index"), c = ot_json_obj_get(&d, e, "creation.date");
        if (i == newest || c < 0)
            continue;
        /* _cat answers numbers as strings. */
        ot_str v = ot_json_raw(&d, c);
        char num[24];
        if (v.len == 0 || v.len >= sizeof num)
            continue;
        memcpy(num, v.base, v.len);
        num[v.len] = 0;
        char *end;
        long long created = strtoll(num, &end, 10);
        if (*end || created >= now - keep_ms)
            continue;
        ot_str s = ot_json_raw(&d, t);
        cb(data, s.base, s.len);
    }
    free(heap);
    return n;
}

static void tick_cb(ot_loop *loop, ot_timer *t);

/* For logging: the answer is not NUL-terminated. */
static int body_len(const ot_curl_result *res) { return res->body ? (int)(res->body_len < 200 ? res->body_len : 200) : 0; }

static void next_tick(ot_search_lifecycle *l)
{
    if (!l->req)
        ot_timer_start(l->loop, &l->tick, l->cfg->es_lifecycle_check_ms);
}

/* false (and said once) when Elasticsearch did not answer. */
static bool answered(ot_search_lifecycle *l, const ot_curl_result *res, const char *what)
{
    if (res->curl_code || res->status == 0 || res->status >= 500) {
        if (!l->warned)
            ot_logf(OT_LOG_WARN, "search lifecycle: %s: Elasticsearch unavailable (%s %ld); next look in %u ms", what,
                    res->curl_code ? res->error : "HTTP", res->status, l->cfg->es_lifecycle_check_ms);
        l->warned = true;
        return false;
    }
    l->warned = false;
    return true;
}

static void deleted_cb(void *data, const ot_curl_result *res)
{
    ot_search_lifecycle *l = data;
    l->req = NULL;
    /* 404: someone else deleted one first (another node, an operator). */
    if (answered(l, res, "delete") && res->status == 200)
        ot_metrics_inc(OT_C_SEARCH_INDICES_DELETED, l->deleting);
    else if (res->status && res->status < 500)
        ot_logf(OT_LOG_ERROR, "search lifecycle: delete answered %ld: %.*s", res->status, body_len(res), res->body);
    l->deleting = 0;
    next_tick(l);
}

typedef struct {
    ot_search_lifecycle *l;
    ot_buf names; /* a,b,c: one DELETE for all (exact names, never a pattern) */
    bool too_long;
} expiry;

static void expire_one(void *data, const char *index, size_t len)
{
    expiry *x = data;
    if (x->names.len + len + 1 > URL_MAX / 2) {
        x->too_long = true; /* the rest waits for the next look */
        return;
    }
    ot_logf(OT_LOG_INFO, "search lifecycle: deleting %.*s (older than %u s)", (int)len, index,
            x->l->cfg->es_events_retention_s);
    if ((x->names.len && ot_buf_append(&x->names, ",", 1) < 0) || ot_buf_append(&x->names, index, len) < 0)
        x->too_long = true;
    else
        x->l->deleting++;
}

static void listed_cb(void *data, const ot_curl_result *res)
{
    ot_search_lifecycle *l = data;
    l->req = NULL;
    if (answered(l, res, "list") && res->status == 200) {
        expiry x = { .l = l, .names = OT_BUF_INIT };
        int n = ot_search_lifecycle_expired(res->body, res->body_len, now_ms(),
                                            (int64_t)l->cfg->es_events_retention_s * 1000, expire_one, &x);
        if (n < 0)
            ot_logf(OT_LOG_ERROR, "search lifecycle: unexpected index list: %.*s", body_len(res), res->body);
        else
            ot_metrics_set(OT_G_SEARCH_EVENT_INDICES, n);
        if (l->deleting) {
            char url[URL_MAX];
            snprintf(url, sizeof url, "%s/%.*s", l->base, (int)x.names.len, x.names.data);
            l->req = ot_curl_send(l->curl, "DELETE", url, NULL, NULL, 0, deleted_cb, l);
            if (!l->req)
                l->deleting = 0;
        }
        ot_buf_free(&x.names);
    }
    next_tick(l);
}

static void list(ot_search_lifecycle *l)
{
    char url[URL_MAX];
    snprintf(url, sizeof url, "%s/_cat/indices/%s-events-*?format=json&h=index,creation.date", l->base, l->prefix);
    l->req = ot_curl_send(l->curl, "GET", url, NULL, NULL, 0, listed_cb, l);
    next_tick(l);
}

static void rolled_cb(void *data, const ot_curl_result *res)
{
    ot_search_lifecycle *l = data;
    l->req = NULL;
    /* 404: the indexer has not made the alias yet; 400: it is not a write
     * alias (an operator's layout): both said by the indexer or the log. */
    if (answered(l, res, "rollover") && res->status == 200) {
        ot_json_tok toks[64];
        ot_json d;
        bool rolled = false;
        int t = ot_json_parse(&d, res->body, res->body_len, toks, OT_ARRAY_LEN(toks)) == 0
                    ? ot_json_obj_get(&d, 0, "rolled_over")
                    : -1;
        if (t >= 0 && ot_json_get_bool(&d, t, &rolled) == 0 && rolled) {
            int ni = ot_json_obj_get(&d, 0, "new_index");
            ot_str s = ni >= 0 ? ot_json_raw(&d, ni) : (ot_str){ "?", 1 };
            ot_logf(OT_LOG_INFO, "search lifecycle: %s-events rolled over to %.*s", l->prefix, (int)s.len, s.base);
            ot_metrics_inc(OT_C_SEARCH_ROLLOVERS, 1);
        }
    } else if (res->status && res->status != 404 && res->status < 500) {
        ot_logf(OT_LOG_ERROR, "search lifecycle: rollover answered %ld: %.*s", res->status, body_len(res), res->body);
    }
    if (l->cfg->es_events_retention_s)
        list(l);
    else
        next_tick(l);
}

static void tick_cb(ot_loop *loop, ot_timer *t)
{
    (void)loop;
    ot_search_lifecycle *l = t->data;
    const ot_config *cfg = l->cfg;
    if (!(cfg->es_rollover_max_age_s || cfg->es_rollover_max_docs || cfg->es_rollover_max_primary_mb)) {
        list(l);
        return;
    }
    char url[URL_MAX], body[256];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"conditions\":{");
    const char *sep = "";
    if (cfg->es_rollover_max_age_s) {
        n += (size_t)snprintf(body + n, sizeof body - n, "\"max_age\":\"%us\"", cfg->es_rollover_max_age_s);
        sep = ",";
    }
    if (cfg->es_rollover_max_docs) {
        n += (size_t)snprintf(body + n, sizeof body - n, "%s\"max_docs\":%u", sep, cfg->es_rollover_max_docs);
        sep = ",";
    }
    if (cfg->es_rollover_max_primary_mb)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s\"max_primary_shard_size\":\"%umb\"", sep,
                              cfg->es_rollover_max_primary_mb);
    n += (size_t)snprintf(body + n, sizeof body - n, "}}");
    snprintf(url, sizeof url, "%s/%s-events/_rollover", l->base, l->prefix);
    l->req = ot_curl_send(l->curl, "POST", url, "application/json", body, n, rolled_cb, l);
    next_tick(l);
}

ot_search_lifecycle *ot_search_lifecycle_new(ot_loop *loop, const ot_config *cfg)
{
    const char *prefix = cfg->es_index_prefix ? cfg->es_index_prefix : "ordertrack";
    size_t ul = cfg->elasticsearch_url ? strlen(cfg->elasticsearch_url) : 0;
    if (!ul || ul >= URL_MAX / 2 || !ot_es_prefix_valid(prefix)) {
        ot_logf(OT_LOG_ERROR, "search lifecycle: bad --es-index-prefix or --elasticsearch-url");
        return NULL;
    }
    ot_search_lifecycle *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->loop = loop;
    l->cfg = cfg;
    snprintf(l->base, sizeof l->base, "%.*s", (int)(cfg->elasticsearch_url[ul - 1] == '/' ? ul - 1 : ul),
             cfg->elasticsearch_url);
    snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
    ot_curl_config cc;
    ot_curl_config_default(&cc);
    cc.timeout_ms = cfg->es_timeout_ms;
    cc.max_host_conns = 2;
    l->curl = ot_curl_new(loop, &cc);
    if (!l->curl) {
        free(l);
        return NULL;
    }
    ot_timer_init(&l->tick, tick_cb, l);
    /* The first look once the indexer has had time to make the alias. */
    ot_timer_start(loop, &l->tick, cfg->es_lifecycle_check_ms);
    return l;
}

void ot_search_lifecycle_free(ot_search_lifecycle *l)
{
    if (!l)
        return;
    ot_timer_stop(l->loop, &l->tick);
    ot_curl_free(l->curl); /* cancels what is in flight, without callbacks */
    free(l);
}
