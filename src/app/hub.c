/* The hub: index of this worker's sockets, fanout, client actions and resume.
 * See hub.h for the index and the resume contract. */
#include "ot/app/hub.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ot/cmd/app.h"
#include "ot/api/auth.h"
#include "ot/codec/event_view.h"
#include "ot/codec/json.h"
#include "ot/codec/lifecycle.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"
#include "ot/core/list.h"
#include "ot/cmd/worker.h"
#include "ot/http/ws.h"

#define OT_HUB_SCRATCH 65536      /* one read buffer per worker, shared by every socket */
#define OT_HUB_BUCKETS_MIN 256
#define OT_HUB_WATERMARK_WAIT_MS 50
#define OT_HUB_WATERMARK_TRIES 200 /* ~10 s for the event stream to start */
#define OT_STR_(x) #x
#define OT_XSTR(x) OT_STR_(x)

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
    ot_worker *w;
    ot_hub_ctab per_user, per_ip;
    ot_ws_conn **buckets; /* customers by hash(sub) */
    uint32_t nbuckets;    /* power of two */
    ot_ws_conn *admins;
    int count, ncust;
    bool draining;
    ot_ws_conn **dirty; /* sockets with bytes to flush after this batch */
    uint32_t ndirty, dirty_cap;
    ot_ws_conn *zombies; /* dead, freed after this batch */
    ot_defer after;
    ot_wsbuf *ping;
    ot_hub_source src;
    uint8_t scratch[OT_HUB_SCRATCH];
};

struct ot_hub_subq {
    ot_hub_subq *next;
    ot_ws_conn *c;
    ot_pg_query *q;
    uint8_t id[16];
};

struct ot_hub_replay {
    ot_ws_conn *c;
    int64_t since, cursor, until;
    void *q; /* the source's read in flight */
    ot_wsq held; /* live events (seq >= until) waiting for the replay to end */
    uint32_t count, tries;
    bool paused; /* waiting for the socket's queue to drain */
    ot_timer retry;
};

const ot_pg_stmt ot_hub_stmts[] = {
    { "hub_order_owner", "SELECT user_id::text FROM orders WHERE id = $1::uuid", 1, true },
    { "hub_replay_all",
      "SELECT e.seq, ot_event_json(e) FROM order_events e WHERE e.seq > $1::bigint AND e.seq < $2::bigint "
      "ORDER BY e.seq LIMIT " OT_XSTR(OT_HUB_REPLAY_PAGE),
      2, true },
    /* Separate statement so the (user_id, seq) index serves customers. */
    { "hub_replay_user",
      "SELECT e.seq, ot_event_json(e) FROM order_events e WHERE e.user_id = $3::uuid AND e.seq > $1::bigint "
      "AND e.seq < $2::bigint ORDER BY e.seq LIMIT " OT_XSTR(OT_HUB_REPLAY_PAGE),
      3, true },
};
const size_t ot_hub_nstmts = OT_ARRAY_LEN(ot_hub_stmts);

/* ---------------------------------------------------------------- index */

static uint32_t hash_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static ot_ws_conn **chain_of(ot_hub *h, const ot_ws_conn *c)
{
    return c->role == OT_ROLE_ADMIN ? &h->admins : &h->buckets[c->hash & (h->nbuckets - 1)];
}

static void index_link(ot_hub *h, ot_ws_conn *c)
{
    ot_ws_conn **head = chain_of(h, c);
    OT_LIST_PUSH_FRONT(head, c);
    if (c->role != OT_ROLE_ADMIN)
        h->ncust++;
}

