/* Internal to the redis adapter: the state redis_link.c (the hiredis glue:
 * fd hooks, connect/disconnect callbacks, the ot_link ops) and redis.c (the
 * pub/sub session and the public API) share. */
#ifndef OT_REDIS_LINK_H
#define OT_REDIS_LINK_H

#include <hiredis/async.h>

#include "ot/adapters/redis.h"
#include "ot/event/link.h"
#include "ot/event/watch.h"

#define OT_REDIS_MAX_CHANNELS 1024
#define OT_REDIS_MAX_CHANNEL_LEN 1024
#define OT_REDIS_NAME_MAX 64

typedef struct ot_redis_link {
    ot_redis *r;
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
} ot_redis_link;

struct ot_redis {
    ot_loop *loop;
    ot_redis_config cfg;
    ot_redis_addr addr;
    char name[OT_REDIS_NAME_MAX + 1];

    /* argv for the SUBSCRIBE / PSUBSCRIBE sent on every (re)connect, built
     * once; argv[0] is the command. */
    const char **sub_argv, **psub_argv;
    size_t *sub_lens, *psub_lens;
    int sub_argc, psub_argc;
    char *names; /* backing store of the channel copies */
    char hb[64]; /* private heartbeat channel of the sub link */

    ot_redis_msg_cb *msg_cb;
    ot_redis_state_cb *state_cb;
    void *data;

    ot_redis_link pub, sub;
    size_t outstanding, outstanding_bytes;
    ot_redis_stats stats;
    uint64_t hb_id;
    char last_error[224]; /* "role: " + ot_link.why */

    int cb_depth; /* >0 while a user callback runs: ot_redis_free must defer */
    bool closing;
    ot_defer free_defer;
};

extern const ot_link_ops ot_redis_link_ops;

void ot_redis_set_error(ot_redis *r, const char *role, const char *msg);
/* Drops the link after the current batch: safe inside hiredis callbacks. */
void ot_redis_link_fail(ot_redis_link *l, const char *why);
/* Called by the glue: the connection is open / the link went down. */
void ot_redis_session_start(ot_redis_link *l, redisAsyncContext *ac);
void ot_redis_session_lost(ot_redis_link *l);
/* The glue's fd callback, for ot_watch_init. */
void ot_redis_on_fd(ot_loop *loop, int fd, unsigned ev, void *data);

#endif
