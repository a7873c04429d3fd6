/* The search indexer's Kafka input: group ordertrack-search into a sequencer
 * of its own, gaps filled from PostgreSQL, offsets stored behind the
 * indexer's acknowledgements. See search_feed.h. */
#include "ot/app/search_feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ot/adapters/kafka.h"
#include "ot/app/events.h"
#include "ot/app/evseq.h"
#include "ot/app/kafka_feed.h"
#include "ot/core/fmt.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"

#define SF_STATS_MS 1000
#define SF_NAME_MAX 256
/* Limits and waits are flags (config.h: kafka_search_*), their reasons here:
 * - pending: events held behind a gap; beyond it the highest are forgotten
 *   and the PostgreSQL fill reads them (evseq.h): bounded, nothing lost.
 * - gap: how long Kafka gets to bring a missing seq before PostgreSQL is
 *   asked. Partitions are produced in separate batches (linger) and fetched
 *   at their own pace, a few ms apart, tens under load (20 ms read some from
 *   PostgreSQL in tests on a busy machine); index lag is budgeted in
 *   hundreds. Doubles while it lasts, up to SF_GAP_GROWTH times.
 * - stall: samples (1 s apart) without progress while the reader knows of
 *   later events before PostgreSQL is read instead: longer than a new topic
 *   takes to get its leaders (the relay's first messages wait for them),
 *   short enough that a parked order's last event is not long missing;
 *   SF_DOWN_STALL_FACTOR times that while the consumer has no partitions
 *   (joining takes a few seconds, an outage longer). */
#define SF_GAP_GROWTH 5
#define SF_DOWN_STALL_FACTOR 3
#define SF_RETRY_MS 500
#define SF_GAP_FIRST_MS(f) ((f)->cfg->kafka_search_gap_ms)
#define SF_GAP_MAX_MS(f) ((f)->cfg->kafka_search_gap_ms * SF_GAP_GROWTH)

/* An event the sequencer released that the indexer did not take yet. */
typedef struct {
    char *json;
    size_t len;
} sf_item;

struct ot_search_feed {
    ot_loop *loop;
    const ot_config *cfg;
    ot_pg *pg;
    ot_search_feed_ops ops;
    void *data;
    ot_kafka *k;
    char topic[SF_NAME_MAX], group[SF_NAME_MAX], instance[SF_NAME_MAX + 130];
    bool up, paused;
    ot_kafka_seal seal;
    ot_evseq seq;
    ot_kafka_parts parts;
    sf_item *q; /* waiting for the indexer: q[qhead .. qhead+qn) */
    size_t qhead, qn, qcap;
    int64_t acked, saved, saving;
    ot_pg_query *load_q, *save_q, *tail_q;
    bool tail_again;
    uint32_t gap_ms;
    ot_timer tail_timer, retry_timer, wake_timer;
    uint64_t rejected;
    bool restart; /* out of memory: start again from acked + 1 */
    ot_events *events; /* this worker's reader: its watermark says what exists */
    int64_t stalled_at; /* next at the last sample */
    int stalled;        /* samples since next last moved */
};

static void set_up(ot_search_feed *f, bool up, const char *why)
{
    if (up == f->up)
        return;
    f->up = up;
    if (up)
        ot_logf(OT_LOG_INFO, "search feed: consuming %s as group %s from seq %lld", f->topic, f->group,
                (long long)f->seq.next);
    else
        ot_logf(OT_LOG_WARN, "search feed: down (%s); search falls behind until Kafka is back", why);
}

/* ---- gaps: the event reader's tail query ---- */

static void run_tail(ot_search_feed *f);

static void schedule_tail(ot_search_feed *f, uint32_t ms)
{
    if (ot_timer_active(&f->tail_timer) && f->tail_timer.when_ms <= ot_loop_now_ms(f->loop) + ms)
        return;
    ot_timer_start(f->loop, &f->tail_timer, ms);
}

