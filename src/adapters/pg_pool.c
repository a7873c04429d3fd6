/* The pool of pipelined libpq connections. See include/ot/adapters/pg.h for
 * the waiting and failure policies.
 *
 * Each connection is an ot_link (DOWN -> CONNECTING -> UP; its connect
 * deadline, backoff and log line per outage) over ot_pg_conn (the libpq glue
 * in pg_conn.c); its own timer is the oldest in-flight query's deadline.
 *
 * Sending happens once per loop round (the `kick` defer), after every request
 * of the epoll batch has queued its query: libpq 15's PQpipelineSync always
 * flushes, so what shares a Sync also shares one send() and one backend
 * wake-up. Only read-only queries share a Sync (a "group"); a write has its
 * own, since a query is complete only at its Sync: that is when its implicit
 * transaction commits. */
#include "ot/adapters/pg.h"

#include <stdio.h>
#include <stdlib.h>

#include "ot/core/list.h"
#include "ot/adapters/pg_conn.h"
#include "ot/event/link.h"

/* ---- intrusive FIFO of queries (pending, failed-at-submit, in flight) ---- */

enum { Q_PENDING = 1, Q_INFLIGHT, Q_FAILED };

struct ot_pg_query {
    ot_pg_query *prev, *next;
    ot_pg *pg;
    ot_pg_cb *cb; /* NULL once cancelled */
    void *data;
    PGresult *res;        /* first result of an in-flight query, kept until its Sync */
    uint64_t deadline_ms; /* pending: give up waiting; in flight: query timeout */
    int status;           /* Q_FAILED: what to report */
    int where;
    bool readonly;        /* may share a Sync, may be re-run */
    bool last;            /* in flight: its group's Sync follows it */
    bool after;           /* ot_pg_exec_next: goes out right behind the write queued before it */
    int nparams;
    uint32_t lost_at; /* pg->losses when first re-run after a connection loss; 0: never */
    const char *stmt;
    const char **values; /* points into this allocation, NUL-terminated copies */
};

typedef struct {
    ot_pg_query *head, *tail;
    size_t n;
} qlist;

static void ql_push(qlist *l, ot_pg_query *q)
{
    OT_QUEUE_PUSH_BACK(&l->head, &l->tail, q);
    l->n++;
}

static void ql_unlink(qlist *l, ot_pg_query *q)
{
    OT_QUEUE_UNLINK(&l->head, &l->tail, q);
    l->n--;
}

/* Moves all of `from` (order kept) before the head of `to`. */
static void ql_splice_front(qlist *to, qlist *from)
{
    if (!from->head)
        return;
    from->tail->next = to->head;
    if (to->head)
        to->head->prev = from->tail;
    else
        to->tail = from->tail;
    to->head = from->head;
    to->n += from->n;
    *from = (qlist){ 0 };
}

static ot_pg_query *ql_pop(qlist *l)
{
    ot_pg_query *q = l->head;
    if (q)
        ql_unlink(l, q);
    return q;
}

/* ---- the pool ---- */

/* Read-only queries under one Sync. At most GROUP_MAX: bounds how long the
 * first waits for the group's Sync, and how much one error makes the pool
 * re-send. At least GROUP_MIN when that many are queued: below it the
 * per-Sync cost (a send, a backend wake-up, a read: kernel work) outweighs a
 * short read's execution: in bench-orders.sh (<= 16 requests per worker per
 * round) spreading a round's few reads one per connection was clearly slower
 * than one group. Kept well under GROUP_MAX so a burst of heavy reads (replay
 * pages) still spreads over the backends. */
enum { GROUP_MIN = 16, GROUP_MAX = 64 };

typedef struct {
    ot_pg *pg;
    ot_pg_conn k;
    ot_link link;
    ot_timer timer; /* while UP: the oldest in-flight query's deadline */
    qlist inflight;
    int prep_left; /* Syncs of the initial PQsendPrepare batch still to read */
    /* Reading a group: the next query result belongs to `cur` (NULL: the head
     * of inflight); cur_open once it arrived, until the NULL that ends it;
     * at_sync after the group's last query, until its Sync. */
    ot_pg_query *cur;
    bool cur_open, at_sync;
    uint32_t epoch; /* pg->losses when it came up */
    bool dirty;     /* sent something this round: flush */
} pg_conn;

