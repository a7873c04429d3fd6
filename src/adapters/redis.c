/* Redis pub/sub over two hiredis links (redis_link.c): the session each link
 * runs once connected (AUTH, SELECT, CLIENT SETNAME, SUBSCRIBE, the probe),
 * the replies, publishing and the public API. The connection policy is
 * ot_link's (include/ot/event/link.h). */
#include "ot/adapters/redis.h"
#include "ot/adapters/redis_link.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ot/core/log.h"

struct ot_redis {
    ot_redis_common com; /* loop, address, last error, closing: shared with the links */
    ot_redis_config cfg;
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

    int cb_depth; /* >0 while a user callback runs: ot_redis_free must defer */
    ot_defer free_defer;
};

/* privdata tags for sub-link replies; only their addresses matter. */
static char tag_channels, tag_hb;


void ot_redis_config_default(ot_redis_config *c)
{
    *c = (ot_redis_config){
        .url = "redis://127.0.0.1:6379",
        .connect_timeout_ms = 2000,
        .ping_interval_ms = 2000,
        .backoff_min_ms = 100,
        .backoff_max_ms = 5000,
        .max_outstanding = 10000,
        .max_outstanding_bytes = 64u << 20,
        .client_name = NULL,
    };
}

/* ---- small helpers ---- */

static void notify_state(ot_redis *r, bool up)
{
    if (r->com.closing || !r->state_cb)
        return;
    r->cb_depth++;
    r->state_cb(r->data, up);
    r->cb_depth--;
}

/* ---- replies ---- */

static bool reply_is_error(const redisReply *rep) { return rep->type == REDIS_REPLY_ERROR; }

/* AUTH / SELECT: an error means a misconfiguration; drop and retry with
 * backoff (the log says why) rather than run on the wrong database. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    if (!rep)
        return;
    if (reply_is_error(rep))
        ot_redis_link_fail(ac->data, rep->str);
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    ot_redis_link *l = ac->data;
    if (!rep)
        return;
    if (reply_is_error(rep))
        ot_redis_link_fail(l, rep->str);
    else
        ot_link_up(&l->link);
}

static void on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    ot_redis_link *l = ac->data;
    if (!rep)
        return;
    if (reply_is_error(rep)) {
        ot_redis_link_fail(l, rep->str);
        return;
    }
    l->awaiting = false;
    if (!l->healthy)
        ot_logf(OT_LOG_INFO, "redis pub link up");
    l->healthy = true;
    ot_link_healthy(&l->link); /* next outage starts small again and logs */
}

static void on_publish(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    ot_redis_link *l = ac->data;
    ot_redis *r = l->owner;
    size_t bytes = (size_t)(uintptr_t)priv; /* the size rides in privdata: no per-publish allocation */
    r->outstanding--;
    r->outstanding_bytes -= bytes;
    if (!rep || rep->type != REDIS_REPLY_INTEGER)
        r->stats.publish_errors++;
    else
        r->stats.published++;
}

static bool elem_str(const redisReply *rep, size_t i, ot_str *out)
{
    const redisReply *e = rep->element[i];
    if (!e || e->type != REDIS_REPLY_STRING)
        return false;
    *out = ot_str_make(e->str, e->len);
    return true;
}

/* Every reply for a subscribed channel or pattern: confirmations and messages
 * (hiredis routes them by channel name to the callback of its SUBSCRIBE). */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    ot_redis_link *l = ac->data;
    ot_redis *r = l->owner;
    ot_str kind, a, b;
    if (!rep || r->com.closing || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 || !elem_str(rep, 0, &kind))
        return;
    if (ot_str_eq_lit(kind, "message")) {
        if (priv == &tag_hb || !elem_str(rep, 1, &a) || !elem_str(rep, 2, &b))
            return;
    } else if (ot_str_eq_lit(kind, "pmessage")) {
        if (rep->elements < 4 || !elem_str(rep, 2, &a) || !elem_str(rep, 3, &b))
            return;
    } else if (ot_str_eq_lit(kind, "subscribe") || ot_str_eq_lit(kind, "psubscribe")) {
        if (!l->subscribed) {
            if (l->pending_confirms > 0 && --l->pending_confirms == 0) {
                l->subscribed = true;
                l->awaiting = false;
                ot_link_healthy(&l->link);
                ot_logf(OT_LOG_INFO, "redis sub link subscribed");
                notify_state(r, true);
            }
        } else if (priv == &tag_hb) {
            l->awaiting = false;
        }
        return;
    } else {
        return;
    }
    r->stats.received++;
    if (r->msg_cb) {
        r->cb_depth++;
        r->msg_cb(r->data, a, b);
        r->cb_depth--;
    }
}

