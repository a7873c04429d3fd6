/* The search indexer: keeps Elasticsearch in step with the event log (issue
 * #14). A durable event sink named "search" (sink.h) whose events go to
 * Elasticsearch's _bulk API through the libcurl adapter, in batches bounded by
 * --es-bulk-max-events, --es-bulk-max-bytes and --es-bulk-flush-ms, one batch
 * in flight at a time.
 *
 * Indices (prefix P = --es-index-prefix), set up at start, idempotently:
 *  - index template P: the mapping (orderId/userId/status keyword, timestamp
 *    date, items nested) for P-events-* and P-orders-*;
 *  - P-events, a write alias over P-events-000001 (rollover later): one
 *    document per event, _id = eventId, op "create" (a re-delivery is a 409);
 *  - P-orders, an alias over P-orders-000001: the latest state per order,
 *    _id = orderId, version_type=external with the order's version, so an
 *    older event never overwrites a newer one, whatever the delivery order.
 *
 * Every item of a bulk answer is read: 2xx and 409 are success (409 counted),
 * 429 and 5xx are sent again after an ot_backoff delay, anything else can
 * never be indexed and is recorded in search_parked (sql/009) with its reason,
 * logged and counted, before the cursor moves past it. The cursor
 * (ot_sink_ack) advances only past batches wholly indexed or parked. With
 * Elasticsearch away the batch is retried forever, the sink fills and falls
 * back to replay (memory bounded), the backlog gauge grows; nothing is lost.
 *
 * One indexer per deployment node: the wiring runs it on worker 0 only (the
 * master restarts a dead worker with the same index). Every write is
 * idempotent, so two of them at once (two nodes) cost work, never
 * correctness. */
#ifndef OT_APP_INDEXER_H
#define OT_APP_INDEXER_H

#include "ot/adapters/pg.h"
#include "ot/app/events.h"
#include "ot/codec/search_doc.h"
#include "ot/core/config.h"
#include "ot/event/loop.h"

#define OT_INDEXER_SINK "search"
#define OT_ES_PREFIX_MAX 64

typedef struct ot_indexer ot_indexer;

/* NULL without cfg->elasticsearch_url, or on a bad prefix (logged). pg: the
 * worker's pool, which holds ot_indexer_stmts. */
ot_indexer *ot_indexer_new(ot_loop *loop, const ot_config *cfg, ot_events *events, ot_pg *pg);
/* Before the event reader: the sink belongs to it. */
void ot_indexer_free(ot_indexer *ix);
/* ot_service callbacks: degraded (not required) while Elasticsearch is away. */
bool ot_indexer_ready(void *data);
void ot_indexer_sample(void *data);
/* Kafka mode: the input is the ordertrack-search group (search_feed.h), a
 * service of its own in /readyz (degraded while it is away). */
bool ot_indexer_uses_kafka(const ot_indexer *ix);
bool ot_indexer_kafka_ready(void *data);

/* Whether `p` may prefix index names (lowercase letters, digits, '-', '_',
 * not starting with '-' or '_', 1..OT_ES_PREFIX_MAX - 1 bytes). */
bool ot_es_prefix_valid(const char *p);

/* What `ordertrack search retry` (cmd/searchcli.c) needs to build the
 * documents exactly as the indexer does: */
#define OT_UUID_TEXT 37
/* The meta of an event before the lookup (ids, seq, version, its time). */
void ot_indexer_meta(ot_search_doc_meta *m, char event_id[OT_UUID_TEXT], const ot_event *ev);
/* Row r of the indexer_created lookup (ot_indexer_stmts[0]; column 1 says
 * which of its $1/$2 entries it answers, from 1) into that entry's meta. */
void ot_indexer_lookup_row(ot_search_doc_meta *m, const PGresult *res, int r);

extern const ot_pg_stmt ot_indexer_stmts[];
extern const size_t ot_indexer_nstmts;

#endif