struct ot_pg {
    ot_loop *loop;
    ot_pg_config cfg;
    char *conninfo;
    ot_pg_stmt *stmts;
    size_t nstmts;
    pg_conn *conns;
    int nconns;
    int conns_up;
    int rr; /* where the fewest-in-flight scan starts, to spread ties */
    uint64_t down_since_ms;
    qlist pending, failed;
    size_t in_flight;
    uint64_t ok, err, retried;
    uint32_t losses; /* connections lost while up, ever */
    ot_defer kick;
    ot_timer pending_timer;
};

static void dispatch(ot_pg *pg);

void ot_pg_config_default(ot_pg_config *c)
{
    *c = (ot_pg_config){
        .conninfo = "",
        .pool_size = 4,
        .max_pipeline = 256,
        .max_pending = 10000,
        .connect_timeout_ms = 5000,
        .query_timeout_ms = 10000,
        .backoff_min_ms = 100,
        .backoff_max_ms = 5000,
    };
}

static void query_finish(ot_pg *pg, ot_pg_query *q, int status)
{
    PGresult *res = q->res;
    if (status == OT_PG_OK)
        pg->ok++;
    else
        pg->err++;
    if (status != OT_PG_OK && status != OT_PG_EQUERY)
        res = NULL;
    if (q->cb)
        q->cb(q->data, status, res);
    PQclear(q->res);
    free(q);
}

/* Puts queries taken back from flight at the head of pending (order kept):
 * they were queued first, so they go out first. */
static void requeue_front(ot_pg *pg, qlist *l)
{
    if (!l->head)
        return;
    uint64_t deadline = ot_loop_now_ms(pg->loop) + pg->cfg.connect_timeout_ms;
    for (ot_pg_query *q = l->head; q; q = q->next) {
        PQclear(q->res);
        q->res = NULL;
        q->last = false;
        q->where = Q_PENDING;
        q->deadline_ms = deadline;
    }
    pg->retried += l->n;
    ql_splice_front(&pg->pending, l);
    if (!ot_timer_active(&pg->pending_timer))
        ot_timer_start(pg->loop, &pg->pending_timer, pg->cfg.connect_timeout_ms);
    ot_defer_queue(pg->loop, &pg->kick);
}

static void conn_fail(pg_conn *c, const char *what)
{
    char why[160];
    ot_link_fail(&c->link, ot_pg_conn_why(&c->k, what, why, sizeof(why)));
}

static void conn_close(ot_link *l)
{
    pg_conn *c = l->data;
    ot_pg_conn_close(&c->k);
    ot_timer_stop(c->pg->loop, &c->timer);
    c->prep_left = 0;
    c->dirty = false;
    c->cur = NULL;
    c->cur_open = c->at_sync = false;
}

/* Writes sent on this connection fail with EUNAVAIL: whether the server
 * committed what it received before the loss is unknown. */
static void conn_down(ot_link *l, bool was_up)
{
    pg_conn *c = l->data;
    ot_pg *pg = c->pg;
    if (was_up) {
        pg->losses++;
        if (--pg->conns_up == 0)
            pg->down_since_ms = ot_loop_now_ms(pg->loop);
    }
    /* A read-only query changed nothing whatever the server did with it, so
     * it may run again elsewhere; once only, in case it is what kills the
     * connection. A re-run that lands on a connection already up at the first
     * loss (a sibling dying in the same outage: server restart, network) does
     * not count: bounded by the pool size, it keeps the one real retry for a
     * connection made afterwards. State is consistent before any callback
     * runs (ot_pg_ready is right, re-run ones are pending and cancellable). */
    qlist again = { 0 }, lost = { 0 };
    ot_pg_query *q;
    while ((q = ql_pop(&c->inflight))) {
        pg->in_flight--;
        bool rerun = q->readonly && q->cb && (!q->lost_at || c->epoch < q->lost_at);
        if (rerun && !q->lost_at)
            q->lost_at = pg->losses;
        ql_push(rerun ? &again : &lost, q);
    }
    requeue_front(pg, &again);
    while ((q = ql_pop(&lost)))
        query_finish(pg, q, OT_PG_EUNAVAIL);
}

