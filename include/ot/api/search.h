/* GET /search/orders, /search/orders/:id/history and /search/analytics: the
 * query side of the order log. This module checks every parameter, then
 * answers from PostgreSQL (the embedded default; sql/007_search.sql holds the
 * queries and their indexes), or, with ELASTICSEARCH_URL, hands orders and
 * history to search_es.h (analytics stay here).
 * A customer only ever sees their own orders; an admin sees all.
 *
 * Every answer carries "freshness":{"seq":N}: every event with seq <= N is
 * reflected in it. On PostgreSQL, N is the worker's event watermark - 1 read
 * before the query (the query's snapshot is taken later, so it holds them). */
#ifndef OT_SEARCH_H
#define OT_SEARCH_H

#include "ot/adapters/pg.h"
#include "ot/app/events.h"
#include "ot/core/config.h"
#include "ot/http/http.h"

/* Page size of GET /search/orders: 1..this, default 20. */
#define OT_SEARCH_LIMIT_MAX 100
#define OT_SEARCH_LIMIT_DEFAULT 20
/* Events listed per history answer; an order has at most 6 in its life cycle,
 * so this only bounds a corrupted log ("truncated" says so). */
#define OT_SEARCH_HISTORY_MAX 1000

extern const ot_pg_stmt ot_search_stmts[];
extern const size_t ot_search_nstmts;

/* Per worker (process): the SLA and limits from cfg, and the reader whose
 * watermark is the freshness (NULL: seq 0). Keeps both pointers. */
void ot_search_setup(const ot_config *cfg, const ot_events *events);

void ot_h_search_orders(ot_req *r);
void ot_h_search_history(ot_req *r);
void ot_h_search_analytics(ot_req *r);

#endif