/* ---- connection life cycle ---- */

static void send_probe(ot_redis_link *l)
{
    ot_redis *r = l->owner;
    int rc;
    if (l->is_sub) /* re-SUBSCRIBE is idempotent and answered even in subscribed mode */
        rc = redisAsyncCommand(l->ac, on_sub_reply, &tag_hb, "SUBSCRIBE %s", r->hb);
    else
        rc = redisAsyncCommand(l->ac, on_pong, NULL, "PING");
    l->awaiting = true;
    if (rc != REDIS_OK)
        ot_redis_link_fail(l, "cannot queue probe");
}

static void on_probe_timer(ot_loop *loop, ot_timer *t)
{
    ot_redis_link *l = t->data;
    ot_redis *r = l->owner;
    if (r->com.closing || l->link.state == OT_LINK_DOWN || !l->ac)
        return; /* CONNECTING here means AUTH pending: the probe still counts */
    if (l->awaiting) {
        /* No reply within a whole interval: the peer or the path is gone
         * even if TCP has not noticed (no RST through a dead NAT). */
        ot_redis_set_error(&r->com, l->role, l->subscribed || !l->is_sub ? "probe timeout" : "subscribe timeout");
        ot_link_fail(&l->link, r->com.last_error);
        return;
    }
    send_probe(l);
    ot_timer_start(loop, &l->probe, r->cfg.ping_interval_ms);
}

/* The connection is open: queue AUTH, SELECT, CLIENT SETNAME, the
 * subscriptions and the first probe. */
static void session_start(ot_redis_link *l, redisAsyncContext *ac)
{
    ot_redis *r = l->owner;
    /* Pipelined: hiredis delivers replies to regular commands before any
     * pub/sub reply, so the SUBSCRIBE below can follow without waiting. */
    bool ok = true;
    const ot_redis_addr *a = &r->com.addr;
    /* With credentials the link is up only once AUTH is accepted (within the
     * connect deadline): nothing is published or counted as subscribed on a
     * connection Redis refuses, and a wrong password stays one outage. */
    if (a->password[0] && a->user[0])
        ok &= redisAsyncCommand(ac, on_auth_reply, NULL, "AUTH %s %s", a->user, a->password) == REDIS_OK;
    else if (a->password[0])
        ok &= redisAsyncCommand(ac, on_auth_reply, NULL, "AUTH %s", a->password) == REDIS_OK;
    else
        ot_link_up(&l->link);
    if (a->db >= 0)
        ok &= redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", a->db) == REDIS_OK;
    if (r->name[0])
        ok &= redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME %s-%s", r->name, l->role) == REDIS_OK;
    if (l->is_sub) {
        l->pending_confirms = 1 + (size_t)(r->sub_argc > 1 ? r->sub_argc - 1 : 0) +
                              (size_t)(r->psub_argc > 1 ? r->psub_argc - 1 : 0);
        if (r->sub_argc > 1)
            ok &= redisAsyncCommandArgv(ac, on_sub_reply, &tag_channels, r->sub_argc, r->sub_argv, r->sub_lens) ==
                  REDIS_OK;
        if (r->psub_argc > 1)
            ok &= redisAsyncCommandArgv(ac, on_sub_reply, &tag_channels, r->psub_argc, r->psub_argv,
                                        r->psub_lens) == REDIS_OK;
    }
    if (!ok) {
        ot_redis_link_fail(l, "cannot queue setup commands");
        return;
    }
    send_probe(l); /* for sub, the heartbeat SUBSCRIBE is the last confirmation awaited */
    ot_timer_start(r->com.loop, &l->probe, r->cfg.ping_interval_ms);
}

