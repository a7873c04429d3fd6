/* Prometheus metrics in a MAP_SHARED region: one slot per worker, one writer
 * per slot (see the policy notes in include/ot/metrics.h). */
#include "ot/core/metrics.h"

#include <inttypes.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* Status codes the server actually produces get their own series; anything
 * else lands in "other" so a client cannot mint label values (cardinality). */
static const int http_codes[] = { 200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 412,
                                  413, 414, 415, 422, 426, 429, 431, 500, 501, 503, 505 };
#define NCODES ((int)OT_ARRAY_LEN(http_codes) + 1) /* + "other" */

/* Bucket upper bounds (inclusive, Prometheus `le`) in microseconds, with the
 * label text kept beside them so rendering never formats floats. */
typedef struct {
    uint64_t us;
    const char *le;
} bound;

static const bound http_bounds[] = {
    { 100, "0.0001" },    { 250, "0.00025" },   { 500, "0.0005" },    { 1000, "0.001" },
    { 2500, "0.0025" },   { 5000, "0.005" },    { 10000, "0.01" },    { 25000, "0.025" },
    { 50000, "0.05" },    { 100000, "0.1" },    { 250000, "0.25" },   { 500000, "0.5" },
    { 1000000, "1" },     { 2500000, "2.5" },
};
#define NHB ((int)OT_ARRAY_LEN(http_bounds) + 1) /* + "+Inf" */

static const bound push_bounds[] = {
    { 50, "0.00005" },    { 100, "0.0001" },    { 250, "0.00025" },   { 500, "0.0005" },
    { 1000, "0.001" },    { 2500, "0.0025" },   { 5000, "0.005" },    { 10000, "0.01" },
    { 25000, "0.025" },   { 50000, "0.05" },    { 100000, "0.1" },    { 250000, "0.25" },
    { 500000, "0.5" },    { 1000000, "1" },
};
#define NPB ((int)OT_ARRAY_LEN(push_bounds) + 1)

/* Commit -> durably indexed: a batch waits up to --es-bulk-flush-ms, then a
 * bulk round trip; the target is under a second. */
static const bound index_bounds[] = {
    { 5000, "0.005" },    { 10000, "0.01" },    { 25000, "0.025" },   { 50000, "0.05" },
    { 100000, "0.1" },    { 250000, "0.25" },   { 500000, "0.5" },    { 1000000, "1" },
    { 2500000, "2.5" },   { 5000000, "5" },     { 10000000, "10" },   { 30000000, "30" },
};
#define NIB ((int)OT_ARRAY_LEN(index_bounds) + 1)
/* Commit -> both delivery reports of the Kafka relay: milliseconds when it
 * keeps up (the event timestamp it is measured from has 1 ms resolution),
 * minutes while it works off a backlog. */
static const bound relay_bounds[] = {
    { 1000, "0.001" },      { 2500, "0.0025" },     { 5000, "0.005" },     { 10000, "0.01" },
    { 25000, "0.025" },     { 50000, "0.05" },      { 100000, "0.1" },     { 250000, "0.25" },
    { 500000, "0.5" },      { 1000000, "1" },       { 2500000, "2.5" },    { 5000000, "5" },
    { 10000000, "10" },     { 30000000, "30" },     { 60000000, "60" },    { 300000000, "300" },
};
#define NRB ((int)OT_ARRAY_LEN(relay_bounds) + 1)

/* _MICRO/_MILLI: stored as integers, exported in base units (seconds). */
typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_COUNTER_MICRO, KIND_GAUGE_MILLI } metric_kind;

/* HELP strings are ours and contain no backslash or newline, so they need no
 * escaping (exposition format 0.0.4 escapes only those two in HELP). */
