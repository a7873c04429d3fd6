/* Internal to the redis adapter: the hiredis glue (redis_link.c: fd hooks,
 * connect/disconnect callbacks, the ot_link ops) and what it shares with the
 * pub/sub session and public API above it (redis.c), which it reaches only
 * through ot_redis_common's callbacks. */
#ifndef OT_REDIS_LINK_H
#define OT_REDIS_LINK_H

#include <hiredis/async.h>

#include "ot/adapters/redis_url.h"
#include "ot/event/link.h"
#include "ot/event/watch.h"

#define OT_REDIS_MAX_CHANNELS 1024
#define OT_REDIS_MAX_CHANNEL_LEN 1024
#define OT_REDIS_NAME_MAX 64

typedef struct ot_redis_link ot_redis_link;

/* What the two links of one client share with the glue, and how the session
 * above them (redis.c) hears of a link: the glue knows nothing else of it. */
typedef struct ot_redis_common {
    ot_loop *loop;
    ot_redis_addr addr;
    char last_error[224]; /* "role: " + ot_link.why */
    bool closing;
    uint64_t link_drops;
    void (*session_start)(ot_redis_link *l, redisAsyncContext *ac); /* the connection is open */
    void (*session_lost)(ot_redis_link *l);                         /* the link went down */
} ot_redis_common;

struct ot_redis_link {
    ot_redis_common *com;
    void *owner;      /* the client (redis.c) */
    const char *role; /* "pub" / "sub", for CLIENT SETNAME */
    bool is_sub;
    ot_link link;     /* UP once TCP is connected; healthy once Redis answered */
    char link_name[16];
    redisAsyncContext *ac;
    ot_watch watch;
    unsigned want;    /* OT_READABLE|OT_WRITABLE as last asked by hiredis */
    ot_timer probe;   /* while UP: a probe every ping_interval_ms */
    bool lib_failed;  /* this failure was reported by hiredis, not decided by us */
    bool awaiting;           /* probe (or initial subscription) not yet answered */
    bool subscribed;         /* sub link: every SUBSCRIBE/PSUBSCRIBE confirmed */
    size_t pending_confirms; /* sub link: confirmations still missing after connect */
    bool healthy; /* answered since this connect: logs "up" once per connection */
};


extern const ot_link_ops ot_redis_link_ops;

void ot_redis_set_error(ot_redis_common *r, const char *role, const char *msg);
/* Drops the link after the current batch: safe inside hiredis callbacks. */
void ot_redis_link_fail(ot_redis_link *l, const char *why);
/* The glue's fd callback, for ot_watch_init. */
void ot_redis_on_fd(ot_loop *loop, int fd, unsigned ev, void *data);

#endif
