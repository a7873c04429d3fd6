/* The outbox relay: the lock, the pipeline (producer + durable sink), the
 * in-flight window and the failure policy. See relay.h. */
#include "ot/app/relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/adapters/kafka.h"
#include "ot/adapters/pg.h"
#include "ot/codec/iso8601.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"

#define OT_RELAY_SINK "kafka-relay"
/* How often a non-holder tries the lock and the holder checks it still has
 * it: the takeover time after a holder dies. */
#define OT_RELAY_LOCK_MS 1000
/* Before the pipeline starts again after a failure (topics, rewind, fatal). */
#define OT_RELAY_RETRY_MS 1000
static const char *const topic_suffix[] = { "order.events", "order.created", "order.updated", "order.completed",
                                            "order.canceled" };
#define NTOPICS OT_RELAY_NTOPICS

#define OT_UUID_TEXT 37

typedef struct {
    int64_t seq;
    int64_t ts_ms; /* the event's commit time (0: unknown), for the latency histogram */
    uint8_t left; /* delivery reports (or a parking write) still due */
    bool failed;
    bool parking; /* refused for good: recorded in relay_parked instead */
    char order[OT_UUID_TEXT];
} inflight;

struct ot_relay {
    ot_loop *loop;
    const ot_config *cfg;
    ot_events *events;
    ot_pg *lockpg; /* one connection: the session that holds the lock */
    ot_pg_query *lq, *bq;
    ot_timer lock_timer, retry_timer;
    bool holder;
    ot_kafka *k;
    bool topics_ok;
    ot_sink *sink;
    bool sink_full;
    /* Events handed to librdkafka, in seq order: a ring indexed by a running
     * id (the produce opaque), so a report finds its entry without a search. */
    inflight *ring;
    size_t cap;
    uint64_t head_id, tail_id;
    bool rewinding; /* a report failed: wait for the rest, then restart the sink */
    ot_relay_out out; /* topic names and the seal */
    ot_pg_query *pq; /* the parked orders' reload */
    uint64_t park_gen, pq_gen; /* orders parked so far; at the reload's sending */
    /* Orders with an event Kafka refuses for good (relay_parked): their
     * later events are parked too, every other order keeps flowing. */
    char (*parked)[OT_UUID_TEXT];
    size_t nparked;
    bool parked_loaded;
    uint64_t published, errors, rewinds;
};

static const ot_pg_stmt relay_stmts[] = {
    { "relay_parked_orders", "SELECT DISTINCT order_id::text FROM relay_parked", 0, true },
    /* Backlog: one index probe at each end of order_events. */
    { "relay_backlog",
      "SELECT coalesce(max(seq), 0), (SELECT (extract(epoch FROM clock_timestamp() - e.created_at) * 1000)::bigint "
      "FROM order_events e WHERE e.seq > $1::bigint ORDER BY e.seq LIMIT 1) FROM order_events",
      1, true },
    { "relay_park",
      "INSERT INTO relay_parked (seq, order_id, error) VALUES ($1::bigint, $2::uuid, $3) ON CONFLICT (seq) DO NOTHING",
      3, false },
    { "relay_lock", "SELECT pg_try_advisory_lock($1::bigint)", 1, false },
    /* Whether this session still holds it (the pool may have reconnected). */
    { "relay_lock_held",
      "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
      "AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1)",
      1, true },
};

static void pipeline_stop(ot_relay *r);
static void pipeline_start(ot_relay *r);

/* ---- the in-flight window ---- */

static size_t inflight_n(const ot_relay *r) { return (size_t)(r->tail_id - r->head_id); }
static inflight *slot(ot_relay *r, uint64_t id) { return &r->ring[id % r->cap]; }

/* Pops the entries at the head whose reports all came back fine: the cursor
 * may move to the last of them. */
static void advance(ot_relay *r)
{
    int64_t last = 0;
    while (r->head_id < r->tail_id) {
        inflight *f = slot(r, r->head_id);
        if (f->left > 0 || f->failed)
            break;
        last = f->seq;
        r->head_id++;
        r->published++;
        ot_metrics_inc(OT_C_RELAY_PUBLISHED, 1);
    }
    if (last && r->sink)
        ot_sink_ack(r->sink, last);
}

/* After a failure, once no report is outstanding: drop the window and the
 * sink, and start again from the stored cursor. */
