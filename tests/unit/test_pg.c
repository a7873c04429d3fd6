/* The pg adapter against the real PostgreSQL on 127.0.0.1:5432 (trust auth,
 * database `test`). Each test runs a real ot_loop until its condition holds,
 * under a wall-clock cap. The test side uses blocking libpq to set up tables,
 * send NOTIFYs and terminate the pool's backends (found by application_name). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ot/adapters/pg.h"

#define DSN_KV "host=127.0.0.1 port=5432 user=postgres dbname=test"

static char app[40]; /* unique application_name of this test's pool */

static PGconn *sync_conn(void)
{
    PGconn *c = PQconnectdb(DSN_KV);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "sync connect: %s", PQerrorMessage(c));
    return c;
}

static void sync_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* Terminates this test's backends; returns how many. */
static int terminate_app(PGconn *c)
{
    const char *v[1] = { app };
    PGresult *r = PQexecParams(c,
                               "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE application_name = $1",
                               1, NULL, v, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static void make_cfg(ot_pg_config *cfg, char *buf, size_t cap)
{
    static unsigned seq;
    snprintf(app, sizeof(app), "ot_pg_test_%d_%u", (int)getpid(), seq++);
    /* URI form here; the key=value form is used by the error tests. */
    snprintf(buf, cap, "postgresql://postgres@127.0.0.1:5432/test?application_name=%s", app);
    ot_pg_config_default(cfg);
    cfg->conninfo = buf;
    cfg->backoff_min_ms = 50;
    cfg->backoff_max_ms = 400;
}

typedef bool cond_fn(void *arg);

/* Runs the loop until cond holds or max_ms elapse; returns cond's value. */
static bool run_until(ot_loop *loop, cond_fn *cond, void *arg, int max_ms)
{
    uint64_t end = ot_now_us() + (uint64_t)max_ms * 1000u;
    while (!cond(arg)) {
        if (ot_now_us() >= end)
            return false;
        ot_loop_run_once(loop, 20);
    }
    return true;
}

static void run_for(ot_loop *loop, int ms)
{
    uint64_t end = ot_now_us() + (uint64_t)ms * 1000u;
    while (ot_now_us() < end)
        ot_loop_run_once(loop, 10);
}

static bool all_up(void *arg)
{
    ot_pg_stats st;
    ot_pg_get_stats(arg, &st);
    return st.conns_up == st.conns_total;
}

static bool is_ready(void *arg) { return ot_pg_ready(arg); }

typedef struct {
    int target, done;
} counter;
static bool counter_done(void *arg)
{
    counter *c = arg;
    return c->done >= c->target;
}

/* One completed query, as the callback saw it. */
typedef struct {
    counter *ctr;
    int status;
    bool called;
    char sqlstate[6];
    char value[256];
    bool isnull;
    int pid;
} outcome;

static void on_result(void *data, int status, PGresult *res)
{
    outcome *o = data;
    cr_assert(!o->called, "callback ran twice");
    o->called = true;
    o->status = status;
    if (status == OT_PG_OK) {
        cr_assert_not_null(res);
        if (PQntuples(res) == 0)
            goto out;
        o->isnull = PQgetisnull(res, 0, 0);
        snprintf(o->value, sizeof(o->value), "%s", PQgetvalue(res, 0, 0));
        if (PQnfields(res) > 1)
            o->pid = atoi(PQgetvalue(res, 0, 1));
    } else if (status == OT_PG_EQUERY) {
        cr_assert_not_null(res);
        const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(o->sqlstate, sizeof(o->sqlstate), "%s", s ? s : "");
    } else {
        cr_assert_null(res);
    }
out:
    if (o->ctr)
        o->ctr->done++;
}

static ot_pg_query *exec1(ot_pg *pg, const char *stmt, const char *v, outcome *o)
{
    const char *vals[1] = { v };
    ot_pg_query *q = ot_pg_exec(pg, stmt, 1, vals, NULL, on_result, o);
    cr_assert_not_null(q);
    cr_assert(!o->called, "callback ran inside ot_pg_exec");
    return q;
}

/* ---- pipelining ---- */

#define NPIPE 1000
static int order_last[1 << 16];
static int order_errors;
typedef struct {
    int i, status, value, pid;
    counter *ctr;
} pipe_rec;

static void on_pipe(void *data, int status, PGresult *res)
{
    pipe_rec *r = data;
    r->status = status;
    if (status == OT_PG_OK) {
        r->value = atoi(PQgetvalue(res, 0, 0));
        r->pid = atoi(PQgetvalue(res, 0, 1));
        /* Results of one connection come back in the order sent. */
        int *last = &order_last[r->pid & 0xffff];
        if (*last >= r->i)
            order_errors++;
        *last = r->i;
    }
    r->ctr->done++;
}

Test(pg, thousand_pipelined_queries_return_their_own_results_in_order)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "sq", "SELECT $1::int * $1::int, pg_backend_pid()", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert(run_until(loop, all_up, pg, 5000), "pool did not come up");

    static pipe_rec recs[NPIPE];
    memset(order_last, -1, sizeof(order_last));
    order_errors = 0;
    counter ctr = { NPIPE, 0 };
    for (int i = 0; i < NPIPE; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        const char *vals[1] = { v };
        recs[i] = (pipe_rec){ .i = i, .status = 99, .ctr = &ctr };
        cr_assert_not_null(ot_pg_exec(pg, "sq", 1, vals, NULL, on_pipe, &recs[i]));
    }
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.queued, NPIPE);
    cr_assert(run_until(loop, counter_done, &ctr, 10000), "only %d of %d done", ctr.done, NPIPE);

    int pids[8], npids = 0;
    for (int i = 0; i < NPIPE; i++) {
        cr_assert_eq(recs[i].status, OT_PG_OK, "query %d", i);
        cr_assert_eq(recs[i].value, i * i, "query %d got %d", i, recs[i].value);
        bool seen = false;
        for (int j = 0; j < npids; j++)
            seen |= pids[j] == recs[i].pid;
        if (!seen && npids < 8)
            pids[npids++] = recs[i].pid;
    }
    cr_assert_eq(order_errors, 0, "results out of order on a connection");
    /* Fewest-in-flight dispatch spreads a burst over every connection. */
    cr_assert_eq(npids, cfg.pool_size);
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.queued, 0);
    cr_assert_eq(st.queries_ok, NPIPE);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg, pipeline_depth_limit_holds_queries_back_until_room)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.pool_size = 1;
    cfg.max_pipeline = 2;
    char kv[200]; /* key=value form this time */
    snprintf(kv, sizeof(kv), "%s application_name=%s", DSN_KV, app);
    cfg.conninfo = kv;
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "slp", "SELECT pg_sleep($1::float8)::text", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert(run_until(loop, is_ready, pg, 5000));
    counter ctr = { 5, 0 };
    outcome o[5] = { 0 };
    for (int i = 0; i < 5; i++) {
        o[i].ctr = &ctr;
        exec1(pg, "slp", "0.1", &o[i]);
    }
    ot_loop_run_once(loop, 0);
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.in_flight, 2);
    cr_assert_eq(st.queued, 3);
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(o[i].status, OT_PG_OK);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

