/* The hub: index of this worker's sockets, their caps and the fanout of
 * events to them. See hub.h. */
#include "ot/app/hub.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ot/codec/event_view.h"
#include "ot/codec/json.h"
#include "ot/codec/lifecycle.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"
#include "ot/core/list.h"

#define OT_HUB_BUCKETS_MIN 256

/* Open sockets per key (user id or IP bytes): a chained table, grown like
 * the socket index, with one node per key that has a socket. */
struct ot_hub_slot {
    ot_hub_slot *next;
    uint32_t hash, n;
    uint8_t klen;
    uint8_t key[];
};

typedef struct {
    ot_hub_slot **b;
    uint32_t nb, nkeys; /* nb: power of two */
} ot_hub_ctab;

struct ot_hub {
    ot_hub_env env;
    ot_events *events;
    ot_hub_source src;      /* fetch NULL: the PostgreSQL one */
    ot_ws_server *ws;       /* the transport of this worker's sockets */
    ot_hub_ctab per_user, per_ip;
    ot_hub_client **buckets; /* customers by hash(sub) */
    uint32_t nbuckets;    /* power of two */
    ot_hub_client *admins;
    int count, ncust;
    bool draining;
};

/* ---------------------------------------------------------------- index */

static uint32_t hash_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static ot_hub_client **chain_of(ot_hub *h, const ot_hub_client *c)
{
    return c->role == OT_ROLE_ADMIN ? &h->admins : &h->buckets[c->hash & (h->nbuckets - 1)];
}

static void index_link(ot_hub *h, ot_hub_client *c)
{
    ot_hub_client **head = chain_of(h, c);
    OT_LIST_PUSH_FRONT(head, c);
    if (c->role != OT_ROLE_ADMIN)
        h->ncust++;
}

static void index_unlink(ot_hub *h, ot_hub_client *c)
{
    ot_hub_client **head = chain_of(h, c);
    OT_LIST_UNLINK(head, c);
    if (c->role != OT_ROLE_ADMIN)
        h->ncust--;
}

/* Keeps chains short (load <= 2) as customers come; never shrinks. */
static void maybe_grow(ot_hub *h)
{
    if ((uint32_t)h->ncust <= h->nbuckets * 2 || h->nbuckets >= (1u << 24))
        return;
    uint32_t n = h->nbuckets * 2;
    ot_hub_client **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i < h->nbuckets; i++) {
        ot_hub_client *c = h->buckets[i], *next;
        for (; c; c = next) {
            next = c->next;
            ot_hub_client **head = &nb[c->hash & (n - 1)];
            OT_LIST_PUSH_FRONT(head, c);
        }
    }
    free(h->buckets);
    h->buckets = nb;
    h->nbuckets = n;
}

/* Calls fn on every indexed socket; fn may close or kill it. */
static void each_conn(ot_hub *h, void (*fn)(ot_ws_conn *c))
{
    ot_hub_client *c, *next;
    for (c = h->admins; c; c = next) {
        next = c->next;
        fn(&c->ws);
    }
    for (uint32_t i = 0; i < h->nbuckets; i++) {
        for (c = h->buckets[i]; c; c = next) {
            next = c->next;
            fn(&c->ws);
        }
    }
}

/* Subs are compared as text against event userIds (lower-case uuid::text):
 * spell a UUID sub the same way. */
void ot_hub_normalize_sub(char *sub, size_t *len)
{
    uint8_t id[16];
    if (ot_uuid_to_bytes(ot_str_make(sub, *len), id) == 0) {
        ot_uuid_to_text(id, sub);
        *len = 36;
    }
}

/* ---------------------------------------------------------------- lifecycle */

ot_hub *ot_hub_new(const ot_hub_env *env)
{
    ot_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->env = *env;
    h->nbuckets = OT_HUB_BUCKETS_MIN;
    h->buckets = calloc(h->nbuckets, sizeof(*h->buckets));
    h->ws = ot_ws_server_new(env->loop, env->cfg);
    if (!h->buckets || !h->ws) {
        free(h->buckets);
        ot_ws_server_free(h->ws);
        free(h);
        return NULL;
    }
    return h;
}

