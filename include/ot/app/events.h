/* The event stream of one worker: committed order_events rows, delivered to
 * its sinks (sink.h: the hub, the Kafka relay, the search indexer) exactly
 * once each and strictly in `seq` order.
 *
 * Sources, all feeding one seq-ordered reader (evseq.h): the worker's own
 * commits (fed directly, lowest latency), Redis pub/sub (REDIS_URL; messages
 * sealed with an HMAC, forgeries dropped and counted), and tail queries on
 * order_events that fill gaps and backfill after any reconnect. PostgreSQL
 * LISTEN/NOTIFY on channel ot_events (embedded default) only wakes the tail:
 * the database does not authenticate who notifies. Sequence numbers are
 * allocated before commit, so they can become visible out of order: the
 * reader holds later events back until a gap is filled or proven permanent
 * (the transaction that owned the number rolled back), and a starting reader
 * begins below every seq still in flight (sql/004). */
#ifndef OT_EVENTS_H
#define OT_EVENTS_H

#include "ot/core/common.h"
#include "ot/core/config.h"
#include "ot/event/loop.h"
#include "ot/adapters/pg.h"
#include "ot/app/evseq.h"
#include "ot/app/sink.h"
#include "ot/codec/event_json.h"

typedef struct ot_events ot_events;

/* What the reader needs of its worker (given by the wiring above it). */
typedef struct {
    ot_loop *loop;
    const ot_config *cfg; /* database_url, redis_url, jwt_secret (the event MAC key) */
    ot_pg *pg;            /* the worker's pool; NULL: no reader */
} ot_events_env;

ot_events *ot_events_start(const ot_events_env *w);
/* Frees every sink too. */
void ot_events_free(ot_events *e);
/* A sink fed from now on (sink.h). durable: its position is kept in
 * ot_sink_cursors under `name`, read at start and replayed from (pages of
 * order_events below the watermark), then it follows live. Not durable: it
 * starts live at the reader's position. NULL without a database, on a bad
 * name or out of memory. Remove it with ot_sink_remove. */
ot_sink *ot_events_add_sink(ot_events *e, const char *name, const ot_sink_ops *ops, void *data, bool durable);
/* A commit of this worker produced `event_json`: deliver locally now and, with
 * Redis, publish it to the other processes and hosts. The event is parsed
 * here, once; *out (if not NULL) receives the parsed form (pointing into
 * event_json) so the handler need not parse it again. e may be NULL (no event
 * stream): the event is still parsed into *out. OT_ERR if unparsable (logged). */
int ot_events_committed(ot_events *e, ot_str event_json, ot_event *out);
/* A write that may append an event was just queued (ot_pg_exec): without
 * Redis, the other readers' wake-up goes right behind it on its connection
 * (sql/013), unless one is in flight already (then its commit is covered by
 * the next). e or write may be NULL. */
void ot_events_write_queued(ot_events *e, ot_pg_query *write);
/* Every event with seq < watermark has been handed to the sink (or proven
 * never to exist). A resuming client replays (since, watermark) from the
 * database and then continues live, with no gap and no duplicate. */
int64_t ot_events_watermark(const ot_events *e);
/* An event from the Kafka feed (app/kafka_feed.h), already checked: fed to the
 * same sequencer as every other source, so it reaches the sinks once and in
 * seq order (a seq below the watermark is a duplicate and dropped; one
 * already held behind a gap is held once). 1: it was new to this reader (at
 * or above the watermark), 0: a duplicate, OT_ERR: unparsable. */
int ot_events_feed_kafka(ot_events *e, ot_str event_json, int64_t *seq);

/* Why a reader keeps its LISTEN connection in Kafka mode (without
 * KAFKA_BROKERS it always does; with REDIS_URL it has none). LISTEN wakes
 * the tail of order_events, which the relay holder needs (it publishes what
 * the tail finds) and every worker needs while its Kafka feed is down; the
 * others learn of other processes' commits from Kafka and spare the database
 * one tail query per commit burst per worker. */
enum { OT_EV_LISTEN_RELAY = 1, OT_EV_LISTEN_FEED_DOWN = 2 };
void ot_events_want_listen(ot_events *e, unsigned why, bool on);
/* Whether the LISTEN connection is open (for tests and metrics). */
bool ot_events_listening(const ot_events *e);

/* Each sink's position, lag and counters into ot_metrics (the 1 s sampler). */
void ot_events_sample(ot_events *e);

/* An answer of the tail statements ev_tail / ev_read (ot_events_stmts, $1 =
 * the sequencer's next; ev_tail's $2 = the highest seq to read, or
 * OT_EVENTS_TAIL_ALL): each event row to `each` (which feeds it to s), in
 * seq order, then ot_evseq_tail_done with the query's xmin and xid. Returns
 * the event rows it held (a full page is OT_EVENTS_TAIL_PAGE: read again).
 * The search indexer's Kafka input fills its gaps the same way. */
#define OT_EVENTS_TAIL_PAGE 32
#define OT_EVENTS_TAIL_ALL ((uint64_t)INT64_MAX)
int ot_events_tail_feed(ot_evseq *s, const PGresult *res, void (*each)(void *data, const ot_event *ev), void *data);
/* Prepared statements this module needs in the worker's pool. */
extern const ot_pg_stmt ot_events_stmts[];
extern const size_t ot_events_nstmts;

#endif