static void rewind_maybe(ot_relay *r)
{
    if (!r->rewinding)
        return;
    for (uint64_t id = r->head_id; id < r->tail_id; id++)
        if (slot(r, id)->left > 0)
            return;
    r->rewinding = false;
    r->rewinds++;
    ot_metrics_inc(OT_C_RELAY_REWINDS, 1);
    ot_logf(OT_LOG_WARN, "relay: republishing from the stored cursor after a failed delivery");
    if (r->sink) {
        ot_sink_remove(r->sink);
        r->sink = NULL;
    }
    r->head_id = r->tail_id; /* ids keep growing: a late report never lands on a new entry */
    ot_timer_start(r->loop, &r->retry_timer, OT_RELAY_RETRY_MS);
}

/* ---- parking ---- */

static bool is_parked(const ot_relay *r, ot_str order)
{
    for (size_t i = 0; i < r->nparked; i++)
        if (ot_str_eq_lit(order, r->parked[i]))
            return true;
    return false;
}

static bool park_order(ot_relay *r, const char *order)
{
    if (is_parked(r, ot_str_c(order)))
        return true;
    if (r->nparked >= r->cfg->kafka_max_parked)
        return false;
    snprintf(r->parked[r->nparked++], OT_UUID_TEXT, "%s", order);
    r->park_gen++;
    ot_metrics_set(OT_G_RELAY_PARKED_ORDERS, (int64_t)r->nparked);
    return true;
}

typedef struct {
    ot_relay *r;
    uint64_t id;
} park_ctx;

static void on_parked(void *data, int status, PGresult *res)
{
    park_ctx *c = data;
    ot_relay *r = c->r;
    uint64_t id = c->id;
    free(c);
    if (id < r->head_id || id >= r->tail_id)
        return;
    inflight *f = slot(r, id);
    if (f->left > 0)
        f->left--;
    if (status != OT_PG_OK) {
        f->failed = true; /* not recorded: try the whole thing again */
        r->rewinding = true;
    } else {
        ot_metrics_inc(OT_C_RELAY_PARKED_EVENTS, 1);
    }
    advance(r);
    rewind_maybe(r);
}

/* Records entry `id` in relay_parked; it counts as done once written. */
static void park_write(ot_relay *r, uint64_t id, const char *why)
{
    inflight *f = slot(r, id);
    park_ctx *c = malloc(sizeof(*c));
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", (long long)f->seq);
    const char *vals[3] = { seq, f->order, why };
    f->parking = true;
    f->left++;
    if (c) {
        *c = (park_ctx){ r, id };
        if (ot_pg_exec(r->lockpg, "relay_park", 3, vals, NULL, on_parked, c))
            return;
        free(c);
    }
    f->left--;
    f->failed = true;
    r->rewinding = true;
}

static void on_delivered(void *data, const ot_kafka_report *rep)
{
    ot_relay *r = data;
    uint64_t id = (uint64_t)(uintptr_t)rep->opaque;
    if (id < r->head_id || id >= r->tail_id)
        return; /* from before a rewind */
    inflight *f = slot(r, id);
    if (f->left > 0)
        f->left--;
    if (!rep->err && f->left == 0 && !f->failed && !f->parking && f->ts_ms > 0) {
        /* Both copies are persisted now: the event is published. */
        int64_t lat_us = ot_wall_us() - f->ts_ms * 1000;
        ot_metrics_relay_latency(lat_us > 0 ? (uint64_t)lat_us : 0);
    }
    if (rep->err && rep->permanent && !f->failed && !f->parking && park_order(r, f->order)) {
        r->errors++;
        ot_metrics_inc(OT_C_RELAY_PRODUCE_ERRORS, 1);
        ot_logf(OT_LOG_ERROR, "relay: Kafka refuses seq %lld for good (%s); order %s parked", (long long)f->seq,
                rep->errstr ? rep->errstr : "?", f->order);
        park_write(r, id, rep->errstr ? rep->errstr : "refused");
    } else if (rep->err && f->parking) {
        /* the other copy of an event being parked: nothing more to do */
    } else if (rep->err) {
        r->errors++;
        ot_metrics_inc(OT_C_RELAY_PRODUCE_ERRORS, 1);
        if (!f->failed)
            ot_logf(OT_LOG_WARN, "relay: seq %lld not delivered (%s%s); the cursor stops before it",
                    (long long)f->seq, rep->errstr ? rep->errstr : "?",
                    rep->possibly_persisted ? ", possibly persisted" : "");
        f->failed = true;
        r->rewinding = true;
    }
    advance(r);
    rewind_maybe(r);
    if (r->sink_full && !r->rewinding && r->sink && inflight_n(r) < r->cap) {
        r->sink_full = false;
        ot_sink_wake(r->sink);
    }
}

