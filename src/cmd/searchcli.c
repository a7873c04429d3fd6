/* `ordertrack search reindex|parked|retry`: see searchcli.h. A CLI command: blocking
 * libpq and libcurl's easy interface. */
#include "ot/cmd/searchcli.h"

#include <curl/curl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ot/app/indexer.h"
#include "ot/codec/event_json.h"
#include "ot/codec/json.h"
#include "ot/codec/search_doc.h"
#include "ot/codec/uuid.h"
#include "ot/core/buf.h"
#include "ot/core/config.h"

#define PAGE 1000
/* Longer than two of the indexer's looks for the next alias (1 s apart).
 * Only an optimisation since the catch-up pass (step 5) exists: a late
 * notice costs more work there, never a missing order. */
#define NOTICE_MS 2500

static const char usage_text[] =
    "usage: ordertrack search reindex [--database-url URL] [--elasticsearch-url URL] [--es-index-prefix P]\n"
    "                                 [--wait-seconds N] [--notice-ms N] [--keep-old]\n"
    "       ordertrack search parked [--order ID | --seq N] [--database-url URL]\n"
    "       ordertrack search retry (--order ID | --seq N) [--database-url URL] [--elasticsearch-url URL]\n"
    "                               [--es-index-prefix P]\n"
    "reindex: builds a new orders index from PostgreSQL while the running indexer writes live events to it too,\n"
    "then moves the <P>-orders alias to it and deletes the old index (unless --keep-old).\n"
    "parked: the documents the indexer parked (search_parked: Elasticsearch refused them for good), one JSON\n"
    "line each: {seq, kind, orderId, reason, parkedAt}.\n"
    "retry: builds those documents again from PostgreSQL as the indexer does and sends them (order documents\n"
    "with version_type external: never over a newer state); the rows of the accepted ones are deleted. Prints\n"
    "{retried, indexed, newer, refused, parked}; exits 1 when something is refused again (the reason on stderr,\n"
    "its row kept). Fix the cause first (the mapping, the index settings).\n"
    "Defaults: $DATABASE_URL, $ELASTICSEARCH_URL, $ORDERTRACK_ES_INDEX_PREFIX (ordertrack); --wait-seconds 60:\n"
    "how long to wait for the indexer (it must be running) to take up the new index; --notice-ms 2500: how long\n"
    "the indexer is given to notice the new index before the position is recorded.\n";

/* --order / --seq of parked and retry: $1 and $2 of their queries, NULL for
 * the one not given. */
static const char *const Q_PARKED_LIST =
    "SELECT json_build_object('seq', seq, 'kind', kind, 'orderId', order_id, 'reason', reason, "
    "'parkedAt', ot_iso(parked_at))::text FROM search_parked "
    "WHERE ($1::uuid IS NULL OR order_id = $1::uuid) AND ($2::bigint IS NULL OR seq = $2::bigint) ORDER BY seq, kind";
static const char *const Q_PARKED_EVENTS =
    "SELECT p.seq, p.kind, ot_event_json(e)::text FROM search_parked p LEFT JOIN order_events e ON e.seq = p.seq "
    "WHERE ($1::uuid IS NULL OR p.order_id = $1::uuid) AND ($2::bigint IS NULL OR p.seq = $2::bigint) "
    "ORDER BY p.seq, p.kind";
static const char *const Q_PARKED_COUNT =
    "SELECT count(*) FROM search_parked "
    "WHERE ($1::uuid IS NULL OR order_id = $1::uuid) AND ($2::bigint IS NULL OR seq = $2::bigint)";
static const char *const Q_UNPARK =
    "DELETE FROM search_parked p USING unnest($1::bigint[], $2::text[]) AS x (seq, kind) "
    "WHERE p.seq = x.seq AND p.kind = x.kind";

typedef struct {
    const char *es;
    char prefix[OT_ES_PREFIX_MAX];
    long status;
    ot_buf body;
} cli;

static size_t on_data(char *p, size_t size, size_t n, void *data)
{
    return ot_buf_append(data, p, size * n) < 0 ? 0 : size * n;
}

