/* The per-worker user cache behind token revocation (see include/ot/app/principals.h). */
#include "ot/app/principals.h"

#include <stdio.h>
#include <stdlib.h>

#include "ot/codec/uuid.h"
#include "ot/core/buf.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"

const ot_pg_stmt ot_principals_stmts[] = {
    { "auth_principal", "SELECT token_epoch, role::text, active FROM users WHERE id = $1::uuid", 1, true },
    { "auth_principals", "SELECT id::text, token_epoch, role::text, active FROM users WHERE id = ANY($1::uuid[])", 1,
      true },
};
const size_t ot_principals_nstmts = OT_ARRAY_LEN(ot_principals_stmts);

enum { E_READY, E_LOADING };

struct ot_principals_entry {
    uint8_t id[16];
    uint8_t state;
    bool have;      /* epoch/role/active/exists hold a loaded answer (maybe no longer valid) */
    bool exists, active;
    bool stale;     /* a notification arrived while loading: the answer may predate it */
    ot_role role;
    int64_t epoch;
    uint64_t gen;   /* p->gen at load; older = loaded before a LISTEN gap */
    uint64_t loaded_ms;
    ot_principals_entry *hnext;        /* hash chain */
    ot_principals_entry *lprev, *lnext; /* LRU list, most recent first */
    ot_principals_wait *waiters;
    ot_pg_query *q;
    ot_principals *p;
};

struct ot_principals {
    ot_loop *loop;
    ot_pg *pg;
    ot_pg_listener *listener;
    ot_principals_changed_fn *changed;
    void *data;
    ot_principals_entry **buckets;
    size_t nbuckets, count, capacity;
    ot_principals_entry *lru_head, *lru_tail;
    uint64_t gen;
    bool listening, was_up;
    ot_pg_query *recheck; /* the re-read after a LISTEN gap */
    ot_defer fire;        /* delivers callbacks of loads that failed at once */
    ot_principals_wait *ready; /* answered waiters whose callbacks are due */
    uint64_t loads, notifications, evictions;
};

/* ---------------------------------------------------------------- table */

static size_t bucket_of(const ot_principals *p, const uint8_t id[16])
{
    /* UUIDs are random (v4) or time-ordered in their first bytes (v7): mix
     * the tail, which is random in both. */
    uint64_t h;
    memcpy(&h, id + 8, 8);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (size_t)h & (p->nbuckets - 1);
}

static ot_principals_entry *find(ot_principals *p, const uint8_t id[16])
{
    for (ot_principals_entry *e = p->buckets[bucket_of(p, id)]; e; e = e->hnext)
        if (memcmp(e->id, id, 16) == 0)
            return e;
    return NULL;
}