/* ---- errors stay with their query ---- */

Test(pg, sql_error_fails_only_its_own_query_with_sqlstate)
{
    char dsn[256], tbl[64], ins[160], cnt[160];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.pool_size = 1; /* all in one pipeline: neighbours share it */
    snprintf(tbl, sizeof(tbl), "ot_pg_t_%s", app);
    snprintf(ins, sizeof(ins), "INSERT INTO %s(id) VALUES ($1::int)", tbl);
    snprintf(cnt, sizeof(cnt), "SELECT count(*)::text FROM %s WHERE id = $1::int", tbl);
    PGconn *sc = sync_conn();
    char sql[200];
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int PRIMARY KEY)", tbl);
    sync_exec(sc, sql);

    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = {
        { "div", "SELECT (10 / $1::int)::text", 1, false },
        { "ins", ins, 1, false },
        { "cnt", cnt, 1, false },
    };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 3);
    cr_assert(run_until(loop, is_ready, pg, 5000));
    counter ctr = { 7, 0 };
    outcome o[7] = { 0 };
    for (int i = 0; i < 7; i++)
        o[i].ctr = &ctr;
    exec1(pg, "div", "2", &o[0]);
    exec1(pg, "div", "0", &o[1]);
    exec1(pg, "div", "5", &o[2]);
    exec1(pg, "ins", "1", &o[3]);
    exec1(pg, "ins", "1", &o[4]);
    exec1(pg, "ins", "2", &o[5]);
    exec1(pg, "cnt", "2", &o[6]);
    cr_assert(run_until(loop, counter_done, &ctr, 5000));

    cr_assert_eq(o[0].status, OT_PG_OK);
    cr_assert_str_eq(o[0].value, "5");
    cr_assert_eq(o[1].status, OT_PG_EQUERY);
    cr_assert_str_eq(o[1].sqlstate, "22012"); /* division_by_zero */
    cr_assert_eq(o[2].status, OT_PG_OK);
    cr_assert_str_eq(o[2].value, "2");
    cr_assert_eq(o[3].status, OT_PG_OK);
    cr_assert_eq(o[4].status, OT_PG_EQUERY);
    cr_assert_str_eq(o[4].sqlstate, "23505"); /* unique_violation */
    cr_assert_eq(o[5].status, OT_PG_OK);
    cr_assert_eq(o[6].status, OT_PG_OK);
    cr_assert_str_eq(o[6].value, "1", "insert after the failed one committed");
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.queries_err, 2);

    ot_pg_free(pg);
    ot_loop_free(loop);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", tbl);
    sync_exec(sc, sql);
    PQfinish(sc);
}

