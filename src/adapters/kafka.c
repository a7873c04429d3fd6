/* The librdkafka glue: configuration, the io-event pipe, draining the queues
 * on the loop, produce with headers, admin topic creation. Policy (what to
 * retry, park or recreate) is the relay's. See kafka.h. */
#include "ot/adapters/kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ot/core/log.h"
#include "ot/event/watch.h"

typedef struct topic_check topic_check;

struct ot_kafka {
    ot_loop *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq, *adminq;
    int pipe_rd, pipe_wr;
    ot_watch watch;
    ot_kafka_ops ops;
    ot_kafka_consumer_ops cops;
    void *data;
    bool up, fatal_seen;
    bool consumer; /* mainq is the consumer queue, adminq NULL */
    /* What ot_kafka_create_topics asked for, and the check of topics that
     * existed already against it. */
    char brokers[512];
    int want_partitions, want_replication;
    uint64_t want_retention_ms;
    topic_check *check; /* in flight; its k is cleared when we go first */
    int mismatches;
};

#define CHECK_MAX 8
#define CHECK_NAME_MAX 256
#define CHECK_TIMEOUT_MS 10000

/* Runs on the work pool with a throw-away handle of its own (metadata and
 * DescribeConfigs wait for the broker), so nothing of it touches ours. */
struct topic_check {
    ot_kafka *k;
    char brokers[512];
    int n;
    char names[CHECK_MAX][CHECK_NAME_MAX];
    int partitions, replication;
    uint64_t retention_ms;
    int mismatches;
    char why[CHECK_MAX][CHECK_NAME_MAX + 160];
};

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {}