static void feed(ot_search_feed *f, const ot_event *ev)
{
    if (ot_evseq_feed(&f->seq, ev)) {
        f->gap_ms = SF_GAP_FIRST_MS(f);
        schedule_tail(f, f->gap_ms);
    }
}

static void fill_one(void *data, const ot_event *ev)
{
    ot_search_feed *f = data;
    if (ev->seq >= f->seq.next)
        ot_metrics_inc(OT_C_SEARCH_FEED_FILLED, 1);
    feed(f, ev);
}

static void on_tail(void *data, int status, PGresult *res)
{
    ot_search_feed *f = data;
    f->tail_q = NULL;
    if (status != OT_PG_OK) {
        schedule_tail(f, SF_RETRY_MS);
        return;
    }
    int got = ot_events_tail_feed(&f->seq, res, fill_one, f);
    if (got >= OT_EVENTS_TAIL_PAGE || f->tail_again) {
        f->tail_again = false;
        schedule_tail(f, 0);
    } else if (f->seq.npending > 0 || ot_events_watermark(f->events) > f->seq.next) {
        f->gap_ms = f->gap_ms ? f->gap_ms * 2 : SF_GAP_FIRST_MS(f);
        if (f->gap_ms > SF_GAP_MAX_MS(f))
            f->gap_ms = SF_GAP_MAX_MS(f);
        schedule_tail(f, f->gap_ms);
    }
}

static void run_tail(ot_search_feed *f)
{
    if (f->tail_q) {
        f->tail_again = true;
        return;
    }
    if (!ot_evseq_started(&f->seq) || f->restart)
        return;
    /* Paused, the gap's message waits in its partition too, and what a fill
     * would release the indexer cannot take: resuming looks again. */
    if (f->paused)
        return;
    if (f->seq.npending == 0 && ot_events_watermark(f->events) <= f->seq.next)
        return; /* Kafka filled it meanwhile */
    char from[OT_FMT_U64_MAX + 1], all[OT_FMT_U64_MAX + 1];
    from[ot_fmt_u64(from, (uint64_t)f->seq.next)] = '\0';
    all[ot_fmt_u64(all, OT_EVENTS_TAIL_ALL)] = '\0';
    const char *vals[2] = { from, all };
    ot_evseq_tail_sent(&f->seq);
    /* ev_tail takes an xid (the bound of a gap's owner) only when an event
     * waits behind the gap. */
    f->tail_q = ot_pg_exec(f->pg, f->seq.npending ? "ev_tail" : "ev_read", f->seq.npending ? 2 : 1, vals, NULL,
                           on_tail, f);
    if (!f->tail_q)
        schedule_tail(f, SF_RETRY_MS);
}

static void on_tail_timer(ot_loop *loop, ot_timer *t) { run_tail(t->data); }

/* ---- to the indexer ---- */

static void pause_all(ot_search_feed *f, bool pause)
{
    if (f->k)
        ot_kafka_pause(f->k, pause);
    f->paused = pause;
}

/* The sequencer's sink: each seq once, in order. */
static void on_release(void *data, const ot_event *ev)
{
    ot_search_feed *f = data;
    if (f->restart)
        return;
    if (f->qn == 0 && f->ops.deliver(f->data, ev, 1) == 1)
        return;
    if (f->qhead + f->qn == f->qcap) {
        if (f->qhead > 0) {
            memmove(f->q, f->q + f->qhead, f->qn * sizeof *f->q);
            f->qhead = 0;
        } else {
            size_t c = f->qcap ? f->qcap * 2 : 256;
            sf_item *nq = realloc(f->q, c * sizeof *nq);
            if (!nq)
                goto lost;
            f->q = nq;
            f->qcap = c;
        }
    }
    char *copy = malloc(ev->json.len ? ev->json.len : 1);
    if (!copy)
        goto lost;
    memcpy(copy, ev->json.base, ev->json.len);
    f->q[f->qhead + f->qn++] = (sf_item){ copy, ev->json.len };
    if (!f->paused) {
        ot_metrics_inc(OT_C_SEARCH_FEED_PAUSES, 1);
        pause_all(f, true);
    }
    return;
lost:
    /* Nowhere to keep it: drop it and what follows, and start again from
     * what the indexer acknowledged (outside the sequencer's own call), so
     * PostgreSQL fills the range rather than an event being skipped. */
    if (!f->restart)
        ot_logf(OT_LOG_ERROR, "search feed: out of memory holding seq %lld; restarting from seq %lld",
                (long long)ev->seq, (long long)f->acked + 1);
    f->restart = true;
    ot_timer_start(f->loop, &f->retry_timer, 0);
}