static int conn_connect(ot_link *l)
{
    pg_conn *c = l->data;
    if (ot_pg_conn_start(&c->k, c->pg->conninfo) < 0) {
        char why[160];
        ot_link_set_error(l, ot_pg_conn_why(&c->k, "start", why, sizeof(why)));
        ot_pg_conn_close(&c->k);
        return OT_ERR;
    }
    return 0;
}

static const ot_link_ops pool_link_ops = { conn_connect, conn_close, conn_down };

static void conn_up(pg_conn *c)
{
    ot_pg *pg = c->pg;
    PGconn *conn = c->k.conn;
    if (PQsetnonblocking(conn, 1) != 0 || PQenterPipelineMode(conn) != 1) {
        conn_fail(c, "pipeline mode");
        return;
    }
    /* One Sync per statement: a bad statement then fails alone instead of
     * aborting the rest of the batch. Queries may follow at once. */
    for (size_t i = 0; i < pg->nstmts; i++) {
        const ot_pg_stmt *s = &pg->stmts[i];
        if (!PQsendPrepare(conn, s->name, s->sql, s->nparams, NULL) || !PQpipelineSync(conn)) {
            conn_fail(c, "prepare");
            return;
        }
    }
    c->prep_left = (int)pg->nstmts;
    c->epoch = pg->losses;
    ot_link_up_healthy(&c->link);
    pg->conns_up++;
    if (ot_pg_conn_flush(&c->k) < 0) {
        conn_fail(c, "flush");
        return;
    }
    if (pg->pending.head)
        ot_defer_queue(pg->loop, &pg->kick);
}

/* A Sync arrived: its whole group is complete. The queries a failed
 * neighbour aborted (PGRES_PIPELINE_ABORTED: never executed) go back to the
 * head of pending before any callback runs; the others complete in the order
 * sent. */
static void complete_group(pg_conn *c)
{
    ot_pg *pg = c->pg;
    qlist done = { 0 }, again = { 0 };
    ot_pg_query *q;
    c->cur = NULL;
    c->cur_open = c->at_sync = false;
    bool last = false;
    while (!last && (q = ql_pop(&c->inflight))) {
        pg->in_flight--;
        last = q->last;
        bool aborted = q->res && PQresultStatus(q->res) == PGRES_PIPELINE_ABORTED;
        if (aborted && !q->cb) {
            PQclear(q->res); /* cancelled: nobody to run it for */
            free(q);
        } else {
            ql_push(aborted ? &again : &done, q);
        }
    }
    requeue_front(pg, &again);
    while ((q = ql_pop(&done))) {
        int status = OT_PG_EUNAVAIL;
        if (q->res) {
            ExecStatusType st = PQresultStatus(q->res);
            status = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ? OT_PG_OK : OT_PG_EQUERY;
        }
        query_finish(pg, q, status);
    }
}

/* Per query the pipeline yields its result(s) then NULL; after a group's last
 * query, PGRES_PIPELINE_SYNC (no NULL after it). After an error, each later
 * query of the group yields PGRES_PIPELINE_ABORTED then NULL. A query is
 * complete only at its Sync: that is when its implicit transaction
 * committed. */
static void process_results(pg_conn *c)
{
    PGconn *conn = c->k.conn;
    int nulls = 0;
    while (ot_link_is_up(&c->link)) {
        if (PQstatus(conn) == CONNECTION_BAD) {
            conn_fail(c, "read");
            return;
        }
        if ((c->prep_left == 0 && !c->inflight.head) || PQisBusy(conn))
            return;
        PGresult *r = PQgetResult(conn);
        if (!r) {
            if (c->cur_open) { /* the end of cur's results */
                ot_pg_query *q = c->cur ? c->cur : c->inflight.head;
                c->cur_open = false;
                c->at_sync = q->last;
                c->cur = q->last ? NULL : q->next;
                nulls = 0;
                continue;
            }
            /* Two NULLs in a row: nothing more buffered (never spin). */
            if (++nulls >= 2)
                return;
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(r);
        if (c->prep_left > 0) {
            if (st == PGRES_PIPELINE_SYNC)
                c->prep_left--;
            else if (st == PGRES_FATAL_ERROR)
                ot_pg_log(OT_LOG_ERROR, "prepare failed", "statement", PQresultErrorMessage(r));
            PQclear(r);
            continue;
        }
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            complete_group(c);
            continue;
        }
        ot_pg_query *q = c->cur ? c->cur : c->inflight.head;
        if (c->cur_open || c->at_sync || !q) {
            PQclear(r); /* a prepared statement yields one result; ignore extras */
            continue;
        }
        q->res = r;
        c->cur_open = true;
    }
}

