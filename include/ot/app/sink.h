/* Event sinks: what the event reader (events.h) feeds. The hub is one; the
 * Kafka relay and the search indexer are others. Each sink gets every
 * committed event exactly once per run, in seq order, at its own pace:
 *
 *  - live: events come as the reader delivers them. A sink that takes fewer
 *    than it is offered is "full"; later events are held for it (bounded: at
 *    most max_events and max_bytes) until it calls ot_sink_wake. Past the
 *    bound the held events are dropped and the sink falls back to replay:
 *    memory stays bounded, nothing is lost.
 *  - replay: events above the sink's position are read from order_events in
 *    pages, only below the reader's watermark (those rows are final: committed
 *    or rolled back for good, exactly what a WebSocket resume relies on), until
 *    the position reaches the watermark; then the sink is live again.
 *  - durable: the position is also kept in PostgreSQL (ot_sink_cursors,
 *    sql/006) as far as the sink acknowledged (ot_sink_ack), read at start,
 *    and replayed from. A crash repeats only unacknowledged events. A name
 *    with no row starts at 0: the whole outbox. One sink per durable name at
 *    a time across the deployment (the relay holds a lock for that); the
 *    stored seq only grows, so a late write of a former holder is harmless.
 *    A non-durable sink starts at the reader's live position.
 *
 * The group (ot_sinks) is pure logic on a loop: its I/O goes through an
 * ot_sink_store (PostgreSQL in the server, a model in tests/unit/test_sink.c). */
#ifndef OT_APP_SINK_H
#define OT_APP_SINK_H

#include "ot/adapters/pg.h"
#include "ot/codec/event_json.h"
#include "ot/core/common.h"
#include "ot/event/loop.h"

typedef struct ot_sink ot_sink;
typedef struct ot_sinks ot_sinks;

typedef struct ot_sink_ops {
    /* Events in seq order, each with seq above the sink's position. Returns
     * how many of n it took (fewer = full: the sink calls ot_sink_wake when it
     * has room again). Event memory is valid only during the call. It may call
     * ot_sink_ack, ot_sink_wake and ot_sink_remove (of itself). */
    size_t (*deliver)(void *data, const ot_event *evs, size_t n);
} ot_sink_ops;

/* All events <= seq are durable downstream: the stored cursor may advance
 * (writes coalesced, one in flight). Ignored for a non-durable sink. */
void ot_sink_ack(ot_sink *s, int64_t seq);
/* Room again: deliver what is pending (held live events or replay pages),
 * from the loop, never from inside this call. */
void ot_sink_wake(ot_sink *s);
/* Stops deliveries at once (safe from inside deliver); pending cursor writes
 * are abandoned (the next holder replays a little more). */
void ot_sink_remove(ot_sink *s);

/* Every seq <= this was handed to the sink (or never existed). */
int64_t ot_sink_position(const ot_sink *s);
/* The last acknowledged seq (durable sinks: what the store holds or will). */
int64_t ot_sink_acked(const ot_sink *s);
/* Live (caught up with the reader) rather than loading or replaying. */
bool ot_sink_live(const ot_sink *s);
const char *ot_sink_name(const ot_sink *s);

/* ---- the group, driven by the event reader ---- */

/* Asynchronous I/O of a group. Each call starts one request and returns a
 * handle (NULL: it could not start; the sink retries after a delay); its
 * result comes back later, from the loop, through ot_sink_fetched /
 * ot_sink_loaded / ot_sink_saved, unless it was cancelled first. */
typedef struct ot_sink_store {
    void *ctx;
    /* Events with after < seq < before, in seq order, at most limit. */
    void *(*fetch)(void *ctx, ot_sink *s, int64_t after, int64_t before, size_t limit);
    void *(*load)(void *ctx, ot_sink *s, const char *name);
    /* Raise the stored cursor of `name` to seq (never lower it). */
    void *(*save)(void *ctx, ot_sink *s, const char *name, int64_t seq);
    void (*cancel)(void *ctx, void *req);
} ot_sink_store;

/* complete: the page held every row of the range (fewer than limit). */
void ot_sink_fetched(ot_sink *s, bool ok, const ot_event *evs, size_t n, bool complete);
void ot_sink_loaded(ot_sink *s, bool ok, bool found, int64_t seq);
void ot_sink_saved(ot_sink *s, bool ok);

typedef struct {
    size_t max_events; /* held per full live sink before falling back to replay */
    size_t max_bytes;  /* ... and their JSON bytes */
    size_t page;       /* events per replay query */
    uint32_t retry_ms; /* after a failed store request */
} ot_sink_limits;

#define OT_SINK_NAME_MAX 64

struct ot_sinks {
    ot_loop *loop;
    ot_sink_store store;
    ot_sink_limits lim;
    /* The reader's watermark: every seq below it was fed (or never existed),
     * 0 until the reader has found its start. */
    int64_t watermark;
    ot_sink *head;
};

void ot_sinks_init(ot_sinks *g, ot_loop *loop, const ot_sink_store *store, const ot_sink_limits *lim);
/* Removes every sink. */
void ot_sinks_free(ot_sinks *g);
/* NULL on allocation failure or a name longer than OT_SINK_NAME_MAX - 1. */
ot_sink *ot_sinks_add(ot_sinks *g, const char *name, const ot_sink_ops *ops, void *data, bool durable);
/* One event, in seq order, as the reader delivers it; the watermark becomes seq + 1. */
void ot_sinks_feed(ot_sinks *g, const ot_event *ev);
/* The watermark moved without an event (the reader started, or skipped a
 * rolled-back seq): replaying sinks may read further. */
void ot_sinks_advance(ot_sinks *g, int64_t watermark);
/* Push each sink's position, lag and counters into ot_metrics. */
void ot_sinks_sample(ot_sinks *g);

/* The PostgreSQL store: order_events and ot_sink_cursors through the pool.
 * Its statements go into the worker's statement table. */
void ot_sink_store_pg(ot_sink_store *st, ot_pg *pg);
extern const ot_pg_stmt ot_sink_stmts[];
extern const size_t ot_sink_nstmts;

#endif
