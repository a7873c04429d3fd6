/* The push path's Kafka consumer: sealed order.events messages into the
 * event reader, offsets stored behind the watermark, up/down from librdkafka's
 * statistics. See kafka_feed.h. */
#include "ot/app/kafka_feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ot/adapters/kafka.h"
#include "ot/codec/json.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"

/* librdkafka's statistics: the group's state (up/down) every second. */
#define OT_FEED_STATS_MS 1000
#define OT_FEED_NAME_MAX 256
/* Partitions tracked for offset storing; the topic has --kafka-partitions. */
#define OT_FEED_MAX_PARTITIONS 10000

struct ot_kafka_feed {
    ot_loop *loop;
    const ot_config *cfg;
    ot_events *events;
    ot_kafka *k;
    char topic[OT_FEED_NAME_MAX], group[OT_FEED_NAME_MAX];
    bool up;
    ot_kafka_parts parts;
    ot_kafka_seal seal;
    uint64_t rejected;
};

static void set_up(ot_kafka_feed *f, bool up, const char *why)
{
    if (up == f->up)
        return;
    f->up = up;
    if (up)
        ot_logf(OT_LOG_INFO, "kafka feed: consuming %s as group %s; LISTEN closed", f->topic, f->group);
    else
        ot_logf(OT_LOG_WARN, "kafka feed: down (%s); pushes follow the PostgreSQL tail", why);
    ot_events_want_listen(f->events, OT_EV_LISTEN_FEED_DOWN, !up);
}

ot_kafka_part *ot_kafka_part_of(ot_kafka_parts *t, int32_t p)
{
    if (p < 0 || p >= OT_FEED_MAX_PARTITIONS)
        return NULL;
    if ((size_t)p >= t->n) {
        size_t n = (size_t)p + 1;
        ot_kafka_part *np = realloc(t->p, n * sizeof(*np));
        if (!np)
            return NULL;
        memset(np + t->n, 0, (n - t->n) * sizeof(*np));
        t->p = np;
        t->n = n;
    }
    return &t->p[p];
}

void ot_kafka_part_received(ot_kafka_part *p, int64_t offset, int64_t seq)
{
    p->offset = offset;
    p->seq = !p->due || seq > p->seq ? seq : p->seq;
    p->due = true;
}

void ot_kafka_parts_store(ot_kafka_parts *t, ot_kafka *k, const char *topic, int64_t done)
{
    for (size_t i = 0; k && i < t->n; i++) {
        ot_kafka_part *p = &t->p[i];
        if (p->due && p->seq < done) {
            ot_kafka_store_offset(k, topic, (int32_t)i, p->offset);
            p->due = false;
        }
    }
}

void ot_kafka_seal_init(ot_kafka_seal *s, const ot_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->have_key = cfg->jwt_secret && ot_event_mac_key(ot_str_c(cfg->jwt_secret), s->key) == 0;
}