/* One request; the answer in c->body (NUL-terminated), its status in
 * c->status (0: no answer). */
static int es(cli *c, const char *method, const char *path, const char *ctype, const char *body, size_t len)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->es, path);
    CURL *h = curl_easy_init();
    if (!h)
        return OT_ERR;
    struct curl_slist *hdr = NULL;
    char ct[64];
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        hdr = curl_slist_append(hdr, ct);
    }
    ot_buf_reset(&c->body);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->body);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CURLcode rc = curl_easy_perform(h);
    c->status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    else
        fprintf(stderr, "ordertrack search: %s %s: %s\n", method, url, curl_easy_strerror(rc));
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    ot_buf_append(&c->body, "", 1);
    c->body.len--;
    return rc == CURLE_OK ? 0 : OT_ERR;
}

/* The one index behind `alias` into out; 1 found, 0 none (404), -1 error. */
static int alias_index(cli *c, const char *alias, char *out, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "/_alias/%s", alias);
    if (es(c, "GET", path, NULL, NULL, 0) < 0)
        return -1;
    if (c->status == 404)
        return 0;
    ot_json_tok toks[64];
    ot_json d;
    if (c->status != 200 || ot_json_parse(&d, c->body.data, c->body.len, toks, 64) < 0 || !ot_json_is_obj(&d, 0) ||
        d.toks[0].size != 1) {
        fprintf(stderr, "ordertrack search: alias %s: unexpected answer %ld %.200s\n", alias, c->status, c->body.data);
        return -1;
    }
    ot_str k = ot_json_raw(&d, 1);
    snprintf(out, cap, "%.*s", (int)k.len, k.base);
    return 1;
}

static int64_t one_int(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    int64_t v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)
                    ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                    : -1;
    PQclear(r);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Whether a _bulk answer refused a document: every item must be 2xx or 409
 * (the live indexer already wrote a newer version). Prints the first refusal. */
static int bulk_refused(cli *c)
{
    ot_search_bulk ans;
    int n = c->status == 200 ? ot_search_bulk_parse(&ans, ot_str_make(c->body.data, c->body.len)) : OT_ERR;
    if (n < 0) {
        fprintf(stderr, "ordertrack search: _bulk %ld: unexpected answer %.400s\n", c->status, c->body.data);
        return OT_ERR;
    }
    ot_search_verdict v;
    int64_t st;
    char why[400];
    int rc = 0;
    while (rc == 0 && ot_search_bulk_next(&ans, &v, &st, why, sizeof why) > 0)
        if (v != OT_SEARCH_DONE && v != OT_SEARCH_NEWER) {
            fprintf(stderr, "ordertrack search: _bulk refused a document: %lld %s\n", (long long)st, why);
            rc = OT_ERR;
        }
    ot_search_bulk_free(&ans);
    return rc;
}

/* Bulk-indexes one page; 0, or OT_ERR on a refused document (printed). */
static int index_page(cli *c, const char *index, PGresult *r, int64_t *done)
{
    ot_buf b = OT_BUF_INIT;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        ot_search_doc_meta m = { .version = strtoll(PQgetvalue(r, i, 1), NULL, 10),
                                 .created_us = strtoll(PQgetvalue(r, i, 3), NULL, 10),
                                 .seq = PQgetisnull(r, i, 6) ? 0 : strtoll(PQgetvalue(r, i, 6), NULL, 10) };
        snprintf(m.order, sizeof m.order, "%s", PQgetvalue(r, i, 0));
        snprintf(m.created, sizeof m.created, "%s", PQgetvalue(r, i, 2));
        snprintf(m.updated, sizeof m.updated, "%s", PQgetvalue(r, i, 4));
        rc |= ot_search_bulk_order(&b, index, &m, ot_str_make(PQgetvalue(r, i, 5), (size_t)PQgetlength(r, i, 5))) < 0;
    }
    if (rc == 0 && b.len > 0) {
        rc = es(c, "POST", "/_bulk", "application/x-ndjson", b.data, b.len);
        if (rc == 0 && bulk_refused(c) != 0)
            rc = OT_ERR;
    }
    *done += PQntuples(r);
    ot_buf_free(&b);
    return rc ? OT_ERR : 0;
}

