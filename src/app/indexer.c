/* The search indexer: index setup, batches, the bulk answer and parking. See
 * indexer.h. */
#include "ot/app/indexer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/adapters/curl.h"
#include "ot/app/search_feed.h"
#include "ot/app/sink.h"
#include "ot/codec/iso8601.h"
#include "ot/codec/json.h"
#include "ot/codec/search_doc.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"
#include "ot/event/backoff.h"

#define ISO_MAX 40
#define URL_MAX 512
/* After a failed PostgreSQL request (lookup, park): its pool reconnects. */
#define PG_RETRY_MS 500
#define REASON_MAX 400
#define IX_MIN(a, b) ((a) < (b) ? (a) : (b))

const ot_pg_stmt ot_indexer_stmts[] = {
    /* created_at never changes and no event carries it past the first: the
     * order document needs it (the list's sort key and time filter). The
     * row's updated_at is the transaction's time, not the event's
     * clock_timestamp(): exact for the event of the row's current version
     * (a later version's event is committed, so it follows and overwrites).
     * $1, $2: each event's order and version. */
    { "indexer_created",
      /* Every row names its entry (the ordinality i, from 1), so the answer
       * is applied in one pass. Each lookup is a LATERAL ... LIMIT 1 so it
       * stays one index probe per entry: as plain joins the planner hashed
       * all of orders and order_events for every batch (a seq scan of both
       * tables, 120 ms at 60,000 events and growing with the log). */
      "SELECT 'o', k.i, o.version, ot_iso(o.created_at), ot_ts_us(o.created_at), ot_iso(o.updated_at) "
      "FROM unnest($1::uuid[]) WITH ORDINALITY AS k (o, i) "
      "CROSS JOIN LATERAL (SELECT x.version, x.created_at, x.updated_at FROM orders x WHERE x.id = k.o LIMIT 1) o "
      /* The stint each event ends (the previous version's status and time):
       * analytics' time in status, as sql/007 joins version to version + 1. */
      "UNION ALL SELECT 'p', k.i, k.v, e.status::text, ot_ts_us(e.created_at), ot_ts_us(n.created_at)::text "
      "FROM unnest($1::uuid[], $2::int[]) WITH ORDINALITY AS k (o, v, i) "
      "CROSS JOIN LATERAL (SELECT x.created_at FROM order_events x WHERE x.order_id = k.o AND x.version = k.v "
      "LIMIT 1) n "
      "CROSS JOIN LATERAL (SELECT x.status, x.created_at FROM order_events x "
      "WHERE x.order_id = k.o AND x.version = k.v - 1 LIMIT 1) e",
      2, true },
    { "indexer_park",
      "INSERT INTO search_parked (seq, kind, order_id, reason) SELECT x.seq, x.kind, x.order_id, x.reason "
      "FROM json_to_recordset($1::json) AS x (seq bigint, kind text, order_id uuid, reason text) "
      "ON CONFLICT (seq, kind) DO NOTHING",
      1, false },
};
const size_t ot_indexer_nstmts = OT_ARRAY_LEN(ot_indexer_stmts);

/* K_NEXT: the order document again, into the index a reindex is building
 * (`<p>-orders-next`, see ot_indexer.h), while there is one. */
enum { K_EVENTS, K_ORDERS, K_NEXT, NKINDS };
static const char *const kind_name[NKINDS] = { "events", "orders", "orders" };
/* How often the indexer looks for a reindex's alias. */
/* Where each document stands. */
enum { D_PENDING, D_DONE, D_PARK };

typedef struct {
    ot_search_doc_meta m;
    char event[OT_UUID_TEXT];
    size_t off, len; /* the event JSON in the batch's arena */
    uint8_t st[NKINDS];
    char *reason[NKINDS]; /* D_PARK: why (malloc'd) */
} entry;

typedef struct {
    entry *e;
    size_t n, cap;
    ot_buf arena;
    bool looked; /* the PostgreSQL lookup is done (prefetched while the previous batch was in flight) */
} batch;

/* What the batch in flight does next (or is doing). */
enum { F_IDLE, F_LOOKUP, F_SEND, F_PARK };
/* Index setup steps, in order. */
enum { S_EVENTS_TEMPLATE, S_ORDERS_TEMPLATE, S_EVENTS_ALIAS, S_EVENTS_CREATE, S_ORDERS_ALIAS, S_ORDERS_CREATE, S_DONE };