Test(pg, params_with_quotes_unicode_and_null_round_trip)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "echo", "SELECT $1::text", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    const char *cases[] = { "it's \"quoted\" \\ back'slash", "héllo wörld ✓ 日本 🚚", "", "'); DROP TABLE x; --" };
    enum { N = 4 };
    counter ctr = { N + 2, 0 };
    outcome o[N + 2] = { 0 };
    for (int i = 0; i < N; i++) {
        o[i].ctr = &ctr;
        /* A buffer that dies right after the call: the pool must have copied. */
        char buf[128];
        snprintf(buf, sizeof(buf), "%s", cases[i]);
        exec1(pg, "echo", buf, &o[i]);
        memset(buf, 'Z', sizeof(buf));
    }
    /* Explicit length over bytes that are not NUL-terminated. */
    char raw[6] = { 'a', 'b', 'c', 'd', 'e', 'f' };
    const char *vals[1] = { raw };
    int lens[1] = { 3 };
    o[N].ctr = &ctr;
    cr_assert_not_null(ot_pg_exec(pg, "echo", 1, vals, lens, on_result, &o[N]));
    o[N + 1].ctr = &ctr;
    exec1(pg, "echo", NULL, &o[N + 1]);
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(o[i].status, OT_PG_OK);
        cr_assert_str_eq(o[i].value, cases[i]);
    }
    cr_assert_str_eq(o[N].value, "abc");
    cr_assert_eq(o[N + 1].status, OT_PG_OK);
    cr_assert(o[N + 1].isnull);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

/* ---- unavailability ---- */

static void check_unavailable(const char *conninfo)
{
    ot_pg_config cfg;
    ot_pg_config_default(&cfg);
    cfg.conninfo = conninfo;
    cfg.connect_timeout_ms = 300;
    cfg.backoff_min_ms = 20;
    cfg.backoff_max_ms = 100;
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "one", "SELECT 1::text", 0, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert_not_null(pg);
    counter ctr = { 1, 0 };
    outcome o = { .ctr = &ctr };
    uint64_t t0 = ot_now_us();
    cr_assert_not_null(ot_pg_exec(pg, "one", 0, NULL, NULL, on_result, &o));
    cr_assert(!o.called);
    cr_assert(run_until(loop, counter_done, &ctr, 3000));
    uint64_t waited_ms = (ot_now_us() - t0) / 1000;
    cr_assert_eq(o.status, OT_PG_EUNAVAIL);
    /* Queued while the first connects were tried: fails at connect_timeout. */
    cr_assert(waited_ms >= 250 && waited_ms < 1500, "waited %llu ms", (unsigned long long)waited_ms);
    cr_assert(!ot_pg_ready(pg));

    /* Known down for longer than connect_timeout: fails at once (next round). */
    outcome o2 = { .ctr = &ctr };
    ctr.target = 2;
    t0 = ot_now_us();
    cr_assert_not_null(ot_pg_exec(pg, "one", 0, NULL, NULL, on_result, &o2));
    cr_assert(!o2.called, "callback ran inside ot_pg_exec");
    cr_assert(run_until(loop, counter_done, &ctr, 3000));
    cr_assert_eq(o2.status, OT_PG_EUNAVAIL);
    cr_assert((ot_now_us() - t0) / 1000 < 100);
    run_for(loop, 200); /* a few reconnect rounds: no crash, no leak */
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.conns_up, 0);
    cr_assert_eq(st.queries_err, 2);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg, nothing_listening_gives_eunavail_after_connect_timeout)
{
    check_unavailable("host=127.0.0.1 port=1 user=postgres dbname=test");
}

Test(pg, bad_conninfo_gives_eunavail_without_crash)
{
    check_unavailable("this is = not a conninfo");
}