/* The snapshot copy: every order as of one REPEATABLE READ snapshot (with
 * after >= 0: only the orders with an event above seq `after`), each with the
 * seq of its current version's event. */
static int copy_orders(cli *c, PGconn *pg, const char *index, int64_t after, int64_t *n)
{
    PGresult *r = PQexec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : OT_ERR;
    PQclear(r);
    char where[128], sql[1024];
    snprintf(where, sizeof where, " WHERE o.id IN (SELECT order_id FROM order_events WHERE seq > %lld)",
             (long long)after);
    snprintf(sql, sizeof sql, "DECLARE ot_reindex NO SCROLL CURSOR FOR SELECT o.id::text, o.version, ot_iso(o.created_at), "
                   "ot_ts_us(o.created_at), ot_iso(o.updated_at), json_build_object('userId', o.user_id, 'status', "
                   "o.status, 'timestamp', ot_iso(o.updated_at), 'payload', json_build_object('items', o.items))::text, "
                   "(SELECT e.seq FROM order_events e WHERE e.order_id = o.id AND e.version = o.version) FROM orders o%s",
                   after >= 0 ? where : "");
    r = PQexec(pg, sql);
    rc |= PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : OT_ERR;
    PQclear(r);
    while (rc == 0) {
        r = PQexec(pg, "FETCH 1000 FROM ot_reindex"); /* PAGE */
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "ordertrack search: %s", PQerrorMessage(pg));
            rc = OT_ERR;
        } else if (PQntuples(r) == 0) {
            PQclear(r);
            break;
        } else {
            rc = index_page(c, index, r, n);
        }
        PQclear(r);
    }
    PQclear(PQexec(pg, rc == 0 ? "COMMIT" : "ROLLBACK"));
    return rc;
}

static int reindex(cli *c, PGconn *pg, bool keep_old, int wait_s, long notice_ms)
{
    char orders[OT_ES_PREFIX_MAX + 16], next[OT_ES_PREFIX_MAX + 16], old[256], busy[256], fresh[128];
    snprintf(orders, sizeof orders, "%s-orders", c->prefix);
    snprintf(next, sizeof next, "%s-orders-next", c->prefix);
    int a = alias_index(c, orders, old, sizeof old);
    if (a <= 0) {
        if (a == 0)
            fprintf(stderr, "ordertrack search: no alias %s (start the server with ELASTICSEARCH_URL first)\n", orders);
        return 1;
    }
    a = alias_index(c, next, busy, sizeof busy);
    if (a != 0) {
        if (a > 0)
            fprintf(stderr, "ordertrack search: a reindex is running (%s -> %s); delete that index if it is stale\n",
                    next, busy);
        return 1;
    }
    /* 1. The new index, under the alias the indexer looks for. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(fresh, sizeof fresh, "%s-orders-r%lld", c->prefix, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    char path[320], body[1536];
    snprintf(path, sizeof path, "/%s", fresh);
    snprintf(body, sizeof body, "{\"aliases\":{\"%s\":{}}}", next);
    if (es(c, "PUT", path, "application/json", body, strlen(body)) < 0 || c->status != 200) {
        fprintf(stderr, "ordertrack search: creating %s: %ld %.300s\n", fresh, c->status, c->body.data);
        return 1;
    }
    /* 2. The recorded position: once the indexer's cursor passes the last
     * seq after it has noticed, every later event goes to the new index too. */
    sleep_ms(notice_ms);
    int64_t pos = one_int(pg, "SELECT coalesce(max(seq), 0) FROM order_events"), cur = -1;
    for (long waited = 0; waited <= (long)wait_s * 1000; waited += 100) {
        cur = one_int(pg, "SELECT seq FROM ot_sink_cursors WHERE name = '" OT_INDEXER_SINK "'");
        if (cur >= pos)
            break;
        sleep_ms(100);
    }
    int64_t n = 0;
    if (pos < 0 || cur < pos) {
        fprintf(stderr, "ordertrack search: the indexer's cursor is at %lld, not %lld, after %d s: is a server with "
                        "ELASTICSEARCH_URL running? (the new index %s is left for inspection)\n",
                (long long)cur, (long long)pos, wait_s, fresh);
        return 1;
    }
    /* 3. The copy, then 4. the swap, in one atomic _aliases call. */
    if (copy_orders(c, pg, fresh, -1, &n) < 0)
        return 1;
    snprintf(body, sizeof body,
             "{\"actions\":[{\"remove\":{\"index\":\"%s\",\"alias\":\"%s\"}},{\"add\":{\"index\":\"%s\",\"alias\":\"%s\","
             "\"is_write_index\":true}},{\"remove\":{\"index\":\"%s\",\"alias\":\"%s\"}}]}",
             old, orders, fresh, orders, fresh, next);
    if (es(c, "POST", "/_aliases", "application/json", body, strlen(body)) < 0 || c->status != 200) {
        fprintf(stderr, "ordertrack search: alias swap: %ld %.300s\n", c->status, c->body.data);
        return 1;
    }
    /* 5. Catch-up: an event the indexer sent to the old index alone (it
     * noticed the new one late: a slow look on a loaded node) committed
     * before the swap, so a snapshot taken now holds its order; everything
     * committed later reaches the new index through the alias. External
     * versions make the repeat harmless. */
    int64_t again = 0;
    if (copy_orders(c, pg, fresh, pos, &again) < 0)
        return 1;
    if (!keep_old) {
        snprintf(path, sizeof path, "/%s", old);
        if (es(c, "DELETE", path, NULL, NULL, 0) < 0 || c->status != 200)
            fprintf(stderr, "ordertrack search: deleting %s: %ld (left in place)\n", old, c->status);
    }
    printf("{\"old\":\"%s\",\"new\":\"%s\",\"orders\":%lld,\"position\":%lld,\"oldDeleted\":%s}\n", old, fresh,
           (long long)n, (long long)pos, keep_old ? "false" : "true");
    return 0;
}