static void conn_io(ot_loop *loop, int fd, unsigned ev, void *data)
{
    pg_conn *c = data;
    ot_pg *pg = c->pg;
    if (c->link.state == OT_LINK_CONNECTING) {
        int r = ot_pg_conn_poll(&c->k);
        if (r < 0)
            conn_fail(c, "connect");
        else if (r == 1)
            conn_up(c);
        return;
    }
    if (!ot_link_is_up(&c->link))
        return;
    if (ev & (OT_READABLE | OT_HANGUP)) {
        if (!PQconsumeInput(c->k.conn)) {
            conn_fail(c, "read");
            return;
        }
        PGnotify *n;
        while ((n = PQnotifies(c->k.conn)))
            PQfreemem(n); /* pool connections do not LISTEN; drop strays */
        process_results(c);
        if (!ot_link_is_up(&c->link))
            return;
    }
    /* libpq: while PQflush returns 1, call it again on writable AND after
     * reading (the server may be blocked writing to us). */
    if ((c->k.watch.mask & OT_WRITABLE) && ot_pg_conn_flush(&c->k) < 0) {
        conn_fail(c, "write");
        return;
    }
    /* Not now: the rest of this epoll batch may queue more to send along. */
    if (pg->pending.head)
        ot_defer_queue(loop, &pg->kick);
}

/* The oldest in-flight query's deadline. */
static void conn_timer(ot_loop *loop, ot_timer *t)
{
    pg_conn *c = t->data;
    ot_pg_query *q = c->inflight.head;
    if (!ot_link_is_up(&c->link) || !q)
        return; /* re-armed when the pipeline fills again */
    uint64_t now = ot_loop_now_ms(loop);
    if (q->deadline_ms > now) {
        ot_timer_start(loop, t, q->deadline_ms - now);
        return;
    }
    /* The connection is stuck behind this query: only a reset frees the
     * pipeline (PQcancel would block). */
    ql_unlink(&c->inflight, q);
    c->pg->in_flight--;
    query_finish(c->pg, q, OT_PG_ETIMEOUT);
    conn_fail(c, "query timeout");
}

/* Fewest in flight wins; the scan start rotates so ties spread out. */
static pg_conn *pick_conn(ot_pg *pg)
{
    pg_conn *best = NULL;
    for (int i = 0; i < pg->nconns; i++) {
        pg_conn *c = &pg->conns[(pg->rr + i) % pg->nconns];
        if (ot_link_is_up(&c->link) && c->inflight.n < (size_t)pg->cfg.max_pipeline &&
            (!best || c->inflight.n < best->inflight.n))
            best = c;
    }
    if (best)
        pg->rr = (int)(best - pg->conns + 1) % pg->nconns;
    return best;
}

/* Read-only queries one Sync may carry this round: what is queued, split
 * evenly over the connections with room, so a burst still reaches every
 * backend; but never fewer than GROUP_MIN, or a quiet round (a few requests
 * per epoll batch) would again pay one send and one backend wake-up each. */
static size_t group_share(const ot_pg *pg)
{
    size_t avail = 0;
    for (int i = 0; i < pg->nconns; i++)
        avail += ot_link_is_up(&pg->conns[i].link) && pg->conns[i].inflight.n < (size_t)pg->cfg.max_pipeline;
    size_t share = avail ? (pg->pending.n + avail - 1) / avail : 1;
    return share < GROUP_MIN ? GROUP_MIN : share > GROUP_MAX ? GROUP_MAX : share;
}

