/* The outbox relay: committed order_events rows to Kafka, at least once, in
 * seq order, by one worker of the whole deployment at a time.
 *
 * Every worker runs a relay object; the one that holds a PostgreSQL advisory
 * lock (OT_RELAY_LOCK_KEY, session-level, on a connection of its own) is the
 * holder and runs the pipeline: an idempotent producer and a durable event
 * sink named "kafka-relay" (sink.h), whose cursor is the last seq below which
 * every event has a successful delivery report on both its topics. The others
 * try to take the lock every second, so when the holder dies (its connection
 * closes, the lock goes with it) another takes over within about a second.
 * The holder checks every second that its session still holds the lock and
 * stops at once when it does not.
 *
 * Each event goes to the topic named after its type (order.created,
 * order.updated, order.completed, order.canceled) and to order.events (every
 * event of an order, in order: Kafka orders only within one partition of one
 * topic), key = orderId, value = the event JSON (eventId, seq, version
 * included), headers eventId and type, timestamp = the row's created_at.
 *
 * Failures: a delivery report with any error (a timeout, possibly persisted,
 * a broker refusal) stops the cursor before that event; once every in-flight
 * report is back, the sink restarts from the stored cursor and republishes
 * from there (duplicates, never a gap: consumers dedupe by eventId and order
 * by version). A fatal idempotence error recreates the producer the same way.
 *
 * Parked orders are re-read from relay_parked every second while any is
 * parked, so an order whose rows `ordertrack relay retry` published and
 * removed flows again within a second. */
#ifndef OT_APP_RELAY_H
#define OT_APP_RELAY_H

#include "ot/adapters/kafka.h"
#include "ot/app/events.h"
#include "ot/core/config.h"
#include "ot/event/loop.h"

#define OT_RELAY_LOCK_KEY 4242001002LL
#define OT_RELAY_NTOPICS 5
#define OT_RELAY_TOPIC_MAX 200

/* How the relay publishes one event, shared with `ordertrack relay retry`
 * (cmd/relaycli.c): to <prefix>order.events and to the topic of its type,
 * key = orderId, headers eventId, type and seal (event_json.h), Kafka
 * timestamp = its commit time. */
typedef struct {
    char topics[OT_RELAY_NTOPICS][OT_RELAY_TOPIC_MAX]; /* [0]: order.events */
    uint8_t mac_key[OT_EVENT_MAC_KEY_LEN];
    bool have_key;
    char seal_hex[OT_EVENT_SEAL_HEX]; /* the last event's, for its two messages */
} ot_relay_out;

void ot_relay_out_init(ot_relay_out *o, const ot_config *cfg);
void ot_relay_out_free(ot_relay_out *o);
/* Queues ev's messages (reports come back with `opaque`). *rc_events and
 * *rc_type receive ot_kafka_produce's results; the type topic is tried only
 * after order.events was queued (*rc_type OT_OK when not tried or the type
 * has no topic). Returns how many messages were queued (0..2). */
int ot_relay_out_produce(ot_relay_out *o, ot_kafka *k, const ot_event *ev, void *opaque, int *rc_events,
                         int *rc_type);

typedef struct ot_relay ot_relay;

/* NULL on allocation failure. Needs cfg->kafka_brokers and a database. */
ot_relay *ot_relay_new(ot_loop *loop, const ot_config *cfg, ot_events *events);
void ot_relay_free(ot_relay *r);

/* For /readyz (degraded, never unready) and /metrics. */
bool ot_relay_ready(void *r);
void ot_relay_sample(void *r);

#endif
