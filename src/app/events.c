/* The seq-ordered event reader: its sources, queries and timers. See events.h
 * for the why; the ordering itself, its invariant and the gap proof are the
 * pure sequencer's (evseq.h). */
#include "ot/app/events.h"

#include <stdio.h>
#include <stdlib.h>

#include "ot/app/evseq.h"
#include "ot/codec/json.h"
#include "ot/core/fmt.h"
#include "ot/core/log.h"
#include "ot/event/loop.h"
#include "ot/core/metrics.h"
#include "ot/adapters/pg.h"
#include "ot/adapters/redis.h"

/* Events held behind a gap. Beyond this they are forgotten and re-read by the
 * tail query once the gap resolves: memory stays bounded, nothing is lost. */
#define OT_EV_PENDING_MAX 4096
/* Rows per tail query; a full page triggers the next one at once. Small on
 * purpose: a page is pushed to every socket within one loop turn, before any
 * client can read, and tails now carry the NOTIFY traffic too. 32 events of a
 * few KB stay well under a socket's queue cap (--ws-max-queue) even when the
 * kernel buffer is busy; the round trip between pages paces the flow. */
#define OT_EV_PAGE OT_EVENTS_TAIL_PAGE
#define OT_EV_PAGE_STR "32"
/* Safety-net poll while idle: catches a writer that died between COMMIT and
 * its Redis publish, or anything else no notification announced. */
#define OT_EV_IDLE_POLL_MS 1000
/* First re-check of a gap: the missing commit usually arrives by itself first. */
#define OT_EV_GAP_FIRST_MS 2
#define OT_EV_GAP_MAX_MS 200
#define OT_EV_CHANNEL "ot_events"
/* Replay page of a sink behind the reader: large, since a sink (unlike a
 * WebSocket) paces itself by what it takes. */
#define OT_SINK_RETRY_MS 500

struct ot_events {
    ot_events_env w; /* copied at start */
    ot_sinks sinks;
    ot_evseq seq;           /* ordering, gaps and their proofs: evseq.h */
    uint32_t gap_delay_ms;
    bool tail_inflight, tail_again, init_inflight;
    ot_pg_query *q;
    ot_timer timer;
    ot_pg_listener *listener;
    unsigned listen_why; /* Kafka mode: OT_EV_LISTEN_* reasons to keep LISTEN open */
    ot_redis *redis;
    /* Redis messages are sealed with this (event_json.h): a PUBLISH by anyone
     * else who reaches that Redis is dropped and counted, never pushed. */
    uint8_t mac_key[OT_EVENT_MAC_KEY_LEN];
    bool have_key;
    uint64_t forged;
    /* Wake-ups after our commits (sql/012): one in flight; the highest seq
     * committed meanwhile goes in the next. */
    ot_pg_query *wake_q;
    int64_t wake_seq;     /* what the wake in flight names (0: a ev_wake_last, told by its answer) */
    int64_t wake_pending; /* 0: none */
};

/* The fields the reader routes by, as columns beside the event's JSON: a
 * tail row becomes an ot_event without parsing the JSON (it came from
 * ot_event_json over the same row, so they agree). Columns 4..10. */
#define TAIL_COLS "oe.version, oe.order_id, oe.user_id, oe.status, oe.type"
/* eventId and timestamp are read out of the same JSON (sinks publish them:
 * the Kafka relay's headers, the search indexer's document ids). */
#define TAIL_OUT "e.version, e.order_id, e.user_id, e.status, e.type, e.j::json->>'eventId', e.j::json->>'timestamp'"
enum { COL_VERSION = 4, COL_ORDER, COL_USER, COL_STATUS, COL_TYPE, COL_EVENT_ID, COL_TIMESTAMP };