static const struct {
    const char *name;
    const char *help;
    metric_kind kind;
} metric_defs[OT_M_COUNT] = {
    [OT_G_CONNS_OPEN] = { "ordertrack_connections_open", "Client connections currently open.",
                          KIND_GAUGE },
    [OT_G_WS_CONNS_OPEN] = { "ordertrack_ws_connections_open",
                             "WebSocket connections currently open.", KIND_GAUGE },
    [OT_G_PG_CONNS_UP] = { "ordertrack_pg_connections_up",
                           "PostgreSQL pool connections currently usable.", KIND_GAUGE },
    [OT_G_PG_QUEUE] = { "ordertrack_pg_queue_length",
                        "Queries waiting for a PostgreSQL connection.", KIND_GAUGE },
    [OT_G_REDIS_UP] = { "ordertrack_redis_up", "1 when the Redis link is connected.", KIND_GAUGE },
    [OT_C_CONNS_ACCEPTED] = { "ordertrack_connections_accepted_total",
                              "Client connections accepted.", KIND_COUNTER },
    [OT_C_CONNS_REJECTED] = { "ordertrack_connections_rejected_total",
                              "Client connections refused at the connection limit.", KIND_COUNTER },
    [OT_C_WS_MESSAGES_PUSHED] = { "ordertrack_ws_messages_pushed_total",
                                  "WebSocket event frames queued to clients.", KIND_COUNTER },
    [OT_C_WS_SLOW_DROPPED] = { "ordertrack_ws_slow_clients_dropped_total",
                               "WebSocket clients closed for exceeding their send queue.",
                               KIND_COUNTER },
    [OT_C_EVENTS_RECEIVED] = { "ordertrack_events_received_total",
                               "Order events received from the event source.", KIND_COUNTER },
    [OT_C_EVENTS_GAPS_SKIPPED] = { "ordertrack_events_gaps_skipped_total",
                                   "Event sequence gaps given up on after the wait bound.",
                                   KIND_COUNTER },
    [OT_C_EVENTS_FORGED] = { "ordertrack_events_forged_total",
                             "Pub/sub messages dropped for a missing or wrong MAC.", KIND_COUNTER },
    [OT_C_EVENTS_WAKES] = { "ordertrack_events_wakes_total",
                            "ot_wake_listeners calls sent after commits (one covers every commit before it).",
                            KIND_COUNTER },
    [OT_C_RATE_LIMITED] = { "ordertrack_rate_limited_total",
                            "Requests answered 429 by the rate limiter.", KIND_COUNTER },
    [OT_C_PG_ERRORS] = { "ordertrack_pg_errors_total", "PostgreSQL query or connection errors.",
                         KIND_COUNTER },
    [OT_C_LOG_DROPPED] = { "ordertrack_log_lines_dropped_total",
                           "Log lines dropped because stderr was not writable.", KIND_COUNTER },
    [OT_G_CONNS_MAX] = { "ordertrack_connections_max", "Connection limit of the worker (--max-conns).", KIND_GAUGE },
    [OT_G_PROCESS_RSS_BYTES] = { "ordertrack_process_resident_memory_bytes",
                                 "Resident set size of the worker process.", KIND_GAUGE },
    [OT_G_PROCESS_OPEN_FDS] = { "ordertrack_process_open_fds", "Open file descriptors of the worker process.",
                                KIND_GAUGE },
    [OT_C_PROCESS_CPU_US] = { "ordertrack_process_cpu_seconds_total",
                              "User and system CPU time of the worker process.", KIND_COUNTER_MICRO },
    [OT_G_OUTBOX_BACKLOG] = { "ordertrack_outbox_backlog_events",
                              "Committed order events this worker has not yet delivered.", KIND_GAUGE },
    [OT_G_OUTBOX_OLDEST_MS] = { "ordertrack_outbox_oldest_unpublished_age_seconds",
                                "Age of the oldest committed event this worker has not yet delivered.",
                                KIND_GAUGE_MILLI },
    [OT_C_AUTH_USER_LOADS] = { "ordertrack_auth_user_loads_total",
                               "Users read from PostgreSQL to check a token (cache misses).", KIND_COUNTER },
    [OT_C_AUTH_REVOKED] = { "ordertrack_auth_revoked_total",
                            "Validly signed tokens refused: user gone, disabled or changed since issue.",
                            KIND_COUNTER },
    [OT_C_AUTH_THROTTLED] = { "ordertrack_auth_throttled_total",
                              "Login/register requests refused before the password hash (429/503).",
                              KIND_COUNTER },
    [OT_G_RELAY_ACTIVE] = { "ordertrack_relay_active", "1 on the worker that holds the outbox relay lock.",
                            KIND_GAUGE },
    [OT_G_RELAY_INFLIGHT] = { "ordertrack_relay_inflight_events",
                              "Events handed to Kafka whose delivery reports are pending.", KIND_GAUGE },
    [OT_G_KAFKA_UP] = { "ordertrack_kafka_up", "1 while the relay's producer reaches a broker.", KIND_GAUGE },
    [OT_C_RELAY_PUBLISHED] = { "ordertrack_relay_published_total",
                               "Events published to Kafka (every topic acknowledged).", KIND_COUNTER },
    [OT_C_RELAY_PRODUCE_ERRORS] = { "ordertrack_relay_produce_errors_total",
                                    "Failed delivery reports and refused produce calls.", KIND_COUNTER },
    [OT_C_RELAY_REWINDS] = { "ordertrack_relay_rewinds_total",
                             "Times the relay restarted from its stored cursor after a failure.", KIND_COUNTER },
    [OT_G_RELAY_PARKED_ORDERS] = { "ordertrack_relay_parked_orders",
                                   "Orders parked by the relay (an event Kafka refuses for good; see relay_parked).",
                                   KIND_GAUGE },
    [OT_G_RELAY_BACKLOG] = { "ordertrack_relay_backlog_events",
                             "Committed events not yet published to Kafka (above the relay's cursor).", KIND_GAUGE },
    [OT_G_RELAY_OLDEST_MS] = { "ordertrack_relay_oldest_unpublished_age_seconds",
                               "Age of the oldest committed event not yet published to Kafka.", KIND_GAUGE_MILLI },
    [OT_C_RELAY_PARKED_EVENTS] = { "ordertrack_relay_parked_events_total",
                                   "Events recorded in relay_parked instead of being published.", KIND_COUNTER },
    [OT_G_ELASTICSEARCH_UP] = { "ordertrack_elasticsearch_up",
                                "1 while the search indexer's last Elasticsearch request got an answer.", KIND_GAUGE },
    [OT_G_SEARCH_BACKLOG] = { "ordertrack_search_index_backlog_events",
                              "Committed events above the search indexer's acknowledged cursor.", KIND_GAUGE },
    [OT_G_SEARCH_LAG_MS] = { "ordertrack_index_lag_seconds",
                             "Age of the oldest committed event the search indexer has not yet indexed (0 when caught up).",
                             KIND_GAUGE_MILLI },
    [OT_C_SEARCH_INDEXED] = { "ordertrack_search_indexed_events_total",
                              "Events whose event and order documents Elasticsearch holds (or parked).", KIND_COUNTER },
    [OT_C_SEARCH_CONFLICTS] = { "ordertrack_search_version_conflicts_total",
                                "Bulk items answered 409 (a re-delivered event, an older order version): success.",
                                KIND_COUNTER },
    [OT_C_SEARCH_PARKED] = { "ordertrack_search_parked_documents_total",
                             "Documents Elasticsearch refused for good, recorded in search_parked.", KIND_COUNTER },
    [OT_C_SEARCH_RETRIES] = { "ordertrack_search_bulk_retries_total",
                              "Bulk requests sent again after a failure or items answered 429/5xx.", KIND_COUNTER },
    [OT_C_SEARCH_BULKS] = { "ordertrack_search_bulk_requests_total", "Bulk requests Elasticsearch answered 200.",
                            KIND_COUNTER },
    [OT_C_SEARCH_ROLLOVERS] = { "ordertrack_search_rollovers_total",
                                "Rollovers of the events write alias to a new index (--es-rollover-*).", KIND_COUNTER },
    [OT_C_SEARCH_INDICES_DELETED] = { "ordertrack_search_indices_deleted_total",
                                      "Events indices deleted by --es-events-retention-seconds.", KIND_COUNTER },
    [OT_G_SEARCH_EVENT_INDICES] = { "ordertrack_search_event_indices",
                                    "Events indices Elasticsearch listed at the last retention look.", KIND_GAUGE },
    [OT_G_KAFKA_FEED_UP] = { "ordertrack_kafka_feed_up",
                             "1 while this worker's Kafka consumer (push path) has its partitions.", KIND_GAUGE },
    [OT_G_EVENTS_LISTENING] = { "ordertrack_events_listening",
                                "1 while the event reader keeps its PostgreSQL LISTEN connection.", KIND_GAUGE },
    [OT_C_KAFKA_FEED_CONSUMED] = { "ordertrack_kafka_feed_consumed_total",
                                   "Messages of order.events received by the push path's consumer.", KIND_COUNTER },
    [OT_C_KAFKA_FEED_FRESH] = { "ordertrack_kafka_feed_fresh_total",
                                "Consumed events this worker had not delivered yet (Kafka was first).", KIND_COUNTER },
    [OT_C_KAFKA_FEED_DUPLICATES] = { "ordertrack_kafka_feed_duplicates_total",
                                     "Consumed events already delivered (dropped: same seq and eventId).",
                                     KIND_COUNTER },
    [OT_C_KAFKA_FEED_REJECTED] = { "ordertrack_kafka_feed_rejected_total",
                                   "Consumed messages dropped: no valid seal, or not an event.", KIND_COUNTER },
    [OT_G_KAFKA_TOPIC_MISMATCHES] = { "ordertrack_kafka_topic_mismatches",
                                      "Topics that existed with partitions, replication or retention.ms other than "
                                      "the flags' (reported, never changed).", KIND_GAUGE },
    [OT_G_SEARCH_FEED_UP] = { "ordertrack_search_feed_up",
                              "1 while the search indexer's Kafka consumer has its partitions.", KIND_GAUGE },
    [OT_C_SEARCH_FEED_CONSUMED] = { "ordertrack_search_feed_consumed_total",
                                    "Messages of order.events received by the search indexer's consumer.",
                                    KIND_COUNTER },
    [OT_C_SEARCH_FEED_DUPLICATES] = { "ordertrack_search_feed_duplicates_total",
                                      "Consumed events already handed to the indexer (dropped).", KIND_COUNTER },
    [OT_C_SEARCH_FEED_REJECTED] = { "ordertrack_search_feed_rejected_total",
                                    "Consumed messages dropped by the indexer's consumer: no valid seal, or not an "
                                    "event.", KIND_COUNTER },
    [OT_C_SEARCH_FEED_FILLED] = { "ordertrack_search_feed_filled_total",
                                  "Events the indexer's consumer read from PostgreSQL to fill a gap Kafka left.",
                                  KIND_COUNTER },
    [OT_C_SEARCH_FEED_PAUSES] = { "ordertrack_search_feed_pauses_total",
                                  "Times the indexer's consumer paused its partitions while the indexer was full.",
                                  KIND_COUNTER },
};