/* retention.ms of each topic, "" where the broker did not say. */
static void check_retention(rd_kafka_t *rk, topic_check *c, char ret[CHECK_MAX][24])
{
    rd_kafka_ConfigResource_t *res[CHECK_MAX];
    for (int i = 0; i < c->n; i++)
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, c->names[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DescribeConfigs(rk, res, (size_t)c->n, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, CHECK_TIMEOUT_MS);
    const rd_kafka_DescribeConfigs_result_t *r = ev ? rd_kafka_event_DescribeConfigs_result(ev) : NULL;
    size_t nr = 0;
    const rd_kafka_ConfigResource_t **rr = r ? rd_kafka_DescribeConfigs_result_resources(r, &nr) : NULL;
    for (size_t i = 0; i < nr; i++) {
        size_t ne = 0;
        const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(rr[i], &ne);
        for (int t = 0; t < c->n; t++) {
            if (strcmp(rd_kafka_ConfigResource_name(rr[i]), c->names[t]) != 0)
                continue;
            for (size_t e = 0; e < ne; e++)
                if (strcmp(rd_kafka_ConfigEntry_name(es[e]), "retention.ms") == 0 && rd_kafka_ConfigEntry_value(es[e]))
                    snprintf(ret[t], 24, "%s", rd_kafka_ConfigEntry_value(es[e]));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy_array(res, (size_t)c->n);
}

static void check_work(void *data)
{
    topic_check *c = data;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "client.id", "ordertrack-topic-check", err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return;
    }
    char ret[CHECK_MAX][24] = { { 0 } };
    check_retention(rk, c, ret);
    char want_ret[24];
    snprintf(want_ret, sizeof want_ret, "%llu", (unsigned long long)c->retention_ms);
    for (int i = 0; i < c->n; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, c->names[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        int parts = -1, reps = -1;
        if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, CHECK_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR && md &&
            md->topic_cnt == 1 && !md->topics[0].err) {
            parts = md->topics[0].partition_cnt;
            reps = parts > 0 ? md->topics[0].partitions[0].replica_cnt : -1;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        bool off = (parts >= 0 && parts != c->partitions) || (reps >= 0 && reps != c->replication) ||
                   (ret[i][0] && strcmp(ret[i], want_ret) != 0);
        if (off) {
            char why[sizeof c->why[0]];
            snprintf(why, sizeof why, "%s has %d partitions, replication %d, retention.ms %s (the flags say %d, %d, %s)",
                     c->names[i], parts, reps, ret[i][0] ? ret[i] : "?", c->partitions, c->replication, want_ret);
            memcpy(c->why[c->mismatches++], why, sizeof why);
        }
    }
    rd_kafka_destroy(rk);
}

static void check_done(ot_loop *loop, void *data)
{
    topic_check *c = data;
    if (c->k) {
        for (int i = 0; i < c->mismatches; i++)
            ot_logf(OT_LOG_WARN, "kafka: topic %s: left as it is (reported, never changed)", c->why[i]);
        c->k->mismatches = c->mismatches;
        c->k->check = NULL;
    }
    free(c);
}

/* Compares the topics that existed already with what the flags ask for. */
static void check_topics(ot_kafka *k, const char names[][CHECK_NAME_MAX], int n)
{
    if (k->check || n == 0)
        return;
    topic_check *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->k = k;
    snprintf(c->brokers, sizeof c->brokers, "%s", k->brokers);
    c->n = n;
    for (int i = 0; i < n; i++) {
        memcpy(c->names[i], names[i], CHECK_NAME_MAX);
        c->names[i][CHECK_NAME_MAX - 1] = '\0';
    }
    c->partitions = k->want_partitions;
    c->replication = k->want_replication;
    c->retention_ms = k->want_retention_ms;
    if (ot_loop_queue_work(k->loop, check_work, check_done, c) < 0) {
        free(c);
        return;
    }
    k->check = c;
}

void ot_kafka_config_default(ot_kafka_config *c)
{
    memset(c, 0, sizeof(*c));
    c->client_id = "ordertrack";
    c->message_timeout_ms = 300000;
    c->linger_ms = 5;
    c->queue_max_messages = 100000;
    c->max_message_bytes = 1000000;
}

static bool permanent_err(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return true;
    default:
        return false;
    }
}

/* Served from rd_kafka_poll, on the loop. */
static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ot_kafka *k = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        k->up = true;
    ot_kafka_report r = { .opaque = m->_private, .err = m->err,
                          .errstr = m->err ? rd_kafka_err2str(m->err) : NULL, .permanent = permanent_err(m->err),
                          .possibly_persisted = rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED };
    if (k->ops.delivered)
        k->ops.delivered(k->data, &r);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ot_kafka *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        if (!k->fatal_seen) {
            k->fatal_seen = true;
            ot_logf(OT_LOG_ERROR, "kafka: fatal %s error: %s", k->consumer ? "consumer" : "producer", why);
            if (k->ops.fatal)
                k->ops.fatal(k->data, why);
        }
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        if (k->up)
            ot_logf(OT_LOG_WARN, "kafka: all brokers down (%s)", reason);
        k->up = false;
        if (k->consumer && k->cops.down)
            k->cops.down(k->data, reason);
        return;
    }
    ot_logf(OT_LOG_DEBUG, "kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* librdkafka's own log lines, through ours (served on the loop via the main queue). */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ot_logf(level <= 3 ? OT_LOG_ERROR : level <= 4 ? OT_LOG_WARN : OT_LOG_DEBUG, "kafka: %s: %s", fac, buf);
}

static void topics_result(ot_kafka *k, rd_kafka_event_t *ev)
{
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    if (rd_kafka_event_error(ev)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", rd_kafka_event_error_string(ev));
        if (k->ops.topics)
            k->ops.topics(k->data, false, msg);
        return;
    }
    size_t n = 0;
    const rd_kafka_topic_result_t **t = rd_kafka_CreateTopics_result_topics(res, &n);
    bool ok = true;
    char msg[256] = "";
    char existing[CHECK_MAX][CHECK_NAME_MAX];
    int nexisting = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(t[i]);
        if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            /* Reported, not changed: its partitions and retention are the operator's. */
            ot_logf(OT_LOG_INFO, "kafka: topic %s exists already; its settings are left as they are",
                    rd_kafka_topic_result_name(t[i]));
            if (nexisting < CHECK_MAX)
                snprintf(existing[nexisting++], CHECK_NAME_MAX, "%s", rd_kafka_topic_result_name(t[i]));
        } else if (e) {
            ok = false;
            snprintf(msg, sizeof msg, "%s: %s", rd_kafka_topic_result_name(t[i]),
                     rd_kafka_topic_result_error_string(t[i]));
        }
    }
    if (ok)
        k->up = true;
    check_topics(k, (const char(*)[CHECK_NAME_MAX])existing, nexisting);
    if (k->ops.topics)
        k->ops.topics(k->data, ok, ok ? NULL : msg);
}

/* Served from rd_kafka_consumer_poll, on the loop. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    ot_kafka *k = opaque;
    if (k->cops.stats)
        k->cops.stats(k->data, ot_str_make(json, len));
    return 0; /* librdkafka frees json */
}

/* Messages, errors and statistics (the main queue is forwarded here) until
 * the consumer queue is empty. */