const ot_pg_stmt ot_events_stmts[] = {
    /* Not max(seq) + 1: a transaction still running may own a lower seq and
     * commit after we looked. sql/004 has each writer advertise, in the lock
     * table, a bound below every seq it takes; the start is below all of them. */
    { "ev_start", "SELECT ot_event_start_seq()", 0, true },
    { "ev_tail",
      /* The query's own xid, not pg_snapshot_xmax: that is only the latest
       * completed xid + 1, and a writer still running may hold a higher one.
       * An xid that writes no WAL commits without a flush: cheap. $2 bounds
       * the rows (OT_EVENTS_TAIL_ALL: none): a reader that gets events as
       * data (Redis, Kafka) stops at the highest seen, past it they are on
       * their way there, and reading them here would bring most of them from
       * PostgreSQL first. */
      "SELECT s.xmin::text, s.xid::text, e.seq, e.j, " TAIL_OUT " FROM "
      "(SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin, pg_current_xact_id() AS xid) s "
      "LEFT JOIN LATERAL (SELECT oe.seq, ot_event_json(oe) AS j, " TAIL_COLS " FROM order_events oe WHERE oe.seq >= $1 "
      "AND oe.seq <= $2 ORDER BY oe.seq LIMIT " OT_EV_PAGE_STR ") e ON true ORDER BY e.seq",
      2, true },
    /* The same read without an xid, while no gap waits for a bound: a tail
     * runs per NOTIFY burst, and an xid each would burn the xid space at the
     * commit rate (and bring anti-wraparound vacuums that much closer). */
    { "ev_read",
      "SELECT s.xmin::text, NULL::text, e.seq, e.j, " TAIL_OUT " FROM "
      "(SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) s "
      "LEFT JOIN LATERAL (SELECT oe.seq, ot_event_json(oe) AS j, " TAIL_COLS " FROM order_events oe WHERE oe.seq >= $1 "
      "ORDER BY oe.seq LIMIT " OT_EV_PAGE_STR ") e ON true ORDER BY e.seq",
      1, true },
    /* A write of its own (a NOTIFY commits), never batched with reads. */
    { "ev_wake", "SELECT ot_wake_listeners($1::bigint)", 1, false },
    /* Behind a write on its connection (ot_events_write_queued): names the
     * seq that write took; returns it. */
    { "ev_wake_last", "SELECT ot_wake_listeners_last()", 0, false },
};
const size_t ot_events_nstmts = OT_ARRAY_LEN(ot_events_stmts);

static void schedule_tail(ot_events *e, uint32_t ms);
static void run_tail(ot_events *e);

static void on_deliver(void *data, const ot_event *ev)
{
    ot_events *e = data;
    ot_metrics_inc(OT_C_EVENTS_RECEIVED, 1);
    ot_sinks_feed(&e->sinks, ev);
}

/* One event from any source. Events arrive parsed, at most once each: our
 * own commit's JSON once (and shared with the handler), Redis messages once,
 * tail rows not at all (their columns), a NOTIFY only peeked; a held one is
 * parsed once more when it leaves. */
static void feed(ot_events *e, const ot_event *ev)
{
    if (ot_evseq_feed(&e->seq, ev)) {
        e->gap_delay_ms = OT_EV_GAP_FIRST_MS;
        schedule_tail(e, e->gap_delay_ms);
    }
}

/* An event announced by NOTIFY, Redis or our own commit, already parsed. */
static void feed_live(ot_events *e, ot_event *ev)
{
    ev->seen_us = ot_now_us();
    if (ev->order_id.len == 0) {
        /* A {"seq":N} stub: the event was too large for NOTIFY; read it. */
        if (ot_evseq_started(&e->seq) && ev->seq >= e->seq.next)
            schedule_tail(e, 0);
        return;
    }
    feed(e, ev);
}

static void feed_json(ot_events *e, ot_str json)
{
    ot_event ev;
    if (ot_event_parse(json, &ev) < 0) {
        ot_logf(OT_LOG_WARN, "events: unparsable event payload ignored (%zu bytes)", json.len);
        return;
    }
    feed_live(e, &ev);
}

/* ---- tail queries ---- */

static uint64_t parse_u64(const char *s)
{
    return s ? strtoull(s, NULL, 10) : 0;
}