typedef struct {
    uint64_t codes[NCODES];
    uint64_t bytes;
    uint64_t lat_sum_us;
    uint64_t lat_buckets[NHB]; /* per bucket, not cumulative: one store per request */
} route_stats;

typedef struct {
    uint64_t used; /* stored (release) after name */
    char name[OT_METRICS_SINK_NAME_MAX];
    uint64_t position, acked, lag, held, live, replayed, fallbacks;
} sink_stats;

typedef struct {
    uint64_t used; /* stored (release) after group */
    char group[OT_METRICS_GROUP_NAME_MAX];
    uint64_t lag[OT_METRICS_MAX_LAG_PARTITIONS]; /* lag + 1; 0: unknown */
} lag_stats;

/* Cache-line aligned so two workers' hot counters never share a line. */
typedef struct {
    alignas(64) uint64_t vals[OT_M_COUNT]; /* gauges hold int64 bit patterns */
    uint64_t starts;
    uint64_t push_sum_us;
    uint64_t push_buckets[NPB];
    uint64_t index_sum_us;
    uint64_t index_buckets[NIB];
    uint64_t relay_sum_us;
    uint64_t relay_buckets[NRB];
    route_stats routes[OT_METRICS_MAX_ROUTES + 1]; /* [nroutes] = unmatched */
    sink_stats sinks[OT_METRICS_MAX_SINKS];
    lag_stats lag[OT_METRICS_LAG_GROUPS];
} slot;