Test(pg, pending_queue_limit_gives_efull)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.max_pending = 3;
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "echo", "SELECT $1::text", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    counter ctr = { 5, 0 };
    outcome o[5] = { 0 };
    for (int i = 0; i < 5; i++) {
        o[i].ctr = &ctr;
        exec1(pg, "echo", "x", &o[i]); /* in one round: nothing sent yet */
    }
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(o[i].status, OT_PG_OK, "query %d", i);
    cr_assert_eq(o[3].status, OT_PG_EFULL);
    cr_assert_eq(o[4].status, OT_PG_EFULL);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg, query_waiting_behind_full_pipelines_times_out_unsent)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.pool_size = 1;
    cfg.max_pipeline = 1;
    cfg.connect_timeout_ms = 300;
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "slp", "SELECT pg_sleep($1::float8)::text", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert(run_until(loop, is_ready, pg, 5000));
    counter ctr = { 1, 0 };
    outcome busy = { 0 }, waiting = { .ctr = &ctr };
    exec1(pg, "slp", "1", &busy);
    exec1(pg, "slp", "0", &waiting);
    uint64_t t0 = ot_now_us();
    cr_assert(run_until(loop, counter_done, &ctr, 3000));
    uint64_t waited_ms = (ot_now_us() - t0) / 1000;
    cr_assert_eq(waiting.status, OT_PG_ETIMEOUT);
    cr_assert(waited_ms >= 250 && waited_ms < 900, "waited %llu ms", (unsigned long long)waited_ms);
    cr_assert(!busy.called);
    busy.ctr = &ctr;
    ctr.target = 2;
    cr_assert(run_until(loop, counter_done, &ctr, 3000));
    cr_assert_eq(busy.status, OT_PG_OK, "the query in flight is unaffected");
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg, query_timeout_fails_query_and_resets_connection)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.pool_size = 1;
    cfg.query_timeout_ms = 200;
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "slp", "SELECT pg_sleep($1::float8)::text", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert(run_until(loop, is_ready, pg, 5000));
    counter ctr = { 1, 0 };
    outcome o = { .ctr = &ctr };
    exec1(pg, "slp", "3", &o);
    cr_assert(run_until(loop, counter_done, &ctr, 2000));
    cr_assert_eq(o.status, OT_PG_ETIMEOUT);
    outcome o2 = { .ctr = &ctr };
    ctr.target = 2;
    exec1(pg, "slp", "0", &o2);
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    cr_assert_eq(o2.status, OT_PG_OK, "the pool recovers after the reset");
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg, terminated_backends_fail_in_flight_then_pool_recovers)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.pool_size = 2;
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "slp", "SELECT pg_sleep($1::float8)::text", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert(run_until(loop, all_up, pg, 5000));
    counter ctr = { 4, 0 };
    outcome o[4] = { 0 };
    for (int i = 0; i < 4; i++) {
        o[i].ctr = &ctr;
        exec1(pg, "slp", "5", &o[i]);
    }
    run_for(loop, 200); /* sent and running */
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.in_flight, 4);
    PGconn *sc = sync_conn();
    cr_assert_eq(terminate_app(sc), 2);
    cr_assert(run_until(loop, counter_done, &ctr, 3000), "in-flight queries not failed");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(o[i].status, OT_PG_EUNAVAIL, "query %d", i);

    /* Queued while reconnecting (within connect_timeout), then served. */
    outcome ok = { .ctr = &ctr };
    ctr.target = 5;
    exec1(pg, "slp", "0", &ok);
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    cr_assert_eq(ok.status, OT_PG_OK);
    cr_assert(run_until(loop, all_up, pg, 5000));

    /* Idle connections killed: noticed and replaced without any query. */
    cr_assert_eq(terminate_app(sc), 2);
    run_for(loop, 100);
    cr_assert(run_until(loop, all_up, pg, 5000), "pool did not reconnect");
    outcome ok2 = { .ctr = &ctr };
    ctr.target = 6;
    exec1(pg, "slp", "0", &ok2);
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    cr_assert_eq(ok2.status, OT_PG_OK);
    PQfinish(sc);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

/* ---- cancel ---- */

Test(pg, cancelled_query_callback_never_runs)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.pool_size = 1;
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "slp", "SELECT pg_sleep($1::float8)::text", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert(run_until(loop, is_ready, pg, 5000));
    counter ctr = { 1, 0 };
    outcome pend = { 0 }, infl = { 0 }, last = { .ctr = &ctr };
    ot_pg_cancel(exec1(pg, "slp", "0", &pend)); /* still queued */
    ot_pg_query *q = exec1(pg, "slp", "0.2", &infl);
    exec1(pg, "slp", "0", &last);
    ot_loop_run_once(loop, 0); /* now in flight */
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.in_flight, 2);
    ot_pg_cancel(q);
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    run_for(loop, 50);
    cr_assert(!pend.called);
    cr_assert(!infl.called);
    cr_assert_eq(last.status, OT_PG_OK);
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.in_flight, 0);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg, free_with_queries_outstanding_calls_nothing_and_leaks_nothing)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "slp", "SELECT pg_sleep($1::float8)::text", 1, false } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert(run_until(loop, is_ready, pg, 5000));
    outcome o[3] = { 0 };
    exec1(pg, "slp", "1", &o[0]);
    ot_loop_run_once(loop, 0);
    exec1(pg, "slp", "1", &o[1]);
    ot_pg_free(pg);
    run_for(loop, 50);
    cr_assert(!o[0].called && !o[1].called);
    ot_loop_free(loop);
}

