/* Async PostgreSQL on the ot_loop: a per-worker pool of pipelined libpq
 * connections, and a dedicated LISTEN connection.
 *
 * Nothing here blocks the loop: connections are made with PQconnectStartParams
 * + PQconnectPoll driven by fd readiness, then switched to non-blocking
 * pipeline mode. A write is PQsendQueryPrepared + PQpipelineSync: its own
 * implicit transaction, complete (committed) at its Sync, never aborted by a
 * neighbour. Consecutive read-only queries (ot_pg_stmt.readonly) bound for the
 * same connection share one Sync; an error in one of them is reported for it
 * alone and the pool re-runs the neighbours it aborted. Host names in the conninfo are resolved by libpq
 * with a blocking getaddrinfo(): give an IP address (or hostaddr=) or a unix
 * socket directory to keep the loop free.
 *
 * Waiting policy (what happens to a query nobody can run right now):
 *  - more than max_pending queries already queued (unsent)  -> OT_PG_EFULL.
 *  - no connection up, and none has been up for connect_timeout_ms (start-up
 *    included)                                              -> OT_PG_EUNAVAIL at once.
 *  - otherwise the query queues (FIFO) and waits unsent at most
 *    connect_timeout_ms: then OT_PG_EUNAVAIL if no connection is up, or
 *    OT_PG_ETIMEOUT if connections are up but all pipelines stayed full.
 *  - a query in flight longer than query_timeout_ms fails with OT_PG_ETIMEOUT
 *    and its connection is reset (its pipeline neighbours get OT_PG_EUNAVAIL).
 *    The server may still run the statement: add
 *    `options=-c%20statement_timeout=...` to the conninfo to bound it there.
 *
 * OT_PG_EUNAVAIL for a query that was already sent means its connection died
 * before the server confirmed it: the OUTCOME IS UNKNOWN (it may have
 * committed). Callers of non-idempotent statements must reconcile (re-read).
 * A read-only query caught that way is re-run once on another connection
 * first (it waits as a queued query again); EUNAVAIL only if that fails too.
 */
#ifndef OT_PG_H
#define OT_PG_H

#include <libpq-fe.h>

#include "ot/event/loop.h"

typedef struct ot_pg ot_pg;
typedef struct ot_pg_query ot_pg_query;

typedef struct {
    const char *conninfo;        /* URI or key=value; copied */
    int pool_size;               /* connections per worker, default 4 */
    int max_pipeline;            /* in-flight queries per connection, default 256 */
    int max_pending;             /* queued (not yet sent) queries, default 10000; beyond -> OT_PG_EFULL */
    uint32_t connect_timeout_ms; /* default 5000; also the longest a query waits unsent */
    uint32_t query_timeout_ms;   /* default 10000: in flight longer -> OT_PG_ETIMEOUT, connection reset */
    uint32_t backoff_min_ms, backoff_max_ms; /* reconnect backoff with jitter, default 100 / 5000 */
} ot_pg_config;

/* A statement prepared on every connection as soon as it is up.
 * readonly: the statement changes nothing (a plain SELECT of data: no
 * side-effecting function, no nextval, no FOR UPDATE). Such queries may share
 * one Sync (one implicit transaction, one send, one backend wake-up) with
 * their read-only neighbours, and the pool may run them again: after a
 * neighbour's error aborted them unexecuted, or once on another connection
 * when theirs died with them in flight. Writes keep one Sync each, and
 * EUNAVAIL when the connection dies. Every statement table spells the flag
 * out, so a write is never batched by omission. */
typedef struct {
    const char *name;
    const char *sql;
    int nparams;
    bool readonly;
} ot_pg_stmt;

enum {
    OT_PG_OK = 0,
    OT_PG_EQUERY = -10,   /* the server rejected the statement: res holds the error */
    OT_PG_EUNAVAIL = -11, /* no connection, or the connection died with the query in flight (outcome unknown) */
    OT_PG_EFULL = -12,    /* pending queue full */
    OT_PG_ETIMEOUT = -13, /* query_timeout_ms in flight, or connect_timeout_ms queued with connections saturated */
};