struct ot_metrics {
    slot *slots;      /* shared mapping, nworkers entries */
    size_t map_len;
    int nworkers, nroutes;
    slot *self;       /* NULL: this process records nothing */
    /* Label values escaped once at init (backslash, quote, newline). */
    char route_label[OT_METRICS_MAX_ROUTES + 1][2 * OT_METRICS_ROUTE_NAME_MAX];
};

/* Private (copy-on-write after fork) bookkeeping; only `slots` is shared. */
static ot_metrics g;

/* Single writer per slot: a relaxed load + relaxed store is enough and avoids
 * a locked read-modify-write; readers in other processes use relaxed loads so
 * they see either the old or the new value, never a torn one. */
static inline void bump(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static inline void put(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline uint64_t get(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

/* At most max source bytes (the names were cut to fit their slot). */
static void escape_label_n(char *dst, size_t cap, const char *src, size_t max)
{
    size_t o = 0;
    for (size_t i = 0; src[i] && i < max && o + 3 < cap; i++) {
        char c = src[i];
        if (c == '\\' || c == '"') {
            dst[o++] = '\\';
            dst[o++] = c;
        } else if (c == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else {
            dst[o++] = c;
        }
    }
    dst[o] = '\0';
}

static void escape_label(char *dst, size_t cap, const char *src)
{
    escape_label_n(dst, cap, src, OT_METRICS_ROUTE_NAME_MAX - 1);
}

int ot_metrics_init(int nworkers, const char *const *route_names, int nroutes)
{
    if (nworkers <= 0 || nworkers > OT_METRICS_MAX_WORKERS || nroutes < 0 ||
        nroutes > OT_METRICS_MAX_ROUTES || (nroutes > 0 && !route_names))
        return OT_ERR;
    if (g.slots)
        munmap(g.slots, g.map_len);
    memset(&g, 0, sizeof g);

    size_t len = (size_t)nworkers * sizeof(slot);
    /* Anonymous shared memory is inherited by fork() and zero-filled. */
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return OT_ERR;
    g.slots = p;
    g.map_len = len;
    g.nworkers = nworkers;
    g.nroutes = nroutes;
    for (int i = 0; i < nroutes; i++)
        escape_label(g.route_label[i], sizeof g.route_label[i], route_names[i] ? route_names[i] : "");
    escape_label(g.route_label[nroutes], sizeof g.route_label[nroutes], "unmatched");
    return OT_OK;
}

void ot_metrics_worker(int idx)
{
    if (!g.slots || idx < 0 || idx >= g.nworkers) {
        g.self = NULL;
        return;
    }
    g.self = &g.slots[idx];
    for (int i = 0; i < OT_M_COUNT; i++)
        if (metric_defs[i].kind == KIND_GAUGE || metric_defs[i].kind == KIND_GAUGE_MILLI)
            put(&g.self->vals[i], 0);
    /* The lag described the dead process's group. */
    for (int l = 0; l < OT_METRICS_LAG_GROUPS; l++) {
        __atomic_store_n(&g.self->lag[l].used, 0, __ATOMIC_RELEASE);
        for (int i = 0; i < OT_METRICS_MAX_LAG_PARTITIONS; i++)
            put(&g.self->lag[l].lag[i], 0);
    }
    bump(&g.self->starts, 1);
}

static int code_index(int status)
{
    /* 22 entries: a linear scan is a handful of compares on one cache line. */
    for (int i = 0; i < NCODES - 1; i++)
        if (http_codes[i] == status)
            return i;
    return NCODES - 1;
}

static int bucket_index(const bound *b, int n, uint64_t us)
{
    for (int i = 0; i < n; i++)
        if (us <= b[i].us)
            return i;
    return n; /* +Inf */
}

void ot_metrics_http(int route, int status, uint64_t duration_us, uint64_t bytes_out)
{
    if (!g.self)
        return;
    if (route < 0 || route >= g.nroutes)
        route = g.nroutes;
    route_stats *r = &g.self->routes[route];
    bump(&r->codes[code_index(status)], 1);
    bump(&r->bytes, bytes_out);
    bump(&r->lat_sum_us, duration_us);
    bump(&r->lat_buckets[bucket_index(http_bounds, NHB - 1, duration_us)], 1);
}

void ot_metrics_inc(ot_metric_id id, uint64_t n)
{
    if (g.self && (unsigned)id < OT_M_COUNT)
        bump(&g.self->vals[id], n);
}

void ot_metrics_set(ot_metric_id id, int64_t v)
{
    if (g.self && (unsigned)id < OT_M_COUNT)
        put(&g.self->vals[id], (uint64_t)v);
}

void ot_metrics_add(ot_metric_id id, int64_t delta)
{
    /* Unsigned wrap-around is the two's-complement add of the int64 value. */
    if (g.self && (unsigned)id < OT_M_COUNT)
        bump(&g.self->vals[id], (uint64_t)delta);
}

void ot_metrics_push_latency(uint64_t us)
{
    if (!g.self)
        return;
    bump(&g.self->push_sum_us, us);
    bump(&g.self->push_buckets[bucket_index(push_bounds, NPB - 1, us)], 1);
}

void ot_metrics_index_latency(uint64_t us)
{
    if (!g.self)
        return;
    bump(&g.self->index_sum_us, us);
    bump(&g.self->index_buckets[bucket_index(index_bounds, NIB - 1, us)], 1);
}

void ot_metrics_relay_latency(uint64_t us)
{
    if (!g.self)
        return;
    bump(&g.self->relay_sum_us, us);
    bump(&g.self->relay_buckets[bucket_index(relay_bounds, NRB - 1, us)], 1);
}

/* ---- rendering ---------------------------------------------------------- */

static int family_head(ot_buf *out, const char *name, const char *help, const char *type)
{
    return ot_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Seconds from microseconds without going through a double, so _sum is exact. */
static int put_seconds(ot_buf *out, uint64_t us)
{
    return ot_buf_printf(out, "%" PRIu64 ".%06" PRIu64 "\n", us / 1000000, us % 1000000);
}

/* Emits one histogram series. `labels` is the label list without `le`;
 * counts are read once into `snap` so buckets, +Inf and _count agree even
 * while the owning worker keeps writing. */
static int histogram(ot_buf *out, const char *name, const char *labels, const bound *b, int nb,
                     const uint64_t *buckets, const uint64_t *sum_us)
{
    uint64_t cum = 0;
    int rc = 0;
    for (int i = 0; i < nb; i++) {
        cum += get(&buckets[i]);
        rc |= ot_buf_printf(out, "%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n", name, labels,
                            i < nb - 1 ? b[i].le : "+Inf", cum);
    }
    rc |= ot_buf_printf(out, "%s_sum{%s} ", name, labels);
    rc |= put_seconds(out, get(sum_us));
    rc |= ot_buf_printf(out, "%s_count{%s} %" PRIu64 "\n", name, labels, cum);
    return rc ? OT_ERR : OT_OK;
}

/* One histogram family with a series per worker (label worker="i"), its
 * buckets and sum at these offsets of the slot. */
static int worker_histogram(ot_buf *out, int nw, const char *name, const char *help, const bound *b, int nb,
                            size_t buckets_off, size_t sum_off)
{
    int rc = family_head(out, name, help, "histogram");
    for (int w = 0; w < nw; w++) {
        const char *sl = (const char *)&g.slots[w];
        char labels[32];
        snprintf(labels, sizeof labels, "worker=\"%d\"", w);
        rc |= histogram(out, name, labels, b, nb, (const uint64_t *)(sl + buckets_off),
                        (const uint64_t *)(sl + sum_off));
    }
    return rc;
}

static uint64_t route_requests(const route_stats *r)
{
    uint64_t n = 0;
    for (int i = 0; i < NHB; i++)
        n += get(&r->lat_buckets[i]);
    return n;
}

int ot_metrics_sink(const char *name)
{
    if (!g.self || !name)
        return -1;
    char cut[OT_METRICS_SINK_NAME_MAX];
    snprintf(cut, sizeof cut, "%s", name);
    for (int i = 0; i < OT_METRICS_MAX_SINKS; i++) {
        sink_stats *st = &g.self->sinks[i];
        if (!__atomic_load_n(&st->used, __ATOMIC_ACQUIRE)) {
            memcpy(st->name, cut, sizeof cut);
            __atomic_store_n(&st->used, 1, __ATOMIC_RELEASE);
            return i;
        }
        if (strcmp(st->name, cut) == 0)
            return i;
    }
    return -1;
}

void ot_metrics_sink_set(int idx, const ot_metrics_sink_vals *v)
{
    if (!g.self || idx < 0 || idx >= OT_METRICS_MAX_SINKS)
        return;
    sink_stats *st = &g.self->sinks[idx];
    put(&st->position, (uint64_t)v->position);
    put(&st->acked, (uint64_t)v->acked);
    put(&st->lag, (uint64_t)v->lag);
    put(&st->held, (uint64_t)v->held);
    put(&st->live, v->live ? 1 : 0);
    bump(&st->replayed, v->replayed);
    bump(&st->fallbacks, v->fallbacks);
}

void ot_metrics_kafka_group(int which, const char *group)
{
    if (!g.self || !group || which < 0 || which >= OT_METRICS_LAG_GROUPS)
        return;
    lag_stats *l = &g.self->lag[which];
    __atomic_store_n(&l->used, 0, __ATOMIC_RELEASE);
    snprintf(l->group, sizeof l->group, "%s", group);
    __atomic_store_n(&l->used, 1, __ATOMIC_RELEASE);
}

void ot_metrics_kafka_lag(int which, int partition, int64_t lag)
{
    if (!g.self || which < 0 || which >= OT_METRICS_LAG_GROUPS || partition < 0 ||
        partition >= OT_METRICS_MAX_LAG_PARTITIONS)
        return;
    put(&g.self->lag[which].lag[partition], lag < 0 ? 0 : (uint64_t)lag + 1);
}

static int lag_family(ot_buf *out)
{
    const char *name = "ordertrack_kafka_consumer_lag";
    int rc = family_head(out, name, "Messages between a consumer group's committed offset and the partition's end "
                         "(librdkafka statistics).", "gauge");
    for (int w = 0; w < g.nworkers * OT_METRICS_LAG_GROUPS; w++) {
        const lag_stats *l = &g.slots[w / OT_METRICS_LAG_GROUPS].lag[w % OT_METRICS_LAG_GROUPS];
        if (!__atomic_load_n(&l->used, __ATOMIC_ACQUIRE))
            continue;
        char label[2 * OT_METRICS_GROUP_NAME_MAX];
        escape_label_n(label, sizeof label, l->group, sizeof l->group - 1);
        for (int p = 0; p < OT_METRICS_MAX_LAG_PARTITIONS; p++) {
            uint64_t v = get(&l->lag[p]);
            if (v)
                rc |= ot_buf_printf(out, "%s{worker=\"%d\",group=\"%s\",partition=\"%d\"} %" PRIu64 "\n", name,
                                    w / OT_METRICS_LAG_GROUPS, label, p, v - 1);
        }
    }
    return rc;
}

/* One family over every worker's sinks; `gauge` values are int64 bit patterns. */
static int sink_family(ot_buf *out, const char *name, const char *help, bool gauge, size_t off)
{
    int rc = family_head(out, name, help, gauge ? "gauge" : "counter");
    for (int w = 0; w < g.nworkers; w++)
        for (int i = 0; i < OT_METRICS_MAX_SINKS; i++) {
            const sink_stats *st = &g.slots[w].sinks[i];
            if (!__atomic_load_n(&st->used, __ATOMIC_ACQUIRE))
                continue;
            char label[2 * OT_METRICS_ROUTE_NAME_MAX];
            escape_label(label, sizeof label, st->name);
            uint64_t v = get((const uint64_t *)((const char *)st + off));
            if (gauge)
                rc |= ot_buf_printf(out, "%s{worker=\"%d\",sink=\"%s\"} %" PRId64 "\n", name, w, label, (int64_t)v);
            else
                rc |= ot_buf_printf(out, "%s{worker=\"%d\",sink=\"%s\"} %" PRIu64 "\n", name, w, label, v);
        }
    return rc;
}

int ot_metrics_render(ot_buf *out)
{
    if (!g.slots)
        return OT_ERR;
    int rc = 0, nw = g.nworkers, nr = g.nroutes + 1;

    for (int id = 0; id < OT_M_COUNT; id++) {
        metric_kind kind = metric_defs[id].kind;
        bool gauge = kind == KIND_GAUGE || kind == KIND_GAUGE_MILLI;
        rc |= family_head(out, metric_defs[id].name, metric_defs[id].help,
                          gauge ? "gauge" : "counter");
        for (int w = 0; w < nw; w++) {
            uint64_t v = get(&g.slots[w].vals[id]);
            if (kind == KIND_COUNTER_MICRO)
                rc |= ot_buf_printf(out, "%s{worker=\"%d\"} %" PRIu64 ".%06" PRIu64 "\n", metric_defs[id].name, w,
                                    v / 1000000, v % 1000000);
            else if (kind == KIND_GAUGE_MILLI) {
                int64_t sv = (int64_t)v;
                uint64_t mag = sv < 0 ? (uint64_t)0 - v : v;
                rc |= ot_buf_printf(out, "%s{worker=\"%d\"} %s%" PRIu64 ".%03" PRIu64 "\n", metric_defs[id].name, w,
                                    sv < 0 ? "-" : "", mag / 1000, mag % 1000);
            } else if (gauge)
                rc |= ot_buf_printf(out, "%s{worker=\"%d\"} %" PRId64 "\n", metric_defs[id].name,
                                    w, (int64_t)v);
            else
                rc |= ot_buf_printf(out, "%s{worker=\"%d\"} %" PRIu64 "\n", metric_defs[id].name,
                                    w, v);
        }
    }

    rc |= family_head(out, "ordertrack_worker_starts_total",
                      "Times a worker process took this slot (restarts show as > 1).", "counter");
    for (int w = 0; w < nw; w++)
        rc |= ot_buf_printf(out, "ordertrack_worker_starts_total{worker=\"%d\"} %" PRIu64 "\n", w,
                            get(&g.slots[w].starts));

    rc |= family_head(out, "ordertrack_http_requests_total",
                      "HTTP responses by route and status code.", "counter");
    for (int w = 0; w < nw; w++)
        for (int r = 0; r < nr; r++)
            for (int c = 0; c < NCODES; c++) {
                uint64_t v = get(&g.slots[w].routes[r].codes[c]);
                if (!v)
                    continue;
                char code[8];
                if (c < NCODES - 1)
                    snprintf(code, sizeof code, "%d", http_codes[c]);
                else
                    memcpy(code, "other", 6);
                rc |= ot_buf_printf(out,
                                    "ordertrack_http_requests_total{worker=\"%d\",route=\"%s\","
                                    "code=\"%s\"} %" PRIu64 "\n",
                                    w, g.route_label[r], code, v);
            }

    rc |= family_head(out, "ordertrack_http_response_bytes_total",
                      "HTTP response bytes written, by route.", "counter");
    for (int w = 0; w < nw; w++)
        for (int r = 0; r < nr; r++)
            if (route_requests(&g.slots[w].routes[r]))
                rc |= ot_buf_printf(out,
                                    "ordertrack_http_response_bytes_total{worker=\"%d\","
                                    "route=\"%s\"} %" PRIu64 "\n",
                                    w, g.route_label[r], get(&g.slots[w].routes[r].bytes));

    rc |= family_head(out, "ordertrack_http_request_duration_seconds",
                      "Time from request head received to response queued.", "histogram");
    for (int w = 0; w < nw; w++)
        for (int r = 0; r < nr; r++) {
            const route_stats *rs = &g.slots[w].routes[r];
            if (!route_requests(rs))
                continue;
            char labels[64 + sizeof g.route_label[0]];
            snprintf(labels, sizeof labels, "worker=\"%d\",route=\"%s\"", w, g.route_label[r]);
            rc |= histogram(out, "ordertrack_http_request_duration_seconds", labels, http_bounds,
                            NHB, rs->lat_buckets, &rs->lat_sum_us);
        }

    rc |= worker_histogram(out, nw, "ordertrack_ws_push_latency_seconds",
                           "Time from event commit to its WebSocket frame being written.", push_bounds, NPB,
                           offsetof(slot, push_buckets), offsetof(slot, push_sum_us));
    rc |= worker_histogram(out, nw, "ordertrack_search_index_latency_seconds",
                           "Time from event commit to its documents acknowledged by Elasticsearch (_bulk answer).",
                           index_bounds, NIB, offsetof(slot, index_buckets), offsetof(slot, index_sum_us));
    rc |= worker_histogram(out, nw, "ordertrack_relay_publish_latency_seconds",
                           "Time from an event's commit (its created_at) to the last of its Kafka delivery reports.",
                           relay_bounds, NRB, offsetof(slot, relay_buckets), offsetof(slot, relay_sum_us));

    rc |= sink_family(out, "ordertrack_sink_position", "Every event seq at or below it was handed to the sink.",
                      true, offsetof(sink_stats, position));
    rc |= sink_family(out, "ordertrack_sink_acked", "Highest seq the sink acknowledged as durable downstream.", true,
                      offsetof(sink_stats, acked));
    rc |= sink_family(out, "ordertrack_sink_lag_events", "Seqs between the event reader's watermark and the sink.",
                      true, offsetof(sink_stats, lag));
    rc |= sink_family(out, "ordertrack_sink_held_events", "Events held in memory for a full sink.", true,
                      offsetof(sink_stats, held));
    rc |= sink_family(out, "ordertrack_sink_live", "1 while the sink follows the reader live, 0 while it replays.",
                      true, offsetof(sink_stats, live));
    rc |= sink_family(out, "ordertrack_sink_replayed_events_total", "Events the sink read back from order_events.",
                      false, offsetof(sink_stats, replayed));
    rc |= sink_family(out, "ordertrack_sink_fallbacks_total",
                      "Times the sink fell behind its buffer and went back to replaying.", false,
                      offsetof(sink_stats, fallbacks));
    rc |= lag_family(out);
    return rc ? OT_ERR : OT_OK;
}
