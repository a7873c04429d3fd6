/* librdkafka on the ot_loop: a producer whose delivery reports, errors and
 * admin results come back on the loop, and a consumer whose messages, errors
 * and statistics do too, never on a thread of ours.
 *
 * librdkafka runs its own broker threads; what it hands back goes to queues.
 * The main queue (delivery reports, errors) and an admin-results queue both
 * have rd_kafka_queue_io_event_enable on one non-blocking pipe watched with
 * ot_watch. librdkafka writes to the pipe only when a queue goes from empty to
 * non-empty, so every wake-up drains the pipe and then polls both queues until
 * they are empty: one missed event would otherwise stall them for good.
 *
 * A consumer forwards its main queue to its consumer queue
 * (rd_kafka_poll_set_consumer) and watches that one queue the same way.
 *
 * Freeing: rd_kafka_destroy (and a consumer's rd_kafka_consumer_close) joins librdkafka's threads (and may wait for a
 * broker), so it runs on the loop's work pool, never on the loop. */
#ifndef OT_ADAPTERS_KAFKA_H
#define OT_ADAPTERS_KAFKA_H

#include "ot/core/common.h"
#include "ot/event/loop.h"

typedef struct ot_kafka ot_kafka;

typedef struct {
    const char *brokers;          /* host:port[,host:port...]; copied by librdkafka */
    const char *client_id;
    uint32_t message_timeout_ms;  /* a message not persisted by then is reported failed */
    uint32_t linger_ms;           /* batching delay */
    uint32_t queue_max_messages;  /* librdkafka's local queue; produce says EFULL beyond */
    uint32_t max_message_bytes;   /* message.max.bytes; larger messages: EREFUSED */
} ot_kafka_config;

enum {
    OT_KAFKA_EFULL = -20,  /* the local queue is full: produce again after reports came back */
    OT_KAFKA_EFATAL = -21, /* the idempotent producer hit a fatal error: recreate it */
    OT_KAFKA_EREFUSED = -22, /* this message can never be sent as it is (too large) */
};

/* One delivery report. err 0: persisted with acks=all. permanent: the broker
 * will never take this message as it is (too large, refused by the topic), so
 * retrying it would stall forever. */
typedef struct {
    void *opaque; /* what ot_kafka_produce was given */
    int err;      /* rd_kafka_resp_err_t */
    const char *errstr;
    bool permanent;
    bool possibly_persisted;
} ot_kafka_report;

typedef struct {
    void (*delivered)(void *data, const ot_kafka_report *r);
    /* The producer cannot continue (idempotence fatal error). */
    void (*fatal)(void *data, const char *why);
    /* Admin: the topics exist now (ok) or could not be created. */
    void (*topics)(void *data, bool ok, const char *msg);
} ot_kafka_ops;

void ot_kafka_config_default(ot_kafka_config *c);
/* The producer is idempotent (acks=all, bounded in flight, retries within
 * message_timeout_ms) and partitions by murmur2_random, where Java clients put
 * the same keys. NULL with a reason in err on a bad configuration. */
ot_kafka *ot_kafka_new(ot_loop *loop, const ot_kafka_config *cfg, const ot_kafka_ops *ops, void *data, char *err,
                       size_t errlen);
/* No callback runs after this; librdkafka is destroyed on the work pool
 * (unsent messages are dropped: the caller's cursor still has them). */
void ot_kafka_free(ot_kafka *k);

typedef struct {
    const char *name;
    ot_str value;
} ot_kafka_header;

/* Queues one message (copied). ts_ms: its Kafka timestamp (0: now). */
int ot_kafka_produce(ot_kafka *k, const char *topic, ot_str key, ot_str value, int64_t ts_ms,
                     const ot_kafka_header *headers, int nheaders, void *opaque);

/* Creates the topics that do not exist (never auto-creation). One that exists
 * already is left as it is and reported in the log, not changed. */
int ot_kafka_create_topics(ot_kafka *k, const char *const *names, int n, int partitions, int replication,
                           uint64_t retention_ms);

/* A broker connection is up (no "all brokers down" since the last sign of life). */
bool ot_kafka_up(const ot_kafka *k);
/* Messages queued or in flight inside librdkafka. */
int ot_kafka_outq(const ot_kafka *k);
/* Of the topics ot_kafka_create_topics found existing, how many differ from
 * what it asked for (partitions, replication, retention.ms), as a check on
 * the work pool found (each logged once; 0 until it is back). */
int ot_kafka_topic_mismatches(const ot_kafka *k);

/* ---- consumer ---- */

typedef struct {
    const char *brokers;
    const char *client_id;
    const char *group_id;
    const char *const *topics; /* subscribed: the group assigns their partitions */
    int ntopics;
    uint32_t stats_interval_ms; /* statistics.interval.ms; 0: no statistics */
    bool from_latest;           /* a partition without a committed offset starts at its end */
    uint32_t queue_max_kbytes;  /* queued.max.messages.kbytes: prefetched per partition; 0: librdkafka's */
    /* group.instance.id (static membership), NULL: none. A member that comes
     * back under the same id takes its partitions over at once, instead of
     * after the dead one's session timeout and a rebalance; a live member
     * whose id is taken is fenced. */
    const char *instance_id;
} ot_kafka_consumer_config;

/* One message; everything points into librdkafka's copy, valid only during
 * the callback. */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    ot_str key, value;
    /* The rd_kafka_message_t, for ot_kafka_msg_header: its headers are
     * parsed only when one is asked for (a message the feed drops by its
     * seq never needs them; parsing every one was ~6 % of the loop while
     * the relay published a backlog, callgrind). */
    const void *rk_msg;
} ot_kafka_msg;

typedef struct {
    void (*message)(void *data, const ot_kafka_msg *m);
    /* After a wake-up that served anything: a point to store offsets. */
    void (*drained)(void *data);
    /* librdkafka's statistics JSON (statistics.interval.ms), valid during the call. */
    void (*stats)(void *data, ot_str json);
    /* Every broker connection is down. */
    void (*down)(void *data, const char *why);
} ot_kafka_consumer_ops;

/* Subscribes at once; offsets are stored only through ot_kafka_store_offset
 * (enable.auto.offset.store=false) and committed from there every second by
 * librdkafka (enable.auto.commit), so a committed offset is always one the
 * caller said it was done with. */
ot_kafka *ot_kafka_consumer_new(ot_loop *loop, const ot_kafka_consumer_config *cfg, const ot_kafka_consumer_ops *ops,
                                void *data, char *err, size_t errlen);
/* The message at `offset` and every earlier one of that partition are done:
 * the next commit may move past them. */
int ot_kafka_store_offset(ot_kafka *k, const char *topic, int32_t partition, int64_t offset);
/* Stop (true) or restart fetching every partition assigned now. librdkafka
 * drops what it had prefetched for them and, on resume, fetches again from
 * the message after the last one handed to us, so nothing is skipped; a
 * partition stays paused across a rebalance, so resume covers the new
 * assignment too. For a caller that must not take more for a while. */
void ot_kafka_pause(ot_kafka *k, bool pause);
/* The last value of header `name` (false: absent or without a value). */
bool ot_kafka_msg_header(const ot_kafka_msg *m, const char *name, ot_str *out);

#endif