static ot_str col(const PGresult *res, int row, int c)
{
    return ot_str_make(PQgetvalue(res, row, c), (size_t)PQgetlength(res, row, c));
}

int ot_events_tail_feed(ot_evseq *s, const PGresult *res, void (*each)(void *data, const ot_event *ev), void *data)
{
    uint64_t now = ot_now_us();
    int rows = PQntuples(res), got = 0;
    uint64_t xmin = 0, xid = 0;
    int64_t max_row = 0;
    for (int i = 0; i < rows; i++) {
        xmin = parse_u64(PQgetvalue(res, i, 0));
        xid = parse_u64(PQgetvalue(res, i, 1));
        if (PQgetisnull(res, i, 2))
            continue;
        got++;
        int64_t seq = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        if (seq > max_row)
            max_row = seq;
        ot_event ev = {
            .seq = seq,
            .version = strtoll(PQgetvalue(res, i, COL_VERSION), NULL, 10),
            .order_id = col(res, i, COL_ORDER),
            .user_id = col(res, i, COL_USER),
            .status = col(res, i, COL_STATUS),
            .type = col(res, i, COL_TYPE),
            .event_id = col(res, i, COL_EVENT_ID),
            .timestamp = col(res, i, COL_TIMESTAMP),
            .json = col(res, i, 3),
            .seen_us = now,
        };
        each(data, &ev);
    }
    ot_evseq_tail_done(s, xmin, xid, max_row);
    return got;
}

static void feed_cb(void *data, const ot_event *ev) { feed(data, ev); }

static void on_tail(void *data, int status, PGresult *res)
{
    ot_events *e = data;
    e->q = NULL;
    e->tail_inflight = false;
    if (status != OT_PG_OK) {
        schedule_tail(e, 500); /* the pool reconnects; retry then */
        return;
    }
    uint64_t skipped = e->seq.gaps_skipped;
    int got = ot_events_tail_feed(&e->seq, res, feed_cb, e);
    ot_sinks_advance(&e->sinks, e->seq.next);
    if (e->seq.gaps_skipped != skipped)
        ot_metrics_inc(OT_C_EVENTS_GAPS_SKIPPED, e->seq.gaps_skipped - skipped);
    if (got >= OT_EV_PAGE || e->tail_again) {
        e->tail_again = false;
        schedule_tail(e, 0);
    } else if (e->seq.npending > 0) {
        e->gap_delay_ms = e->gap_delay_ms ? e->gap_delay_ms * 2 : OT_EV_GAP_FIRST_MS;
        if (e->gap_delay_ms > OT_EV_GAP_MAX_MS)
            e->gap_delay_ms = OT_EV_GAP_MAX_MS;
        schedule_tail(e, e->gap_delay_ms);
    } else {
        schedule_tail(e, OT_EV_IDLE_POLL_MS);
    }
}