/* ---- parked documents ---- */

static int parked(PGconn *pg, const char *const sel[2])
{
    PGresult *r = PQexecParams(pg, Q_PARKED_LIST, 2, NULL, sel, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : 1;
    if (rc)
        fprintf(stderr, "ordertrack search: %s", PQerrorMessage(pg));
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        printf("%s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    return rc;
}

/* One parked document to send again. */
typedef struct {
    char seq[24], kind[8], event[OT_UUID_TEXT];
    ot_search_doc_meta m;
    ot_event ev;
    bool sent;
} retry_doc;

/* The lookup the indexer makes (ot_indexer_stmts[0]: createdAt, updatedAt
 * and the stint the event ends) for every document with an event. */
static int retry_lookup(PGconn *pg, retry_doc *d, int n)
{
    ot_buf ids = OT_BUF_INIT, vers = OT_BUF_INIT;
    int rc = ot_buf_append_str(&ids, "{") | ot_buf_append_str(&vers, "{");
    for (int i = 0; i < n; i++)
        rc |= ot_buf_printf(&ids, "%s%s", i ? "," : "",
                            d[i].m.order[0] ? d[i].m.order : "00000000-0000-0000-0000-000000000000") |
              ot_buf_printf(&vers, "%s%lld", i ? "," : "", (long long)d[i].m.version);
    rc |= ot_buf_append(&ids, "}", 2) | ot_buf_append(&vers, "}", 2); /* with the NUL */
    const char *vals[2] = { ids.data, vers.data };
    PGresult *r = rc == 0 ? PQexecParams(pg, ot_indexer_stmts[0].sql, 2, NULL, vals, NULL, NULL, 0) : NULL;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "ordertrack search: lookup: %s", PQerrorMessage(pg));
        rc = OT_ERR;
    }
    for (int k = 0; rc == 0 && k < PQntuples(r); k++) {
        long long i = strtoll(PQgetvalue(r, k, 1), NULL, 10);
        if (i >= 1 && i <= n)
            ot_indexer_lookup_row(&d[i - 1].m, r, k);
    }
    PQclear(r);
    ot_buf_free(&ids);
    ot_buf_free(&vers);
    return rc ? OT_ERR : 0;
}