struct ot_indexer {
    ot_loop *loop;
    const ot_config *cfg;
    ot_events *events;
    ot_pg *pg;
    ot_curl *curl;
    /* The input: the event reader's durable sink, or in Kafka mode the
     * ordertrack-search consumer (search_feed.h). */
    ot_sink *sink;
    ot_search_feed *kfeed;
    char base[URL_MAX];
    char prefix[OT_ES_PREFIX_MAX];
    int setup;
    bool es_up, sink_full, warned;
    ot_curl_req *req;
    ot_pg_query *pq;
    ot_timer flush_timer, retry_timer;
    ot_backoff bo;
    batch fill, fly;
    int phase;
    /* The concrete index behind <p>-orders-next, "" when no reindex runs. */
    char next[OT_ES_PREFIX_MAX + 64];
    uint32_t next_check_ms; /* --es-reindex-check-ms */
    ot_curl_req *next_req;
    ot_timer next_timer;
    ot_pg_query *fill_q; /* the prefetched lookup of fill */
    bool flush_wanted;   /* flush once fill_q is back */
    /* fly's actions in the body sent: (entry index << 2) | kind */
    size_t *acts;
    size_t nacts, capacts;
};

bool ot_es_prefix_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n >= OT_ES_PREFIX_MAX || p[0] == '-' || p[0] == '_')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '_'))
            return false;
    return true;
}

static void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        for (int k = 0; k < NKINDS; k++)
            free(b->e[i].reason[k]);
    b->n = 0;
    b->looked = false;
    ot_buf_reset(&b->arena);
}

static void batch_free(batch *b)
{
    batch_clear(b);
    free(b->e);
    ot_buf_free(&b->arena);
    memset(b, 0, sizeof *b);
}

static void es_state(ot_indexer *ix, bool up, const char *why)
{
    if (!up && (ix->es_up || !ix->warned)) {
        ot_logf(OT_LOG_WARN, "indexer: Elasticsearch at %s unavailable (%s); retrying within %u ms", ix->base, why,
                ot_backoff_peek(&ix->bo));
        ix->warned = true;
    } else if (up && !ix->es_up && ix->warned) {
        ot_logf(OT_LOG_INFO, "indexer: Elasticsearch at %s answers again", ix->base);
        ix->warned = false;
    }
    ix->es_up = up;
    ot_metrics_set(OT_G_ELASTICSEARCH_UP, up ? 1 : 0);
}

static void retry_later(ot_indexer *ix, uint32_t ms) { ot_timer_start(ix->loop, &ix->retry_timer, ms); }

/* ---- index setup ---- */

static void setup_step(ot_indexer *ix);
static void add_sink(ot_indexer *ix);

static void on_setup(void *data, const ot_curl_result *res)
{
    ot_indexer *ix = data;
    ix->req = NULL;
    long st = res->status;
    bool ok;
    int next = ix->setup + 1;
    switch (ix->setup) {
    case S_EVENTS_ALIAS:
    case S_ORDERS_ALIAS:
        /* 200: the alias is there (maybe over a rolled-over or reindexed
         * index): leave it; 404: create its first index. */
        ok = st == 200 || st == 404;
        if (st == 200)
            next = ix->setup + 2;
        break;
    case S_EVENTS_CREATE:
    case S_ORDERS_CREATE:
        /* Another node may have created it in between. */
        ok = st == 200 || (st == 400 && res->body && strstr(res->body, "resource_already_exists_exception"));
        break;
    default:
        ok = st == 200;
    }
    if (!ok) {
        char why[160];
        snprintf(why, sizeof why, "index setup step %d: %s %ld %.80s", ix->setup, res->curl_code ? res->error : "HTTP",
                 st, res->body ? res->body : "");
        es_state(ix, false, why);
        retry_later(ix, ot_backoff_next(&ix->bo));
        return;
    }
    es_state(ix, true, NULL);
    ix->setup = next;
    setup_step(ix);
}

static bool send(ot_indexer *ix, const char *method, const char *path, const char *ctype, const char *body,
                 size_t len, ot_curl_cb *cb)
{
    char url[URL_MAX + 256];
    snprintf(url, sizeof url, "%s%s", ix->base, path);
    ix->req = ot_curl_send(ix->curl, method, url, ctype, body, len, cb, ix);
    return ix->req != NULL;
}

