/* hiredis 0.14.1 async on ot_loop: the adapter proper. Like hiredis's own
 * adapters (ae.h, libevent.h) it maps the five event hooks onto the loop
 * (through ot_watch); the ot_link ops open and close a context.
 *
 * Reentrancy rules this file keeps (hiredis async.c):
 * - onConnect/onDisconnect run without REDIS_IN_CALLBACK, and right after them
 *   hiredis frees the context itself; freeing it from inside any hiredis
 *   callback is a double free. So a link that must be dropped from inside a
 *   callback is dropped with ot_link_fail_later; in onConnect/onDisconnect the
 *   context pointer is forgotten first, so the link's close has nothing to free.
 * - redisAsyncFree runs every pending reply callback with a NULL reply, then
 *   ev.cleanup, then onDisconnect (only if the link was connected). All of
 *   them may therefore run inside our own teardown: link_gone is then a no-op.
 * - A reconnect never happens synchronously (always via the link timer), so a
 *   context pointer seen before a hiredis call can be compared after it to
 *   learn whether the call freed it. */
#include "ot/adapters/redis_link.h"

#include <stdio.h>

void ot_redis_set_error(ot_redis_common *r, const char *role, const char *msg)
{
    snprintf(r->last_error, sizeof(r->last_error), "%s: %s", role, msg && *msg ? msg : "unknown error");
}

/* Safe from anywhere, including hiredis callbacks. */
void ot_redis_link_fail(ot_redis_link *l, const char *why)
{
    if (l->link.state == OT_LINK_DOWN)
        return;
    ot_redis_set_error(l->com, l->role, why);
    ot_link_fail_later(&l->link, l->com->last_error);
}

/* hiredis reported the end (onConnect failure, onDisconnect): it frees the
 * context itself when we return, so forget it before failing the link. */
static void link_gone(ot_redis_link *l, const char *why)
{
    if (why)
        ot_redis_set_error(l->com, l->role, why);
    l->ac = NULL;
    if (l->link.state == OT_LINK_DOWN || l->com->closing)
        return; /* inside our own link_close or release */
    l->lib_failed = true;
    ot_link_fail(&l->link, l->com->last_error);
}

/* ---- hiredis event hooks (the adapter proper) ---- */

void ot_redis_on_fd(ot_loop *loop, int fd, unsigned ev, void *data)
{
    ot_redis_link *l = data;
    redisAsyncContext *ac = l->ac;
    if (!ac)
        return;
    if (!(ac->c.flags & REDIS_CONNECTED)) {
        /* Writability (or an error) completes a non-blocking connect(2);
         * hiredis checks SO_ERROR there. */
        redisAsyncHandleWrite(ac);
        return;
    }
    /* Level-triggered: redisAsyncHandleRead does one read(2) per call, so
     * unread bytes must wake us again. A hangup is read to learn EOF. */
    if (ev & (OT_READABLE | OT_HANGUP)) {
        redisAsyncHandleRead(ac);
        if (l->ac != ac)
            return; /* freed on EOF or error */
    }
    if ((ev & OT_WRITABLE) && (l->want & OT_WRITABLE))
        redisAsyncHandleWrite(ac);
}

static void ev_update(ot_redis_link *l, unsigned want)
{
    l->want = want;
    if (l->ac && ot_watch_set(&l->watch, l->ac->c.fd, want) < 0)
        ot_redis_link_fail(l, "cannot register fd with the loop");
}

static void ev_add_read(void *p) { ev_update(p, ((ot_redis_link *)p)->want | OT_READABLE); }
static void ev_del_read(void *p) { ev_update(p, ((ot_redis_link *)p)->want & ~(unsigned)OT_READABLE); }
static void ev_add_write(void *p) { ev_update(p, ((ot_redis_link *)p)->want | OT_WRITABLE); }
static void ev_del_write(void *p) { ev_update(p, ((ot_redis_link *)p)->want & ~(unsigned)OT_WRITABLE); }

/* Called before hiredis close(2)s the fd: unregister first so the number can
 * be reused safely. */
static void ev_cleanup(void *p)
{
    ot_redis_link *l = p;
    ot_watch_remove(&l->watch);
    l->want = 0;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac; /* hiredis hands us its own context */
    ot_redis_link *l = ac->data;
    ot_redis_common *r = l->com;
    if (status != REDIS_OK) {
        link_gone(l, ac->errstr);
        return;
    }
    if (!r->closing)
        r->session_start(l, ac);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    ot_redis_link *l = cac->data;
    link_gone(l, status != REDIS_OK ? cac->errstr : "connection closed");
}

/* ot_link ops: the library side of the link's life cycle. */
static int link_connect(ot_link *lk)
{
    ot_redis_link *l = lk->data;
    ot_redis_common *r = l->com;
    l->awaiting = l->subscribed = l->healthy = l->lib_failed = false;
    l->want = 0;
    redisAsyncContext *ac =
        r->addr.is_unix ? redisAsyncConnectUnix(r->addr.host) : redisAsyncConnect(r->addr.host, r->addr.port);
    if (!ac || ac->err) {
        /* connect(2) can fail at once (ECONNREFUSED on loopback) */
        ot_redis_set_error(r, l->role, ac ? ac->errstr : "out of memory");
        ot_link_set_error(lk, r->last_error);
        if (ac)
            redisAsyncFree(ac); /* no hooks attached yet: plain free */
        l->lib_failed = true;
        return OT_ERR;
    }
    l->ac = ac;
    ac->data = l;
    ac->ev.data = l;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    if (!r->addr.is_unix)
        redisEnableKeepAlive(&ac->c); /* best effort: the probe is the real detector */
    /* Hooks first: setting the connect callback asks for the first write event. */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return 0;
}

/* Never from inside a hiredis callback (ot_link_fail_later sees to it). */
static void link_close(ot_link *lk)
{
    ot_redis_link *l = lk->data;
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    ot_timer_stop(l->com->loop, &l->probe);
    if (ac)
        redisAsyncFree(ac); /* pending replies run with NULL, then on_disconnect: link_gone finds us DOWN */
    ot_watch_remove(&l->watch);
}

static void link_down(ot_link *lk, bool was_up)
{
    ot_redis_link *l = lk->data;
    ot_redis_common *r = l->com;
    if (!l->lib_failed)
        r->link_drops++; /* we declared it dead: timeout, missed probe, error reply */
    l->lib_failed = false;
    if (strcmp(lk->why, r->last_error) != 0) /* decided by ot_link itself: the connect deadline */
        ot_redis_set_error(r, l->role, lk->why);
    r->session_lost(l);
}

const ot_link_ops ot_redis_link_ops = { link_connect, link_close, link_down };

