/* librdkafka on the ot_loop: a producer whose delivery reports, errors and
 * admin results come back on the loop, never on a thread of ours.
 *
 * librdkafka runs its own broker threads; what it hands back goes to queues.
 * The main queue (delivery reports, errors) and an admin-results queue both
 * have rd_kafka_queue_io_event_enable on one non-blocking pipe watched with
 * ot_watch. librdkafka writes to the pipe only when a queue goes from empty to
 * non-empty, so every wake-up drains the pipe and then polls both queues until
 * they are empty: one missed event would otherwise stall them for good.
 *
 * Freeing: rd_kafka_destroy joins librdkafka's threads (and may wait for a
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

#endif