/* Both indices map the same fields (dynamic off: nothing else is indexed). */
#define OT_ES_MAPPINGS                                                                                             \
    "{\"dynamic\":false,\"properties\":{"                                                                         \
    "\"seq\":{\"type\":\"long\"},\"version\":{\"type\":\"long\"},"                                                  \
    "\"eventId\":{\"type\":\"keyword\"},\"orderId\":{\"type\":\"keyword\"},\"id\":{\"type\":\"keyword\"},"           \
    "\"userId\":{\"type\":\"keyword\"},\"status\":{\"type\":\"keyword\"},\"type\":{\"type\":\"keyword\"},"           \
    "\"actor\":{\"type\":\"keyword\"},\"timestamp\":{\"type\":\"date\"},"                                            \
    "\"createdAt\":{\"type\":\"date\"},\"updatedAt\":{\"type\":\"date\"},\"createdUs\":{\"type\":\"long\"},"        \
    "\"createdHour\":{\"type\":\"integer\"},\"createdDow\":{\"type\":\"integer\"},\"tsUs\":{\"type\":\"long\"},"     \
    "\"prevStatus\":{\"type\":\"keyword\"},\"prevUs\":{\"type\":\"long\"},\"stintSeconds\":{\"type\":\"double\"},"   \
    "\"items\":{\"type\":\"nested\",\"properties\":{\"productId\":{\"type\":\"keyword\"},\"qty\":{\"type\":\"integer\"}}}," \
    "\"payload\":{\"properties\":{\"items\":{\"type\":\"nested\",\"properties\":"                                    \
    "{\"productId\":{\"type\":\"keyword\"},\"qty\":{\"type\":\"integer\"}}}}}}}"

static const char events_template_fmt[] =
    "{\"index_patterns\":[\"%s-events-*\"],\"priority\":200,"
    "\"template\":{\"settings\":{\"number_of_shards\":1},\"mappings\":" OT_ES_MAPPINGS "}}";

/* Orders arrive oldest first, so in document order every order beats the
 * newest-first page collected so far: without an index sort the unfiltered
 * first page visits and ranks all of them (1M orders: seconds per request,
 * docs/BENCHMARKS.md). Sorted the way every list reads (search_es.c: createdUs
 * desc, then orderId desc), a page stops after its first `size` matches. Own
 * template, a higher priority than the events one: an index sort is fixed at
 * index creation, and the events index has no use for it. An index created
 * before this keeps its order until `ordertrack search reindex`. */
static const char orders_template_fmt[] =
    "{\"index_patterns\":[\"%s-orders-*\"],\"priority\":201,"
    "\"template\":{\"settings\":{\"number_of_shards\":1,"
    "\"sort.field\":[\"createdUs\",\"orderId\"],\"sort.order\":[\"desc\",\"desc\"]},"
    "\"mappings\":" OT_ES_MAPPINGS "}}";

static void setup_step(ot_indexer *ix)
{
    char path[256], body[2048];
    const char *kind = ix->setup <= S_EVENTS_CREATE ? "events" : "orders";
    bool ok = true;
    switch (ix->setup) {
    case S_EVENTS_TEMPLATE:
    case S_ORDERS_TEMPLATE:
        /* The events template keeps the bare prefix as its name: it is the
         * one that matched both kinds before the orders had their own. */
        snprintf(path, sizeof path, "/_index_template/%s%s", ix->prefix, ix->setup == S_ORDERS_TEMPLATE ? "-orders" : "");
        snprintf(body, sizeof body, ix->setup == S_ORDERS_TEMPLATE ? orders_template_fmt : events_template_fmt,
                 ix->prefix);
        ok = send(ix, "PUT", path, "application/json", body, strlen(body), on_setup);
        break;
    case S_EVENTS_ALIAS:
    case S_ORDERS_ALIAS:
        snprintf(path, sizeof path, "/_alias/%s-%s", ix->prefix, kind);
        ok = send(ix, "GET", path, NULL, NULL, 0, on_setup);
        break;
    case S_EVENTS_CREATE:
    case S_ORDERS_CREATE:
        snprintf(path, sizeof path, "/%s-%s-000001", ix->prefix, kind);
        snprintf(body, sizeof body, "{\"aliases\":{\"%s-%s\":{\"is_write_index\":true}}}", ix->prefix, kind);
        ok = send(ix, "PUT", path, "application/json", body, strlen(body), on_setup);
        break;
    default:
        ot_backoff_reset(&ix->bo);
        ot_logf(OT_LOG_INFO, "indexer: indices %s-events and %s-orders ready at %s", ix->prefix, ix->prefix, ix->base);
        add_sink(ix);
        return;
    }
    if (!ok)
        retry_later(ix, ot_backoff_next(&ix->bo));
}

/* ---- the batch in flight ---- */

static void fly_step(ot_indexer *ix);
static void flush(ot_indexer *ix);
static bool fill_full(const ot_indexer *ix);