/* ---- LISTEN ---- */

typedef struct {
    int ups, downs, notes;
    char payload[256];
    size_t len;
    char channel[64];
} lis_state;

static void on_note(void *data, const char *channel, const char *payload, size_t len)
{
    lis_state *s = data;
    s->notes++;
    snprintf(s->channel, sizeof(s->channel), "%s", channel);
    cr_assert(len < sizeof(s->payload));
    memcpy(s->payload, payload, len);
    s->payload[len] = '\0';
    s->len = len;
}

static void on_lstate(void *data, bool up)
{
    lis_state *s = data;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static bool ups1(void *a) { return ((lis_state *)a)->ups >= 1; }
static bool ups2(void *a) { return ((lis_state *)a)->ups >= 2; }
static bool notes1(void *a) { return ((lis_state *)a)->notes >= 1; }
static bool notes2(void *a) { return ((lis_state *)a)->notes >= 2; }

static void notify(PGconn *c, const char *chan, const char *payload)
{
    const char *v[2] = { chan, payload };
    PGresult *r = PQexecParams(c, "SELECT pg_notify($1, $2)", 2, NULL, v, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    PQclear(r);
}

Test(pg, listener_receives_notify_and_relistens_after_backend_killed)
{
    char dsn[256], chan[64];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    snprintf(chan, sizeof(chan), "Chan %s", app); /* mixed case + space: must be quoted */
    ot_loop *loop = ot_loop_new(1024);
    lis_state s = { 0 };
    ot_pg_listener *l = ot_pg_listen(loop, &cfg, chan, on_note, on_lstate, &s);
    cr_assert_not_null(l);
    cr_assert(run_until(loop, ups1, &s, 5000), "LISTEN never confirmed");
    cr_assert(ot_pg_listener_up(l));

    PGconn *sc = sync_conn();
    const char *p1 = "first 'payload' ü ✓";
    notify(sc, chan, p1);
    cr_assert(run_until(loop, notes1, &s, 3000), "notify not received");
    cr_assert_str_eq(s.channel, chan);
    cr_assert_str_eq(s.payload, p1);
    cr_assert_eq(s.len, strlen(p1));

    cr_assert_eq(terminate_app(sc), 1);
    cr_assert(run_until(loop, ups2, &s, 5000), "listener did not come back");
    cr_assert_eq(s.downs, 1, "state_cb(false) before the second state_cb(true)");
    notify(sc, chan, "second");
    cr_assert(run_until(loop, notes2, &s, 3000), "notify after reconnect not received");
    cr_assert_str_eq(s.payload, "second");
    PQfinish(sc);
    ot_pg_listener_free(l);
    ot_loop_free(loop);
}

/* ---- read-only queries share a Sync ---- */

/* One completed query: status, two text columns (a value and now(), which
 * names the implicit transaction the query ran in) and when it completed. */
typedef struct {
    counter *ctr;
    int status, seq;
    bool called;
    char sqlstate[6];
    char value[64], xact[64];
} rec2;
static int rec2_seq;

static void on_rec2(void *data, int status, PGresult *res)
{
    rec2 *o = data;
    cr_assert(!o->called, "callback ran twice");
    o->called = true;
    o->status = status;
    o->seq = ++rec2_seq;
    if (status == OT_PG_OK && PQntuples(res) == 1 && PQnfields(res) == 2) {
        snprintf(o->value, sizeof(o->value), "%s", PQgetvalue(res, 0, 0));
        snprintf(o->xact, sizeof(o->xact), "%s", PQgetvalue(res, 0, 1));
    } else if (status == OT_PG_EQUERY) {
        const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(o->sqlstate, sizeof(o->sqlstate), "%s", s ? s : "");
    }
    if (o->ctr)
        o->ctr->done++;
}

static ot_pg_query *exec2(ot_pg *pg, const char *stmt, const char *v, rec2 *o, counter *ctr)
{
    const char *vals[1] = { v };
    o->ctr = ctr;
    ot_pg_query *q = ot_pg_exec(pg, stmt, v ? 1 : 0, vals, NULL, on_rec2, o);
    cr_assert_not_null(q);
    return q;
}

static ot_pg *one_conn_pool(ot_loop *loop, const ot_pg_stmt *stmts, size_t n, char *dsn, size_t cap)
{
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, cap);
    cfg.pool_size = 1; /* everything queued in one round goes to one pipeline */
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, n);
    cr_assert(run_until(loop, is_ready, pg, 5000), "pool did not come up");
    return pg;
}