/* The link is down: what the session held is gone. */
static void session_lost(ot_redis_link *l)
{
    bool was_subscribed = l->subscribed;
    l->subscribed = l->awaiting = l->healthy = false;
    if (was_subscribed)
        notify_state(l->owner, false);
}

/* ---- public API ---- */

static void link_init(ot_redis *r, ot_redis_link *l, const char *role, bool is_sub)
{
    l->owner = r;
    l->com = &r->com;
    l->role = role;
    l->is_sub = is_sub;
    snprintf(l->link_name, sizeof(l->link_name), "redis %s", role);
    ot_link_init(&l->link, r->com.loop, l->link_name, &ot_redis_link_ops, l, r->cfg.connect_timeout_ms, r->cfg.backoff_min_ms,
                 r->cfg.backoff_max_ms);
    ot_watch_init(&l->watch, r->com.loop, ot_redis_on_fd, l);
    ot_timer_init(&l->probe, on_probe_timer, l);
}

static void release(ot_redis *r)
{
    ot_redis_link *links[2] = { &r->pub, &r->sub };
    for (int i = 0; i < 2; i++) {
        ot_redis_link *l = links[i];
        ot_link_stop(&l->link);
        ot_timer_stop(r->com.loop, &l->probe);
        l->link.state = OT_LINK_DOWN; /* first: the disconnect callback below must not reconnect */
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        if (ac)
            redisAsyncFree(ac); /* in-flight publishes complete as errors */
        ot_watch_remove(&l->watch);
    }
    ot_defer_cancel(r->com.loop, &r->free_defer);
    free(r->sub_argv);
    free(r->psub_argv);
    free(r->sub_lens);
    free(r->psub_lens);
    free(r->names);
    free(r);
}

static void on_free_defer(ot_loop *loop, ot_defer *d) { release(d->data); }

void ot_redis_free(ot_redis *r)
{
    if (!r || r->com.closing)
        return;
    r->com.closing = true;
    if (r->cb_depth > 0) {
        /* Inside msg_cb/state_cb, hence inside hiredis: free after the batch. */
        ot_defer_queue(r->com.loop, &r->free_defer);
        return;
    }
    release(r);
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OT_REDIS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) /* CLIENT SETNAME refuses spaces and newlines */
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static int build_channels(ot_redis *r, const char *const *channels, size_t n)
{
    size_t total = 0, npat = 0;
    for (size_t i = 0; i < n; i++) {
        if (!channels[i])
            return OT_ERR;
        size_t len = strlen(channels[i]);
        if (len == 0 || len > OT_REDIS_MAX_CHANNEL_LEN)
            return OT_ERR;
        total += len + 1;
        if (channels[i][len - 1] == '*')
            npat++;
    }
    r->names = malloc(total ? total : 1);
    r->sub_argv = calloc(n - npat + 1, sizeof(*r->sub_argv));
    r->sub_lens = calloc(n - npat + 1, sizeof(*r->sub_lens));
    r->psub_argv = calloc(npat + 1, sizeof(*r->psub_argv));
    r->psub_lens = calloc(npat + 1, sizeof(*r->psub_lens));
    if (!r->names || !r->sub_argv || !r->sub_lens || !r->psub_argv || !r->psub_lens)
        return OT_ERR;
    r->sub_argv[0] = "SUBSCRIBE";
    r->sub_lens[0] = 9;
    r->psub_argv[0] = "PSUBSCRIBE";
    r->psub_lens[0] = 10;
    r->sub_argc = r->psub_argc = 1;
    char *w = r->names;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(channels[i]);
        memcpy(w, channels[i], len + 1);
        if (channels[i][len - 1] == '*') {
            r->psub_argv[r->psub_argc] = w;
            r->psub_lens[r->psub_argc++] = len;
        } else {
            r->sub_argv[r->sub_argc] = w;
            r->sub_lens[r->sub_argc++] = len;
        }
        w += len + 1;
    }
    return OT_OK;
}