static void complete(ot_indexer *ix)
{
    batch *b = &ix->fly;
    int64_t last = b->e[b->n - 1].m.seq, now = ot_wall_us();
    ot_metrics_inc(OT_C_SEARCH_INDEXED, b->n);
    /* A replay of old events (a catch-up, a reindex) shows as its real age:
     * that is how stale search was for them. */
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i].m.at_us > 0)
            ot_metrics_index_latency(now > b->e[i].m.at_us ? (uint64_t)(now - b->e[i].m.at_us) : 0);
    batch_clear(b);
    ix->phase = F_IDLE;
    ot_backoff_reset(&ix->bo);
    if (ix->sink)
        ot_sink_ack(ix->sink, last);
    ot_search_feed_ack(ix->kfeed, last);
    if (ix->sink_full) {
        ix->sink_full = false;
        if (ix->sink)
            ot_sink_wake(ix->sink);
        ot_search_feed_wake(ix->kfeed);
    }
    /* A full next batch goes at once; a partial one when its timer fires. */
    if (ix->fill.n >= ix->cfg->es_bulk_max_events || ix->fill.arena.len >= ix->cfg->es_bulk_max_bytes)
        flush(ix);
    else if (ix->fill.n > 0 && !ot_timer_active(&ix->flush_timer))
        flush(ix);
}

/* What is left once the answer is read: parks to record, items to resend,
 * or nothing. */
static void next_phase(ot_indexer *ix, bool resend_now)
{
    batch *b = &ix->fly;
    bool park = false, pending = false;
    for (size_t i = 0; i < b->n; i++)
        for (int k = 0; k < NKINDS; k++) {
            park |= b->e[i].st[k] == D_PARK;
            pending |= b->e[i].st[k] == D_PENDING;
        }
    if (park) {
        ix->phase = F_PARK;
        fly_step(ix);
    } else if (pending) {
        ix->phase = F_SEND;
        ot_metrics_inc(OT_C_SEARCH_RETRIES, 1);
        if (resend_now)
            fly_step(ix);
        else
            retry_later(ix, ot_backoff_next(&ix->bo));
    } else {
        complete(ix);
    }
}

void ot_indexer_lookup_row(ot_search_doc_meta *m, const PGresult *res, int r)
{
    bool order = PQgetvalue(res, r, 0)[0] == 'o';
    int64_t version = strtoll(PQgetvalue(res, r, 2), NULL, 10), us = strtoll(PQgetvalue(res, r, 4), NULL, 10);
    if (order) {
        snprintf(m->created, sizeof m->created, "%s", PQgetvalue(res, r, 3));
        m->created_us = us;
        if (version == m->version)
            snprintf(m->updated, sizeof m->updated, "%s", PQgetvalue(res, r, 5));
    } else if (version == m->version) {
        snprintf(m->prev_status, sizeof m->prev_status, "%s", PQgetvalue(res, r, 3));
        m->prev_us = us;
        m->end_us = strtoll(PQgetvalue(res, r, 5), NULL, 10);
    }
}

/* Fills b's entries from the lookup's rows. */
static void apply_lookup(batch *b, PGresult *res)
{
    for (int r = 0; r < PQntuples(res); r++) {
        long long i = strtoll(PQgetvalue(res, r, 1), NULL, 10);
        if (i >= 1 && (size_t)i <= b->n)
            ot_indexer_lookup_row(&b->e[i - 1].m, res, r);
    }
    b->looked = true;
}

static void on_created(void *data, int status, PGresult *res)
{
    ot_indexer *ix = data;
    ix->pq = NULL;
    if (status != OT_PG_OK) {
        retry_later(ix, PG_RETRY_MS);
        return;
    }
    apply_lookup(&ix->fly, res);
    ix->phase = F_SEND;
    fly_step(ix);
}

/* The next batch's lookup, made while the current one is in Elasticsearch:
 * it is full, so it cannot change (and flush waits for this). */
static void on_fill_created(void *data, int status, PGresult *res)
{
    ot_indexer *ix = data;
    ix->fill_q = NULL;
    if (status == OT_PG_OK)
        apply_lookup(&ix->fill, res); /* on failure the batch looks up again once in flight */
    if (ix->flush_wanted) {
        ix->flush_wanted = false;
        flush(ix);
    }
}

static void on_parked(void *data, int status, PGresult *res)
{
    ot_indexer *ix = data;
    ix->pq = NULL;
    if (status != OT_PG_OK) {
        ot_logf(OT_LOG_WARN, "indexer: recording parked documents failed (%s); retrying",
                status == OT_PG_EQUERY ? PQresultErrorMessage(res) : "database unavailable");
        retry_later(ix, PG_RETRY_MS);
        return;
    }
    batch *b = &ix->fly;
    for (size_t i = 0; i < b->n; i++)
        for (int k = 0; k < NKINDS; k++)
            if (b->e[i].st[k] == D_PARK) {
                b->e[i].st[k] = D_DONE;
                ot_metrics_inc(OT_C_SEARCH_PARKED, 1);
            }
    next_phase(ix, false);
}


/* Room for one more element of size `elem` in *arr (n used of *cap). */
static bool room(void **arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, c * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = c;
    return true;
}