void ot_kafka_seal_free(ot_kafka_seal *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

bool ot_kafka_unseal(ot_kafka_seal *s, const ot_kafka_msg *m, ot_str *json)
{
    ot_str mac;
    if (!s->have_key || !ot_kafka_msg_header(m, OT_EVENT_SEAL_HEADER, &mac) || mac.len != OT_EVENT_SEAL_HEX)
        return false;
    size_t need = m->value.len + OT_EVENT_SEAL_OVERHEAD;
    if (need > s->cap) {
        char *b = realloc(s->buf, need);
        if (!b)
            return false;
        s->buf = b;
        s->cap = need;
    }
    memcpy(s->buf, "ot1:", 4);
    memcpy(s->buf + 4, mac.base, OT_EVENT_SEAL_HEX);
    s->buf[4 + OT_EVENT_SEAL_HEX] = ':';
    memcpy(s->buf + OT_EVENT_SEAL_OVERHEAD, m->value.base, m->value.len);
    return ot_event_open(s->key, ot_str_c(OT_EVENT_KAFKA_CHANNEL), ot_str_make(s->buf, need), json) == 0;
}

static void on_message(void *data, const ot_kafka_msg *m)
{
    ot_kafka_feed *f = data;
    if (strcmp(m->topic, f->topic) != 0)
        return;
    ot_metrics_inc(OT_C_KAFKA_FEED_CONSUMED, 1);
    /* A message proves the group is up, before the next statistics say so. */
    set_up(f, true, NULL);
    ot_kafka_part *p = ot_kafka_part_of(&f->parts, m->partition);
    ot_str json;
    int64_t seq = 0;
    int rc;
    /* Most messages are events this worker delivered already (from the
     * PostgreSQL tail, or its own relay's output in a one-worker server):
     * known by the leading "seq" alone, they skip the MAC and the full parse
     * (those were ~15 % of the relay worker's loop in bench-kafka.sh). Such a
     * message is dropped whatever it says, so a forged one with an old seq
     * counts as a duplicate, not as rejected; one with a new seq is checked. */
    if (ot_event_peek_seq(m->value, &seq) == 0 && seq < ot_events_watermark(f->events))
        rc = 0;
    else
        rc = ot_kafka_unseal(&f->seal, m, &json) ? ot_events_feed_kafka(f->events, json, &seq) : OT_ERR;
    if (rc == OT_ERR) {
        seq = 0; /* nothing to wait for: done with it */
        uint64_t n = ++f->rejected;
        ot_metrics_inc(OT_C_KAFKA_FEED_REJECTED, 1);
        if ((n & (n - 1)) == 0) /* powers of two: a flood cannot flood the log */
            ot_logf(OT_LOG_WARN, "kafka feed: dropped %llu message(s) without a valid seal or event (last at %s/%d@%lld)",
                    (unsigned long long)n, m->topic, (int)m->partition, (long long)m->offset);
    } else {
        ot_metrics_inc(rc == 1 ? OT_C_KAFKA_FEED_FRESH : OT_C_KAFKA_FEED_DUPLICATES, 1);
    }
    if (p)
        ot_kafka_part_received(p, m->offset, seq);
}

/* Store each partition's offset once the reader has delivered its last
 * message's event (the watermark is past its seq). */
static void store_offsets(ot_kafka_feed *f)
{
    ot_kafka_parts_store(&f->parts, f->k, f->topic, ot_events_watermark(f->events));
}

static void on_drained(void *data) { store_offsets(data); }

/* {"cgrp":{"state":"up","join_state":"steady","assignment_size":N},
 *  "brokers":{"host:port/1":{"nodeid":1,"state":"UP"},...}} */
static bool stats_up(const ot_json *d)
{
    int cg = ot_json_obj_get(d, 0, "cgrp");
    int64_t assigned = 0;
    if (cg < 0 || !ot_json_str_eq(d, ot_json_obj_get(d, cg, "state"), "up") ||
        !ot_json_str_eq(d, ot_json_obj_get(d, cg, "join_state"), "steady") ||
        ot_json_get_int64(d, ot_json_obj_get(d, cg, "assignment_size"), &assigned) < 0 || assigned <= 0)
        return false;
    int br = ot_json_obj_get(d, 0, "brokers");
    if (br < 0 || !ot_json_is_obj(d, br))
        return false;
    int kt = br + 1;
    for (int i = 0; i < d->toks[br].size; i++, kt = d->toks[kt].next) {
        int v = kt + 1;
        int64_t node = -1;
        if (ot_json_get_int64(d, ot_json_obj_get(d, v, "nodeid"), &node) == 0 && node >= 0 &&
            ot_json_str_eq(d, ot_json_obj_get(d, v, "state"), "UP"))
            return true;
    }
    return false;
}

/* topics.<topic>.partitions.<p>.consumer_lag: the partition's end minus
 * the group's committed offset (-1 while unknown). "-1" is librdkafka's
 * internal unassigned partition. */
static void stats_lag(const char *topic, int slot, const ot_json *d)
{
    int tp = ot_json_obj_get(d, 0, "topics");
    int t = tp >= 0 ? ot_json_obj_get(d, tp, topic) : -1;
    int ps = t >= 0 ? ot_json_obj_get(d, t, "partitions") : -1;
    if (ps < 0 || !ot_json_is_obj(d, ps))
        return;
    int kt = ps + 1;
    for (int i = 0; i < d->toks[ps].size; i++, kt = d->toks[kt].next) {
        int64_t p = -1, lag = -1;
        ot_str key = ot_json_raw(d, kt);
        char num[16];
        if (key.len == 0 || key.len >= sizeof num)
            continue;
        memcpy(num, key.base, key.len);
        num[key.len] = '\0';
        char *end;
        p = strtoll(num, &end, 10);
        if (*end || p < 0)
            continue;
        if (ot_json_get_int64(d, ot_json_obj_get(d, kt + 1, "consumer_lag"), &lag) < 0)
            lag = -1;
        ot_metrics_kafka_lag(slot, (int)p, lag);
    }
}

bool ot_kafka_stats(ot_str json, const char *topic, int lag_slot)
{
    ot_json d;
    ot_json_tok stack[512], *heap = NULL;
    if (ot_json_parse_grow(&d, json.base, json.len, stack, OT_ARRAY_LEN(stack), &heap) < 0) {
        free(heap);
        return false;
    }
    bool up = stats_up(&d);
    stats_lag(topic, lag_slot, &d);
    free(heap);
    return up;
}

static void on_stats(void *data, ot_str json)
{
    ot_kafka_feed *f = data;
    set_up(f, ot_kafka_stats(json, f->topic, OT_LAG_WS), "the group is not steady or no broker is up");
}

static void on_down(void *data, const char *why)
{
    set_up(data, false, why);
}

ot_kafka_feed *ot_kafka_feed_new(ot_loop *loop, const ot_config *cfg, ot_events *events)
{
    if (!cfg->kafka_brokers || !events)
        return NULL;
    ot_kafka_feed *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->loop = loop;
    f->cfg = cfg;
    f->events = events;
    ot_kafka_seal_init(&f->seal, cfg);
    const char *prefix = cfg->kafka_topic_prefix ? cfg->kafka_topic_prefix : "";
    char host[128] = "";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    snprintf(f->topic, sizeof f->topic, "%sorder.events", prefix);
    snprintf(f->group, sizeof f->group, "%sordertrack-ws-%s-%d", prefix, host, (int)getpid());
    const char *topics[1] = { f->topic };
    ot_kafka_consumer_config kc = { .brokers = cfg->kafka_brokers, .client_id = "ordertrack-ws",
                                    .group_id = f->group, .topics = topics, .ntopics = 1,
                                    .stats_interval_ms = OT_FEED_STATS_MS, .from_latest = true,
                                    .queue_max_kbytes = cfg->kafka_consumer_queue_kb };
    static const ot_kafka_consumer_ops ops = { .message = on_message, .drained = on_drained, .stats = on_stats,
                                               .down = on_down };
    char err[512];
    ot_metrics_kafka_group(OT_LAG_WS, f->group);
    f->k = ot_kafka_consumer_new(loop, &kc, &ops, f, err, sizeof err);
    if (!f->k) {
        ot_logf(OT_LOG_ERROR, "kafka feed: %s", err);
        free(f);
        return NULL;
    }
    return f;
}

void ot_kafka_feed_free(ot_kafka_feed *f)
{
    if (!f)
        return;
    store_offsets(f);
    ot_kafka_free(f->k); /* leaves the group and commits on the work pool */
    free(f->parts.p);
    ot_kafka_seal_free(&f->seal);
    free(f);
}

bool ot_kafka_feed_ready(void *f) { return ((ot_kafka_feed *)f)->up; }

void ot_kafka_feed_sample(void *data)
{
    ot_kafka_feed *f = data;
    store_offsets(f); /* events held behind a gap may have gone out since */
    ot_metrics_set(OT_G_KAFKA_FEED_UP, f->up ? 1 : 0);
    ot_metrics_set(OT_G_EVENTS_LISTENING, ot_events_listening(f->events) ? 1 : 0);
}