ot_redis *ot_redis_new(ot_loop *loop, const ot_redis_config *cfg, const char *const *channels, size_t nchannels,
                       ot_redis_msg_cb *msg_cb, ot_redis_state_cb *state_cb, void *data)
{
    if (!loop || nchannels > OT_REDIS_MAX_CHANNELS || (nchannels && !channels))
        return NULL;
    ot_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    ot_redis_config_default(&r->cfg);
    if (cfg) {
        const ot_redis_config *d = &r->cfg;
        ot_redis_config c = *cfg; /* zero means "default" for every field */
        c.url = c.url ? c.url : d->url;
        c.connect_timeout_ms = c.connect_timeout_ms ? c.connect_timeout_ms : d->connect_timeout_ms;
        c.ping_interval_ms = c.ping_interval_ms ? c.ping_interval_ms : d->ping_interval_ms;
        c.backoff_min_ms = c.backoff_min_ms ? c.backoff_min_ms : d->backoff_min_ms;
        c.backoff_max_ms = c.backoff_max_ms ? c.backoff_max_ms : d->backoff_max_ms;
        c.max_outstanding = c.max_outstanding ? c.max_outstanding : d->max_outstanding;
        c.max_outstanding_bytes = c.max_outstanding_bytes ? c.max_outstanding_bytes : d->max_outstanding_bytes;
        if (c.backoff_max_ms < c.backoff_min_ms)
            c.backoff_max_ms = c.backoff_min_ms;
        r->cfg = c;
    }
    r->com.loop = loop;
    r->com.session_start = session_start;
    r->com.session_lost = session_lost;
    r->msg_cb = msg_cb;
    r->state_cb = state_cb;
    r->data = data;
    r->hb_id = ot_now_us() ^ ((uint64_t)(uintptr_t)r << 16);
    ot_defer_init(&r->free_defer, on_free_defer, r);
    link_init(r, &r->pub, "pub", false);
    link_init(r, &r->sub, "sub", true);
    bool ok = ot_redis_parse_url(r->cfg.url, &r->com.addr) == OT_OK;
    if (ok && r->cfg.client_name) {
        ok = valid_name(r->cfg.client_name);
        if (ok)
            memcpy(r->name, r->cfg.client_name, strlen(r->cfg.client_name) + 1);
    }
    r->cfg.url = NULL;         /* not kept: the caller's string may not outlive us */
    r->cfg.client_name = NULL;
    if (!ok || build_channels(r, channels, nchannels) < 0) {
        ot_logf(OT_LOG_ERROR, "redis: invalid URL, client name or channel list");
        release(r);
        return NULL;
    }
    snprintf(r->hb, sizeof(r->hb), "__ot_hb:%d:%016llx", (int)getpid(), (unsigned long long)r->hb_id);
    r->com.last_error[0] = '\0';
    ot_link_start(&r->pub.link);
    if (nchannels > 0) /* a publish-only instance needs no second connection */
        ot_link_start(&r->sub.link);
    return r;
}

int ot_redis_publish(ot_redis *r, ot_str channel, ot_str message)
{
    if (!r || r->com.closing)
        return OT_ERR;
    ot_redis_link *l = &r->pub;
    size_t bytes = channel.len + message.len;
    if (!ot_link_is_up(&l->link) || !l->ac || r->outstanding >= r->cfg.max_outstanding ||
        bytes > r->cfg.max_outstanding_bytes - r->outstanding_bytes) {
        r->stats.publish_errors++;
        return OT_ERR;
    }
    /* %b keeps NUL bytes; never hand NULL to the formatter even for len 0. */
    if (redisAsyncCommand(l->ac, on_publish, (void *)(uintptr_t)bytes, "PUBLISH %b %b", channel.base ? channel.base : "",
                          channel.len, message.base ? message.base : "", message.len) != REDIS_OK) {
        r->stats.publish_errors++;
        return OT_ERR;
    }
    r->outstanding++;
    r->outstanding_bytes += bytes;
    return OT_OK;
}

bool ot_redis_pub_up(const ot_redis *r) { return r && !r->com.closing && ot_link_is_up(&r->pub.link); }
bool ot_redis_sub_up(const ot_redis *r) { return r && !r->com.closing && r->sub.subscribed; }

void ot_redis_get_stats(const ot_redis *r, ot_redis_stats *st)
{
    *st = r->stats;
    st->link_drops = r->com.link_drops;
    st->reconnects = r->pub.link.reconnects + r->sub.link.reconnects;
    st->outstanding = r->outstanding;
}

const char *ot_redis_last_error(const ot_redis *r) { return r->com.last_error; }