static bool push_act(ot_indexer *ix, size_t a)
{
    if (!room((void **)&ix->acts, ix->nacts, &ix->capacts, sizeof *ix->acts))
        return false;
    ix->acts[ix->nacts++] = a;
    return true;
}

static void park(entry *en, int k, const char *why)
{
    en->st[k] = D_PARK;
    free(en->reason[k]);
    en->reason[k] = strdup(why);
}

static void on_bulk(void *data, const ot_curl_result *res);

/* The body holds only the documents still pending, so a resend after
 * item-level 429s repeats nothing that succeeded. */
static bool send_bulk(ot_indexer *ix)
{
    batch *b = &ix->fly;
    ot_buf body = OT_BUF_INIT;
    ix->nacts = 0;
    bool ok = true;
    for (size_t i = 0; i < b->n && ok; i++) {
        entry *en = &b->e[i];
        ot_str json = ot_str_make(b->arena.data + en->off, en->len);
        if (en->st[K_EVENTS] == D_PENDING) {
            char events[OT_ES_PREFIX_MAX + 8];
            snprintf(events, sizeof events, "%s-events", ix->prefix);
            ok = ot_search_bulk_event(&body, events, en->event, &en->m, json) == 0 && push_act(ix, i << 2 | K_EVENTS);
        }
        /* A batch sent while no reindex runs owes the next index nothing. */
        if (en->st[K_NEXT] == D_PENDING && !ix->next[0])
            en->st[K_NEXT] = D_DONE;
        for (int k = K_ORDERS; ok && k <= K_NEXT; k++) {
            if (en->st[k] != D_PENDING)
                continue;
            char alias[OT_ES_PREFIX_MAX + 8];
            snprintf(alias, sizeof alias, "%s-orders", ix->prefix);
            if (ot_search_bulk_order(&body, k == K_NEXT ? ix->next : alias, &en->m, json) < 0)
                park(en, k, OT_SEARCH_NOT_AN_EVENT); /* it can never become a document */
            else
                ok = push_act(ix, i << 2 | (size_t)k);
        }
    }
    if (ok && ix->nacts == 0) {
        ot_buf_free(&body);
        next_phase(ix, false);
        return true;
    }
    /* Only what on_bulk reads: a tenth of the answer to receive and parse. */
    ok = ok && send(ix, "POST", "/_bulk?filter_path=items.*.status,items.*.error", "application/x-ndjson", body.data,
                    body.len, on_bulk);
    ot_buf_free(&body);
    return ok;
}

static void on_bulk(void *data, const ot_curl_result *res)
{
    ot_indexer *ix = data;
    ix->req = NULL;
    if (res->curl_code || res->status != 200) {
        char why[200];
        snprintf(why, sizeof why, "_bulk: %s %ld %.100s", res->curl_code ? res->error : "HTTP", res->status,
                 res->body ? res->body : "");
        /* 4xx on the whole request is our bug or a proxy's; a retry is all
         * that keeps nothing lost, and the log says so. */
        es_state(ix, res->curl_code == 0 && res->status < 500 && res->status != 429, why);
        if (res->curl_code == 0 && res->status < 500 && res->status != 429)
            ot_logf(OT_LOG_ERROR, "indexer: %s", why);
        ix->phase = F_SEND;
        ot_metrics_inc(OT_C_SEARCH_RETRIES, 1);
        retry_later(ix, ot_backoff_next(&ix->bo));
        return;
    }
    es_state(ix, true, NULL);
    ot_metrics_inc(OT_C_SEARCH_BULKS, 1);
    ot_search_bulk ans;
    int items = ot_search_bulk_parse(&ans, ot_str_make(res->body, res->body_len));
    if (items != (int)ix->nacts) {
        ot_logf(OT_LOG_ERROR, "indexer: unexpected _bulk answer (%zu actions sent); sending again", ix->nacts);
        if (items >= 0)
            ot_search_bulk_free(&ans);
        ix->phase = F_SEND;
        ot_metrics_inc(OT_C_SEARCH_RETRIES, 1);
        retry_later(ix, ot_backoff_next(&ix->bo));
        return;
    }
    batch *b = &ix->fly;
    ot_search_verdict v;
    int64_t st;
    char why[REASON_MAX];
    for (size_t a = 0; ot_search_bulk_next(&ans, &v, &st, why, sizeof why) > 0; a++) {
        entry *en = &b->e[ix->acts[a] >> 2];
        int k = (int)(ix->acts[a] & 3);
        if (v == OT_SEARCH_DONE) {
            en->st[k] = D_DONE;
        } else if (v == OT_SEARCH_NEWER) {
            en->st[k] = D_DONE;
            ot_metrics_inc(OT_C_SEARCH_CONFLICTS, 1);
        } else if (v == OT_SEARCH_REFUSED) {
            ot_logf(OT_LOG_ERROR, "indexer: Elasticsearch refuses the %s document of seq %lld (order %s) for good: %lld %s; parked",
                    kind_name[k], (long long)en->m.seq, en->m.order, (long long)st, why);
            park(en, k, why[0] ? why : "refused without an error object");
        } /* OT_SEARCH_RETRY: stays pending, sent again */
    }
    ot_search_bulk_free(&ans);
    next_phase(ix, false);
}