/* Sends the documents in one _bulk; the accepted ones (2xx, or 409: the
 * event, or a newer order state, is there) are marked sent, the others'
 * reasons printed. An order document goes also to `next` (the index a
 * running reindex builds, as the indexer writes it there; NULL: none) and is
 * sent only once both took it. Counts into n[0] indexed, n[1] newer, n[2]
 * refused, per document. */
static int retry_send(cli *c, retry_doc *d, int nd, const char *next, int n[3])
{
    ot_buf body = OT_BUF_INIT;
    int *act = calloc((size_t)nd * 2 + 1, sizeof *act), nact = 0, rc = act ? 0 : OT_ERR;
    /* Per document: actions sent, accepted, accepted as done (not newer). */
    int *want = calloc((size_t)nd + 1, sizeof *want), *got = calloc((size_t)nd + 1, sizeof *got),
        *done = calloc((size_t)nd + 1, sizeof *done);
    if (!want || !got || !done)
        rc = OT_ERR;
    char index[OT_ES_PREFIX_MAX + 16];
    for (int i = 0; rc == 0 && i < nd; i++) {
        if (!d[i].ev.json.base)
            continue;
        ot_str json = d[i].ev.json;
        bool ev = !strcmp(d[i].kind, "events");
        snprintf(index, sizeof index, "%s-%s", c->prefix, ev ? "events" : "orders");
        int before = nact;
        for (int k = 0; k < (ev || !next ? 1 : 2); k++)
            if ((ev ? ot_search_bulk_event(&body, index, d[i].event, &d[i].m, json)
                    : ot_search_bulk_order(&body, k ? next : index, &d[i].m, json)) == 0)
                act[nact++] = i;
        if (nact == before) {
            fprintf(stderr, "ordertrack search: seq %s (%s): %s\n", d[i].seq, d[i].kind, OT_SEARCH_NOT_AN_EVENT);
            n[2]++;
        }
        want[i] = nact - before;
    }
    if (rc == 0 && nact > 0)
        rc = es(c, "POST", "/_bulk?filter_path=items.*.status,items.*.error", "application/x-ndjson", body.data,
                body.len);
    ot_buf_free(&body);
    ot_search_bulk ans;
    int items = rc == 0 && nact > 0 && c->status == 200
                    ? ot_search_bulk_parse(&ans, ot_str_make(c->body.data, c->body.len))
                    : OT_ERR;
    if (rc == 0 && nact > 0 && items != nact) {
        fprintf(stderr, "ordertrack search: _bulk %ld: unexpected answer %.400s\n", c->status, c->body.data);
        if (items >= 0)
            ot_search_bulk_free(&ans);
        rc = OT_ERR;
    } else if (rc == 0 && nact > 0) {
        ot_search_verdict v;
        int64_t st;
        char why[400];
        for (int a = 0; ot_search_bulk_next(&ans, &v, &st, why, sizeof why) > 0; a++) {
            int i = act[a];
            if (v == OT_SEARCH_DONE || v == OT_SEARCH_NEWER) {
                got[i]++;
                done[i] += v == OT_SEARCH_DONE;
            } else {
                fprintf(stderr, "ordertrack search: seq %s (%s) refused again: %lld %s%s\n", d[i].seq, d[i].kind,
                        (long long)st, why, v == OT_SEARCH_RETRY ? " (Elasticsearch busy: try again later)" : "");
            }
        }
        ot_search_bulk_free(&ans);
        for (int i = 0; i < nd; i++) {
            if (!want[i])
                continue;
            d[i].sent = got[i] == want[i];
            n[!d[i].sent ? 2 : done[i] ? 0 : 1]++;
        }
    }
    free(act);
    free(want);
    free(got);
    free(done);
    return rc;
}