static void consumer_drain(ot_kafka *k)
{
    rd_kafka_message_t *m;
    bool any = false;
    while ((m = rd_kafka_consumer_poll(k->rk, 0))) {
        any = true;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            k->up = true;
            ot_kafka_msg km = { .topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                                .partition = m->partition,
                                .offset = m->offset,
                                .key = ot_str_make(m->key ? m->key : "", m->key ? m->key_len : 0),
                                .value = ot_str_make(m->payload ? m->payload : "", m->payload ? m->len : 0),
                                .rk_msg = m };
            if (k->cops.message)
                k->cops.message(k->data, &km);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            ot_logf(OT_LOG_WARN, "kafka: consumer: %s", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    if (any && k->cops.drained)
        k->cops.drained(k->data);
}

/* Drain the pipe, then each queue until it is empty: the pipe is written only
 * on an empty -> non-empty transition. */
static void on_pipe(ot_loop *loop, int fd, unsigned events, void *data)
{
    ot_kafka *k = data;
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    if (k->consumer) {
        consumer_drain(k);
        return;
    }
    while (rd_kafka_poll(k->rk, 0) > 0)
        ;
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(k->adminq, 0))) {
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT)
            topics_result(k, ev);
        rd_kafka_event_destroy(ev);
    }
}

static int set(rd_kafka_conf_t *conf, const char *key, const char *val, char *err, size_t errlen)
{
    if (rd_kafka_conf_set(conf, key, val, err, errlen) != RD_KAFKA_CONF_OK)
        return OT_ERR;
    return OT_OK;
}

/* The object and its pipe; librdkafka comes next. */
static ot_kafka *kafka_alloc(ot_loop *loop, void *data, char *err, size_t errlen)
{
    ot_kafka *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    k->loop = loop;
    k->data = data;
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        free(k);
        return NULL;
    }
    k->pipe_rd = p[0];
    k->pipe_wr = p[1];
    return k;
}

static ot_kafka *kafka_fail(ot_kafka *k, rd_kafka_conf_t *conf)
{
    if (conf)
        rd_kafka_conf_destroy(conf);
    close(k->pipe_rd);
    close(k->pipe_wr);
    free(k);
    return NULL;
}

/* Common settings: brokers, client id, our callbacks, log lines through the
 * main queue (so they are written on the loop). */
static rd_kafka_conf_t *kafka_conf(ot_kafka *k, const char *brokers, const char *client_id, char *err,
                                   size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", brokers, err, errlen) ||
        set(conf, "client.id", client_id ? client_id : "ordertrack", err, errlen) ||
        set(conf, "log.queue", "true", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
}

/* Every queue we read signals the one pipe, watched on the loop. */
static void kafka_attach(ot_kafka *k)
{
    rd_kafka_set_log_queue(k->rk, k->mainq);
    rd_kafka_queue_io_event_enable(k->mainq, k->pipe_wr, "1", 1);
    if (k->adminq)
        rd_kafka_queue_io_event_enable(k->adminq, k->pipe_wr, "1", 1);
    ot_watch_init(&k->watch, k->loop, on_pipe, k);
    ot_watch_set(&k->watch, k->pipe_rd, OT_READABLE);
}

ot_kafka *ot_kafka_new(ot_loop *loop, const ot_kafka_config *cfg, const ot_kafka_ops *ops, void *data, char *err,
                       size_t errlen)
{
    ot_kafka *k = kafka_alloc(loop, data, err, errlen);
    if (!k)
        return NULL;
    k->ops = *ops;
    snprintf(k->brokers, sizeof k->brokers, "%s", cfg->brokers);
    rd_kafka_conf_t *conf = kafka_conf(k, cfg->brokers, cfg->client_id, err, errlen);
    if (!conf)
        return kafka_fail(k, NULL);
    char num[4][24];
    snprintf(num[0], sizeof num[0], "%u", cfg->message_timeout_ms);
    snprintf(num[1], sizeof num[1], "%u", cfg->linger_ms);
    snprintf(num[2], sizeof num[2], "%u", cfg->queue_max_messages);
    snprintf(num[3], sizeof num[3], "%u", cfg->max_message_bytes);
    /* enable.idempotence implies acks=all, at most 5 in flight per
     * connection and retries without reordering or duplicates. */
    if (set(conf, "enable.idempotence", "true", err, errlen) ||
        set(conf, "partitioner", "murmur2_random", err, errlen) ||
        set(conf, "message.timeout.ms", num[0], err, errlen) || set(conf, "linger.ms", num[1], err, errlen) ||
        set(conf, "queue.buffering.max.messages", num[2], err, errlen) ||
        set(conf, "message.max.bytes", num[3], err, errlen))
        return kafka_fail(k, conf);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!k->rk)
        return kafka_fail(k, conf);
    k->mainq = rd_kafka_queue_get_main(k->rk);
    k->adminq = rd_kafka_queue_new(k->rk);
    kafka_attach(k);
    return k;
}