static bool send_parks(ot_indexer *ix)
{
    batch *b = &ix->fly;
    ot_buf js = OT_BUF_INIT;
    ot_jw w;
    ot_jw_init(&w, &js);
    ot_jw_arr_open(&w);
    for (size_t i = 0; i < b->n; i++)
        for (int k = 0; k < NKINDS; k++)
            if (b->e[i].st[k] == D_PARK) {
                ot_jw_obj_open(&w);
                ot_jw_key(&w, "seq");
                ot_jw_int(&w, b->e[i].m.seq);
                ot_jw_key(&w, "kind");
                ot_jw_cstr(&w, kind_name[k]);
                ot_jw_key(&w, "order_id");
                ot_jw_cstr(&w, b->e[i].m.order);
                ot_jw_key(&w, "reason");
                ot_jw_cstr(&w, b->e[i].reason[k] ? b->e[i].reason[k] : "?");
                ot_jw_obj_close(&w);
            }
    ot_jw_arr_close(&w);
    bool ok = !ot_jw_error(&w) && ot_buf_append(&js, "", 1) >= 0;
    const char *vals[1] = { js.data };
    ix->pq = ok ? ot_pg_exec(ix->pg, "indexer_park", 1, vals, NULL, on_parked, ix) : NULL;
    ot_buf_free(&js);
    return ix->pq != NULL;
}

static ot_pg_query *send_lookup(ot_indexer *ix, batch *b, ot_pg_cb *cb)
{
    ot_buf ids = OT_BUF_INIT, vers = OT_BUF_INIT;
    bool ok = ot_buf_append(&ids, "{", 1) >= 0 && ot_buf_append(&vers, "{", 1) >= 0;
    for (size_t i = 0; i < b->n && ok; i++)
        ok = ot_buf_printf(&ids, "%s%s", i ? "," : "", b->e[i].m.order) >= 0 &&
             ot_buf_printf(&vers, "%s%lld", i ? "," : "", (long long)b->e[i].m.version) >= 0;
    ok = ok && ot_buf_append(&ids, "}", 2) >= 0 && ot_buf_append(&vers, "}", 2) >= 0; /* with the NUL */
    const char *vals[2] = { ids.data, vers.data };
    ot_pg_query *q = ok ? ot_pg_exec(ix->pg, "indexer_created", 2, vals, NULL, cb, ix) : NULL;
    ot_buf_free(&ids);
    ot_buf_free(&vers);
    return q;
}

static void fly_step(ot_indexer *ix)
{
    bool ok = true;
    switch (ix->phase) {
    case F_LOOKUP:
        ix->pq = send_lookup(ix, &ix->fly, on_created);
        ok = ix->pq != NULL;
        break;
    case F_SEND:
        ok = send_bulk(ix);
        break;
    case F_PARK:
        ok = send_parks(ix);
        break;
    default:
        return;
    }
    if (!ok)
        retry_later(ix, PG_RETRY_MS);
}

static void on_retry(ot_loop *loop, ot_timer *t)
{
    ot_indexer *ix = t->data;
    if (ix->setup != S_DONE)
        setup_step(ix);
    else if (!ix->sink && !ix->kfeed)
        add_sink(ix);
    else
        fly_step(ix);
}

/* ---- the batch being filled ---- */

static void flush(ot_indexer *ix)
{
    ot_timer_stop(ix->loop, &ix->flush_timer);
    if (ix->fill.n == 0)
        return;
    if (ix->fill_q) {
        ix->flush_wanted = true; /* the batch may not move under its lookup */
        return;
    }
    if (ix->phase != F_IDLE) {
        /* Busy: look the full batch up now, so it goes as soon as the
         * current one is done. */
        if (fill_full(ix) && !ix->fill.looked)
            ix->fill_q = send_lookup(ix, &ix->fill, on_fill_created);
        return;
    }
    batch t = ix->fly;
    ix->fly = ix->fill;
    ix->fill = t;
    ix->phase = ix->fly.looked ? F_SEND : F_LOOKUP;
    fly_step(ix);
}

static void on_flush(ot_loop *loop, ot_timer *t) { flush(t->data); }

static bool fill_full(const ot_indexer *ix)
{
    return ix->fill.n >= ix->cfg->es_bulk_max_events || ix->fill.arena.len >= ix->cfg->es_bulk_max_bytes;
}