static void on_fatal(void *data, const char *why)
{
    ot_relay *r = data;
    /* The producer cannot go on: a new one, from the stored cursor. */
    pipeline_stop(r);
    ot_timer_start(r->loop, &r->retry_timer, OT_RELAY_RETRY_MS);
}

static void on_topics(void *data, bool ok, const char *msg)
{
    ot_relay *r = data;
    if (!ok) {
        ot_logf(OT_LOG_WARN, "relay: topics not ready (%s); trying again", msg ? msg : "?");
        ot_timer_start(r->loop, &r->retry_timer, OT_RELAY_RETRY_MS);
        return;
    }
    r->topics_ok = true;
    pipeline_start(r);
}

/* ---- the sink ---- */

/* The event's "timestamp" (ot_iso, UTC, milliseconds) in ms since the epoch;
 * 0 if it does not parse (librdkafka then stamps the produce time). The codec
 * parser, not sscanf + timegm as before: it runs for every event, and those
 * two were 5 % of the relay's loop (perf during bench-kafka.sh). */
static int64_t event_ms(ot_str ts)
{
    int64_t us;
    return ot_iso8601_parse(ts, &us) == 0 && us > 0 ? us / 1000 : 0;
}

static int topic_of(ot_str type)
{
    for (int i = 1; i < NTOPICS; i++)
        if (ot_str_eq_lit(type, topic_suffix[i]))
            return i;
    return -1;
}

/* The hex MAC of `json` (in o->seal_hex, until the next call). false
 * without a key: published unsealed, which the feed drops (its tail still
 * delivers the event). */
static bool seal(ot_relay_out *o, ot_str json, ot_str *mac)
{
    if (!o->have_key || ot_event_seal_hex(o->mac_key, ot_str_c(OT_EVENT_KAFKA_CHANNEL), json, o->seal_hex) < 0)
        return false;
    *mac = ot_str_make(o->seal_hex, OT_EVENT_SEAL_HEX);
    return true;
}

void ot_relay_out_init(ot_relay_out *o, const ot_config *cfg)
{
    memset(o, 0, sizeof(*o));
    o->have_key = cfg->jwt_secret && ot_event_mac_key(ot_str_c(cfg->jwt_secret), o->mac_key) == 0;
    const char *prefix = cfg->kafka_topic_prefix ? cfg->kafka_topic_prefix : "";
    for (int i = 0; i < NTOPICS; i++)
        snprintf(o->topics[i], sizeof o->topics[i], "%s%s", prefix, topic_suffix[i]);
}

/* Nothing on the heap since the seal needs no copy of the event; the key is
 * not left behind in the caller's memory. */
void ot_relay_out_free(ot_relay_out *o) { memset(o, 0, sizeof(*o)); }

int ot_relay_out_produce(ot_relay_out *o, ot_kafka *k, const ot_event *ev, void *opaque, int *rc_events,
                         int *rc_type)
{
    int t = topic_of(ev->type);
    ot_kafka_header h[3] = { { "eventId", ev->event_id }, { "type", ev->type } };
    int nh = 2;
    ot_str mac;
    if (seal(o, ev->json, &mac))
        h[nh++] = (ot_kafka_header){ OT_EVENT_SEAL_HEADER, mac };
    int64_t ts = event_ms(ev->timestamp);
    /* order.events first: it carries the full history, so it is the one a
     * consumer of everything reads. */
    *rc_events = ot_kafka_produce(k, o->topics[0], ev->order_id, ev->json, ts, h, nh, opaque);
    *rc_type = OT_OK;
    if (*rc_events == OT_OK && t > 0)
        *rc_type = ot_kafka_produce(k, o->topics[t], ev->order_id, ev->json, ts, h, nh, opaque);
    return (*rc_events == OT_OK) + (*rc_events == OT_OK && t > 0 && *rc_type == OT_OK);
}

