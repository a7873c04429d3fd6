/* A connection we own to a server (libpq, hiredis; Kafka and curl next): the
 * policy every adapter shares, so the adapter itself is only library glue.
 *
 *   DOWN --(backoff timer)--> CONNECTING --ot_link_up--> UP
 *     ^                           |                       |
 *     +------ ot_link_fail -------+-----------------------+
 *
 * - A connect deadline: CONNECTING longer than connect_timeout_ms fails the
 *   attempt ("connect timeout"). The adapter decides what counts as up (the
 *   TCP connect, or its handshake: AUTH, LISTEN, SUBSCRIBE confirmed).
 * - Backoff between attempts (ot_backoff), reset once healthy.
 * - One log line per outage: the first failure since the link was last
 *   healthy; retries that fail again stay quiet until it is healthy.
 * - ot_link_fail closes the library connection (ops->close) at once;
 *   ot_link_fail_later does it from a defer, after the batch: the one to call
 *   from inside the library's own callbacks, where freeing its context is a
 *   use-after-free. Both are idempotent while DOWN, also when ops->close
 *   re-enters them (redisAsyncFree runs the disconnect callback).
 * The link's timer serves only DOWN and CONNECTING; an UP link's own timers
 * (probes, query deadlines) belong to the adapter. */
#ifndef OT_LINK_H
#define OT_LINK_H

#include "ot/event/backoff.h"
#include "ot/event/loop.h"

typedef enum { OT_LINK_DOWN, OT_LINK_CONNECTING, OT_LINK_UP } ot_link_state;

typedef struct ot_link ot_link;
typedef struct {
    /* Start an attempt (state is CONNECTING); OT_ERR if it failed at once
     * (then ot_link_fail follows with the why it set via ot_link_set_error). */
    int (*connect)(ot_link *l);
    /* Drop the library connection, if any. Never called from a library callback
     * through ot_link_fail_later. */
    void (*close)(ot_link *l);
    /* Optional: runs once the link is DOWN after a failure; was_up tells a loss
     * from a failed attempt (the owner reports the gap, fails its queries). */
    void (*down)(ot_link *l, bool was_up);
} ot_link_ops;

struct ot_link {
    ot_loop *loop;
    const char *name; /* "pg pool", "redis pub": the log's subject */
    const ot_link_ops *ops;
    void *data;
    ot_link_state state;
    ot_backoff backoff;
    uint32_t connect_timeout_ms;
    ot_timer timer;
    ot_defer fail_defer;
    bool warned;     /* this outage was logged */
    bool attempted;  /* a first attempt was made: later ones count as reconnects */
    uint64_t reconnects, failures;
    char why[192];   /* the last failure, for the log line and tests */
};

void ot_link_init(ot_link *l, ot_loop *loop, const char *name, const ot_link_ops *ops, void *data,
                  uint32_t connect_timeout_ms, uint32_t backoff_min_ms, uint32_t backoff_max_ms);
/* First attempt now (from DOWN). */
void ot_link_start(ot_link *l);
/* The attempt succeeded: UP, deadline stopped. */
void ot_link_up(ot_link *l);
/* The server answered as it should (a PONG, AUTH accepted, LISTEN done):
 * backoff reset, outage over, so the next failure logs again. Separate from
 * up because a server may accept the connection and then refuse us (wrong
 * password): that stays one outage, one log line. ot_link_up_healthy does both. */
void ot_link_healthy(ot_link *l);
static inline void ot_link_up_healthy(ot_link *l)
{
    ot_link_up(l);
    ot_link_healthy(l);
}
void ot_link_fail(ot_link *l, const char *why);
void ot_link_fail_later(ot_link *l, const char *why);
/* Records why without failing (e.g. the library's error text before a failure
 * reported elsewhere). */
void ot_link_set_error(ot_link *l, const char *why);
/* Stops the timers; does not close. For the owner's free. */
void ot_link_stop(ot_link *l);
static inline bool ot_link_is_up(const ot_link *l) { return l->state == OT_LINK_UP; }

#endif
