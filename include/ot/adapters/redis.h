/* Redis pub/sub on the loop: hiredis 0.14.1's async API behind two links.
 *
 * One link publishes, the other stays subscribed; each reconnects by itself
 * with jittered exponential backoff, so a dead subscriber never stalls
 * publishing and vice versa. hiredis has no timer hook, so the loop supplies
 * the deadlines: a connect timeout, and a probe every ping_interval_ms whose
 * reply must arrive before the next one (PING on the publisher; on the
 * subscriber a re-SUBSCRIBE of a private heartbeat channel, the one round trip
 * a RESP2 subscribed connection answers that hiredis 0.14 can route back).
 *
 * Redis pub/sub is at-most-once: messages published while the subscriber is
 * down are lost. state_cb(false)/(true) marks the gap so the caller can backfill
 * from PostgreSQL, which remains the source of truth. */
#ifndef OT_REDIS_H
#define OT_REDIS_H

#include "ot/adapters/redis_url.h"
#include "ot/event/loop.h"

typedef struct ot_redis ot_redis;

/* `channel` and `message` point into hiredis's reply: valid only during the call. */
typedef void ot_redis_msg_cb(void *data, ot_str channel, ot_str message);
/* true once every SUBSCRIBE/PSUBSCRIBE is confirmed after each (re)connect;
 * false when that subscription is lost. */
typedef void ot_redis_state_cb(void *data, bool subscribed);

typedef struct {
    /* redis://[[user]:password@]host[:port][/db], host[:port], or unix:/path[?db=N] */
    const char *url;
    uint32_t connect_timeout_ms; /* default 2000 */
    uint32_t ping_interval_ms;   /* default 2000; a probe unanswered within one interval drops the link */
    uint32_t backoff_min_ms, backoff_max_ms; /* default 100 / 5000 */
    /* Publishes awaiting their reply; beyond either bound ot_redis_publish
     * returns OT_ERR and the message is dropped (the caller's PostgreSQL
     * backfill covers it). Defaults 10000 and 64 MiB. */
    size_t max_outstanding;
    size_t max_outstanding_bytes;
    /* Optional CLIENT SETNAME prefix (links become "<name>-pub"/"<name>-sub"),
     * so operators can find and kill a worker's connections. No spaces; <= 64 bytes. */
    const char *client_name;
} ot_redis_config;

void ot_redis_config_default(ot_redis_config *c);

/* Opens two links: one to publish, one subscribed to `channels` (entries ending
 * in '*' use PSUBSCRIBE). Reconnects each by itself. msg_cb gets every message
 * on the subscribed channels/patterns. Channel names are copied. NULL on a bad
 * URL or config or allocation failure. With nchannels == 0 only the publish
 * link is opened (state_cb never runs).
 * Blocking caveat: hiredis resolves a hostname with getaddrinfo(3) inside each
 * connect attempt; use an IP literal or a unix socket to keep the loop free. */
ot_redis *ot_redis_new(ot_loop *loop, const ot_redis_config *cfg, const char *const *channels, size_t nchannels,
                       ot_redis_msg_cb *msg_cb, ot_redis_state_cb *state_cb, void *data);
/* Closes both links. In-flight publishes are counted as errors. No callback
 * runs afterwards. Safe to call from msg_cb/state_cb (the release is deferred). */
void ot_redis_free(ot_redis *r);

/* Non-blocking PUBLISH (binary-safe). OT_ERR if the publish link is down or
 * too much is outstanding. */
int ot_redis_publish(ot_redis *r, ot_str channel, ot_str message);

bool ot_redis_pub_up(const ot_redis *r);
bool ot_redis_sub_up(const ot_redis *r); /* subscribed, as last reported to state_cb */

typedef struct {
    uint64_t published;      /* PUBLISH acknowledged by Redis */
    uint64_t publish_errors; /* refused by ot_redis_publish, lost in flight, or error replies */
    uint64_t received;       /* messages handed to msg_cb */
    uint64_t reconnects;     /* connect attempts after the first, both links */
    uint64_t link_drops;     /* links declared dead: connect timeout, missed probe, error */
    size_t outstanding;      /* publishes awaiting their reply now */
} ot_redis_stats;
void ot_redis_get_stats(const ot_redis *r, ot_redis_stats *st);

/* Last connection error seen on either link ("" if none); for logs and tests. */
const char *ot_redis_last_error(const ot_redis *r);

#endif