static void on_start(void *data, int status, PGresult *res)
{
    ot_events *e = data;
    e->q = NULL;
    e->init_inflight = false;
    if (status != OT_PG_OK || PQntuples(res) != 1) {
        schedule_tail(e, 500);
        return;
    }
    /* Live delivery starts at the oldest seq that may still be in flight
     * (every lower one is committed or rolled back for good); older events are
     * what resuming clients replay from the database. Committed events from
     * there on are delivered like any others, and a gap at an in-flight seq is
     * held by the usual xid bound until its owner ends. */
    ot_evseq_start(&e->seq, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    ot_sinks_advance(&e->sinks, e->seq.next);
    ot_logf(OT_LOG_DEBUG, "events: starting at seq %lld", (long long)e->seq.next);
    schedule_tail(e, OT_EV_IDLE_POLL_MS);
}

static void run_tail(ot_events *e)
{
    ot_pg *pg = e->w.pg;
    if (!pg)
        return;
    if (e->tail_inflight || e->init_inflight) {
        e->tail_again = true;
        return;
    }
    if (!ot_evseq_started(&e->seq)) {
        e->init_inflight = true;
        e->q = ot_pg_exec(pg, "ev_start", 0, NULL, NULL, on_start, e);
        if (!e->q)
            e->init_inflight = false;
        return;
    }
    char from[OT_FMT_U64_MAX + 1], to[OT_FMT_U64_MAX + 1];
    from[ot_fmt_u64(from, (uint64_t)e->seq.next)] = '\0'; /* next > 0 once started */
    const char *vals[2] = { from, to };
    /* Without LISTEN the other workers' events come as data (Redis, the
     * Kafka feed), so a gap's tail stops at what is held; with LISTEN the
     * tail is how they come, and reads on. */
    /* The highest fed, not held: those over max_pending were forgotten. */
    uint64_t upto = e->listener ? OT_EVENTS_TAIL_ALL : (uint64_t)e->seq.seen_max;
    to[ot_fmt_u64(to, upto)] = '\0';
    e->tail_inflight = true;
    ot_evseq_tail_sent(&e->seq);
    e->q = ot_pg_exec(pg, e->seq.npending ? "ev_tail" : "ev_read", e->seq.npending ? 2 : 1, vals, NULL, on_tail, e);
    if (!e->q)
        e->tail_inflight = false;
}

static void on_timer(ot_loop *loop, ot_timer *t) { run_tail(t->data); }

static void schedule_tail(ot_events *e, uint32_t ms)
{
    if (ms == 0) {
        ot_timer_stop(e->w.loop, &e->timer);
        run_tail(e);
        return;
    }
    /* Keep an earlier deadline if one is already set. */
    if (ot_timer_active(&e->timer) && e->timer.when_ms <= ot_loop_now_ms(e->w.loop) + ms)
        return;
    ot_timer_start(e->w.loop, &e->timer, ms);
}

/* ---- sources ---- */

/* NOTIFY is a wake-up hint, never data. Any role that may connect to the
 * database can pg_notify('ot_events', anything), even one that may not write
 * order_events, and NOTIFY cannot carry a MAC the database would check. So a
 * notification only makes the reader tail order_events, where a row exists
 * only if its transaction committed; a payload's seq below the watermark
 * (our own commit, already delivered) saves the query. The cost is one tail
 * query per burst (one in flight, at most one more queued), not per event. */
static void on_notify(void *data, const char *channel, const char *payload, size_t len)
{
    ot_events *e = data;
    if (!ot_evseq_started(&e->seq))
        return; /* the start query covers it */
    int64_t seq;
    /* Only the leading "seq" is read (event_json.h): the payload is a hint,
     * and parsing all of it would be a third parse of every event. */
    if (ot_event_peek_seq(ot_str_make(payload, len), &seq) == 0 && seq < e->seq.next)
        return;
    schedule_tail(e, 0);
}

static void on_listen_state(void *data, bool up)
{
    ot_events *e = data;
    if (up)
        schedule_tail(e, 0); /* backfill whatever was committed while we were deaf */
}

static void on_redis_msg(void *data, ot_str channel, ot_str message)
{
    ot_events *e = data;
    ot_str json;
    if (!e->have_key || ot_event_open(e->mac_key, channel, message, &json) < 0) {
        ot_metrics_inc(OT_C_EVENTS_FORGED, 1);
        /* Powers of two: a flood of forgeries cannot flood the log too. */
        uint64_t n = ++e->forged;
        if ((n & (n - 1)) == 0)
            ot_logf(OT_LOG_WARN, "events: dropped %llu pub/sub message(s) without a valid MAC (last on %.*s, %zu bytes)",
                    (unsigned long long)n, (int)(channel.len > 64 ? 64 : channel.len), channel.base,
                    message.len);
        return;
    }
    feed_json(e, json);
}

static void on_redis_state(void *data, bool subscribed)
{
    ot_events *e = data;
    ot_metrics_set(OT_G_REDIS_UP, subscribed ? 1 : 0);
    if (subscribed)
        schedule_tail(e, 0); /* Redis pub/sub kept nothing for us while we were away */
}

/* Open or close LISTEN as the reasons say. Closing loses nothing: the 1 s
 * idle tail stays, and reopening tails at once (on_listen_state). */
static void listen_update(ot_events *e)
{
    bool want = !e->redis && (!e->w.cfg->kafka_brokers || e->listen_why);
    if (want && !e->listener) {
        ot_pg_config pc;
        ot_pg_config_default(&pc);
        pc.conninfo = e->w.cfg->database_url;
        e->listener = ot_pg_listen(e->w.loop, &pc, OT_EV_CHANNEL, on_notify, on_listen_state, e);
    } else if (!want && e->listener) {
        ot_pg_listener_free(e->listener);
        e->listener = NULL;
    }
}

void ot_events_want_listen(ot_events *e, unsigned why, bool on)
{
    if (!e || !e->w.pg)
        return;
    e->listen_why = on ? e->listen_why | why : e->listen_why & ~why;
    listen_update(e);
}

bool ot_events_listening(const ot_events *e) { return e && e->listener; }

int ot_events_feed_kafka(ot_events *e, ot_str event_json, int64_t *seq)
{
    ot_event ev;
    if (ot_event_parse(event_json, &ev) < 0 || ev.order_id.len == 0)
        return OT_ERR;
    *seq = ev.seq;
    /* Not started: the start query's position covers it (a tail finds it). */
    bool fresh = ot_evseq_started(&e->seq) && ev.seq >= e->seq.next;
    if (fresh)
        feed_live(e, &ev);
    return fresh ? 1 : 0;
}

ot_events *ot_events_start(const ot_events_env *w)
{
    ot_events *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    if (ot_evseq_init(&e->seq, OT_EV_PENDING_MAX, on_deliver, e) < 0) {
        free(e);
        return NULL;
    }
    e->w = *w;
    ot_sink_store store = { 0 };
    if (w->pg)
        ot_sink_store_pg(&store, w->pg);
    /* A page's remainder that a full sink did not take is held, up to
     * sink_buffer_events: a larger page would be dropped and read again. */
    size_t page = w->cfg->sink_page_events < w->cfg->sink_buffer_events ? w->cfg->sink_page_events
                                                                        : w->cfg->sink_buffer_events;
    ot_sink_limits lim = { .max_events = w->cfg->sink_buffer_events, .max_bytes = w->cfg->sink_buffer_bytes,
                           .page = page, .retry_ms = OT_SINK_RETRY_MS };
    ot_sinks_init(&e->sinks, w->loop, &store, &lim);
    ot_timer_init(&e->timer, on_timer, e);
    if (!w->pg)
        return e; /* no database: no events */
    e->have_key = w->cfg->jwt_secret && ot_event_mac_key(ot_str_c(w->cfg->jwt_secret), e->mac_key) == 0;
    if (w->cfg->redis_url) {
        ot_redis_config rc;
        ot_redis_config_default(&rc);
        rc.url = w->cfg->redis_url;
        rc.client_name = "ordertrack";
        static const char *const chans[] = { "ot:admin" };
        e->redis = ot_redis_new(w->loop, &rc, chans, 1, on_redis_msg, on_redis_state, e);
    } else {
        /* Kafka mode starts like the default: its feed is not up yet. */
        e->listen_why = OT_EV_LISTEN_FEED_DOWN;
        listen_update(e);
    }
    run_tail(e); /* the start query */
    return e;
}

void ot_events_free(ot_events *e)
{
    if (!e)
        return;
    ot_timer_stop(e->w.loop, &e->timer);
    if (e->q)
        ot_pg_cancel(e->q);
    if (e->wake_q)
        ot_pg_cancel(e->wake_q);
    if (e->listener)
        ot_pg_listener_free(e->listener);
    if (e->redis)
        ot_redis_free(e->redis);
    ot_sinks_free(&e->sinks);
    ot_evseq_free(&e->seq);
    free(e);
}

ot_sink *ot_events_add_sink(ot_events *e, const char *name, const ot_sink_ops *ops, void *data, bool durable)
{
    if (!e || (!e->w.pg && durable))
        return NULL;
    return ot_sinks_add(&e->sinks, name, ops, data, durable);
}

void ot_events_sample(ot_events *e)
{
    if (e)
        ot_sinks_sample(&e->sinks);
}

/* Each channel gets its own seal: the MAC covers the channel name. */
static void publish(ot_events *e, const ot_event *ev, ot_str event_json)
{
    size_t cap = event_json.len + OT_EVENT_SEAL_OVERHEAD;
    char *buf = malloc(cap);
    if (!buf)
        return; /* the other processes' tails still find the row */
    char ch[128];
    for (int i = 0; i < 3; i++) {
        if (i == 0)
            snprintf(ch, sizeof(ch), "ot:admin");
        else if (i == 1)
            snprintf(ch, sizeof(ch), "ot:user:%.*s", (int)ev->user_id.len, ev->user_id.base);
        else
            snprintf(ch, sizeof(ch), "ot:order:%.*s", (int)ev->order_id.len, ev->order_id.base);
        size_t n = ot_event_seal(e->mac_key, ot_str_c(ch), event_json, buf, cap);
        if (n)
            ot_redis_publish(e->redis, ot_str_c(ch), ot_str_make(buf, n));
    }
    free(buf);
}

static void send_wake(ot_events *e, int64_t seq);

static void on_wake(void *data, int status, PGresult *res)
{
    ot_events *e = data;
    e->wake_q = NULL;
    int64_t covered = e->wake_seq;
    if (status == OT_PG_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        int64_t named = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        if (named > covered)
            covered = named;
    }
    /* A failed wake is not retried: the readers' idle tail finds the rows.
     * Commits it did not cover (they ended after it was sent) get one more. */
    int64_t seq = e->wake_pending;
    e->wake_pending = 0;
    if (seq > covered)
        send_wake(e, seq);
}

static void send_wake(ot_events *e, int64_t seq)
{
    if (e->wake_q) {
        if (seq > e->wake_pending)
            e->wake_pending = seq;
        return;
    }
    char s[OT_FMT_U64_MAX + 1];
    s[ot_fmt_u64(s, (uint64_t)seq)] = '\0';
    const char *vals[1] = { s };
    e->wake_q = ot_pg_exec(e->w.pg, "ev_wake", 1, vals, NULL, on_wake, e);
    e->wake_seq = seq;
    if (e->wake_q)
        ot_metrics_inc(OT_C_EVENTS_WAKES, 1);
}

void ot_events_write_queued(ot_events *e, ot_pg_query *write)
{
    /* One wake in flight: a write queued meanwhile is covered at its commit
     * (ot_events_committed), by the next wake. With Redis, none. */
    if (!e || e->redis || !e->w.pg || e->wake_q || !write)
        return;
    e->wake_q = ot_pg_exec_next(write, "ev_wake_last", 0, NULL, NULL, on_wake, e);
    e->wake_seq = 0;
    if (e->wake_q)
        ot_metrics_inc(OT_C_EVENTS_WAKES, 1);
}

int ot_events_committed(ot_events *e, ot_str event_json, ot_event *out)
{
    ot_event ev;
    if (ot_event_parse(event_json, &ev) < 0) {
        ot_logf(OT_LOG_WARN, "events: unparsable committed event ignored (%zu bytes)", event_json.len);
        return OT_ERR;
    }
    if (out)
        *out = ev;
    if (!e)
        return 0;
    if (e->redis && e->have_key)
        publish(e, &ev, event_json);
    else if (e->w.pg && ev.seq > 0)
        send_wake(e, ev.seq); /* with Redis nobody LISTENs: its message is the wake-up */
    feed_live(e, &ev);
    return 0;
}

int64_t ot_events_watermark(const ot_events *e) { return e ? e->seq.next : 0; }