void ot_hub_free(ot_hub *h)
{
    if (!h)
        return;
    each_conn(h, ot_ws_abort);
    ot_ws_server_free(h->ws); /* frees the sockets just aborted */
    free(h->buckets);
    free(h->per_user.b); /* empty: every socket released its slots */
    free(h->per_ip.b);
    free(h);
}

void ot_hub_set_events(ot_hub *h, ot_events *ev) { h->events = ev; }
ot_loop *ot_hub_loop(const ot_hub *h) { return h->env.loop; }
const ot_config *ot_hub_cfg(const ot_hub *h) { return h->env.cfg; }
ot_pg *ot_hub_pg(const ot_hub *h) { return h->env.pg; }
ot_events *ot_hub_events(const ot_hub *h) { return h->events; }
ot_ws_server *ot_hub_transport(ot_hub *h) { return h->ws; }

void ot_hub_set_source(ot_hub *h, const ot_hub_source *src) { h->src = src ? *src : (ot_hub_source){ 0 }; }
const ot_hub_source *ot_hub_get_source(const ot_hub *h) { return h->src.fetch ? &h->src : NULL; }

static void close_going_away(ot_ws_conn *c) { ot_ws_close(c, 1001, "going away"); }

void ot_hub_drain(ot_hub *h)
{
    if (!h)
        return;
    h->draining = true;
    each_conn(h, close_going_away);
}

int ot_hub_count(const ot_hub *h) { return h ? h->count : 0; }

static bool is_user(const ot_hub_client *c, const char *sub, size_t len)
{
    return c->ws.state == OT_WS_OPEN && c->sub_len == len && memcmp(c->sub, sub, len) == 0;
}

int ot_hub_close_user(ot_hub *h, ot_str user_id, uint16_t code, const char *reason)
{
    if (!h || user_id.len == 0 || user_id.len > OT_JWT_SUB_MAX)
        return 0;
    char sub[OT_JWT_SUB_MAX + 1];
    size_t len = user_id.len;
    memcpy(sub, user_id.base, len);
    sub[len] = 0;
    ot_hub_normalize_sub(sub, &len);
    int n = 0;
    uint32_t hv = hash_bytes(sub, len);
    ot_hub_client *c, *next;
    for (c = h->buckets[hv & (h->nbuckets - 1)]; c; c = next) {
        next = c->next; /* closing does not unlink, but stay safe if it ever does */
        if (c->hash == hv && is_user(c, sub, len)) {
            ot_ws_close(&c->ws, code, reason);
            n++;
        }
    }
    for (c = h->admins; c; c = next) {
        next = c->next;
        if (is_user(c, sub, len)) {
            ot_ws_close(&c->ws, code, reason);
            n++;
        }
    }
    return n;
}

bool ot_hub_accepting(const ot_hub *h)
{
    /* WebSockets leave the HTTP count at takeover; together they stay under
     * the worker's fd budget (the request being upgraded is still counted). */
    return !h->draining && (!h->env.room || h->env.room(h->env.data, h->count));
}

/* ---------------------------------------------------------------- per-user / per-IP caps */