static void dispatch(ot_pg *pg)
{
    uint64_t now = ot_loop_now_ms(pg->loop);
    size_t share = group_share(pg);
    pg_conn *c;
    while (pg->pending.head && (c = pick_conn(pg))) {
        PGconn *conn = c->k.conn;
        size_t room = (size_t)pg->cfg.max_pipeline - c->inflight.n;
        size_t want = pg->pending.head->readonly ? (share < room ? share : room) : 1;
        qlist grp = { 0 };
        bool ok = true;
        /* In non-blocking mode these only buffer (and PQpipelineSync tries a
         * flush). A failure means the connection is broken. Without the Sync
         * reaching the server the implicit transaction cannot commit, so the
         * group is safe to retry elsewhere. */
        while (ok && grp.n < want && pg->pending.head && (!grp.n || pg->pending.head->readonly)) {
            ot_pg_query *q = ql_pop(&pg->pending);
            ql_push(&grp, q);
            ok = PQsendQueryPrepared(conn, q->stmt, q->nparams, q->values, NULL, NULL, 0);
        }
        if (!ok || !PQpipelineSync(conn)) {
            ql_splice_front(&pg->pending, &grp);
            conn_fail(c, "send");
            continue;
        }
        bool wrote = !grp.head->readonly;
        grp.tail->last = true;
        ot_pg_query *q;
        while ((q = ql_pop(&grp))) {
            q->where = Q_INFLIGHT;
            q->deadline_ms = now + pg->cfg.query_timeout_ms;
            ql_push(&c->inflight, q);
            pg->in_flight++;
        }
        /* A statement bound to this write follows it on the same connection,
         * under a Sync of its own: it runs once the write's transaction has
         * ended. The write is in flight already (its Sync may have gone out:
         * never re-sent); a failure here fails the connection, the write's
         * outcome unknown as for any loss, and the follower goes out later. */
        if (wrote && pg->pending.head && pg->pending.head->after && room >= 2) {
            ot_pg_query *f = pg->pending.head;
            if (!PQsendQueryPrepared(conn, f->stmt, f->nparams, f->values, NULL, NULL, 0) ||
                !PQpipelineSync(conn)) {
                conn_fail(c, "send");
                continue;
            }
            ql_pop(&pg->pending);
            f->where = Q_INFLIGHT;
            f->last = true;
            f->deadline_ms = now + pg->cfg.query_timeout_ms;
            ql_push(&c->inflight, f);
            pg->in_flight++;
        }
        c->dirty = true;
        if (!ot_timer_active(&c->timer))
            ot_timer_start(pg->loop, &c->timer, pg->cfg.query_timeout_ms);
    }
    for (int i = 0; i < pg->nconns; i++) {
        c = &pg->conns[i];
        if (c->dirty && ot_link_is_up(&c->link)) {
            c->dirty = false;
            if (ot_pg_conn_flush(&c->k) < 0)
                conn_fail(c, "write");
        }
    }
}

static void on_kick(ot_loop *loop, ot_defer *d)
{
    ot_pg *pg = d->data;
    ot_pg_query *q;
    while ((q = ql_pop(&pg->failed)))
        query_finish(pg, q, q->status);
    if (pg->pending.head)
        dispatch(pg);
}

static void on_pending_timer(ot_loop *loop, ot_timer *t)
{
    ot_pg *pg = t->data;
    uint64_t now = ot_loop_now_ms(loop);
    /* Not FIFO by deadline: re-run queries go back to the head with a fresh
     * one. Collect first, then call back (a callback may cancel others). */
    qlist expired = { 0 };
    uint64_t next = 0;
    for (ot_pg_query *q = pg->pending.head, *nx; q; q = nx) {
        nx = q->next;
        if (q->deadline_ms <= now) {
            ql_unlink(&pg->pending, q);
            ql_push(&expired, q);
        } else if (!next || q->deadline_ms < next) {
            next = q->deadline_ms;
        }
    }
    if (next)
        ot_timer_start(loop, t, next - now);
    ot_pg_query *q;
    while ((q = ql_pop(&expired)))
        query_finish(pg, q, pg->conns_up > 0 ? OT_PG_ETIMEOUT : OT_PG_EUNAVAIL);
}