ot_kafka *ot_kafka_consumer_new(ot_loop *loop, const ot_kafka_consumer_config *cfg, const ot_kafka_consumer_ops *ops,
                                void *data, char *err, size_t errlen)
{
    ot_kafka *k = kafka_alloc(loop, data, err, errlen);
    if (!k)
        return NULL;
    k->consumer = true;
    k->cops = *ops;
    rd_kafka_conf_t *conf = kafka_conf(k, cfg->brokers, cfg->client_id, err, errlen);
    if (!conf)
        return kafka_fail(k, NULL);
    char stats[24];
    snprintf(stats, sizeof stats, "%u", cfg->stats_interval_ms);
    /* Offsets: stored by the caller once it is done with a message, and only
     * then committed (every second). A fetch that finds nothing waits at most
     * 100 ms at the broker; one that finds data returns at once. */
    if (set(conf, "group.id", cfg->group_id, err, errlen) ||
        set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        set(conf, "enable.auto.commit", "true", err, errlen) ||
        set(conf, "auto.commit.interval.ms", "1000", err, errlen) ||
        set(conf, "auto.offset.reset", cfg->from_latest ? "latest" : "earliest", err, errlen) ||
        set(conf, "fetch.wait.max.ms", "100", err, errlen) ||
        set(conf, "statistics.interval.ms", stats, err, errlen))
        return kafka_fail(k, conf);
    char kb[24];
    snprintf(kb, sizeof kb, "%u", cfg->queue_max_kbytes);
    if ((cfg->queue_max_kbytes && set(conf, "queued.max.messages.kbytes", kb, err, errlen)) ||
        (cfg->instance_id && set(conf, "group.instance.id", cfg->instance_id, err, errlen)))
        return kafka_fail(k, conf);
    if (cfg->stats_interval_ms)
        rd_kafka_conf_set_stats_cb(conf, on_stats);
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!k->rk)
        return kafka_fail(k, conf);
    rd_kafka_poll_set_consumer(k->rk); /* errors, stats and log lines come with the messages */
    k->mainq = rd_kafka_queue_get_consumer(k->rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(cfg->ntopics);
    for (int i = 0; i < cfg->ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, cfg->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_queue_destroy(k->mainq);
        rd_kafka_destroy(k->rk); /* nothing joined yet: no broker to wait for */
        return kafka_fail(k, NULL);
    }
    kafka_attach(k);
    return k;
}

int ot_kafka_store_offset(ot_kafka *k, const char *topic, int32_t partition, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset + 1; /* the next one to read */
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    /* A partition revoked meanwhile refuses: its next owner re-reads a little. */
    return e ? OT_ERR : OT_OK;
}

void ot_kafka_pause(ot_kafka *k, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (!k->consumer || rd_kafka_assignment(k->rk, &l) || !l) {
        if (l)
            rd_kafka_topic_partition_list_destroy(l);
        return;
    }
    if (l->cnt > 0)
        (void)(pause ? rd_kafka_pause_partitions(k->rk, l) : rd_kafka_resume_partitions(k->rk, l));
    rd_kafka_topic_partition_list_destroy(l);
}

bool ot_kafka_msg_header(const ot_kafka_msg *m, const char *name, ot_str *out)
{
    const void *v = NULL;
    size_t n = 0;
    rd_kafka_headers_t *hs = NULL;
    /* librdkafka keeps what it parsed in the message: a second header costs
     * no second parse. */
    if (!m->rk_msg || rd_kafka_message_headers((rd_kafka_message_t *)m->rk_msg, &hs) || !hs ||
        rd_kafka_header_get_last(hs, name, &v, &n) || !v)
        return false;
    *out = ot_str_make(v, n);
    return true;
}

typedef struct {
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq, *adminq;
    int pipe_rd, pipe_wr;
    bool consumer;
} doomed;