static size_t relay_deliver(void *data, const ot_event *evs, size_t n)
{
    ot_relay *r = data;
    if (!r->k || r->rewinding)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const ot_event *ev = &evs[i];
        if (inflight_n(r) >= r->cap) {
            r->sink_full = true;
            return i;
        }
        uint64_t id = r->tail_id;
        inflight *f = slot(r, id);
        *f = (inflight){ .seq = ev->seq, .ts_ms = event_ms(ev->timestamp) };
        /* Not snprintf: per event, it was ~3 % of the loop (callgrind). */
        size_t olen = ev->order_id.len < sizeof f->order ? ev->order_id.len : sizeof f->order - 1;
        if (olen)
            memcpy(f->order, ev->order_id.base, olen);
        f->order[olen] = 0;
        if (is_parked(r, ev->order_id)) {
            /* Behind a parked event of its order: publishing it would show
             * consumers a history with a hole. */
            r->tail_id++;
            park_write(r, id, "an earlier event of this order is parked");
            continue;
        }
        int rc1, rc2;
        int queued = ot_relay_out_produce(&r->out, r->k, ev, (void *)(uintptr_t)id, &rc1, &rc2);
        if (rc1 == OT_KAFKA_EFULL) {
            r->sink_full = true;
            return i;
        }
        r->tail_id++;
        f->left = (uint8_t)queued;
        if ((rc1 == OT_KAFKA_EREFUSED || rc2 == OT_KAFKA_EREFUSED) && park_order(r, f->order)) {
            r->errors++;
            ot_metrics_inc(OT_C_RELAY_PRODUCE_ERRORS, 1);
            ot_logf(OT_LOG_ERROR, "relay: seq %lld (%zu bytes) cannot be published; order %s parked",
                    (long long)ev->seq, ev->json.len, f->order);
            park_write(r, id, "refused by the producer (too large?)");
            continue;
        }
        if (rc1 != OT_OK || rc2 != OT_OK) {
            /* Refused here and now (fatal, too large, queue full between the
             * two copies): the cursor stops before it, as for a failed report. */
            r->errors++;
            ot_metrics_inc(OT_C_RELAY_PRODUCE_ERRORS, 1);
            f->failed = true;
            r->rewinding = true;
            rewind_maybe(r);
            return i + 1;
        }
    }
    return n;
}

static const ot_sink_ops relay_sink_ops = { .deliver = relay_deliver };

/* ---- the pipeline: producer, topics, sink ---- */

static void on_parked_orders(void *data, int status, PGresult *res)
{
    ot_relay *r = data;
    if (!r->holder)
        return;
    if (status != OT_PG_OK) {
        ot_timer_start(r->loop, &r->retry_timer, OT_RELAY_RETRY_MS);
        return;
    }
    r->nparked = 0;
    for (int i = 0; i < PQntuples(res); i++)
        park_order(r, PQgetvalue(res, i, 0));
    r->parked_loaded = true;
    pipeline_start(r);
}

static void pipeline_start(ot_relay *r)
{
    if (!r->holder)
        return;
    if (!r->k) {
        ot_kafka_config kc;
        ot_kafka_config_default(&kc);
        kc.brokers = r->cfg->kafka_brokers;
        kc.message_timeout_ms = r->cfg->kafka_message_timeout_ms;
        /* Two messages per event, and room for the reports on their way. */
        kc.queue_max_messages = 2 * r->cfg->kafka_max_inflight + 1024;
        kc.max_message_bytes = r->cfg->kafka_max_message_bytes;
        char err[512];
        static const ot_kafka_ops kops = { .delivered = on_delivered, .fatal = on_fatal, .topics = on_topics };
        r->k = ot_kafka_new(r->loop, &kc, &kops, r, err, sizeof err);
        if (!r->k) {
            ot_logf(OT_LOG_ERROR, "relay: Kafka producer: %s", err);
            ot_timer_start(r->loop, &r->retry_timer, OT_RELAY_RETRY_MS * 5);
            return;
        }
        r->topics_ok = false;
    }
    if (!r->topics_ok) {
        const char *names[NTOPICS];
        for (int i = 0; i < NTOPICS; i++)
            names[i] = r->out.topics[i];
        if (ot_kafka_create_topics(r->k, names, NTOPICS, r->cfg->kafka_partitions, r->cfg->kafka_replication,
                                   r->cfg->kafka_retention_ms) < 0)
            ot_timer_start(r->loop, &r->retry_timer, OT_RELAY_RETRY_MS * 5);
        return; /* on_topics continues */
    }
    if (!r->parked_loaded) {
        if (!ot_pg_exec(r->lockpg, "relay_parked_orders", 0, NULL, NULL, on_parked_orders, r))
            ot_timer_start(r->loop, &r->retry_timer, OT_RELAY_RETRY_MS);
        return; /* on_parked_orders continues */
    }
    if (!r->sink && !r->rewinding) {
        r->head_id = r->tail_id;
        r->sink_full = false;
        r->sink = ot_events_add_sink(r->events, OT_RELAY_SINK, &relay_sink_ops, r, true);
        if (!r->sink)
            ot_timer_start(r->loop, &r->retry_timer, OT_RELAY_RETRY_MS);
    }
}

