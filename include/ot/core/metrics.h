/* Prometheus metrics shared by all worker processes.
 *
 * The master maps one MAP_SHARED region before forking; each worker owns one
 * fixed slot of it and is its only writer, so any worker answering GET /metrics
 * can render every worker's numbers (label worker="i") without messages or
 * locks. Values are written with relaxed atomic stores (plain `mov` on x86-64
 * and arm64) so a concurrent reader never sees a torn 64-bit value and the
 * compiler may not split or elide the store; no read-modify-write atomics are
 * needed because there is a single writer per slot.
 *
 * Restart policy: a restarted worker reuses its slot. Counters and histograms
 * are kept (the slot outlives the process), so every exported counter stays
 * monotonic and Prometheus never sees a reset; gauges are zeroed because the
 * state they described (open sockets, pool links) died with the process.
 * ordertrack_worker_starts_total tells restarts apart.
 *
 * Before ot_metrics_init, and in a process that has not selected a slot (the
 * master), every recording call is a cheap no-op. Recording never allocates. */
#ifndef OT_METRICS_H
#define OT_METRICS_H

#include "ot/core/buf.h"
#include "ot/core/common.h"

typedef struct ot_metrics ot_metrics; /* the shared region; opaque */

/* Limits of the fixed-size region: routes are known at start-up. */
#define OT_METRICS_MAX_WORKERS 256
#define OT_METRICS_MAX_ROUTES 64
#define OT_METRICS_ROUTE_NAME_MAX 64

/* route index i -> label route="<name>"; names are copied (longer ones cut at
 * OT_METRICS_ROUTE_NAME_MAX - 1 bytes). Re-initialising drops the old region.
 * Returns 0 or OT_ERR (bad sizes, mmap failure). Call before fork. */
int ot_metrics_init(int nworkers, const char *const *route_names, int nroutes);
/* Selects (after fork) the slot this process writes; see restart policy above. */
void ot_metrics_worker(int idx);

/* One finished HTTP exchange. A route outside [0, nroutes) (no route matched)
 * is counted under route="unmatched"; a status outside the fixed set under
 * code="other". */
void ot_metrics_http(int route, int status, uint64_t duration_us, uint64_t bytes_out);

/* Gauges and counters by fixed id; name, help and type live in a table in
 * metrics.c. OT_G_* are gauges (set), OT_C_* counters (inc). */
typedef enum {
    OT_G_CONNS_OPEN,
    OT_G_WS_CONNS_OPEN,
    OT_G_PG_CONNS_UP,
    OT_G_PG_QUEUE,
    OT_G_REDIS_UP,
    OT_C_CONNS_ACCEPTED,
    OT_C_CONNS_REJECTED,
    OT_C_WS_MESSAGES_PUSHED,
    OT_C_WS_SLOW_DROPPED,
    OT_C_EVENTS_RECEIVED,
    OT_C_EVENTS_GAPS_SKIPPED,
    OT_C_EVENTS_FORGED,
    OT_C_EVENTS_WAKES,
    OT_C_RATE_LIMITED,
    OT_C_PG_ERRORS,
    OT_C_LOG_DROPPED,
    /* Sampled by each worker about itself (operations dashboards, soak). */
    OT_G_CONNS_MAX,             /* the worker's connection limit (--max-conns) */
    OT_G_PROCESS_RSS_BYTES,
    OT_G_PROCESS_OPEN_FDS,
    OT_C_PROCESS_CPU_US,        /* rendered in seconds */
    /* Events committed but not yet handed to this worker's sockets, and the
     * age of the oldest of them (ms, rendered in seconds). */
    OT_G_OUTBOX_BACKLOG,
    OT_G_OUTBOX_OLDEST_MS,
    OT_C_AUTH_USER_LOADS,
    OT_C_AUTH_REVOKED,
    OT_C_AUTH_THROTTLED,
    /* The Kafka outbox relay (app/relay.h). */
    OT_G_RELAY_ACTIVE,          /* 1 on the worker holding the relay lock */
    OT_G_RELAY_INFLIGHT,        /* events handed to librdkafka, reports pending */
    OT_G_KAFKA_UP,
    OT_C_RELAY_PUBLISHED,       /* events with both delivery reports successful */
    OT_C_RELAY_PRODUCE_ERRORS,  /* failed delivery reports and refused produce calls */
    OT_C_RELAY_REWINDS,         /* restarts from the stored cursor after a failure */
    OT_G_RELAY_PARKED_ORDERS,   /* orders with an event Kafka refused for good */
    OT_G_RELAY_BACKLOG,         /* committed events above the relay's acknowledged cursor */
    OT_G_RELAY_OLDEST_MS,       /* age of the oldest of them (ms, rendered in seconds) */
    OT_C_RELAY_PARKED_EVENTS,
    /* The search indexer (app/indexer.h), on the worker that runs it. */
    OT_G_ELASTICSEARCH_UP,      /* 1 while the last Elasticsearch request got an answer */
    OT_G_SEARCH_BACKLOG,        /* committed events not yet durably indexed */
    OT_G_SEARCH_LAG_MS,         /* age of the oldest of them (ms, rendered in seconds) */
    OT_C_SEARCH_INDEXED,        /* events whose two documents are indexed (or conflicts) */
    OT_C_SEARCH_CONFLICTS,      /* bulk items answered 409: already there, or older than what is */
    OT_C_SEARCH_PARKED,         /* documents refused for good (search_parked) */
    OT_C_SEARCH_RETRIES,        /* bulk requests sent again (failed request, or items 429/5xx) */
    OT_C_SEARCH_BULKS,          /* bulk requests answered 200 */
    /* The events indices' lifecycle (app/search_lifecycle.h). */
    OT_C_SEARCH_ROLLOVERS,      /* rollovers of the events write alias made */
    OT_C_SEARCH_INDICES_DELETED, /* events indices deleted by the retention */
    OT_G_SEARCH_EVENT_INDICES,  /* events indices at the last look */
    /* The Kafka feed of the push path (app/kafka_feed.h). */
    OT_G_KAFKA_FEED_UP,         /* 1 while this worker's consumer is in its group with partitions */
    OT_G_EVENTS_LISTENING,      /* 1 while the reader keeps its LISTEN connection */
    OT_C_KAFKA_FEED_CONSUMED,   /* messages of order.events received */
    OT_C_KAFKA_FEED_FRESH,      /* ... carrying an event this worker had not delivered yet */
    OT_C_KAFKA_FEED_DUPLICATES, /* ... carrying one already delivered (dropped) */
    OT_C_KAFKA_FEED_REJECTED,   /* ... without a valid seal or unparsable (dropped) */
    OT_G_KAFKA_TOPIC_MISMATCHES, /* existing topics whose settings differ from the flags (left as they are) */
    /* The search indexer's Kafka input (app/search_feed.h). */
    OT_G_SEARCH_FEED_UP,         /* 1 while its consumer is in group ordertrack-search with partitions */
    OT_C_SEARCH_FEED_CONSUMED,   /* messages of order.events received */
    OT_C_SEARCH_FEED_DUPLICATES, /* ... carrying an event already handed to the indexer (dropped) */
    OT_C_SEARCH_FEED_REJECTED,   /* ... without a valid seal or unparsable (dropped) */
    OT_C_SEARCH_FEED_FILLED,     /* events read from PostgreSQL to fill a gap Kafka left */
    OT_C_SEARCH_FEED_PAUSES,     /* partitions paused because the indexer was full */
    OT_M_COUNT
} ot_metric_id;