ot_pg *ot_pg_new(ot_loop *loop, const ot_pg_config *cfg, const ot_pg_stmt *stmts, size_t nstmts)
{
    ot_pg *pg = calloc(1, sizeof(*pg));
    if (!pg)
        return NULL;
    pg->loop = loop;
    pg->cfg = *cfg;
    ot_pg_config def;
    ot_pg_config_default(&def);
    if (pg->cfg.pool_size <= 0)
        pg->cfg.pool_size = def.pool_size;
    if (pg->cfg.max_pipeline <= 0)
        pg->cfg.max_pipeline = def.max_pipeline;
    if (pg->cfg.max_pending <= 0)
        pg->cfg.max_pending = def.max_pending;
    if (!pg->cfg.connect_timeout_ms)
        pg->cfg.connect_timeout_ms = def.connect_timeout_ms;
    if (!pg->cfg.query_timeout_ms)
        pg->cfg.query_timeout_ms = def.query_timeout_ms;
    if (!pg->cfg.backoff_max_ms)
        pg->cfg.backoff_max_ms = def.backoff_max_ms;
    pg->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    pg->stmts = calloc(nstmts ? nstmts : 1, sizeof(*pg->stmts));
    pg->conns = calloc((size_t)pg->cfg.pool_size, sizeof(*pg->conns));
    bool ok = pg->conninfo && pg->stmts && pg->conns;
    for (size_t i = 0; ok && i < nstmts; i++) {
        pg->stmts[i].nparams = stmts[i].nparams;
        pg->stmts[i].readonly = stmts[i].readonly;
        pg->stmts[i].name = strdup(stmts[i].name);
        pg->stmts[i].sql = strdup(stmts[i].sql);
        pg->nstmts = i + 1;
        ok = pg->stmts[i].name && pg->stmts[i].sql;
    }
    if (!ok) {
        ot_pg_free(pg);
        return NULL;
    }
    pg->nconns = pg->cfg.pool_size;
    pg->down_since_ms = ot_loop_now_ms(loop);
    ot_defer_init(&pg->kick, on_kick, pg);
    ot_timer_init(&pg->pending_timer, on_pending_timer, pg);
    for (int i = 0; i < pg->nconns; i++) {
        pg_conn *c = &pg->conns[i];
        c->pg = pg;
        ot_pg_conn_init(&c->k, loop, conn_io, c);
        ot_link_init(&c->link, loop, "pg pool", &pool_link_ops, c, pg->cfg.connect_timeout_ms, pg->cfg.backoff_min_ms,
                     pg->cfg.backoff_max_ms);
        ot_timer_init(&c->timer, conn_timer, c);
    }
    for (int i = 0; i < pg->nconns; i++)
        ot_link_start(&pg->conns[i].link);
    return pg;
}

static void free_list(qlist *l)
{
    ot_pg_query *q;
    while ((q = ql_pop(l))) {
        PQclear(q->res);
        free(q);
    }
}

void ot_pg_free(ot_pg *pg)
{
    if (!pg)
        return;
    for (int i = 0; i < pg->nconns; i++) {
        pg_conn *c = &pg->conns[i];
        ot_link_stop(&c->link);
        ot_timer_stop(pg->loop, &c->timer);
        ot_pg_conn_close(&c->k);
        free_list(&c->inflight);
    }
    if (pg->nconns) {
        ot_defer_cancel(pg->loop, &pg->kick);
        ot_timer_stop(pg->loop, &pg->pending_timer);
    }
    free_list(&pg->pending);
    free_list(&pg->failed);
    for (size_t i = 0; i < pg->nstmts; i++) {
        free((char *)pg->stmts[i].name);
        free((char *)pg->stmts[i].sql);
    }
    free(pg->stmts);
    free(pg->conns);
    free(pg->conninfo);
    free(pg);
}

