/* The event stream of one worker: committed order_events rows, delivered to
 * the hub exactly once each and strictly in `seq` order.
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
#include "ot/codec/event_json.h"

typedef struct ot_events ot_events;

/* What the reader needs of its worker (given by the wiring above it). */
typedef struct {
    ot_loop *loop;
    const ot_config *cfg; /* database_url, redis_url, jwt_secret (the event MAC key) */
    ot_pg *pg;            /* the worker's pool; NULL: no reader */
} ot_events_env;

/* Called for each event in seq order. The event's memory is valid only during the call. */
typedef void ot_event_sink(void *data, const ot_event *ev);

ot_events *ot_events_start(const ot_events_env *w, ot_event_sink *sink, void *sink_data);
void ot_events_free(ot_events *e);
/* A commit of this worker produced `event_json`: deliver locally now and, with
 * Redis, publish it to the other processes and hosts. */
void ot_events_committed(ot_events *e, ot_str event_json);
/* Every event with seq < watermark has been handed to the sink (or proven
 * never to exist). A resuming client replays (since, watermark) from the
 * database and then continues live, with no gap and no duplicate. */
int64_t ot_events_watermark(const ot_events *e);

/* Prepared statements this module needs in the worker's pool. */
extern const ot_pg_stmt ot_events_stmts[];
extern const size_t ot_events_nstmts;

#endif