void ot_metrics_inc(ot_metric_id id, uint64_t n);
void ot_metrics_set(ot_metric_id id, int64_t v);
/* Gauge convenience for up/down tracking (open connections). */
void ot_metrics_add(ot_metric_id id, int64_t delta);

/* Push latency (event commit -> frame written), seconds, buckets 0.00005..1. */
void ot_metrics_push_latency(uint64_t us);
/* Index latency (event commit -> its documents acknowledged by Elasticsearch),
 * seconds, buckets 0.005..30. */
void ot_metrics_index_latency(uint64_t us);
/* Kafka relay: event commit -> its last delivery report, seconds, buckets 0.001..300. */
void ot_metrics_relay_latency(uint64_t us);

/* Event sinks (app/sink.h), labelled sink="<name>": a few per worker, each
 * named by the worker itself (the name is written before the slot is marked
 * used, so a reader never sees half a name). */
#define OT_METRICS_MAX_SINKS 8
#define OT_METRICS_SINK_NAME_MAX 32
typedef struct {
    int64_t position, acked, lag, held;
    uint64_t replayed, fallbacks; /* counters: added (new since the last call) */
    bool live;
} ot_metrics_sink_vals;
/* The index of `name` in this worker's slot (the same one after a restart),
 * -1 when all are taken or nothing records (names cut to fit). */
int ot_metrics_sink(const char *name);
void ot_metrics_sink_set(int idx, const ot_metrics_sink_vals *v);

/* Kafka consumer lag (librdkafka statistics), labelled group and partition:
 * up to OT_METRICS_LAG_GROUPS consumer groups per worker (the push path's
 * feed, the search indexer's), each by its slot, partitions
 * 0..OT_METRICS_MAX_LAG_PARTITIONS-1 (higher ones are not exported). The
 * group name is cut to fit. */
#define OT_METRICS_MAX_LAG_PARTITIONS 64
#define OT_METRICS_GROUP_NAME_MAX 160
enum { OT_LAG_WS, OT_LAG_SEARCH, OT_METRICS_LAG_GROUPS };
void ot_metrics_kafka_group(int which, const char *group);
/* lag < 0: unknown (the series is left out, as before the first statistics). */
void ot_metrics_kafka_lag(int which, int partition, int64_t lag);

/* Appends Prometheus text exposition format 0.0.4 for all workers to `out`
 * (Content-Type: text/plain; version=0.0.4). HELP/TYPE once per family,
 * histograms as cumulative _bucket{le}/_sum/_count. Per-code request counters
 * and per-route histograms are emitted only once non-zero, like labelled
 * series in the client libraries. Returns 0 or OT_ERR (allocation failure,
 * not initialised). */
int ot_metrics_render(ot_buf *out);

#endif