static void on_wake(ot_loop *loop, ot_timer *t)
{
    ot_search_feed *f = t->data;
    while (f->qn > 0) {
        sf_item *it = &f->q[f->qhead];
        ot_event ev;
        if (ot_event_parse(ot_str_make(it->json, it->len), &ev) < 0) {
            ot_logf(OT_LOG_ERROR, "search feed: a held event no longer parses (dropped)");
        } else if (f->ops.deliver(f->data, &ev, 1) != 1) {
            return; /* full again: the indexer wakes us */
        }
        free(it->json);
        f->qhead++;
        f->qn--;
    }
    f->qhead = 0;
    if (f->paused) {
        pause_all(f, false);
        /* The first fetch after a resume takes longer than the usual skew
         * between partitions. */
        if (f->seq.npending > 0) {
            f->gap_ms = SF_GAP_MAX_MS(f);
            schedule_tail(f, f->gap_ms);
        }
    }
}

void ot_search_feed_wake(ot_search_feed *f)
{
    if (f && !ot_timer_active(&f->wake_timer))
        ot_timer_start(f->loop, &f->wake_timer, 0);
}

/* ---- progress ---- */

static void save_maybe(ot_search_feed *f);

static void on_saved(void *data, int status, PGresult *res)
{
    ot_search_feed *f = data;
    f->save_q = NULL;
    if (status != OT_PG_OK) {
        ot_timer_start(f->loop, &f->retry_timer, SF_RETRY_MS);
        return;
    }
    if (f->saving > f->saved)
        f->saved = f->saving;
    save_maybe(f);
}

static void save_maybe(ot_search_feed *f)
{
    if (f->save_q || f->acked <= f->saved)
        return;
    char seq[OT_FMT_U64_MAX + 1];
    seq[ot_fmt_u64(seq, (uint64_t)f->acked)] = '\0';
    const char *vals[2] = { "search", seq };
    f->saving = f->acked;
    f->save_q = ot_pg_exec(f->pg, "sink_cursor_put", 2, vals, NULL, on_saved, f);
    if (!f->save_q)
        ot_timer_start(f->loop, &f->retry_timer, SF_RETRY_MS);
}

static void store_offsets(ot_search_feed *f)
{
    ot_kafka_parts_store(&f->parts, f->k, f->topic, f->acked + 1);
}

void ot_search_feed_ack(ot_search_feed *f, int64_t seq)
{
    if (!f || seq <= f->acked)
        return;
    f->acked = seq;
    store_offsets(f);
    save_maybe(f);
}

/* ---- the consumer ---- */