/* status OT_PG_OK: res is the PGRES_TUPLES_OK / PGRES_COMMAND_OK result.
 * OT_PG_EQUERY: res is the error result (PQresultErrorField(res, PG_DIAG_SQLSTATE)).
 * Other statuses: res == NULL. res belongs to the pool and is cleared after the
 * callback returns. The callback is never called from inside ot_pg_exec (always
 * from the loop), so it may free the requester; it may call ot_pg_exec and
 * ot_pg_cancel, but not ot_pg_free. */
typedef void ot_pg_cb(void *data, int status, PGresult *res);

void ot_pg_config_default(ot_pg_config *c);

/* Copies cfg->conninfo and the statements; starts connecting at once. */
ot_pg *ot_pg_new(ot_loop *loop, const ot_pg_config *cfg, const ot_pg_stmt *stmts, size_t nstmts);
/* Closes every connection. Callbacks of queued or in-flight queries are NOT called. */
void ot_pg_free(ot_pg *pg);

/* Runs prepared statement `stmt` with text-format params (values[i] == NULL is
 * SQL NULL). The pool copies stmt and params into one allocation, so the
 * caller's buffers may die right after the call; lengths may be NULL (then
 * strlen). Returns NULL (and the callback never runs) on allocation failure
 * or invalid arguments (nparams outside 0..65535, a negative length). Every other outcome, including EFULL / EUNAVAIL decided right
 * here, is reported through cb from the loop. */
ot_pg_query *ot_pg_exec(ot_pg *pg, const char *stmt, int nparams, const char *const *values, const int *lengths,
                        ot_pg_cb *cb, void *data);
/* Like ot_pg_exec, for a statement that must see `prev` committed: `prev`, a
 * write just queued (the last query queued, not sent yet), goes out with it
 * right behind on the same connection, each under its own Sync, so the pair
 * costs one round trip and this one runs in a transaction of its own after
 * prev's has ended (committed or not). Should prev be cancelled before it is
 * sent, or the connection have no room for both, this one goes out alone.
 * NULL (nothing queued) when prev is not such a write, or on the failures of
 * ot_pg_exec, including one it would report through the callback. */
ot_pg_query *ot_pg_exec_next(ot_pg_query *prev, const char *stmt, int nparams, const char *const *values,
                             const int *lengths, ot_pg_cb *cb, void *data);
/* The callback will not be called; the pool frees the query when its result
 * arrives (or at once if it was not sent yet). Use when the requester dies.
 * Must not be called after the callback ran. */
void ot_pg_cancel(ot_pg_query *q);

bool ot_pg_ready(const ot_pg *pg); /* at least one connection is up */

typedef struct {
    int conns_up, conns_total;
    size_t in_flight, queued;
    uint64_t queries_ok, queries_err; /* err: every non-OK status */
    uint64_t queries_retried;         /* read-only re-runs (aborted by a neighbour's error, or connection lost) */
} ot_pg_stats;
void ot_pg_get_stats(const ot_pg *pg, ot_pg_stats *st);

/* A dedicated LISTEN connection (not pipelined), reconnecting with backoff
 * (cfg's conninfo, connect_timeout_ms and backoff fields are used).
 * state_cb(data, true) runs after every successful (re)LISTEN, so the owner can
 * backfill what it missed while disconnected; state_cb(data, false) on loss.
 * NOTIFY payloads arrive through cb (payload NUL-terminated too, len given).
 * Callbacks must not call ot_pg_listener_free. */
typedef struct ot_pg_listener ot_pg_listener;
typedef void ot_pg_notify_cb(void *data, const char *channel, const char *payload, size_t len);
typedef void ot_pg_listen_state_cb(void *data, bool up);
ot_pg_listener *ot_pg_listen(ot_loop *loop, const ot_pg_config *cfg, const char *channel, ot_pg_notify_cb *cb,
                             ot_pg_listen_state_cb *state_cb, void *data);
bool ot_pg_listener_up(const ot_pg_listener *l);
void ot_pg_listener_free(ot_pg_listener *l);

#endif