static void lru_unlink(ot_principals *p, ot_principals_entry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        p->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        p->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_front(ot_principals *p, ot_principals_entry *e)
{
    if (p->lru_head == e)
        return;
    if (e->lprev || e->lnext || p->lru_tail == e)
        lru_unlink(p, e);
    e->lnext = p->lru_head;
    if (p->lru_head)
        p->lru_head->lprev = e;
    p->lru_head = e;
    if (!p->lru_tail)
        p->lru_tail = e;
}

static void entry_remove(ot_principals *p, ot_principals_entry *e)
{
    ot_principals_entry **pp = &p->buckets[bucket_of(p, e->id)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(p, e);
    p->count--;
    free(e);
}

static ot_principals_entry *entry_new(ot_principals *p, const uint8_t id[16])
{
    if (p->count >= p->capacity) {
        /* Least recently used first; a load in flight has waiters to answer. */
        ot_principals_entry *v = p->lru_tail;
        while (v && v->state == E_LOADING)
            v = v->lprev;
        if (!v)
            return NULL;
        entry_remove(p, v);
        p->evictions++;
    }
    ot_principals_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    memcpy(e->id, id, 16);
    e->p = p;
    size_t b = bucket_of(p, id);
    e->hnext = p->buckets[b];
    p->buckets[b] = e;
    lru_front(p, e);
    p->count++;
    return e;
}

static bool entry_valid(const ot_principals *p, const ot_principals_entry *e)
{
    if (e->state != E_READY || !e->have)
        return false;
    if (p->listening && e->gen == p->gen)
        return true;
    /* Blind (no LISTEN, or loaded before the gap): trust a fresh read only. */
    return ot_loop_now_ms(p->loop) - e->loaded_ms < OT_PRINCIPALS_BLIND_TTL_MS;
}

/* ---------------------------------------------------------------- loads */

static void query_start(ot_principals_entry *e);
static void park(ot_principals *p, ot_principals_wait *w);

/* Waiters are answered from one list in p, popped one at a time: a callback
 * (a re-run handler) may cancel another waiter or park new ones safely. */
static void take_waiters(ot_principals *p, ot_principals_entry *e, int status)
{
    ot_principals_wait *w = e->waiters;
    e->waiters = NULL;
    while (w) {
        ot_principals_wait *n = w->next;
        w->status = status;
        w->e = NULL;
        w->prev = NULL;
        w->parked = true;
        w->next = p->ready;
        p->ready = w;
        w = n;
    }
}

static void deliver(ot_principals *p)
{
    while (p->ready) {
        ot_principals_wait *w = p->ready;
        p->ready = w->next;
        w->next = NULL;
        w->parked = false;
        w->cb(w->data, w->status);
    }
}

static bool same_state(const ot_principals_entry *e, bool exists, int64_t epoch, ot_role role, bool active)
{
    return e->exists == exists && (!exists || (e->epoch == epoch && e->role == role && e->active == active));
}

static void on_loaded(void *data, int status, PGresult *res)
{
    ot_principals_entry *e = data;
    ot_principals *p = e->p;
    e->q = NULL;
    if (status == OT_PG_OK && e->stale) {
        e->stale = false;
        query_start(e);
        return;
    }
    e->state = E_READY;
    if (status != OT_PG_OK) {
        take_waiters(p, e, status);
        if (!e->have)
            entry_remove(p, e);
        deliver(p);
        return;
    }
    bool exists = PQntuples(res) == 1;
    int64_t epoch = exists ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    ot_role role = OT_ROLE_NONE;
    if (exists)
        ot_role_parse(ot_str_c(PQgetvalue(res, 0, 1)), &role);
    bool active = exists && PQgetvalue(res, 0, 2)[0] == 't';
    /* Learning of a change here (a missed notification) must close the
     * user's sockets as a notification would have. */
    bool changed = e->have && !same_state(e, exists, epoch, role, active);
    e->have = true;
    e->exists = exists;
    e->epoch = epoch;
    e->role = role;
    e->active = active;
    e->gen = p->gen;
    e->loaded_ms = ot_loop_now_ms(p->loop);
    if (changed) {
        char ids[37];
        ot_uuid_to_text(e->id, ids);
        p->changed(p->data, ids);
    }
    take_waiters(p, e, OT_PG_OK);
    deliver(p);
}

static void query_start(ot_principals_entry *e)
{
    ot_principals *p = e->p;
    char ids[37];
    ot_uuid_to_text(e->id, ids);
    const char *vals[1] = { ids };
    e->state = E_LOADING;
    e->stale = false;
    p->loads++;
    ot_metrics_inc(OT_C_AUTH_USER_LOADS, 1);
    e->q = ot_pg_exec(p->pg, "auth_principal", 1, vals, NULL, on_loaded, e);
    if (!e->q) {
        /* Never called back: fail the waiters after this batch, not inside
         * the caller's ot_principals_load. */
        e->state = E_READY;
        take_waiters(p, e, OT_PG_EFULL);
        ot_defer_queue(p->loop, &p->fire);
        if (!e->have)
            entry_remove(p, e);
    }
}

static void on_fire(ot_loop *loop, ot_defer *d) { deliver(d->data); }

static void park(ot_principals *p, ot_principals_wait *w)
{
    w->status = OT_PG_EFULL;
    w->e = NULL;
    w->prev = NULL;
    w->parked = true;
    w->next = p->ready;
    p->ready = w;
    ot_defer_queue(p->loop, &p->fire);
}

static void wait_link(ot_principals_entry *e, ot_principals_wait *w)
{
    w->e = e;
    w->prev = NULL;
    w->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = w;
    e->waiters = w;
}

int ot_principals_load(ot_principals *p, const uint8_t id[16], ot_principals_wait *w, ot_principals_loaded_fn *cb,
                       void *data)
{
    w->cb = cb;
    w->data = data;
    w->p = p;
    w->e = NULL;
    w->parked = false;
    w->prev = w->next = NULL;
    ot_principals_entry *e = find(p, id);
    if (!e)
        e = entry_new(p, id);
    if (!e) {
        /* Every entry has a load in flight: refuse, the caller answers 503. */
        park(p, w);
        return 0;
    }
    wait_link(e, w);
    if (e->state != E_LOADING)
        query_start(e);
    return 0;
}

void ot_principals_prefetch(ot_principals *p, const uint8_t id[16])
{
    ot_principals_entry *e = find(p, id);
    if (!e)
        e = entry_new(p, id);
    if (e && e->state != E_LOADING)
        query_start(e);
}

void ot_principals_cancel(ot_principals_wait *w)
{
    ot_principals_entry *e = w->e;
    if (e) {
        if (w->prev)
            w->prev->next = w->next;
        else
            e->waiters = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->e = NULL;
        w->prev = w->next = NULL;
        return;
    }
    if (w->parked) {
        /* Waiting for the deferred failure callback: unpark. */
        for (ot_principals_wait **pp = &w->p->ready; *pp; pp = &(*pp)->next) {
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        }
        w->parked = false;
        w->next = NULL;
    }
}

int ot_principals_check(ot_principals *p, const uint8_t id[16], int64_t epoch, ot_role role)
{
    ot_principals_entry *e = find(p, id);
    if (!e || !entry_valid(p, e))
        return OT_PRINCIPAL_UNKNOWN;
    lru_front(p, e);
    if (!e->exists || !e->active || e->epoch != epoch || e->role != role)
        return OT_PRINCIPAL_REVOKED;
    return OT_PRINCIPAL_OK;
}

/* ---------------------------------------------------------------- notifications */

/* A notification says the user may have changed, not how: the INSERT that
 * created a user is announced too, and may arrive after its first socket was
 * authorised from a read that already saw the row. So a cached user is
 * re-read and its sockets closed only if the answer differs (on_loaded
 * compares); one we cannot compare (not cached, or no answer yet) has its
 * sockets closed, as before. Returns whether to close them now. */
static bool recheck(ot_principals *p, const uint8_t id[16])
{
    ot_principals_entry *e = find(p, id);
    if (!e)
        return true;
    if (e->state == E_LOADING) {
        e->stale = true; /* its answer may have been read before this change */
        return !e->have;
    }
    if (!e->have) {
        entry_remove(p, e);
        return true;
    }
    query_start(e); /* untrusted until it answers: requests wait for it */
    if (e->state == E_LOADING)
        return false;
    entry_remove(p, e); /* the pool refused the query: nothing left to compare with */
    return true;
}

static void on_notify(void *data, const char *channel, const char *payload, size_t len)
{
    ot_principals *p = data;
    uint8_t id[16];
    if (ot_uuid_to_bytes(ot_str_make(payload, len), id) < 0) {
        ot_logf(OT_LOG_WARN, "auth: ignoring malformed %s notification", OT_PRINCIPALS_CHANNEL);
        return;
    }
    p->notifications++;
    if (!recheck(p, id))
        return;
    char ids[37];
    ot_uuid_to_text(id, ids);
    p->changed(p->data, ids);
}

/* After a LISTEN gap: one query for every user we hold an answer for, to
 * close the sockets of those changed meanwhile. Entries themselves are
 * already invalid (the generation moved), so requests reload them. */
static void on_recheck(void *data, int status, PGresult *res)
{
    ot_principals *p = data;
    p->recheck = NULL;
    if (status != OT_PG_OK) {
        ot_logf(OT_LOG_WARN, "auth: re-reading cached users after a LISTEN gap failed; their sockets stay open");
        return;
    }
    /* Mark what the database still knows; everything else was deleted. */
    int n = PQntuples(res);
    for (ot_principals_entry *e = p->lru_head, *next; e; e = next) {
        next = e->lnext;
        if (!e->have || e->state != E_READY || e->gen == p->gen)
            continue; /* reloaded since: its own load compared */
        bool exists = false, active = false;
        int64_t epoch = 0;
        ot_role role = OT_ROLE_NONE;
        char ids[37];
        ot_uuid_to_text(e->id, ids);
        for (int i = 0; i < n; i++) {
            if (strcmp(PQgetvalue(res, i, 0), ids) == 0) {
                exists = true;
                epoch = strtoll(PQgetvalue(res, i, 1), NULL, 10);
                ot_role_parse(ot_str_c(PQgetvalue(res, i, 2)), &role);
                active = PQgetvalue(res, i, 3)[0] == 't';
                break;
            }
        }
        if (!same_state(e, exists, epoch, role, active)) {
            entry_remove(p, e);
            p->changed(p->data, ids);
        }
    }
}

static void recheck_start(ot_principals *p)
{
    ot_buf arr = OT_BUF_INIT;
    ot_buf_append(&arr, "{", 1);
    size_t k = 0;
    for (ot_principals_entry *e = p->lru_head; e; e = e->lnext) {
        if (!e->have || !e->exists)
            continue;
        char ids[37];
        ot_uuid_to_text(e->id, ids);
        if (k++)
            ot_buf_append(&arr, ",", 1);
        ot_buf_append(&arr, ids, 36);
    }
    ot_buf_append(&arr, "}", 2); /* with the NUL */
    if (k > 0 && !p->recheck) {
        const char *vals[1] = { arr.data };
        p->recheck = ot_pg_exec(p->pg, "auth_principals", 1, vals, NULL, on_recheck, p);
    }
    ot_buf_free(&arr);
}

static void on_listen_state(void *data, bool up)
{
    ot_principals *p = data;
    p->listening = up;
    if (!up)
        return;
    /* Notifications sent while we were not listening are lost: nothing
     * loaded before this moment is trusted beyond the blind TTL. */
    p->gen++;
    for (ot_principals_entry *e = p->lru_head; e; e = e->lnext)
        if (e->state == E_LOADING)
            e->stale = true;
    if (p->was_up)
        recheck_start(p);
    p->was_up = true;
}

/* ---------------------------------------------------------------- life cycle */

ot_principals *ot_principals_new(ot_loop *loop, ot_pg *pg, const ot_pg_config *listen_cfg, size_t capacity,
                                 ot_principals_changed_fn *changed, void *data)
{
    if (capacity < 1)
        return NULL;
    ot_principals *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->loop = loop;
    p->pg = pg;
    p->changed = changed;
    p->data = data;
    p->capacity = capacity;
    p->nbuckets = 16;
    while (p->nbuckets < capacity && p->nbuckets < ((size_t)1 << 30))
        p->nbuckets *= 2;
    p->buckets = calloc(p->nbuckets, sizeof(*p->buckets));
    ot_defer_init(&p->fire, on_fire, p);
    p->gen = 1;
    if (!p->buckets) {
        free(p);
        return NULL;
    }
    p->listener = ot_pg_listen(loop, listen_cfg, OT_PRINCIPALS_CHANNEL, on_notify, on_listen_state, p);
    if (!p->listener) {
        free(p->buckets);
        free(p);
        return NULL;
    }
    return p;
}

void ot_principals_free(ot_principals *p)
{
    if (!p)
        return;
    ot_pg_listener_free(p->listener);
    ot_defer_cancel(p->loop, &p->fire);
    if (p->recheck)
        ot_pg_cancel(p->recheck);
    /* Waiters still parked (their requests die with the process) must not
     * point into freed entries if they are cancelled after this. */
    for (ot_principals_wait *w = p->ready, *n; w; w = n) {
        n = w->next;
        w->parked = false;
        w->next = NULL;
    }
    while (p->lru_head) {
        ot_principals_entry *e = p->lru_head;
        if (e->q)
            ot_pg_cancel(e->q);
        for (ot_principals_wait *w = e->waiters, *n; w; w = n) {
            n = w->next;
            w->e = NULL;
            w->prev = w->next = NULL;
        }
        entry_remove(p, e);
    }
    free(p->buckets);
    free(p);
}

void ot_principals_get_stats(const ot_principals *p, ot_principals_stats *st)
{
    st->entries = p->count;
    st->capacity = p->capacity;
    st->loads = p->loads;
    st->notifications = p->notifications;
    st->evictions = p->evictions;
    st->listening = p->listening;
}