static ot_pg_query *queue(ot_pg *pg, const char *stmt, int nparams, const char *const *values, const int *lengths,
                          ot_pg_cb *cb, void *data, bool after)
{
    /* The protocol carries the parameter count in 16 bits. */
    if (nparams < 0 || nparams > 65535 || (nparams > 0 && !values))
        return NULL;
    size_t stmt_len = strlen(stmt);
    size_t bytes = stmt_len + 1;
    for (int i = 0; i < nparams; i++) {
        if (lengths && lengths[i] < 0)
            return NULL;
        if (values[i])
            bytes += (lengths ? (size_t)lengths[i] : strlen(values[i])) + 1;
    }
    size_t ptrs = (size_t)nparams * sizeof(char *);
    ot_pg_query *q = malloc(sizeof(*q) + ptrs + bytes);
    if (!q)
        return NULL;
    *q = (ot_pg_query){ .pg = pg, .cb = cb, .data = data, .nparams = nparams, .after = after };
    for (size_t i = 0; i < pg->nstmts; i++) {
        if (strcmp(pg->stmts[i].name, stmt) == 0) {
            q->readonly = pg->stmts[i].readonly;
            break;
        }
    }
    q->values = (const char **)(q + 1);
    char *p = (char *)(q + 1) + ptrs;
    memcpy(p, stmt, stmt_len + 1);
    q->stmt = p;
    p += stmt_len + 1;
    /* Text-format params travel NUL-terminated (libpq ignores lengths for
     * text), hence the copy with a terminator even when lengths are given. */
    for (int i = 0; i < nparams; i++) {
        if (!values[i]) {
            q->values[i] = NULL;
            continue;
        }
        size_t n = lengths ? (size_t)lengths[i] : strlen(values[i]);
        memcpy(p, values[i], n);
        p[n] = '\0';
        q->values[i] = p;
        p += n + 1;
    }

    uint64_t now = ot_loop_now_ms(pg->loop);
    int fail = 0;
    if (pg->pending.n >= (size_t)pg->cfg.max_pending)
        fail = OT_PG_EFULL;
    else if (pg->conns_up == 0 && now - pg->down_since_ms >= pg->cfg.connect_timeout_ms)
        fail = OT_PG_EUNAVAIL; /* known down for a while: answer 503 now, not after a wait */
    if (fail) {
        q->where = Q_FAILED;
        q->status = fail;
        ql_push(&pg->failed, q);
    } else {
        q->where = Q_PENDING;
        q->deadline_ms = now + pg->cfg.connect_timeout_ms;
        ql_push(&pg->pending, q);
        if (!ot_timer_active(&pg->pending_timer))
            ot_timer_start(pg->loop, &pg->pending_timer, pg->cfg.connect_timeout_ms);
    }
    /* Sending from the loop, never from here: no callback can run inside
     * ot_pg_exec, and queries submitted in one round share a flush. */
    ot_defer_queue(pg->loop, &pg->kick);
    return q;
}

ot_pg_query *ot_pg_exec(ot_pg *pg, const char *stmt, int nparams, const char *const *values, const int *lengths,
                        ot_pg_cb *cb, void *data)
{
    return queue(pg, stmt, nparams, values, lengths, cb, data, false);
}

ot_pg_query *ot_pg_exec_next(ot_pg_query *prev, const char *stmt, int nparams, const char *const *values,
                             const int *lengths, ot_pg_cb *cb, void *data)
{
    if (!prev || prev->where != Q_PENDING || prev->readonly || prev->pg->pending.tail != prev)
        return NULL;
    ot_pg_query *q = queue(prev->pg, stmt, nparams, values, lengths, cb, data, true);
    /* Refused at submit (queue full, database down): it would not follow. */
    if (q && q->where != Q_PENDING) {
        ql_unlink(&prev->pg->failed, q);
        free(q);
        return NULL;
    }
    return q;
}

void ot_pg_cancel(ot_pg_query *q)
{
    if (!q)
        return;
    ot_pg *pg = q->pg;
    if (q->where == Q_PENDING) {
        ql_unlink(&pg->pending, q);
        free(q);
    } else if (q->where == Q_FAILED) {
        ql_unlink(&pg->failed, q);
        free(q);
    } else {
        q->cb = NULL; /* in flight: its result still has to be read past */
    }
}

bool ot_pg_ready(const ot_pg *pg) { return pg->conns_up > 0; }

void ot_pg_get_stats(const ot_pg *pg, ot_pg_stats *st)
{
    *st = (ot_pg_stats){
        .conns_up = pg->conns_up,
        .conns_total = pg->nconns,
        .in_flight = pg->in_flight,
        .queued = pg->pending.n,
        .queries_ok = pg->ok,
        .queries_err = pg->err,
        .queries_retried = pg->retried,
    };
}