Test(pg_group, reads_queued_together_share_one_transaction_and_complete_in_order)
{
    char dsn[256];
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "echo", "SELECT $1::text, now()::text", 1, true } };
    ot_pg *pg = one_conn_pool(loop, stmts, 1, dsn, sizeof(dsn));
    enum { N = 10 };
    counter ctr = { N, 0 };
    rec2 o[N] = { 0 };
    rec2_seq = 0;
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%d", i);
        exec2(pg, "echo", v, &o[i], &ctr);
    }
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%d", i);
        cr_assert_eq(o[i].status, OT_PG_OK, "query %d", i);
        cr_assert_str_eq(o[i].value, v);
        cr_assert_eq(o[i].seq, i + 1, "query %d completed %d-th", i, o[i].seq);
        /* now() is the start of the implicit transaction: one Sync, one transaction. */
        cr_assert_str_eq(o[i].xact, o[0].xact, "query %d ran in another transaction", i);
    }
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg_group, error_in_a_group_fails_only_that_read_and_reruns_the_aborted_ones)
{
    char dsn[256];
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "rdiv", "SELECT (10 / $1::int)::text, now()::text", 1, true } };
    ot_pg *pg = one_conn_pool(loop, stmts, 1, dsn, sizeof(dsn));
    const char *in[] = { "2", "0", "5", "1", "10", "3" };
    const char *want[] = { "5", NULL, "2", "10", "1", NULL };
    enum { N = 6 };
    counter ctr = { N - 1, 0 };
    rec2 o[N] = { 0 };
    ot_pg_query *q[N];
    rec2_seq = 0;
    for (int i = 0; i < N; i++)
        q[i] = exec2(pg, "rdiv", in[i], &o[i], &ctr);
    ot_loop_run_once(loop, 0); /* all six sent as one group */
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.in_flight, N);
    ot_pg_cancel(q[N - 1]); /* aborted too: must be dropped, not re-run */
    cr_assert(run_until(loop, counter_done, &ctr, 5000));
    run_for(loop, 50);

    cr_assert_eq(o[1].status, OT_PG_EQUERY);
    cr_assert_str_eq(o[1].sqlstate, "22012"); /* division_by_zero */
    for (int i = 0; i < N - 1; i++) {
        if (!want[i])
            continue;
        cr_assert_eq(o[i].status, OT_PG_OK, "query %d: status %d", i, o[i].status);
        cr_assert_str_eq(o[i].value, want[i], "query %d", i);
    }
    cr_assert(!o[N - 1].called, "cancelled query called back");
    /* The one before the error completed with it; the aborted ones later, in
     * their order, in a transaction of their own. */
    for (int i = 1; i < N - 1; i++)
        cr_assert_lt(o[i - 1].seq, o[i].seq, "query %d completed before %d", i, i - 1);
    cr_assert_str_neq(o[2].xact, o[0].xact);
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.queries_err, 1, "only the failing read is an error");
    cr_assert_eq(st.queries_ok, 4);
    cr_assert_eq(st.queries_retried, 3, "the three aborted live reads were re-run");
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.queued, 0);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg_group, group_size_is_capped_at_64)
{
    char dsn[256];
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "echo", "SELECT $1::text, now()::text", 1, true } };
    ot_pg *pg = one_conn_pool(loop, stmts, 1, dsn, sizeof(dsn));
    enum { N = 200 };
    static rec2 o[N];
    memset(o, 0, sizeof(o));
    counter ctr = { N, 0 };
    for (int i = 0; i < N; i++)
        exec2(pg, "echo", "x", &o[i], &ctr);
    cr_assert(run_until(loop, counter_done, &ctr, 10000));
    /* Group sizes: runs of equal now() (one transaction per Sync). */
    int groups = 0, biggest = 0, run = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(o[i].status, OT_PG_OK, "query %d", i);
        if (i > 0 && strcmp(o[i].xact, o[i - 1].xact) == 0) {
            run++;
        } else {
            groups++;
            run = 1;
        }
        if (run > biggest)
            biggest = run;
    }
    cr_assert_eq(biggest, 64, "largest group %d", biggest);
    cr_assert_geq(groups, (N + 63) / 64);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