static void index_unlink(ot_hub *h, ot_ws_conn *c)
{
    ot_ws_conn **head = chain_of(h, c);
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
    ot_ws_conn **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return; /* longer chains, still correct */
    for (uint32_t i = 0; i < h->nbuckets; i++) {
        ot_ws_conn *c = h->buckets[i], *next;
        for (; c; c = next) {
            next = c->next;
            ot_ws_conn **head = &nb[c->hash & (n - 1)];
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
    ot_ws_conn *c, *next;
    for (c = h->admins; c; c = next) {
        next = c->next;
        fn(c);
    }
    for (uint32_t i = 0; i < h->nbuckets; i++) {
        for (c = h->buckets[i]; c; c = next) {
            next = c->next;
            fn(c);
        }
    }
}

/* Subs are compared as text against event userIds (lower-case uuid::text):
 * spell a UUID sub the same way. */
static void normalize_sub(char *sub, size_t *len)
{
    uint8_t id[16];
    if (ot_uuid_to_bytes(ot_str_make(sub, *len), id) == 0) {
        ot_uuid_to_text(id, sub);
        *len = 36;
    }
}

/* ---------------------------------------------------------------- lifecycle */

static void on_after(ot_loop *loop, ot_defer *d)
{
    ot_hub *h = d->data;
    /* Entries may be appended while flushing (a drained socket fetches its
     * next replay page): iterate by index. */
    for (uint32_t i = 0; i < h->ndirty; i++) {
        ot_ws_conn *c = h->dirty[i];
        c->dirty = false;
        if (c->state != OT_WS_DEAD)
            ot_ws_flush(c);
    }
    h->ndirty = 0;
    /* Only now: the dirty list above was the last thing naming them. */
    ot_ws_conn *c;
    while ((c = h->zombies)) {
        h->zombies = c->next;
        ot_ws_conn_free(c);
    }
}

ot_hub *ot_hub_new(ot_worker *w)
{
    ot_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->w = w;
    h->nbuckets = OT_HUB_BUCKETS_MIN;
    h->buckets = calloc(h->nbuckets, sizeof(*h->buckets));
    h->ping = ot_wsbuf_frame(OT_WS_OP_PING, OT_STR_NULL, OT_STR_NULL, OT_STR_NULL);
    if (!h->buckets || !h->ping) {
        free(h->buckets);
        ot_wsbuf_unref(h->ping);
        free(h);
        return NULL;
    }
    ot_defer_init(&h->after, on_after, h);
    ot_hub_set_source(h, NULL);
    return h;
}

void ot_hub_free(ot_hub *h)
{
    if (!h)
        return;
    each_conn(h, ot_ws_abort);
    ot_defer_cancel(h->w->loop, &h->after);
    h->ndirty = 0;
    ot_ws_conn *c;
    while ((c = h->zombies)) {
        h->zombies = c->next;
        ot_ws_conn_free(c);
    }
    free(h->dirty);
    free(h->buckets);
    free(h->per_user.b); /* empty: every socket released its slots */
    free(h->per_ip.b);
    ot_wsbuf_unref(h->ping);
    free(h);
}

static void close_going_away(ot_ws_conn *c) { ot_ws_close(c, 1001, "going away"); }

void ot_hub_drain(ot_hub *h)
{
    if (!h)
        return;
    h->draining = true;
    each_conn(h, close_going_away);
}

int ot_hub_count(const ot_hub *h) { return h ? h->count : 0; }

static bool is_user(const ot_ws_conn *c, const char *sub, size_t len)
{
    return c->state == OT_WS_OPEN && c->sub_len == len && memcmp(c->sub, sub, len) == 0;
}

int ot_hub_close_user(ot_hub *h, ot_str user_id, uint16_t code, const char *reason)
{
    if (!h || user_id.len == 0 || user_id.len > OT_JWT_SUB_MAX)
        return 0;
    char sub[OT_JWT_SUB_MAX + 1];
    size_t len = user_id.len;
    memcpy(sub, user_id.base, len);
    sub[len] = 0;
    normalize_sub(sub, &len);
    int n = 0;
    uint32_t hv = hash_bytes(sub, len);
    ot_ws_conn *c, *next;
    for (c = h->buckets[hv & (h->nbuckets - 1)]; c; c = next) {
        next = c->next; /* closing does not unlink, but stay safe if it ever does */
        if (c->hash == hv && is_user(c, sub, len)) {
            ot_ws_close(c, code, reason);
            n++;
        }
    }
    for (c = h->admins; c; c = next) {
        next = c->next;
        if (is_user(c, sub, len)) {
            ot_ws_close(c, code, reason);
            n++;
        }
    }
    return n;
}
ot_worker *ot_hub_worker(const ot_hub *h) { return h->w; }
ot_wsbuf *ot_hub_ping_frame(ot_hub *h) { return h->ping; }

uint8_t *ot_hub_scratch(ot_hub *h, size_t *cap)
{
    *cap = sizeof(h->scratch);
    return h->scratch;
}

bool ot_hub_accepting(const ot_hub *h)
{
    /* WebSockets leave the HTTP count at takeover; together they stay under
     * the worker's fd budget (the request being upgraded is still counted). */
    return !h->draining && !h->w->draining && h->count + h->w->nconns <= h->w->max_conns;
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
    const ot_config *cfg = h->w->cfg;
    char key[OT_JWT_SUB_MAX + 1];
    size_t kl = sublen < OT_JWT_SUB_MAX ? sublen : OT_JWT_SUB_MAX;
    memcpy(key, sub, kl);
    key[kl] = 0;
    normalize_sub(key, &kl);
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

void ot_hub_attach(ot_hub *h, ot_ws_conn *c)
{
    size_t len = c->sub_len;
    normalize_sub(c->sub, &len);
    c->sub_len = (uint8_t)len;
    c->hash = hash_bytes(c->sub, c->sub_len);
    index_link(h, c);
    maybe_grow(h);
    h->count++;
    ot_metrics_set(OT_G_WS_CONNS_OPEN, h->count);
}

static void replay_free(ot_hub_replay *rp);

void ot_hub_detach(ot_hub *h, ot_ws_conn *c)
{
    index_unlink(h, c);
    while (c->subq) {
        ot_hub_subq *q = c->subq;
        c->subq = q->next;
        ot_pg_cancel(q->q);
        free(q);
    }
    c->nsubq = 0;
    if (c->replay) {
        replay_free(c->replay);
        c->replay = NULL;
    }
    ot_hub_slot *slots[2] = { c->user_slot, c->ip_slot };
    ot_hub_release(h, slots);
    c->user_slot = c->ip_slot = NULL;
    h->count--;
    ot_metrics_set(OT_G_WS_CONNS_OPEN, h->count);
    c->next = h->zombies;
    h->zombies = c;
    ot_defer_queue(h->w->loop, &h->after);
    ot_worker_conn_closed(h->w); /* may end a drain */
}

void ot_hub_mark_dirty(ot_hub *h, ot_ws_conn *c)
{
    if (c->dirty)
        return;
    if (h->ndirty == h->dirty_cap) {
        uint32_t n = h->dirty_cap ? h->dirty_cap * 2 : 64;
        ot_ws_conn **d = realloc(h->dirty, n * sizeof(*d));
        if (!d) {
            ot_ws_flush(c); /* no list: flush now rather than lose the wake-up */
            return;
        }
        h->dirty = d;
        h->dirty_cap = n;
    }
    c->dirty = true;
    h->dirty[h->ndirty++] = c;
    ot_defer_queue(h->w->loop, &h->after);
}

/* ---------------------------------------------------------------- fanout */

static bool has_sub(const ot_ws_conn *c, const uint8_t id[16])
{
    for (int i = 0; i < c->nsubs; i++)
        if (memcmp(c->subs[i], id, 16) == 0)
            return true;
    return false;
}

/* Authorisation (CUSTOMER: own orders only) and subscription narrowing. */
static bool may_see(const ot_ws_conn *c, const ot_event *ev, const uint8_t *oid)
{
    if (c->role != OT_ROLE_ADMIN &&
        (ev->user_id.len != c->sub_len || memcmp(ev->user_id.base, c->sub, c->sub_len) != 0))
        return false;
    return c->nsubs == 0 || (oid && has_sub(c, oid));
}

/* Customers get the event without staff-only fields (codec/event_view.h);
 * on failure (allocation) no frame, rather than the admin's view. */
static ot_wsbuf *event_frame(const ot_event *ev, bool customer)
{
    ot_buf view = OT_BUF_INIT, data = OT_BUF_INIT;
    /* Both roles' copies carry the moves that role may make next (codec/lifecycle.h). */
    if ((customer && ot_event_view_customer(ev->json, &view) < 0) ||
        ot_lifecycle_annotate(customer ? ot_buf_str(&view) : ev->json, customer ? OT_ROLE_CUSTOMER : OT_ROLE_ADMIN,
                              &data) < 0) {
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
static void push(ot_ws_conn *c, const ot_event *ev, const uint8_t *oid, ot_wsbuf **frames)
{
    /* ev->seq <= floor: the client said it has it (a worker that is behind
     * the client's since delivers it only now). */
    if (c->state != OT_WS_OPEN || ev->seq <= c->floor || !may_see(c, ev, oid))
        return;
    bool customer = c->role != OT_ROLE_ADMIN;
    ot_wsbuf **frame = &frames[customer];
    if (!*frame) {
        /* Encoded once, on the first socket that wants it. */
        *frame = event_frame(ev, customer);
        if (!*frame)
            return;
        (*frame)->seen_us = ev->seen_us ? ev->seen_us : ot_now_us();
    }
    ot_hub_replay *rp = c->replay;
    if (!rp) {
        ot_ws_send(c, *frame);
        return;
    }
    /* Held, they count against the socket's one cap like any queued byte
     * (over it: slow consumer; out of memory: aborted, a gap would break the
     * resume promise). */
    ot_ws_enqueue(c, *frame, &rp->held);
}

void ot_hub_event(void *hub, const ot_event *ev)
{
    ot_hub *h = hub;
    if (!h || h->count == 0)
        return;
    uint8_t oid[16];
    const uint8_t *op = ot_uuid_to_bytes(ev->order_id, oid) == 0 ? oid : NULL;
    ot_wsbuf *frames[2] = { NULL, NULL };
    ot_ws_conn *c, *next;
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

static void send_fmt(ot_ws_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_fmt(ot_ws_conn *c, const char *fmt, ...)
{
    /* Only our own literals and formatted numbers / UUIDs go in: no escaping needed. */
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof(buf))
        ot_ws_send_text(c, ot_str_make(buf, (size_t)n));
}

static void send_error(ot_ws_conn *c, const char *code, const char *msg, const uint8_t *oid)
{
    if (!oid) {
        send_fmt(c, "{\"event\":\"error\",\"data\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
        return;
    }
    char ids[37];
    ot_uuid_to_text(oid, ids);
    send_fmt(c, "{\"event\":\"error\",\"data\":{\"code\":\"%s\",\"message\":\"%s\",\"orderId\":\"%s\"}}", code, msg,
             ids);
}

static void send_order_ack(ot_ws_conn *c, const char *event, const uint8_t oid[16])
{
    char ids[37];
    ot_uuid_to_text(oid, ids);
    send_fmt(c, "{\"event\":\"%s\",\"data\":{\"orderId\":\"%s\"}}", event, ids);
}

/* ---------------------------------------------------------------- subscribe / unsubscribe */

static int add_sub(ot_ws_conn *c, const uint8_t id[16])
{
    if (has_sub(c, id))
        return 0;
    if (c->nsubs >= OT_HUB_MAX_SUBS)
        return OT_ERR;
    if (c->nsubs == c->subs_cap) {
        int n = c->subs_cap ? c->subs_cap * 2 : 4;
        if (n > OT_HUB_MAX_SUBS)
            n = OT_HUB_MAX_SUBS;
        void *p = realloc(c->subs, (size_t)n * 16);
        if (!p)
            return OT_ERR;
        c->subs = p;
        c->subs_cap = (uint8_t)n;
    }
    memcpy(c->subs[c->nsubs++], id, 16);
    return 0;
}

static void del_sub(ot_ws_conn *c, const uint8_t id[16])
{
    for (int i = 0; i < c->nsubs; i++) {
        if (memcmp(c->subs[i], id, 16) == 0) {
            memcpy(c->subs[i], c->subs[c->nsubs - 1], 16);
            c->nsubs--;
            break;
        }
    }
    if (c->nsubs == 0) {
        free(c->subs);
        c->subs = NULL;
        c->subs_cap = 0;
    }
}

static void on_owner(void *data, int status, PGresult *res)
{
    ot_hub_subq *q = data, **pp;
    ot_ws_conn *c = q->c;
    for (pp = &c->subq; *pp && *pp != q; pp = &(*pp)->next) {
    }
    if (*pp)
        *pp = q->next;
    c->nsubq--;
    if (status != OT_PG_OK) {
        send_error(c, "unavailable", "could not check the order, try again", q->id);
    } else if (PQntuples(res) != 1 ||
               (c->role != OT_ROLE_ADMIN && ((size_t)PQgetlength(res, 0, 0) != c->sub_len ||
                                             memcmp(PQgetvalue(res, 0, 0), c->sub, c->sub_len) != 0))) {
        /* A foreign order looks exactly like a missing one: no existence oracle. */
        send_error(c, "not_found", "no such order", q->id);
    } else if (add_sub(c, q->id) < 0) {
        send_error(c, "too_many_subscriptions", "at most " OT_XSTR(OT_HUB_MAX_SUBS) " subscriptions", q->id);
    } else {
        send_order_ack(c, "subscribed", q->id);
    }
    free(q);
}

static void subscribe(ot_ws_conn *c, const uint8_t id[16])
{
    ot_worker *w = ot_hub_worker(c->hub);
    if (has_sub(c, id)) {
        send_order_ack(c, "subscribed", id);
        return;
    }
    if (c->nsubs + c->nsubq >= OT_HUB_MAX_SUBS) {
        send_error(c, "too_many_subscriptions", "at most " OT_XSTR(OT_HUB_MAX_SUBS) " subscriptions", id);
        return;
    }
    if (c->nsubq >= OT_HUB_MAX_SUBQ) {
        send_error(c, "too_many_requests", "wait for the pending subscriptions to be answered", id);
        return;
    }
    if (!w->pg) {
        send_error(c, "unavailable", "no database", id);
        return;
    }
    ot_hub_subq *q = calloc(1, sizeof(*q));
    if (!q) {
        send_error(c, "internal", "out of memory", id);
        return;
    }
    q->c = c;
    memcpy(q->id, id, 16);
    char ids[37];
    ot_uuid_to_text(id, ids);
    const char *vals[1] = { ids };
    q->q = ot_pg_exec(w->pg, "hub_order_owner", 1, vals, NULL, on_owner, q);
    if (!q->q) {
        free(q);
        send_error(c, "internal", "out of memory", id);
        return;
    }
    q->next = c->subq;
    c->subq = q;
    c->nsubq++;
}

/* ---------------------------------------------------------------- auth */

static void reauth(ot_ws_conn *c, const char *tok, size_t len)
{
    ot_jwt_claims cl;
    int rc = ot_auth_token(ot_hub_worker(c->hub)->cfg, ot_str_make(tok, len), &cl);
    /* EUNVERIFIED: signed by us, its user not cached here; the owner check
     * comes first so another user's token is still named as such. */
    if (rc != OT_JWT_OK && rc != OT_JWT_EUNVERIFIED) {
        send_error(c, rc == OT_JWT_EEXPIRED ? "token_expired" : "invalid_token", ot_jwt_strerror(rc), NULL);
        return;
    }
    size_t sl = strlen(cl.sub);
    normalize_sub(cl.sub, &sl);
    if (sl != c->sub_len || memcmp(cl.sub, c->sub, sl) != 0) {
        send_error(c, "forbidden", "the token belongs to another user", NULL);
        return;
    }
    if (rc != OT_JWT_OK) {
        send_error(c, "invalid_token", ot_jwt_strerror(rc), NULL);
        return;
    }
    if (cl.role != c->role) {
        index_unlink(c->hub, c);
        c->role = cl.role;
        index_link(c->hub, c);
        maybe_grow(c->hub);
    }
    c->exp = cl.exp;
    ot_ws_arm_expiry(c);
    send_fmt(c, "{\"event\":\"authenticated\",\"data\":{\"role\":\"%s\",\"exp\":%lld}}", ot_role_name(c->role),
             (long long)c->exp);
}

/* ---------------------------------------------------------------- resume */

size_t ot_hub_held_bytes(const ot_ws_conn *c) { return c->replay ? c->replay->held.bytes : 0; }

static void replay_free(ot_hub_replay *rp)
{
    ot_hub *h = rp->c->hub;
    if (rp->q)
        h->src.cancel(h->src.ctx, rp->q);
    ot_timer_stop(ot_hub_worker(h)->loop, &rp->retry);
    ot_wsq_clear(&rp->held);
    free(rp);
}

/* Ends the replay: the ack (or error), then the held live events. */
static void replay_finish(ot_hub_replay *rp, const char *code, const char *msg)
{
    ot_ws_conn *c = rp->c;
    if (code)
        send_fmt(c, "{\"event\":\"error\",\"data\":{\"code\":\"%s\",\"message\":\"%s\",\"lastSeq\":%lld}}", code, msg,
                 (long long)rp->cursor);
    else
        send_fmt(c, "{\"event\":\"resumed\",\"data\":{\"since\":%lld,\"lastSeq\":%lld,\"count\":%u}}",
                 (long long)rp->since, (long long)(rp->since > rp->until - 1 ? rp->since : rp->until - 1),
                 rp->count);
    c->replay = NULL;
    ot_wsbuf *b;
    /* Already bounded by the cap while held; from now on live sends check it. */
    while ((b = ot_wsq_pop(&rp->held))) {
        ot_ws_send(c, b);
        ot_wsbuf_unref(b);
    }
    replay_free(rp);
}

static void replay_fetch(ot_hub_replay *rp);

static bool replay_visible(const ot_ws_conn *c, const ot_event *ev)
{
    uint8_t oid[16];
    return may_see(c, ev, ot_uuid_to_bytes(ev->order_id, oid) == 0 ? oid : NULL);
}

void ot_hub_replay_rows(ot_hub_replay *rp, bool ok, const ot_hub_row *rows, int nrows)
{
    ot_ws_conn *c = rp->c;
    rp->q = NULL;
    if (!ok) {
        replay_finish(rp, "resume_failed", "could not read missed events; reload state over HTTP");
        return;
    }
    size_t pace = OT_WS_LOW_WATER(ot_hub_worker(c->hub)->cfg->ws_max_queue);
    for (int i = 0; i < nrows && c->state == OT_WS_OPEN; i++) {
        if (ot_ws_unsent(c) > pace) {
            /* The reader is behind: stop mid-page and read on from the last
             * row queued once it drained, so a replay never fills the cap. */
            rp->paused = true;
            return;
        }
        rp->cursor = rows[i].seq;
        ot_event ev;
        if (ot_event_parse(rows[i].json, &ev) < 0 || !replay_visible(c, &ev))
            continue;
        ot_wsbuf *f = event_frame(&ev, c->role != OT_ROLE_ADMIN);
        if (!f)
            ot_ws_abort(c);
        if (!f || ot_ws_send(c, f) < 0) {
            ot_wsbuf_unref(f);
            return; /* the socket is gone or going: detach frees the replay */
        }
        ot_wsbuf_unref(f);
        if (++rp->count >= OT_HUB_REPLAY_MAX) {
            replay_finish(rp, "resume_truncated",
                          "more than " OT_XSTR(OT_HUB_REPLAY_MAX) " missed events: resume again from lastSeq or "
                          "reload state over HTTP");
            return;
        }
    }
    if (c->state != OT_WS_OPEN)
        return;
    if (nrows >= OT_HUB_REPLAY_PAGE)
        replay_fetch(rp);
    else
        replay_finish(rp, NULL, NULL);
}

static void replay_fetch(ot_hub_replay *rp)
{
    ot_ws_conn *c = rp->c;
    ot_hub *h = c->hub;
    /* Pace the replay by the reader: pages are read only while the output is
     * under the low-water mark (and ot_hub_replay_rows stops mid-page above it). */
    if (ot_ws_unsent(c) > OT_WS_LOW_WATER(h->w->cfg->ws_max_queue)) {
        rp->paused = true;
        return;
    }
    rp->paused = false;
    rp->q = h->src.fetch(h->src.ctx, rp->cursor, rp->until, c->role == OT_ROLE_ADMIN ? NULL : c->sub, rp);
    if (!rp->q)
        replay_finish(rp, "resume_failed", "out of memory");
}

/* ---- the PostgreSQL source (order_events) ---- */

static bool pg_available(void *ctx)
{
    ot_worker *w = ((ot_hub *)ctx)->w;
    return w->pg && w->app && w->app->events;
}

static int64_t pg_watermark(void *ctx) { return ot_events_watermark(((ot_hub *)ctx)->w->app->events); }

static void pg_page(void *data, int status, PGresult *res)
{
    static ot_hub_row rows[OT_HUB_REPLAY_PAGE]; /* one loop per process: one page at a time */
    int n = status == OT_PG_OK ? PQntuples(res) : 0;
    if (n > OT_HUB_REPLAY_PAGE)
        n = OT_HUB_REPLAY_PAGE;
    for (int i = 0; i < n; i++) {
        rows[i].seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        rows[i].json = ot_str_make(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
    }
    ot_hub_replay_rows(data, status == OT_PG_OK, rows, n);
}

static void *pg_fetch(void *ctx, int64_t since, int64_t until, const char *user, ot_hub_replay *rp)
{
    char a[24], b[24];
    snprintf(a, sizeof(a), "%lld", (long long)since);
    snprintf(b, sizeof(b), "%lld", (long long)until);
    const char *vals[3] = { a, b, user };
    return ot_pg_exec(((ot_hub *)ctx)->w->pg, user ? "hub_replay_user" : "hub_replay_all", user ? 3 : 2, vals, NULL,
                      pg_page, rp);
}

static void pg_cancel(void *ctx, void *q) { ot_pg_cancel(q); }

void ot_hub_set_source(ot_hub *h, const ot_hub_source *src)
{
    if (src) {
        h->src = *src;
        return;
    }
    h->src = (ot_hub_source){ .ctx = h, .available = pg_available, .watermark = pg_watermark, .fetch = pg_fetch,
                              .cancel = pg_cancel };
}

static void replay_begin(ot_hub_replay *rp)
{
    ot_ws_conn *c = rp->c;
    ot_worker *w = ot_hub_worker(c->hub);
    int64_t wm = c->hub->src.watermark(c->hub->src.ctx);
    if (wm <= 0) {
        /* The event stream has not found its start yet: nothing is live, so
         * nothing is lost by waiting for it. */
        if (++rp->tries > OT_HUB_WATERMARK_TRIES) {
            replay_finish(rp, "resume_failed", "the event stream is not ready; try again");
            return;
        }
        ot_timer_start(w->loop, &rp->retry, OT_HUB_WATERMARK_WAIT_MS);
        return;
    }
    rp->until = wm;
    /* Live events held while waiting that the replay will also read. */
    uint32_t n = rp->held.len;
    for (uint32_t i = 0; i < n; i++) {
        ot_wsbuf *b = ot_wsq_pop(&rp->held);
        if (b->seq >= wm && ot_wsq_push(&rp->held, b) == 0)
            continue;
        ot_wsbuf_unref(b);
    }
    /* since >= wm - 1: nothing to read. If since is ahead of this worker
     * (it is behind another one the client was on), the events in between
     * still come through the reader, and push() skips them by c->floor. */
    if (rp->since >= wm - 1)
        replay_finish(rp, NULL, NULL);
    else
        replay_fetch(rp);
}

static void on_retry(ot_loop *loop, ot_timer *t) { replay_begin(t->data); }

void ot_hub_resume(ot_ws_conn *c, int64_t since)
{
    if (c->state != OT_WS_OPEN)
        return;
    if (c->replay) {
        send_error(c, "resume_in_progress", "a resume is already running", NULL);
        return;
    }
    /* Whatever happens to the replay, the client has everything <= since. */
    c->floor = since;
    if (!c->hub->src.available(c->hub->src.ctx)) {
        send_error(c, "unavailable", "resume needs the database", NULL);
        return;
    }
    ot_hub_replay *rp = calloc(1, sizeof(*rp));
    if (!rp) {
        send_error(c, "internal", "out of memory", NULL);
        return;
    }
    rp->c = c;
    rp->since = rp->cursor = since;
    ot_timer_init(&rp->retry, on_retry, rp);
    c->replay = rp;
    replay_begin(rp);
}

void ot_hub_on_drained(ot_ws_conn *c)
{
    ot_hub_replay *rp = c->replay;
    if (rp && rp->paused && !rp->q && c->state == OT_WS_OPEN && ot_ws_unsent(c) <= OT_WS_LOW_WATER(ot_hub_worker(c->hub)->cfg->ws_max_queue))
        replay_fetch(rp);
}

/* ---------------------------------------------------------------- client messages */

bool ot_hub_bucket_take(double *tokens, uint64_t *last_ms, uint64_t now_ms, double rate, double burst)
{
    if (!(rate > 0))
        return true;
    if (!(burst >= 1))
        burst = 1;
    if (*last_ms == 0) {
        *tokens = burst;
        *last_ms = now_ms ? now_ms : 1;
    } else if (now_ms > *last_ms) {
        *tokens += (double)(now_ms - *last_ms) * rate / 1000.0;
        if (*tokens > burst)
            *tokens = burst;
        *last_ms = now_ms;
    }
    if (*tokens < 1.0)
        return false;
    *tokens -= 1.0;
    return true;
}

/* Actions that cost a query or a signature check go through the socket's
 * bucket; refused ones get an error, and a client that keeps going while
 * refused (burst refusals in a row) is closed 1008. */
static bool action_allowed(ot_ws_conn *c)
{
    ot_worker *w = ot_hub_worker(c->hub);
    const ot_config *cfg = w->cfg;
    if (ot_hub_bucket_take(&c->tokens, &c->tokens_ms, ot_loop_now_ms(w->loop), cfg->ws_rate, cfg->ws_rate_burst)) {
        c->refused = 0;
        return true;
    }
    if (c->refused < UINT16_MAX)
        c->refused++;
    if (c->refused >= (cfg->ws_rate_burst >= 1 ? cfg->ws_rate_burst : 1)) {
        ot_ws_close(c, 1008, "rate limit exceeded");
        return false;
    }
    send_error(c, "rate_limited", "too many actions on this socket; slow down", NULL);
    return false;
}

void ot_hub_on_text(ot_ws_conn *c, const uint8_t *p, size_t n)
{
    char tok[OT_JWT_MAX_LEN];
    ot_hub_msg m;
    ot_hub_msg_kind kind = ot_hub_parse_msg(ot_str_make((const char *)p, n), &m, tok, sizeof(tok));
    if (kind != OT_HUB_MSG_INVALID && kind != OT_HUB_MSG_PING && !action_allowed(c))
        return;
    switch (kind) {
    case OT_HUB_MSG_SUBSCRIBE:
        subscribe(c, m.order_id);
        break;
    case OT_HUB_MSG_UNSUBSCRIBE:
        del_sub(c, m.order_id);
        send_order_ack(c, "unsubscribed", m.order_id);
        break;
    case OT_HUB_MSG_AUTH:
        reauth(c, tok, m.token_len);
        break;
    case OT_HUB_MSG_RESUME:
        ot_hub_resume(c, m.since);
        break;
    case OT_HUB_MSG_PING:
        ot_ws_send_text(c, OT_STR("{\"event\":\"pong\",\"data\":{}}"));
        break;
    default:
        send_error(c, m.error, m.message, NULL);
        break;
    }
}

