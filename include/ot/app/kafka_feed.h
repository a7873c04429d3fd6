/* The push path's Kafka consumer (KAFKA_BROKERS): every worker reads the
 * whole of <prefix>order.events and feeds it to its own event reader, so its
 * sockets get other processes' commits from Kafka instead of each worker
 * tailing PostgreSQL on every commit.
 *
 * Each worker needs every event (it pushes to its own sockets), so each is
 * the only member of a group of its own, <prefix>ordertrack-ws-<host>-<pid>:
 * the group assigns it every partition. The pid, not the worker index: two
 * instances on one host (a rolling restart on a shared SO_REUSEPORT port)
 * have the same indexes, and two members of one group would split the
 * partitions, each missing the other's events. A new process needs nothing
 * from the old one's offsets: its reader starts at the current seq, older
 * events are final in PostgreSQL (where a resuming client reads them), so a
 * fresh group starts at the end of each partition. The broker forgets an
 * empty group's offsets after its offsets.retention.minutes (7 days).
 *
 * Order and duplicates: messages go to the reader's sequencer (evseq.h) like
 * events of any other source, so the sinks get each seq once, in seq order
 * (which within an order is version order); a copy whose seq is below the
 * watermark (same eventId, republished after a rewind or by hand) is dropped
 * and counted, and memory stays bounded by the sequencer's hold limit. Only a
 * sealed message (event_json.h: the relay's MAC header) is taken, so whoever
 * may produce to the topic without the server secret cannot push to
 * dashboards. A partition's offset is stored (and committed within a second)
 * only once the reader's watermark has passed the seq of its last message:
 * delivered to the hub, not merely received.
 *
 * Kafka down (every broker connection lost, or the group not steady in the
 * last statistics): the reader reopens LISTEN (ot_events_want_listen) so
 * pushes go on from the PostgreSQL tail, /readyz says kafka-feed down
 * (degraded, never unready), and the consumer resumes from its committed
 * offsets when the broker returns (what the tail delivered meanwhile comes
 * again and is dropped as a duplicate). */
#ifndef OT_APP_KAFKA_FEED_H
#define OT_APP_KAFKA_FEED_H

#include "ot/adapters/kafka.h"
#include "ot/app/events.h"
#include "ot/core/config.h"
#include "ot/event/loop.h"

typedef struct ot_kafka_feed ot_kafka_feed;

/* NULL on a bad configuration or out of memory (logged). */
ot_kafka_feed *ot_kafka_feed_new(ot_loop *loop, const ot_config *cfg, ot_events *events);
void ot_kafka_feed_free(ot_kafka_feed *f);

/* Service hooks: /readyz (not required) and the 1 s sampler. */
bool ot_kafka_feed_ready(void *f);
void ot_kafka_feed_sample(void *f);

/* What every consumer of order.events shares (the search indexer's too,
 * search_feed.h): a message is taken only with the relay's seal (event_json.h)
 * over its value, checked with the key derived from --jwt-secret. */
typedef struct {
    uint8_t key[OT_EVENT_MAC_KEY_LEN];
    bool have_key;
    char *buf; /* the envelope rebuilt for ot_event_open */
    size_t cap;
} ot_kafka_seal;
void ot_kafka_seal_init(ot_kafka_seal *s, const ot_config *cfg);
void ot_kafka_seal_free(ot_kafka_seal *s);
/* The event JSON (valid until the next call), if the seal is genuine. */
bool ot_kafka_unseal(ot_kafka_seal *s, const ot_kafka_msg *m, ot_str *json);
/* Where a consumer is in each partition of its topic, for storing offsets
 * only behind the work done (both consumers). */
typedef struct {
    int64_t offset; /* the last message received */
    int64_t seq;    /* its event's seq (0: nothing to wait for) */
    bool due;       /* received, offset not stored yet */
} ot_kafka_part;
typedef struct {
    ot_kafka_part *p;
    size_t n;
} ot_kafka_parts;
/* Partition p's entry (grown on demand), NULL beyond 10,000 or out of memory. */
ot_kafka_part *ot_kafka_part_of(ot_kafka_parts *t, int32_t p);
/* Received one more message of a partition at offset, carrying seq (0: none
 * to wait for). Within a partition seqs grow (the relay publishes in seq
 * order; a republished copy is lower and done), so the highest seq since the
 * last store covers the earlier messages. */
void ot_kafka_part_received(ot_kafka_part *p, int64_t offset, int64_t seq);
/* Stores the offset of every due partition whose seq is below `done`. */
void ot_kafka_parts_store(ot_kafka_parts *t, ot_kafka *k, const char *topic, int64_t done);

/* librdkafka's statistics: whether the group is steady with partitions and a
 * broker is up; the lag of each partition of `topic` goes to metrics slot
 * lag_slot (OT_LAG_*). */
bool ot_kafka_stats(ot_str json, const char *topic, int lag_slot);

#endif