void ot_indexer_meta(ot_search_doc_meta *m, char event_id[OT_UUID_TEXT], const ot_event *ev)
{
    *m = (ot_search_doc_meta){ .seq = ev->seq, .version = ev->version, .created_us = -1 };
    snprintf(m->order, sizeof m->order, "%.*s", (int)IX_MIN(ev->order_id.len, 36), ev->order_id.base);
    char ts[ISO_MAX];
    snprintf(ts, sizeof ts, "%.*s", (int)IX_MIN(ev->timestamp.len, ISO_MAX - 1), ev->timestamp.base);
    if (ot_iso8601_parse(ot_str_c(ts), &m->at_us) < 0)
        m->at_us = 0;
    snprintf(event_id, OT_UUID_TEXT, "%.*s", (int)IX_MIN(ev->event_id.len, 36), ev->event_id.base);
}

static bool fill_add(ot_indexer *ix, const ot_event *ev)
{
    batch *b = &ix->fill;
    if (!room((void **)&b->e, b->n, &b->cap, sizeof *b->e))
        return false;
    entry *en = &b->e[b->n];
    *en = (entry){ .off = b->arena.len, .len = ev->json.len };
    ot_indexer_meta(&en->m, en->event, ev);
    if (ot_buf_append(&b->arena, ev->json.base, ev->json.len) < 0)
        return false;
    /* ndjson: one line per document (jsonb text has no newline outside
     * strings, and a string cannot hold a raw one). */
    for (size_t i = en->off; i < b->arena.len; i++)
        if (b->arena.data[i] == '\n')
            b->arena.data[i] = ' ';
    b->n++;
    return true;
}

static size_t indexer_deliver(void *data, const ot_event *evs, size_t n)
{
    ot_indexer *ix = data;
    for (size_t i = 0; i < n; i++) {
        if (fill_full(ix))
            flush(ix); /* moves it in flight if nothing is */
        if (fill_full(ix) || !fill_add(ix, &evs[i])) {
            ix->sink_full = true;
            return i;
        }
    }
    if (fill_full(ix))
        flush(ix);
    else if (ix->fill.n > 0 && !ot_timer_active(&ix->flush_timer))
        ot_timer_start(ix->loop, &ix->flush_timer, ix->cfg->es_bulk_flush_ms);
    return n;
}

static const ot_sink_ops indexer_sink_ops = { .deliver = indexer_deliver };

static void add_sink(ot_indexer *ix)
{
    if (ix->sink || ix->kfeed)
        return;
    if (ix->cfg->kafka_brokers) {
        static const ot_search_feed_ops feed_ops = { .deliver = indexer_deliver };
        ix->kfeed = ot_search_feed_new(ix->loop, ix->cfg, ix->pg, ix->events, &feed_ops, ix);
    } else {
        ix->sink = ot_events_add_sink(ix->events, OT_INDEXER_SINK, &indexer_sink_ops, ix, true);
    }
    if (!ix->sink && !ix->kfeed) {
        ot_logf(OT_LOG_ERROR, "indexer: cannot set up its input; retrying");
        retry_later(ix, PG_RETRY_MS);
    }
}

/* ---- a reindex's next index (cmd/searchcli.c) ---- */

static void on_next(void *data, const ot_curl_result *res)
{
    ot_indexer *ix = data;
    ix->next_req = NULL;
    ot_timer_start(ix->loop, &ix->next_timer, ix->next_check_ms);
    if (res->curl_code)
        return; /* unknown: keep what we know */
    char was[sizeof ix->next];
    memcpy(was, ix->next, sizeof was);
    ix->next[0] = 0;
    /* {"<index>":{"aliases":{...}}}: the one key is the concrete index,
     * written directly so a swapped-away alias can never auto-create an
     * index of its name. */
    ot_json_tok toks[32];
    ot_json d;
    if (res->status == 200 && ot_json_parse(&d, res->body, res->body_len, toks, OT_ARRAY_LEN(toks)) == 0 &&
        ot_json_is_obj(&d, 0) && d.toks[0].size >= 1) {
        ot_str k = ot_json_raw(&d, 1);
        if (k.len < sizeof ix->next)
            snprintf(ix->next, sizeof ix->next, "%.*s", (int)k.len, k.base);
    }
    if (strcmp(was, ix->next) != 0)
        ot_logf(OT_LOG_INFO, "indexer: %s%s", ix->next[0] ? "also writing order documents to " : "reindex over",
                ix->next);
}

static void on_next_timer(ot_loop *loop, ot_timer *t)
{
    ot_indexer *ix = t->data;
    char url[URL_MAX + 128];
    snprintf(url, sizeof url, "%s/_alias/%s-orders-next", ix->base, ix->prefix);
    ix->next_req = ot_curl_send(ix->curl, "GET", url, NULL, NULL, 0, on_next, ix);
    if (!ix->next_req)
        ot_timer_start(loop, t, ix->next_check_ms);
}