static void pipeline_stop(ot_relay *r)
{
    if (r->sink) {
        ot_sink_remove(r->sink);
        r->sink = NULL;
    }
    if (r->k) {
        ot_kafka_free(r->k);
        r->k = NULL;
    }
    r->topics_ok = false;
    r->parked_loaded = false;
    r->rewinding = false;
    r->head_id = r->tail_id;
}

static void on_retry(ot_loop *loop, ot_timer *t) { pipeline_start(t->data); }

/* ---- the lock ---- */

static void lock_lost(ot_relay *r, const char *why)
{
    if (!r->holder)
        return;
    ot_logf(OT_LOG_WARN, "relay: no longer the holder (%s); stopping", why);
    r->holder = false;
    ot_events_want_listen(r->events, OT_EV_LISTEN_RELAY, false);
    ot_metrics_set(OT_G_RELAY_ACTIVE, 0);
    ot_timer_stop(r->loop, &r->retry_timer);
    pipeline_stop(r);
}

/* The parked set again: orders whose rows were published and removed by
 * `ordertrack relay retry` flow again. Same connection as the park writes,
 * so every row already parked here is in the answer. */
static void on_parked_reload(void *data, int status, PGresult *res)
{
    ot_relay *r = data;
    r->pq = NULL;
    /* An order parked after the query left may be missing from its answer
     * (its row was written behind it): keep the set, read it next time. */
    if (!r->holder || status != OT_PG_OK || r->park_gen != r->pq_gen)
        return;
    size_t before = r->nparked;
    r->nparked = 0;
    for (int i = 0; i < PQntuples(res); i++)
        park_order(r, PQgetvalue(res, i, 0));
    ot_metrics_set(OT_G_RELAY_PARKED_ORDERS, (int64_t)r->nparked);
    if (r->nparked < before)
        ot_logf(OT_LOG_INFO, "relay: %zu order(s) no longer parked", before - r->nparked);
}

static void on_lock(void *data, int status, PGresult *res)
{
    ot_relay *r = data;
    r->lq = NULL;
    ot_timer_start(r->loop, &r->lock_timer, OT_RELAY_LOCK_MS);
    bool yes = status == OT_PG_OK && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    if (r->holder) {
        if (!yes)
            lock_lost(r, status == OT_PG_OK ? "the lock's session was replaced" : "the lock's connection failed");
        else if (r->parked_loaded && r->nparked > 0 && !r->pq) {
            r->pq_gen = r->park_gen;
            r->pq = ot_pg_exec(r->lockpg, "relay_parked_orders", 0, NULL, NULL, on_parked_reload, r);
        }
        return;
    }
    if (yes) {
        r->holder = true;
        /* The holder publishes what its reader finds: it must hear every
         * commit at once, not by the 1 s idle tail. */
        ot_events_want_listen(r->events, OT_EV_LISTEN_RELAY, true);
        ot_metrics_set(OT_G_RELAY_ACTIVE, 1);
        ot_logf(OT_LOG_INFO, "relay: holding the relay lock; publishing to Kafka at %s", r->cfg->kafka_brokers);
        pipeline_start(r);
    }
}