Test(pg_group, write_between_reads_commits_at_its_own_sync)
{
    char dsn[256], tbl[64], ins[160], cnt[160], sql[200];
    ot_loop *loop = ot_loop_new(1024);
    make_cfg(&(ot_pg_config){ 0 }, dsn, sizeof(dsn)); /* sets app for the table name */
    snprintf(tbl, sizeof(tbl), "ot_pg_g_%s", app);
    snprintf(ins, sizeof(ins), "INSERT INTO %s(id) VALUES ($1::int) RETURNING id::text, now()::text", tbl);
    snprintf(cnt, sizeof(cnt), "SELECT count(*)::text, now()::text FROM %s", tbl);
    PGconn *sc = sync_conn();
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int PRIMARY KEY)", tbl);
    sync_exec(sc, sql);
    const ot_pg_stmt stmts[] = {
        { "cnt", cnt, 0, true },
        { "ins", ins, 1, false }, /* a write */
        { "bad", "SELECT (1 / $1::int)::text, now()::text", 1, true },
    };
    ot_pg *pg = one_conn_pool(loop, stmts, 3, dsn, sizeof(dsn));
    enum { N = 8 };
    counter ctr = { N, 0 };
    rec2 o[N] = { 0 };
    rec2_seq = 0;
    exec2(pg, "cnt", NULL, &o[0], &ctr);
    exec2(pg, "cnt", NULL, &o[1], &ctr);
    exec2(pg, "ins", "1", &o[2], &ctr);
    exec2(pg, "cnt", NULL, &o[3], &ctr);
    exec2(pg, "bad", "0", &o[4], &ctr);
    exec2(pg, "cnt", NULL, &o[5], &ctr); /* aborted by o[4], re-run */
    exec2(pg, "ins", "1", &o[6], &ctr);  /* duplicate: fails alone */
    exec2(pg, "cnt", NULL, &o[7], &ctr);
    cr_assert(run_until(loop, counter_done, &ctr, 5000));

    cr_assert_eq(o[0].status, OT_PG_OK);
    cr_assert_str_eq(o[0].value, "0");
    cr_assert_str_eq(o[1].value, "0");
    cr_assert_str_eq(o[1].xact, o[0].xact, "reads before the write share a Sync");
    cr_assert_eq(o[2].status, OT_PG_OK);
    cr_assert_str_eq(o[2].value, "1");
    cr_assert_str_neq(o[2].xact, o[1].xact, "the write is not in the reads' transaction");
    cr_assert_lt(o[1].seq, o[2].seq);
    cr_assert_lt(o[2].seq, o[3].seq, "the write completes at its own Sync, before later reads");
    cr_assert_eq(o[3].status, OT_PG_OK);
    cr_assert_str_eq(o[3].value, "1", "a read sent after the write sees it committed");
    cr_assert_str_neq(o[3].xact, o[2].xact);
    cr_assert_eq(o[4].status, OT_PG_EQUERY);
    cr_assert_str_eq(o[4].sqlstate, "22012");
    cr_assert_eq(o[5].status, OT_PG_OK);
    cr_assert_str_eq(o[5].value, "1");
    cr_assert_eq(o[6].status, OT_PG_EQUERY);
    cr_assert_str_eq(o[6].sqlstate, "23505");
    cr_assert_eq(o[7].status, OT_PG_OK);
    cr_assert_str_eq(o[7].value, "1", "the failed read did not undo the committed write");
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.queries_err, 2);
    cr_assert_eq(st.queries_retried, 1);

    ot_pg_free(pg);
    ot_loop_free(loop);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", tbl);
    sync_exec(sc, sql);
    PQfinish(sc);
}

static bool four_in_flight(void *arg)
{
    ot_pg_stats st;
    ot_pg_get_stats(arg, &st);
    return st.in_flight == 4;
}

Test(pg_group, reads_in_flight_on_a_lost_connection_are_rerun_once)
{
    char dsn[256];
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.pool_size = 2;
    ot_loop *loop = ot_loop_new(1024);
    const ot_pg_stmt stmts[] = { { "rslp", "SELECT pg_sleep($1::float8)::text, now()::text", 1, true } };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 1);
    cr_assert(run_until(loop, all_up, pg, 5000));
    PGconn *sc = sync_conn();

    /* First loss: re-run on the new connections, and they succeed. */
    counter ctr = { 4, 0 };
    rec2 o[4] = { 0 };
    for (int i = 0; i < 4; i++)
        exec2(pg, "rslp", "0.3", &o[i], &ctr);
    run_for(loop, 100); /* sent and running */
    cr_assert(four_in_flight(pg));
    cr_assert_eq(terminate_app(sc), 2);
    cr_assert(run_until(loop, counter_done, &ctr, 5000), "re-run reads did not complete");
    for (int i = 0; i < 4; i++)
        cr_assert_eq(o[i].status, OT_PG_OK, "query %d: %d", i, o[i].status);
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    /* At least once each (more if one was re-sent to the sibling dying too). */
    cr_assert_geq(st.queries_retried, 4);
    cr_assert_eq(st.queries_err, 0);

    /* Lost again on a connection made after the first loss: EUNAVAIL. */
    cr_assert(run_until(loop, all_up, pg, 5000));
    counter ctr2 = { 4, 0 };
    rec2 p[4] = { 0 };
    for (int i = 0; i < 4; i++)
        exec2(pg, "rslp", "5", &p[i], &ctr2);
    run_for(loop, 100);
    cr_assert(four_in_flight(pg));
    cr_assert_eq(terminate_app(sc), 2);
    run_for(loop, 100);
    bool resent = run_until(loop, four_in_flight, pg, 5000);
    ot_pg_get_stats(pg, &st);
    cr_assert(resent, "reads not re-sent after the first loss: up %d in flight %zu queued %zu done %d", st.conns_up,
              st.in_flight, st.queued, ctr2.done);
    run_for(loop, 100);
    cr_assert_geq(terminate_app(sc), 1);
    cr_assert(run_until(loop, counter_done, &ctr2, 5000));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(p[i].status, OT_PG_EUNAVAIL, "query %d: %d", i, p[i].status);
    PQfinish(sc);
    ot_pg_free(pg);
    ot_loop_free(loop);
}

