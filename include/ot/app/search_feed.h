/* The search indexer's input in Kafka mode (KAFKA_BROKERS with
 * ELASTICSEARCH_URL): consumer group <prefix>ordertrack-search on
 * <prefix>order.events, instead of the event reader's durable sink that the
 * indexer follows without Kafka (indexer.h).
 *
 * Order. Kafka orders messages within a partition only, and the indexer needs
 * them in seq order across all of them: its order documents are conditional
 * on the order's version (any order would do), but freshness.seq (the highest
 * seq an index shows) promises that every lower seq is in it, and asOf
 * snapshots rely on that. So messages go through a sequencer of our own
 * (evseq.h) that hands the indexer each seq once, in order, from seq cursor+1
 * on. A gap (an event whose partition lags, or that Kafka does not have: a
 * relay-parked order, a topic whose retention dropped it, a rolled-back seq)
 * is filled from PostgreSQL with the event reader's own tail query and its
 * rollback proof, after a short wait for Kafka to bring it; so is a stream
 * that stalls for 3 s (10 s while the consumer has no partitions) while this worker's event reader knows of later
 * events (Kafka away: search keeps up from PostgreSQL, at tail-query pace).
 * PostgreSQL stays the source of truth: Kafka is the transport that spares it
 * the reads.
 *
 * Progress. A partition's offset is stored (and committed by librdkafka
 * within a second) only once the indexer has acknowledged every event up to
 * the seq of that partition's last message: indexed or parked, not merely
 * received. The acknowledged seq is also written to ot_sink_cursors under
 * "search" (coalesced, one write in flight), where the sequencer starts after
 * a restart and where the PostgreSQL-only indexer would continue from. A
 * crash repeats at most the unacknowledged tail: the group's committed
 * offsets give those messages again (anything below the cursor is dropped as
 * a duplicate), a cursor behind the offsets leaves a gap that PostgreSQL
 * fills. Documents are idempotent (indexer.h), so a repeat costs work only.
 *
 * Back-pressure: when the indexer takes fewer events than it is offered, the
 * rest wait here and every assigned partition is paused (ot_kafka_pause) until
 * the indexer asks for more; librdkafka then fetches again from where we
 * stopped, so memory stays bounded by its prefetch (--kafka-... defaults) and
 * the sequencer's hold limit.
 *
 * One member per deployment is the intended shape (the indexer runs on worker
 * 0 of a node). It is a static member (group.instance.id = group-host), so a
 * restarted node takes its partitions back at once. Several nodes' members
 * split the partitions; each fills the rest of the stream from PostgreSQL,
 * so all stay correct and only repeat work. Two servers on one host with one
 * topic prefix share the id: the newer fences the older, whose indexer then
 * stops (logged) while the newer goes on. */
#ifndef OT_APP_SEARCH_FEED_H
#define OT_APP_SEARCH_FEED_H

#include "ot/adapters/pg.h"
#include "ot/app/events.h"
#include "ot/codec/event_json.h"
#include "ot/core/config.h"
#include "ot/event/loop.h"

typedef struct ot_search_feed ot_search_feed;

typedef struct {
    /* Events in seq order (the contract of ot_sink_ops.deliver): returns how
     * many of n it took; fewer means full until ot_search_feed_wake. */
    size_t (*deliver)(void *data, const ot_event *evs, size_t n);
} ot_search_feed_ops;

#define OT_SEARCH_GROUP "ordertrack-search"

/* NULL without cfg->kafka_brokers, or on a consumer set-up error (logged).
 * pg: the worker's pool (it holds ot_events_stmts and ot_sink_stmts). */
ot_search_feed *ot_search_feed_new(ot_loop *loop, const ot_config *cfg, ot_pg *pg, ot_events *events,
                                   const ot_search_feed_ops *ops, void *data);
void ot_search_feed_free(ot_search_feed *f);
/* Every event with seq <= seq is indexed (or parked). */
void ot_search_feed_ack(ot_search_feed *f, int64_t seq);
/* Room again: what waits is offered from the loop, never from this call. */
void ot_search_feed_wake(ot_search_feed *f);
int64_t ot_search_feed_acked(const ot_search_feed *f);
/* Whether the consumer is in its group with partitions (a service's ready). */
bool ot_search_feed_up(const ot_search_feed *f);
/* The 1 s sampler: offsets due, the up gauge. */
void ot_search_feed_sample(ot_search_feed *f);

#endif
