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

#endif