/* ---- life cycle ---- */

ot_indexer *ot_indexer_new(ot_loop *loop, const ot_config *cfg, ot_events *events, ot_pg *pg)
{
    if (!cfg->elasticsearch_url || !events || !pg)
        return NULL;
    const char *prefix = cfg->es_index_prefix ? cfg->es_index_prefix : "ordertrack";
    size_t ul = strlen(cfg->elasticsearch_url);
    if (!ot_es_prefix_valid(prefix) || ul == 0 || ul >= URL_MAX) {
        ot_logf(OT_LOG_ERROR, "indexer: bad --es-index-prefix or --elasticsearch-url");
        return NULL;
    }
    ot_indexer *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    ix->loop = loop;
    ix->cfg = cfg;
    ix->events = events;
    ix->pg = pg;
    snprintf(ix->base, sizeof ix->base, "%s", cfg->elasticsearch_url);
    while (ul > 0 && ix->base[ul - 1] == '/')
        ix->base[--ul] = 0;
    snprintf(ix->prefix, sizeof ix->prefix, "%s", prefix);
    ot_curl_config cc;
    ot_curl_config_default(&cc);
    cc.timeout_ms = cfg->es_timeout_ms;
    ix->next_check_ms = cfg->es_reindex_check_ms;
    cc.max_retries = 1; /* the indexer retries on its own, forever */
    cc.max_host_conns = 2;
    ix->curl = ot_curl_new(loop, &cc);
    if (!ix->curl) {
        free(ix);
        return NULL;
    }
    ot_backoff_init(&ix->bo, 100, 5000);
    ot_timer_init(&ix->flush_timer, on_flush, ix);
    ot_timer_init(&ix->retry_timer, on_retry, ix);
    ot_timer_init(&ix->next_timer, on_next_timer, ix);
    ot_timer_start(loop, &ix->next_timer, ix->next_check_ms);
    ot_buf_init(&ix->fill.arena);
    ot_buf_init(&ix->fly.arena);
    ot_metrics_set(OT_G_ELASTICSEARCH_UP, 0);
    setup_step(ix);
    return ix;
}

void ot_indexer_free(ot_indexer *ix)
{
    if (!ix)
        return;
    ot_timer_stop(ix->loop, &ix->flush_timer);
    ot_timer_stop(ix->loop, &ix->retry_timer);
    ot_timer_stop(ix->loop, &ix->next_timer);
    if (ix->next_req)
        ot_curl_cancel(ix->next_req);
    if (ix->fill_q)
        ot_pg_cancel(ix->fill_q);
    if (ix->sink)
        ot_sink_remove(ix->sink);
    ot_search_feed_free(ix->kfeed);
    if (ix->req)
        ot_curl_cancel(ix->req);
    if (ix->pq)
        ot_pg_cancel(ix->pq);
    ot_curl_free(ix->curl);
    batch_free(&ix->fill);
    batch_free(&ix->fly);
    free(ix->acts);
    free(ix);
}

bool ot_indexer_ready(void *data)
{
    ot_indexer *ix = data;
    return ix->setup == S_DONE && (ix->sink || ix->kfeed) && ix->es_up;
}

bool ot_indexer_uses_kafka(const ot_indexer *ix) { return ix && ix->cfg->kafka_brokers; }

bool ot_indexer_kafka_ready(void *data) { return ot_search_feed_up(((ot_indexer *)data)->kfeed); }

void ot_indexer_sample(void *data)
{
    ot_indexer *ix = data;
    int64_t top = ot_events_watermark(ix->events) - 1;
    int64_t acked = ix->sink ? ot_sink_acked(ix->sink) : ot_search_feed_acked(ix->kfeed);
    if (ix->kfeed)
        ot_search_feed_sample(ix->kfeed);
    /* Before the sink loads its cursor, acked is 0: the gauge then shows the
     * whole log, which is what is unindexed as far as this worker knows. */
    ot_metrics_set(OT_G_SEARCH_BACKLOG, top > acked ? top - acked : 0);
    /* The oldest event not acknowledged is the first of the batch in flight,
     * or of the one filling (a full sink holds later ones only). */
    const batch *b = ix->fly.n ? &ix->fly : &ix->fill;
    int64_t at = b->n ? b->e[0].m.at_us : 0, now = ot_wall_us();
    ot_metrics_set(OT_G_SEARCH_LAG_MS, at > 0 && now > at ? (now - at) / 1000 : 0);
    ot_metrics_set(OT_G_ELASTICSEARCH_UP, ix->es_up ? 1 : 0);
}
