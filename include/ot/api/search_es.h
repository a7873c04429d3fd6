/* The Elasticsearch backend of GET /search/orders, /search/orders/:id/history
 * and /search/analytics (with ELASTICSEARCH_URL): the same JSON as the
 * PostgreSQL one (api/search.c checks every parameter before either runs),
 * read from the indices the search indexer writes (app/indexer.h).
 *
 * "freshness":{"seq":N}: N is the highest seq among the documents the
 * searched index shows (a max aggregation in the same request). The indexer
 * writes in seq order, one batch at a time, into one shard, so every event
 * up to N that can be indexed is visible too.
 *
 * One attempt per request, bounded by --es-timeout-ms: Elasticsearch away
 * (refused, timed out, 5xx, 429, index missing) is 503 with Retry-After,
 * never a hang. */
#ifndef OT_SEARCH_ES_H
#define OT_SEARCH_ES_H

#include "ot/core/config.h"
#include "ot/event/loop.h"
#include "ot/http/http.h"

/* Per worker: the HTTP client (NULL cfg->elasticsearch_url: nothing). OT_ERR
 * when the client cannot be made. */
int ot_search_es_setup(ot_loop *loop, const ot_config *cfg);
void ot_search_es_teardown(void);
/* Whether the ES backend answers (set up with a URL). */
bool ot_search_es_on(void);

/* The checked parameters of GET /search/orders: empty strings are absent
 * filters; UUIDs lower case; cur_us/cur_id the decoded cursor or "". */
typedef struct {
    const char *user, *status, *order;
    bool has_from, has_to;
    int64_t from_us, to_us;
    const char *cur_us, *cur_id;
    int limit;
} ot_search_es_orders_q;

void ot_search_es_orders(ot_req *r, const ot_search_es_orders_q *q);
/* id: the order id, lower case. */
void ot_search_es_history(ot_req *r, const char *id, int max);

/* GET /search/analytics with from/to resolved (defaults applied, bucket
 * count checked): one _msearch of three searches (orders in the range;
 * stints, from the events' prevStatus/prevUs/stintSeconds; delayed orders).
 * sla_s: CREATED, ACCEPTED, PREPARED, SHIPPED (0 = none). */
typedef struct {
    const char *user;
    int64_t from_us, to_us;
    bool hourly;
    uint32_t sla_s[4], delayed_max;
} ot_search_es_analytics_q;

void ot_search_es_analytics(ot_req *r, const ot_search_es_analytics_q *q);

#endif