static void destroy_work(void *data)
{
    doomed *d = data;
    if (d->consumer) {
        /* Leaves the group and commits the stored offsets: the group hands
         * our partitions on at once instead of after a session timeout. */
        rd_kafka_consumer_close(d->rk);
        rd_kafka_queue_destroy(d->mainq);
        rd_kafka_destroy(d->rk);
        close(d->pipe_rd);
        close(d->pipe_wr);
        return;
    }
    rd_kafka_queue_destroy(d->mainq);
    rd_kafka_queue_destroy(d->adminq);
    /* No flush: unsent messages are the caller's to republish. */
    rd_kafka_purge(d->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(d->rk);
    close(d->pipe_rd);
    close(d->pipe_wr);
}

static void destroy_done(ot_loop *loop, void *data) { free(data); }

void ot_kafka_free(ot_kafka *k)
{
    if (!k)
        return;
    if (k->check)
        k->check->k = NULL; /* it frees itself when done */
    ot_watch_remove(&k->watch);
    rd_kafka_queue_io_event_enable(k->mainq, -1, NULL, 0);
    if (k->adminq)
        rd_kafka_queue_io_event_enable(k->adminq, -1, NULL, 0);
    doomed *d = malloc(sizeof(*d));
    if (d) {
        *d = (doomed){ k->rk, k->mainq, k->adminq, k->pipe_rd, k->pipe_wr, k->consumer };
        if (ot_loop_queue_work(k->loop, destroy_work, destroy_done, d) == OT_OK) {
            free(k);
            return;
        }
        free(d);
    }
    /* No pool slot: leak the handle rather than block the loop. */
    ot_logf(OT_LOG_WARN, "kafka: handle left undestroyed (work queue full)");
    free(k);
}

int ot_kafka_produce(ot_kafka *k, const char *topic, ot_str key, ot_str value, int64_t ts_ms,
                     const ot_kafka_header *headers, int nheaders, void *opaque)
{
    rd_kafka_headers_t *hs = rd_kafka_headers_new((size_t)nheaders);
    for (int i = 0; i < nheaders; i++)
        rd_kafka_header_add(hs, headers[i].name, -1, headers[i].value.base, (ssize_t)headers[i].value.len);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY((void *)key.base, key.len), RD_KAFKA_V_VALUE((void *)value.base, value.len),
        RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return OT_OK; /* the headers belong to the message now */
    rd_kafka_headers_destroy(hs);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return OT_KAFKA_EFULL;
    if (e == RD_KAFKA_RESP_ERR__FATAL)
        return OT_KAFKA_EFATAL;
    if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || permanent_err(e))
        return OT_KAFKA_EREFUSED;
    ot_logf(OT_LOG_WARN, "kafka: produce to %s refused: %s", topic, rd_kafka_err2str(e));
    return OT_ERR;
}

int ot_kafka_create_topics(ot_kafka *k, const char *const *names, int n, int partitions, int replication,
                           uint64_t retention_ms)
{
    rd_kafka_NewTopic_t **t = calloc((size_t)n, sizeof(*t));
    if (!t)
        return OT_ERR;
    k->want_partitions = partitions;
    k->want_replication = replication;
    k->want_retention_ms = retention_ms;
    char err[256], ret[24];
    snprintf(ret, sizeof ret, "%llu", (unsigned long long)retention_ms);
    int rc = OT_OK;
    for (int i = 0; i < n && rc == OT_OK; i++) {
        t[i] = rd_kafka_NewTopic_new(names[i], partitions, replication, err, sizeof err);
        if (!t[i] || rd_kafka_NewTopic_set_config(t[i], "retention.ms", ret)) {
            ot_logf(OT_LOG_ERROR, "kafka: topic %s: %s", names[i], t[i] ? "bad retention" : err);
            rc = OT_ERR;
        }
    }
    if (rc == OT_OK) {
        rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(k->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(o, 10000, err, sizeof err);
        rd_kafka_CreateTopics(k->rk, t, (size_t)n, o, k->adminq);
        rd_kafka_AdminOptions_destroy(o);
    }
    for (int i = 0; i < n; i++)
        if (t[i])
            rd_kafka_NewTopic_destroy(t[i]);
    free(t);
    return rc;
}

bool ot_kafka_up(const ot_kafka *k) { return k && k->up; }

int ot_kafka_topic_mismatches(const ot_kafka *k) { return k ? k->mismatches : 0; }

int ot_kafka_outq(const ot_kafka *k) { return k ? rd_kafka_outq_len(k->rk) : 0; }