/* Deletes the rows of the documents sent. */
static int unpark(PGconn *pg, const retry_doc *d, int nd)
{
    ot_buf seqs = OT_BUF_INIT, kinds = OT_BUF_INIT;
    int rc = ot_buf_append_str(&seqs, "{") | ot_buf_append_str(&kinds, "{"), k = 0;
    for (int i = 0; i < nd; i++)
        if (d[i].sent) {
            rc |= ot_buf_printf(&seqs, "%s%s", k ? "," : "", d[i].seq) |
                  ot_buf_printf(&kinds, "%s%s", k ? "," : "", d[i].kind);
            k++;
        }
    rc |= ot_buf_append(&seqs, "}", 2) | ot_buf_append(&kinds, "}", 2);
    const char *vals[2] = { seqs.data, kinds.data };
    PGresult *r = rc == 0 && k > 0 ? PQexecParams(pg, Q_UNPARK, 2, NULL, vals, NULL, NULL, 0) : NULL;
    if (k > 0 && (!r || PQresultStatus(r) != PGRES_COMMAND_OK)) {
        fprintf(stderr, "ordertrack search: indexed, but not removed from search_parked: %s", PQerrorMessage(pg));
        rc = OT_ERR;
    }
    PQclear(r);
    ot_buf_free(&seqs);
    ot_buf_free(&kinds);
    return rc ? OT_ERR : 0;
}

static int retry(cli *c, PGconn *pg, const char *const sel[2])
{
    PGresult *r = PQexecParams(pg, Q_PARKED_EVENTS, 2, NULL, sel, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "ordertrack search: %s", PQerrorMessage(pg));
        PQclear(r);
        return 1;
    }
    int nd = PQntuples(r), n[3] = { 0, 0, 0 };
    if (nd == 0) {
        fprintf(stderr, "ordertrack search: nothing parked for %s %s\n", sel[0] ? "order" : "seq",
                sel[0] ? sel[0] : sel[1]);
        PQclear(r);
        return 1;
    }
    retry_doc *d = calloc((size_t)nd, sizeof *d);
    if (!d) {
        PQclear(r);
        return 1;
    }
    for (int i = 0; i < nd; i++) {
        snprintf(d[i].seq, sizeof d[i].seq, "%s", PQgetvalue(r, i, 0));
        snprintf(d[i].kind, sizeof d[i].kind, "%s", PQgetvalue(r, i, 1));
        char *text = PQgetvalue(r, i, 2);
        size_t len = (size_t)PQgetlength(r, i, 2);
        for (size_t k = 0; k < len; k++)
            if (text[k] == '\n')
                text[k] = ' '; /* ndjson, as the indexer does: a newline is only whitespace in valid JSON */
        ot_str json = ot_str_make(text, len);
        /* The event points into r, which lives until the end. */
        if (PQgetisnull(r, i, 2) || ot_event_parse(json, &d[i].ev) < 0) {
            fprintf(stderr, "ordertrack search: seq %s (%s): %s\n", d[i].seq, d[i].kind,
                    PQgetisnull(r, i, 2) ? "the event is no longer in order_events" : "unparsable event");
            d[i].ev.json = OT_STR_NULL;
            n[2]++;
            continue;
        }
        ot_indexer_meta(&d[i].m, d[i].event, &d[i].ev);
    }
    int rc = retry_lookup(pg, d, nd);
    /* A reindex running: its new index gets the order documents too. */
    char alias[OT_ES_PREFIX_MAX + 16], next[OT_ES_PREFIX_MAX + 64];
    snprintf(alias, sizeof alias, "%s-orders-next", c->prefix);
    int has_next = rc == 0 ? alias_index(c, alias, next, sizeof next) : 0;
    if (has_next < 0)
        rc = OT_ERR;
    rc = rc == 0 ? retry_send(c, d, nd, has_next == 1 ? next : NULL, n) : rc;
    rc |= unpark(pg, d, nd);
    free(d);
    PQclear(r);
    r = PQexecParams(pg, Q_PARKED_COUNT, 2, NULL, sel, NULL, NULL, 0);
    long long left = PQresultStatus(r) == PGRES_TUPLES_OK ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    if (rc == 0)
        printf("{\"retried\":%d,\"indexed\":%d,\"newer\":%d,\"refused\":%d,\"parked\":%lld}\n", nd, n[0], n[1], n[2],
               left);
    return rc == 0 && n[2] == 0 ? 0 : 1;
}