static void on_lock_timer(ot_loop *loop, ot_timer *t)
{
    ot_relay *r = t->data;
    if (r->lq)
        return;
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)OT_RELAY_LOCK_KEY);
    const char *vals[1] = { key };
    r->lq = ot_pg_exec(r->lockpg, r->holder ? "relay_lock_held" : "relay_lock", 1, vals, NULL, on_lock, r);
    if (!r->lq)
        ot_timer_start(loop, t, OT_RELAY_LOCK_MS);
}

ot_relay *ot_relay_new(ot_loop *loop, const ot_config *cfg, ot_events *events)
{
    if (!cfg->kafka_brokers || !cfg->database_url || !events)
        return NULL;
    ot_relay *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->loop = loop;
    r->cfg = cfg;
    r->events = events;
    r->cap = cfg->kafka_max_inflight ? cfg->kafka_max_inflight : 1;
    r->ring = calloc(r->cap, sizeof(*r->ring));
    r->parked = calloc(cfg->kafka_max_parked ? cfg->kafka_max_parked : 1, sizeof(*r->parked));
    ot_relay_out_init(&r->out, cfg);
    ot_pg_config pc;
    ot_pg_config_default(&pc);
    pc.conninfo = cfg->database_url;
    pc.pool_size = 1;
    r->lockpg = r->ring && r->parked ? ot_pg_new(loop, &pc, relay_stmts, OT_ARRAY_LEN(relay_stmts)) : NULL;
    if (!r->lockpg) {
        free(r->parked);
        free(r->ring);
        free(r);
        return NULL;
    }
    ot_timer_init(&r->lock_timer, on_lock_timer, r);
    ot_timer_init(&r->retry_timer, on_retry, r);
    on_lock_timer(loop, &r->lock_timer);
    return r;
}

void ot_relay_free(ot_relay *r)
{
    if (!r)
        return;
    ot_timer_stop(r->loop, &r->lock_timer);
    ot_timer_stop(r->loop, &r->retry_timer);
    pipeline_stop(r);
    if (r->lq)
        ot_pg_cancel(r->lq);
    if (r->bq)
        ot_pg_cancel(r->bq);
    if (r->pq)
        ot_pg_cancel(r->pq);
    ot_pg_free(r->lockpg); /* closing the session releases the lock */
    free(r->parked);
    free(r->ring);
    ot_relay_out_free(&r->out);
    free(r);
}

/* Degraded, not unready: writes go on into the outbox while Kafka is away.
 * A worker that does not hold the lock has nothing to report. */
bool ot_relay_ready(void *data)
{
    ot_relay *r = data;
    return !r->holder || (r->k && ot_kafka_up(r->k) && r->sink);
}

static void on_backlog(void *data, int status, PGresult *res)
{
    ot_relay *r = data;
    r->bq = NULL;
    if (status != OT_PG_OK || PQntuples(res) != 1 || !r->holder || !r->sink)
        return;
    int64_t max = strtoll(PQgetvalue(res, 0, 0), NULL, 10), acked = ot_sink_acked(r->sink);
    ot_metrics_set(OT_G_RELAY_BACKLOG, max > acked ? max - acked : 0);
    ot_metrics_set(OT_G_RELAY_OLDEST_MS, max > acked && !PQgetisnull(res, 0, 1) ? strtoll(PQgetvalue(res, 0, 1), NULL, 10) : 0);
}

void ot_relay_sample(void *data)
{
    ot_relay *r = data;
    if (!r->holder) {
        ot_metrics_set(OT_G_RELAY_BACKLOG, 0);
        ot_metrics_set(OT_G_RELAY_OLDEST_MS, 0);
    } else if (r->sink && !r->bq) {
        char a[24];
        snprintf(a, sizeof a, "%lld", (long long)ot_sink_acked(r->sink));
        const char *vals[1] = { a };
        r->bq = ot_pg_exec(r->lockpg, "relay_backlog", 1, vals, NULL, on_backlog, r);
    }
    ot_metrics_set(OT_G_RELAY_ACTIVE, r->holder ? 1 : 0);
    ot_metrics_set(OT_G_RELAY_INFLIGHT, (int64_t)inflight_n(r));
    ot_metrics_set(OT_G_KAFKA_UP, r->holder && r->k && ot_kafka_up(r->k) ? 1 : 0);
    ot_metrics_set(OT_G_KAFKA_TOPIC_MISMATCHES, r->holder ? ot_kafka_topic_mismatches(r->k) : 0);
}
