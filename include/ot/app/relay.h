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
 * by version). A fatal idempotence error recreates the producer the same way. */
#ifndef OT_APP_RELAY_H
#define OT_APP_RELAY_H

#include "ot/app/events.h"
#include "ot/core/config.h"
#include "ot/event/loop.h"

#define OT_RELAY_LOCK_KEY 4242001002LL

typedef struct ot_relay ot_relay;

/* NULL on allocation failure. Needs cfg->kafka_brokers and a database. */
ot_relay *ot_relay_new(ot_loop *loop, const ot_config *cfg, ot_events *events);
void ot_relay_free(ot_relay *r);

/* For /readyz (degraded, never unready) and /metrics. */
bool ot_relay_ready(void *r);
void ot_relay_sample(void *r);

#endif