static void on_message(void *data, const ot_kafka_msg *m)
{
    ot_search_feed *f = data;
    if (strcmp(m->topic, f->topic) != 0)
        return;
    ot_metrics_inc(OT_C_SEARCH_FEED_CONSUMED, 1);
    set_up(f, true, NULL);
    /* A partition assigned while we were paused is not: pause it too. */
    if (f->qn > 0)
        pause_all(f, true);
    int64_t seq = 0;
    ot_str json;
    ot_event ev;
    if (ot_event_peek_seq(m->value, &seq) == 0 && seq < f->seq.next) {
        /* Handed on already (a repeat after a restart or a rewind of the
         * relay): known by its leading seq, no seal check or parse needed.
         * Its offset waits for the acknowledgement of that seq. */
        ot_metrics_inc(OT_C_SEARCH_FEED_DUPLICATES, 1);
    } else if (ot_kafka_unseal(&f->seal, m, &json) && ot_event_parse(json, &ev) == 0) {
        seq = ev.seq;
        ev.seen_us = ot_now_us();
        feed(f, &ev);
    } else {
        seq = 0; /* nothing to wait for */
        uint64_t n = ++f->rejected;
        ot_metrics_inc(OT_C_SEARCH_FEED_REJECTED, 1);
        if ((n & (n - 1)) == 0)
            ot_logf(OT_LOG_WARN, "search feed: dropped %llu message(s) without a valid seal or event (last at %s/%d@%lld)",
                    (unsigned long long)n, m->topic, (int)m->partition, (long long)m->offset);
    }
    ot_kafka_part *p = ot_kafka_part_of(&f->parts, m->partition);
    if (p)
        ot_kafka_part_received(p, m->offset, seq);
}

static void on_drained(void *data) { store_offsets(data); }

static void on_stats(void *data, ot_str json)
{
    ot_search_feed *f = data;
    set_up(f, ot_kafka_stats(json, f->topic, OT_LAG_SEARCH), "the group is not steady or no broker is up");
}

static void on_down(void *data, const char *why) { set_up(data, false, why); }

static bool start_consumer(ot_search_feed *f)
{
    const char *topics[1] = { f->topic };
    /* earliest: a group without offsets reads the whole topic; what is below
     * the cursor is dropped by seq, what the topic no longer holds is filled
     * from PostgreSQL. */
    ot_kafka_consumer_config kc = { .brokers = f->cfg->kafka_brokers, .client_id = OT_SEARCH_GROUP,
                                    .group_id = f->group, .topics = topics, .ntopics = 1,
                                    .stats_interval_ms = SF_STATS_MS, .from_latest = false,
                                    .queue_max_kbytes = f->cfg->kafka_consumer_queue_kb, .instance_id = f->instance };
    static const ot_kafka_consumer_ops ops = { .message = on_message, .drained = on_drained, .stats = on_stats,
                                               .down = on_down };
    char err[512];
    f->k = ot_kafka_consumer_new(f->loop, &kc, &ops, f, err, sizeof err);
    if (!f->k) {
        ot_logf(OT_LOG_ERROR, "search feed: %s", err);
        return false;
    }
    return true;
}

static void on_loaded(void *data, int status, PGresult *res)
{
    ot_search_feed *f = data;
    f->load_q = NULL;
    if (status != OT_PG_OK) {
        ot_timer_start(f->loop, &f->retry_timer, SF_RETRY_MS);
        return;
    }
    int64_t c = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    f->acked = f->saved = c > 0 ? c : 0;
    /* Every seq up to the cursor was indexed: final. */
    ot_evseq_start(&f->seq, f->acked + 1);
    if (!start_consumer(f))
        ot_timer_start(f->loop, &f->retry_timer, SF_RETRY_MS);
}

static void on_retry(ot_loop *loop, ot_timer *t)
{
    ot_search_feed *f = t->data;
    if (f->restart) {
        for (size_t i = 0; i < f->qn; i++)
            free(f->q[f->qhead + i].json);
        f->qhead = f->qn = 0;
        ot_evseq_free(&f->seq);
        if (ot_evseq_init(&f->seq, f->cfg->kafka_search_pending, on_release, f) < 0) {
            ot_timer_start(loop, t, SF_RETRY_MS);
            return;
        }
        f->restart = false;
        ot_evseq_start(&f->seq, f->acked + 1);
        schedule_tail(f, 0);
        ot_search_feed_wake(f);
    }
    if (!ot_evseq_started(&f->seq)) {
        if (!f->load_q) {
            const char *vals[1] = { "search" };
            f->load_q = ot_pg_exec(f->pg, "sink_cursor_get", 1, vals, NULL, on_loaded, f);
        }
        if (!f->load_q)
            ot_timer_start(loop, t, SF_RETRY_MS);
        return;
    }
    if (!f->k && !start_consumer(f)) {
        ot_timer_start(loop, t, SF_RETRY_MS);
        return;
    }
    save_maybe(f);
}