int ot_search_cli_main(int argc, char **argv)
{
    bool help = argc >= 2 && !strcmp(argv[1], "--help");
    const char *cmd = argc >= 2 ? argv[1] : "";
    if (strcmp(cmd, "reindex") && strcmp(cmd, "parked") && strcmp(cmd, "retry")) {
        fputs(usage_text, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    const char *db = getenv("DATABASE_URL"), *prefix = getenv("ORDERTRACK_ES_INDEX_PREFIX");
    cli c = { .es = getenv("ELASTICSEARCH_URL") };
    bool keep_old = false;
    uint64_t wait_s = 60, notice_ms = NOTICE_MS, seq = 0;
    const char *sel[2] = { NULL, NULL }; /* --order, --seq */
    char seqtext[24];
    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--keep-old")) {
            keep_old = true;
        } else if (!strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (v && !strcmp(argv[i], "--database-url")) {
            db = argv[++i];
        } else if (v && !strcmp(argv[i], "--elasticsearch-url")) {
            c.es = argv[++i];
        } else if (v && !strcmp(argv[i], "--es-index-prefix")) {
            prefix = argv[++i];
        } else if (v && !strcmp(argv[i], "--order")) {
            sel[0] = argv[++i];
            if (!ot_uuid_valid(ot_str_c(sel[0]))) {
                fprintf(stderr, "ordertrack search: --order: %s is not an order id (a UUID)\n", sel[0]);
                return 2;
            }
        } else if (v && !strcmp(argv[i], "--seq")) {
            if (ot_config_parse_uint(argv[++i], INT64_MAX, &seq) < 0 || seq == 0) {
                fprintf(stderr, "ordertrack search: --seq: an event's seq (1..%lld)\n", (long long)INT64_MAX);
                return 2;
            }
            snprintf(seqtext, sizeof seqtext, "%llu", (unsigned long long)seq);
            sel[1] = seqtext;
        } else if (v && !strcmp(argv[i], "--wait-seconds")) {
            if (ot_config_parse_uint(argv[++i], 3600, &wait_s) < 0) {
                fprintf(stderr, "ordertrack search: --wait-seconds: 0..3600\n");
                return 2;
            }
        } else if (v && !strcmp(argv[i], "--notice-ms")) {
            if (ot_config_parse_uint(argv[++i], 60000, &notice_ms) < 0) {
                fprintf(stderr, "ordertrack search: --notice-ms: 0..60000\n");
                return 2;
            }
        } else {
            fprintf(stderr, "ordertrack search: unknown or incomplete option %s\n%s", argv[i], usage_text);
            return 2;
        }
    }
    bool is_reindex = !strcmp(cmd, "reindex"), is_retry = !strcmp(cmd, "retry");
    if ((sel[0] || sel[1]) && is_reindex) {
        fprintf(stderr, "ordertrack search: --order and --seq are options of parked and retry\n");
        return 2;
    }
    if (is_retry && !sel[0] == !sel[1]) {
        fprintf(stderr, "ordertrack search: retry takes one of --order ID or --seq N\n%s", usage_text);
        return 2;
    }
    if (ot_secret_resolve(&db, getenv("DATABASE_URL_FILE"), "DATABASE_URL", "database_url") < 0)
        return 1;
    snprintf(c.prefix, sizeof c.prefix, "%s", prefix ? prefix : "ordertrack");
    bool needs_es = is_reindex || is_retry;
    if (!db || (needs_es && (!c.es || !ot_es_prefix_valid(c.prefix)))) {
        fprintf(stderr, "ordertrack search: needs a database%s\n%s",
                needs_es ? ", an Elasticsearch URL and a valid index prefix" : "", usage_text);
        return 2;
    }
    PGconn *pg = PQconnectdb(db);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "ordertrack search: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = is_reindex ? reindex(&c, pg, keep_old, (int)wait_s, (long)notice_ms)
             : is_retry ? retry(&c, pg, sel)
                        : parked(pg, sel);
    ot_buf_free(&c.body);
    PQfinish(pg);
    curl_global_cleanup();
    return rc;
}