static ot_hub_slot *ctab_find(ot_hub_ctab *t, const uint8_t *key, size_t klen, uint32_t hv)
{
    if (!t->nb)
        return NULL;
    for (ot_hub_slot *e = t->b[hv & (t->nb - 1)]; e; e = e->next)
        if (e->hash == hv && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static void ctab_grow(ot_hub_ctab *t)
{
    uint32_t n = t->nb ? t->nb * 2 : 64;
    ot_hub_slot **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i < t->nb; i++) {
        ot_hub_slot *e = t->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    }
    free(t->b);
    t->b = nb;
    t->nb = n;
}

/* The node for key with n + 1 <= cap, counted; NULL when over the cap or out of memory. */
static ot_hub_slot *ctab_take(ot_hub_ctab *t, const uint8_t *key, size_t klen, uint32_t cap)
{
    uint32_t hv = hash_bytes((const char *)key, klen);
    ot_hub_slot *e = ctab_find(t, key, klen, hv);
    if (e) {
        if (cap && e->n >= cap)
            return NULL;
        e->n++;
        return e;
    }
    if (t->nkeys >= t->nb * 2)
        ctab_grow(t);
    if (!t->nb || !(e = malloc(sizeof(*e) + klen)))
        return NULL;
    e->hash = hv;
    e->n = 1;
    e->klen = (uint8_t)klen;
    memcpy(e->key, key, klen);
    e->next = t->b[hv & (t->nb - 1)];
    t->b[hv & (t->nb - 1)] = e;
    t->nkeys++;
    return e;
}

static void ctab_put(ot_hub_ctab *t, ot_hub_slot *e)
{
    if (!e || --e->n > 0)
        return;
    for (ot_hub_slot **pp = &t->b[e->hash & (t->nb - 1)]; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    t->nkeys--;
    free(e);
}

int ot_hub_admit(ot_hub *h, const char *sub, size_t sublen, const uint8_t *ip, size_t iplen,
                 ot_hub_slot *slots[2])
{
    const ot_config *cfg = h->env.cfg;
    char key[OT_JWT_SUB_MAX + 1];
    size_t kl = sublen < OT_JWT_SUB_MAX ? sublen : OT_JWT_SUB_MAX;
    memcpy(key, sub, kl);
    key[kl] = 0;
    ot_hub_normalize_sub(key, &kl);
    slots[0] = slots[1] = NULL;
    /* Allocation failure refuses too: a socket we cannot count would escape the cap. */
    slots[0] = ctab_take(&h->per_user, (const uint8_t *)key, kl, cfg->ws_max_per_user);
    if (!slots[0])
        return OT_HUB_OVER_USER;
    if (iplen) {
        slots[1] = ctab_take(&h->per_ip, ip, iplen > 16 ? 16 : iplen, cfg->ws_max_per_ip);
        if (!slots[1]) {
            ctab_put(&h->per_user, slots[0]);
            slots[0] = NULL;
            return OT_HUB_OVER_IP;
        }
    }
    return 0;
}

void ot_hub_release(ot_hub *h, ot_hub_slot *slots[2])
{
    ctab_put(&h->per_user, slots[0]);
    ctab_put(&h->per_ip, slots[1]);
    slots[0] = slots[1] = NULL;
}

static void on_expiry(ot_loop *loop, ot_timer *t)
{
    ot_hub_client *c = t->data;
    ot_ws_close(&c->ws, 4401, "token expired");
}

void ot_hub_attach(ot_hub *h, ot_hub_client *c)
{
    size_t len = c->sub_len;
    ot_hub_normalize_sub(c->sub, &len);
    c->sub_len = (uint8_t)len;
    c->hash = hash_bytes(c->sub, c->sub_len);
    index_link(h, c);
    maybe_grow(h);
    h->count++;
    ot_metrics_set(OT_G_WS_CONNS_OPEN, h->count);
    ot_timer_init(&c->expiry, on_expiry, c);
    ot_hub_arm_expiry(c);
}

void ot_hub_detach(ot_hub *h, ot_hub_client *c)
{
    ot_timer_stop(h->env.loop, &c->expiry);
    index_unlink(h, c);
    ot_hub_slot *slots[2] = { c->user_slot, c->ip_slot };
    ot_hub_release(h, slots);
    c->user_slot = c->ip_slot = NULL;
    h->count--;
    ot_metrics_set(OT_G_WS_CONNS_OPEN, h->count);
    if (h->env.closed)
        h->env.closed(h->env.data); /* may end a drain */
}

void ot_hub_set_role(ot_hub_client *c, ot_role role)
{
    if (role == c->role)
        return;
    index_unlink(c->hub, c);
    c->role = role;
    index_link(c->hub, c);
    maybe_grow(c->hub);
}

void ot_hub_arm_expiry(ot_hub_client *c)
{
    int64_t now_ms = ot_wall_us() / 1000, at_ms = c->exp * 1000;
    ot_timer_start(c->hub->env.loop, &c->expiry, at_ms > now_ms ? (uint64_t)(at_ms - now_ms) : 0);
}

/* ---------------------------------------------------------------- fanout */

bool ot_hub_has_sub(const ot_hub_client *c, const uint8_t id[16])
{
    for (int i = 0; i < c->nsubs; i++)
        if (memcmp(c->subs[i], id, 16) == 0)
            return true;
    return false;
}

bool ot_hub_may_see(const ot_hub_client *c, const ot_event *ev, const uint8_t *oid)
{
    if (c->role != OT_ROLE_ADMIN &&
        (ev->user_id.len != c->sub_len || memcmp(ev->user_id.base, c->sub, c->sub_len) != 0))
        return false;
    return c->nsubs == 0 || (oid && ot_hub_has_sub(c, oid));
}

/* Customers get the event without staff-only fields (codec/event_view.h);
 * on failure (allocation) no frame, rather than the admin's view. */
ot_wsbuf *ot_hub_event_frame(const ot_event *ev, bool customer)
{
    ot_buf view = OT_BUF_INIT, data = OT_BUF_INIT;
    /* Both roles' copies carry the moves that role may make next (codec/lifecycle.h). */
    if ((customer && ot_event_view_customer(ev->json, &view) < 0) ||
        ot_lifecycle_splice(customer ? ot_buf_str(&view) : ev->json, ev->status,
                            customer ? OT_ROLE_CUSTOMER : OT_ROLE_ADMIN, &data) < 0) {
        ot_buf_free(&view);
        ot_buf_free(&data);
        return NULL;
    }
    ot_wsbuf *b = ot_wsbuf_frame(OT_WS_OP_TEXT, OT_STR("{\"event\":\"order.updated\",\"data\":"), ot_buf_str(&data),
                                 OT_STR("}"));
    ot_buf_free(&view);
    ot_buf_free(&data);
    if (b)
        b->seq = ev->seq;
    return b;
}

/* frames[0]: the admins' encoding, frames[1]: the customers'. */
static void push(ot_hub_client *c, const ot_event *ev, const uint8_t *oid, ot_wsbuf **frames)
{
    /* ev->seq <= floor: the client said it has it (a worker that is behind
     * the client's since delivers it only now). */
    if (c->ws.state != OT_WS_OPEN || ev->seq <= c->floor || !ot_hub_may_see(c, ev, oid))
        return;
    bool customer = c->role != OT_ROLE_ADMIN;
    ot_wsbuf **frame = &frames[customer];
    if (!*frame) {
        /* Encoded once, on the first socket that wants it. */
        *frame = ot_hub_event_frame(ev, customer);
        if (!*frame)
            return;
        (*frame)->seen_us = ev->seen_us ? ev->seen_us : ot_now_us();
    }
    if (!c->held) {
        ot_ws_send(&c->ws, *frame);
        return;
    }
    /* Held, they count against the socket's one cap like any queued byte
     * (over it: slow consumer; out of memory: aborted, a gap would break the
     * resume promise). */
    ot_ws_enqueue(&c->ws, *frame, c->held);
}

void ot_hub_event(void *hub, const ot_event *ev)
{
    ot_hub *h = hub;
    if (!h || h->count == 0)
        return;
    uint8_t oid[16];
    const uint8_t *op = ot_uuid_to_bytes(ev->order_id, oid) == 0 ? oid : NULL;
    ot_wsbuf *frames[2] = { NULL, NULL };
    ot_hub_client *c, *next;
    if (h->ncust) {
        uint32_t hv = hash_bytes(ev->user_id.base, ev->user_id.len);
        for (c = h->buckets[hv & (h->nbuckets - 1)]; c; c = next) {
            next = c->next;
            if (c->hash == hv)
                push(c, ev, op, frames);
        }
    }
    for (c = h->admins; c; c = next) {
        next = c->next;
        push(c, ev, op, frames);
    }
    ot_wsbuf_unref(frames[0]);
    ot_wsbuf_unref(frames[1]);
}

/* ---------------------------------------------------------------- replies */

void ot_hub_send_fmt(ot_hub_client *c, const char *fmt, ...)
{
    /* Only our own literals and formatted numbers / UUIDs go in: no escaping needed. */
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(buf))
        ot_ws_send_text(&c->ws, ot_str_make(buf, (size_t)n));
}

void ot_hub_send_error(ot_hub_client *c, const char *code, const char *msg, const uint8_t *oid)
{
    if (!oid) {
        ot_hub_send_fmt(c, "{\"event\":\"error\",\"data\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
        return;
    }
    char ids[37];
    ot_uuid_to_text(oid, ids);
    ot_hub_send_fmt(c, "{\"event\":\"error\",\"data\":{\"code\":\"%s\",\"message\":\"%s\",\"orderId\":\"%s\"}}", code, msg,
             ids);
}