ot_search_feed *ot_search_feed_new(ot_loop *loop, const ot_config *cfg, ot_pg *pg, ot_events *events,
                                   const ot_search_feed_ops *ops, void *data)
{
    if (!cfg->kafka_brokers || !pg || !events)
        return NULL;
    ot_search_feed *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (ot_evseq_init(&f->seq, cfg->kafka_search_pending, on_release, f) < 0) {
        free(f);
        return NULL;
    }
    f->loop = loop;
    f->cfg = cfg;
    f->pg = pg;
    f->events = events;
    f->ops = *ops;
    f->data = data;
    ot_kafka_seal_init(&f->seal, cfg);
    const char *prefix = cfg->kafka_topic_prefix ? cfg->kafka_topic_prefix : "";
    snprintf(f->topic, sizeof f->topic, "%sorder.events", prefix);
    snprintf(f->group, sizeof f->group, "%s" OT_SEARCH_GROUP, prefix);
    /* One member per node (worker 0): a restarted node resumes its
     * partitions from their committed offsets at once, instead of reading
     * PostgreSQL while the group waits out the dead member's session. */
    char host[128] = "";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    snprintf(f->instance, sizeof f->instance, "%s-%s", f->group, host);
    ot_timer_init(&f->tail_timer, on_tail_timer, f);
    ot_timer_init(&f->retry_timer, on_retry, f);
    ot_timer_init(&f->wake_timer, on_wake, f);
    ot_metrics_kafka_group(OT_LAG_SEARCH, f->group);
    ot_metrics_set(OT_G_SEARCH_FEED_UP, 0);
    ot_timer_start(loop, &f->retry_timer, 0); /* the cursor first */
    return f;
}

void ot_search_feed_free(ot_search_feed *f)
{
    if (!f)
        return;
    store_offsets(f);
    ot_kafka_free(f->k); /* leaves the group, commits on the work pool */
    ot_timer_stop(f->loop, &f->tail_timer);
    ot_timer_stop(f->loop, &f->retry_timer);
    ot_timer_stop(f->loop, &f->wake_timer);
    if (f->load_q)
        ot_pg_cancel(f->load_q);
    if (f->save_q)
        ot_pg_cancel(f->save_q);
    if (f->tail_q)
        ot_pg_cancel(f->tail_q);
    for (size_t i = 0; i < f->qn; i++)
        free(f->q[f->qhead + i].json);
    free(f->q);
    free(f->parts.p);
    ot_evseq_free(&f->seq);
    ot_kafka_seal_free(&f->seal);
    free(f);
}

int64_t ot_search_feed_acked(const ot_search_feed *f) { return f ? f->acked : 0; }

bool ot_search_feed_up(const ot_search_feed *f) { return f && f->up; }

void ot_search_feed_sample(ot_search_feed *f)
{
    /* Nothing came for a while although the reader knows of later events
     * (the relay parked them, Kafka is away, or it was the last event of a
     * burst Kafka lost): read them from PostgreSQL. A stream Kafka carries
     * moves next on its own and never gets here. */
    bool behind = ot_evseq_started(&f->seq) && f->qn == 0 && ot_events_watermark(f->events) > f->seq.next;
    f->stalled = behind && f->seq.next == f->stalled_at ? f->stalled + 1 : 0;
    uint32_t stall = f->cfg->kafka_search_stall_s;
    if ((uint32_t)f->stalled >= (f->up ? stall : stall * SF_DOWN_STALL_FACTOR))
        schedule_tail(f, 0);
    f->stalled_at = f->seq.next;
    store_offsets(f);
    save_maybe(f);
    ot_metrics_set(OT_G_SEARCH_FEED_UP, f->up ? 1 : 0);
}