/* ---- ot_pg_exec_next: a statement right behind its write ---- */

Test(pg_next, follows_its_write_on_the_same_connection_and_sees_it_committed)
{
    char dsn[256], tbl[64], ins[200], see[240], sql[200];
    ot_loop *loop = ot_loop_new(1024);
    ot_pg_config cfg;
    make_cfg(&cfg, dsn, sizeof(dsn));
    cfg.pool_size = 3; /* a follower on any other connection could run before the commit */
    snprintf(tbl, sizeof(tbl), "ot_pg_n_%s", app);
    snprintf(ins, sizeof(ins), "INSERT INTO %s(id) SELECT $1::int FROM pg_sleep(0.002) "
             "RETURNING pg_backend_pid()::text, now()::text", tbl);
    snprintf(see, sizeof(see), "SELECT (SELECT count(*) FROM %s WHERE id = $1::int)::text || ':' || pg_backend_pid(), "
             "now()::text", tbl);
    PGconn *sc = sync_conn();
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int PRIMARY KEY)", tbl);
    sync_exec(sc, sql);
    const ot_pg_stmt stmts[] = {
        { "ins", ins, 1, false },
        { "see", see, 1, false },
        { "cnt", "SELECT '0', now()::text", 0, true },
    };
    ot_pg *pg = ot_pg_new(loop, &cfg, stmts, 3);
    cr_assert(run_until(loop, is_ready, pg, 5000), "pool did not come up");
    enum { N = 30 };
    counter ctr = { 2 * N, 0 };
    rec2 w[N] = { 0 }, f[N] = { 0 };
    rec2_seq = 0;
    for (int i = 0; i < N; i++) {
        char id[16], vid[16];
        snprintf(id, sizeof(id), "%d", i + 1);
        snprintf(vid, sizeof(vid), "%d", i + 1);
        ot_pg_query *q = exec2(pg, "ins", id, &w[i], &ctr);
        const char *vals[1] = { vid };
        f[i].ctr = &ctr;
        cr_assert_not_null(ot_pg_exec_next(q, "see", 1, vals, NULL, on_rec2, &f[i]));
    }
    cr_assert(run_until(loop, counter_done, &ctr, 10000));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(w[i].status, OT_PG_OK, "write %d: %d", i, w[i].status);
        cr_assert_eq(f[i].status, OT_PG_OK, "follower %d: %d", i, f[i].status);
        char want[80];
        snprintf(want, sizeof(want), "1:%s", w[i].value);
        cr_assert_str_eq(f[i].value, want, "follower %d: the write committed, on its connection", i);
        cr_assert_str_neq(f[i].xact, w[i].xact, "a transaction of its own");
        cr_assert_gt(f[i].seq, w[i].seq);
    }

    /* Refused: behind a read, behind a write that is not the last queued,
     * behind one already sent. Nothing is queued then. */
    counter c2 = { 3, 0 };
    rec2 r = { 0 }, a = { 0 }, b = { 0 };
    const char *v1[1] = { "1" };
    ot_pg_query *rq = exec2(pg, "cnt", NULL, &r, &c2);
    cr_assert_null(ot_pg_exec_next(rq, "see", 1, v1, NULL, on_rec2, &(rec2){ 0 }));
    ot_pg_query *qa = exec2(pg, "ins", "1001", &a, &c2);
    ot_pg_query *qb = exec2(pg, "ins", "1002", &b, &c2);
    cr_assert_null(ot_pg_exec_next(qa, "see", 1, v1, NULL, on_rec2, &(rec2){ 0 }));
    cr_assert(run_until(loop, counter_done, &c2, 5000));
    (void)qb;
    ot_pg_stats st;
    ot_pg_get_stats(pg, &st);
    cr_assert_eq(st.in_flight + st.queued, 0, "a refused follower was queued");

    ot_pg_free(pg);
    ot_loop_free(loop);
    snprintf(sql, sizeof(sql), "DROP TABLE %s", tbl);
    sync_exec(sc, sql);
    PQfinish(sc);
}
