/* Event sinks (app/sink.h) on a real loop with a model store: live delivery,
 * holding for a full sink, fallback to replay past the bound, durable cursors
 * (load, coalesced saves), removal from inside deliver, and a randomized
 * property test (reader steps, rollbacks, full sinks, failed and reordered
 * store requests, crashes) checked for: every run of a sink delivers exactly
 * the committed seqs above its starting cursor, in order, with no gap. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/app/sink.h"
#include "rng.h"

/* ------------------------------------------------------------------ the model store */

#define MAXSEQ 4096
enum { R_FETCH, R_LOAD, R_SAVE };

typedef struct req {
    int kind;
    ot_sink *s;
    int64_t after, before, seq;
    size_t limit;
    bool cancelled, done;
} req;

static struct {
    bool committed[MAXSEQ];
    int64_t watermark; /* the reader's: seqs below it are final */
    bool have_cursor;
    int64_t cursor;
    req *reqs[1024];
    int nreqs;
    bool fail_next;
    int fetches, saves;
} db;

static void *new_req(int kind, ot_sink *s)
{
    cr_assert_lt(db.nreqs, 1024);
    req *r = calloc(1, sizeof(*r));
    r->kind = kind;
    r->s = s;
    db.reqs[db.nreqs++] = r;
    return r;
}

static void *m_fetch(void *ctx, ot_sink *s, int64_t after, int64_t before, size_t limit)
{
    /* Only final rows may be asked for: the replay reads below the watermark. */
    cr_assert_leq(before, db.watermark, "replay asked for %lld, watermark %lld", (long long)before,
                  (long long)db.watermark);
    req *r = new_req(R_FETCH, s);
    r->after = after;
    r->before = before;
    r->limit = limit;
    db.fetches++;
    return r;
}

static void *m_load(void *ctx, ot_sink *s, const char *name) { return new_req(R_LOAD, s); }

static void *m_save(void *ctx, ot_sink *s, const char *name, int64_t seq)
{
    req *r = new_req(R_SAVE, s);
    r->seq = seq;
    db.saves++;
    return r;
}

static void m_cancel(void *ctx, void *rq) { ((req *)rq)->cancelled = true; }

static const ot_sink_store model = { .fetch = m_fetch, .load = m_load, .save = m_save, .cancel = m_cancel };

static char jsons[MAXSEQ][96];
static ot_event make_ev(int64_t seq)
{
    int n = snprintf(jsons[seq], sizeof jsons[seq], "{\"seq\":%lld,\"version\":1,\"orderId\":\"o%lld\",\"type\":\"t\"}",
                     (long long)seq, (long long)seq);
    ot_event ev;
    cr_assert_eq(ot_event_parse(ot_str_make(jsons[seq], (size_t)n), &ev), 0);
    return ev;
}

/* Completes request i (removing it); fail: report an error instead. */
static void complete(int i, bool fail)
{
    req *r = db.reqs[i];
    memmove(&db.reqs[i], &db.reqs[i + 1], (size_t)(db.nreqs - i - 1) * sizeof(req *));
    db.nreqs--;
    if (r->cancelled) {
        free(r);
        return;
    }
    if (r->kind == R_FETCH) {
        static ot_event evs[MAXSEQ];
        size_t n = 0;
        int64_t q = r->after + 1;
        for (; q < r->before && n < r->limit; q++)
            if (db.committed[q])
                evs[n++] = make_ev(q);
        ot_sink_fetched(r->s, !fail, fail ? NULL : evs, fail ? 0 : n, n < r->limit);
    } else if (r->kind == R_LOAD) {
        ot_sink_loaded(r->s, !fail, db.have_cursor, db.cursor);
    } else {
        if (!fail) {
            db.have_cursor = true;
            if (r->seq > db.cursor)
                db.cursor = r->seq;
        }
        ot_sink_saved(r->s, !fail);
    }
    free(r);
}

static void complete_all(void)
{
    while (db.nreqs > 0)
        complete(0, false);
}

/* ------------------------------------------------------------------ a test sink */

typedef struct {
    int64_t got[4 * MAXSEQ];
    int n;
    size_t room;     /* events it takes before saying full; SIZE_MAX: always */
    bool wants_wake; /* said full */
    bool remove_at_next;
    ot_sink *self;
    int fetches_at_deliver; /* db.fetches when deliver was last called */
} tsink;

static size_t t_deliver(void *data, const ot_event *evs, size_t n)
{
    tsink *t = data;
    if (t->remove_at_next) {
        ot_sink_remove(t->self);
        return 0;
    }
    t->fetches_at_deliver = db.fetches;
    size_t k = n < t->room ? n : t->room;
    for (size_t i = 0; i < k; i++) {
        if (t->n > 0)
            cr_assert_gt(evs[i].seq, t->got[t->n - 1], "out of order: %lld after %lld", (long long)evs[i].seq,
                         (long long)t->got[t->n - 1]);
        t->got[t->n++] = evs[i].seq;
    }
    if (t->room != SIZE_MAX)
        t->room -= k;
    if (k < n)
        t->wants_wake = true;
    return k;
}

static const ot_sink_ops tops = { .deliver = t_deliver };

static ot_loop *loop;
static ot_sinks g;

static void setup(void)
{
    memset(&db, 0, sizeof db);
    loop = ot_loop_new(64);
    ot_sink_limits lim = { .max_events = 8, .max_bytes = 1 << 20, .page = 4, .retry_ms = 1 };
    ot_sinks_init(&g, loop, &model, &lim);
}

static void teardown(void)
{
    ot_sinks_free(&g);
    for (int i = 0; i < db.nreqs; i++)
        free(db.reqs[i]);
    ot_loop_free(loop);
}

/* The reader: seq becomes final (committed and fed, or rolled back). */
static void step(int64_t seq, bool commit)
{
    db.committed[seq] = commit;
    db.watermark = seq + 1;
    if (commit) {
        ot_event ev = make_ev(seq);
        ot_sinks_feed(&g, &ev);
    } else {
        ot_sinks_advance(&g, seq + 1);
    }
}

static void spin(int n)
{
    for (int i = 0; i < n; i++)
        ot_loop_run_once(loop, i == 0 ? 0 : 2);
}

static void wake(tsink *t, size_t room)
{
    t->room = room;
    t->wants_wake = false;
    ot_sink_wake(t->self);
    spin(1);
}

TestSuite(sink, .init = setup, .fini = teardown);

/* ------------------------------------------------------------------ examples */

Test(sink, a_live_sink_gets_every_event_in_order_from_the_reader_position)
{
    db.watermark = 10;
    ot_sinks_advance(&g, 10); /* the reader started at 10 */
    tsink t = { .room = SIZE_MAX };
    t.self = ot_sinks_add(&g, "hub", &tops, &t, false);
    cr_assert(ot_sink_live(t.self));
    cr_assert_eq(ot_sink_position(t.self), 9);
    step(10, true);
    step(11, false);
    step(12, true);
    cr_assert_eq(t.n, 2);
    cr_assert_eq(t.got[0], 10);
    cr_assert_eq(t.got[1], 12);
    cr_assert_eq(db.nreqs, 0, "a live sink reads nothing from the database");
}

Test(sink, a_full_sink_holds_events_until_it_wakes)
{
    db.watermark = 1;
    ot_sinks_advance(&g, 1);
    tsink t = { .room = 1 };
    t.self = ot_sinks_add(&g, "slow", &tops, &t, false);
    for (int64_t q = 1; q <= 5; q++)
        step(q, true);
    cr_assert_eq(t.n, 1);
    cr_assert(t.wants_wake);
    wake(&t, 2);
    cr_assert_eq(t.n, 3);
    wake(&t, SIZE_MAX);
    cr_assert_eq(t.n, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(t.got[i], i + 1);
    cr_assert(ot_sink_live(t.self));
    cr_assert_eq(db.nreqs, 0);
}

Test(sink, past_its_buffer_a_sink_replays_from_the_store_and_comes_back_live)
{
    db.watermark = 1;
    ot_sinks_advance(&g, 1);
    tsink t = { .room = 0 };
    t.self = ot_sinks_add(&g, "slow", &tops, &t, false);
    for (int64_t q = 1; q <= 20; q++)
        step(q, q % 3 != 0); /* every third rolled back */
    cr_assert_not(ot_sink_live(t.self), "8 held at most, then replay");
    cr_assert_eq(db.nreqs, 0, "no read while it is full");
    wake(&t, SIZE_MAX);
    /* Pages of 4 below the watermark, then live. */
    while (db.nreqs > 0) {
        complete(0, false);
        spin(1);
    }
    cr_assert(ot_sink_live(t.self));
    int k = 0;
    for (int64_t q = 1; q <= 20; q++)
        if (q % 3 != 0)
            cr_assert_eq(t.got[k++], q);
    cr_assert_eq(t.n, k);
    step(21, true);
    cr_assert_eq(t.got[t.n - 1], 21);
}

Test(sink, a_durable_sink_resumes_above_its_stored_cursor_and_ignores_live_events_while_replaying)
{
    for (int64_t q = 1; q <= 30; q++)
        db.committed[q] = true;
    db.watermark = 31;
    ot_sinks_advance(&g, 31);
    db.have_cursor = true;
    db.cursor = 17;
    tsink t = { .room = SIZE_MAX };
    t.self = ot_sinks_add(&g, "relay", &tops, &t, true);
    cr_assert_not(ot_sink_live(t.self));
    step(31, true); /* while loading: read later from the store */
    cr_assert_eq(t.n, 0);
    complete_all();     /* the load, then the first page */
    while (db.nreqs > 0) {
        step(db.watermark, true); /* live events keep coming during the replay */
        complete(0, false);
    }
    cr_assert(ot_sink_live(t.self));
    cr_assert_eq(t.got[0], 18);
    for (int i = 0; i < t.n; i++)
        cr_assert_eq(t.got[i], 18 + i);
    cr_assert_eq(t.got[t.n - 1], db.watermark - 1);
}

Test(sink, a_durable_sink_without_a_row_starts_at_the_beginning)
{
    for (int64_t q = 1; q <= 6; q++)
        db.committed[q] = true;
    db.watermark = 7;
    ot_sinks_advance(&g, 7);
    tsink t = { .room = SIZE_MAX };
    t.self = ot_sinks_add(&g, "search", &tops, &t, true);
    complete_all();
    cr_assert_eq(t.n, 6);
    cr_assert_eq(t.got[0], 1);
}

Test(sink, replay_waits_for_the_reader_to_find_its_start)
{
    db.have_cursor = true;
    db.cursor = 3;
    tsink t = { .room = SIZE_MAX };
    t.self = ot_sinks_add(&g, "relay", &tops, &t, true);
    complete_all();
    cr_assert_eq(db.fetches, 0, "watermark 0: nothing is final yet");
    cr_assert_not(ot_sink_live(t.self));
    for (int64_t q = 1; q <= 5; q++)
        db.committed[q] = true;
    db.watermark = 6;
    ot_sinks_advance(&g, 6);
    complete_all();
    cr_assert(ot_sink_live(t.self));
    cr_assert_eq(t.n, 2);
    cr_assert_eq(t.got[0], 4);
}

/* The outbox 1..last committed (but every gap_every-th seq, rolled back), final. */
static void outbox(int64_t last, int gap_every)
{
    for (int64_t q = 1; q <= last; q++)
        db.committed[q] = !gap_every || q % gap_every != 0;
    db.watermark = last + 1;
    ot_sinks_advance(&g, last + 1);
}

/* Answers every request, in order, until none is left. */
static void drain(void)
{
    while (db.nreqs > 0) {
        complete(0, false);
        spin(1);
    }
}

static req *only_fetch(void)
{
    req *f = NULL;
    for (int i = 0; i < db.nreqs; i++)
        if (db.reqs[i]->kind == R_FETCH && !db.reqs[i]->cancelled) {
            cr_assert_null(f, "one page read at a time");
            f = db.reqs[i];
        }
    return f;
}

static int fetch_index(void)
{
    req *f = only_fetch();
    for (int i = 0; i < db.nreqs; i++)
        if (db.reqs[i] == f)
            return i;
    cr_assert_fail("no page read pending");
    return -1;
}

Test(sink, the_page_after_a_full_one_is_read_while_it_is_delivered)
{
    outbox(40, 5);
    tsink t = { .room = SIZE_MAX };
    t.self = ot_sinks_add(&g, "relay", &tops, &t, true);
    complete(0, false); /* the cursor: none */
    req *f = only_fetch();
    cr_assert_eq(f->after, 0);
    cr_assert_eq(f->before, 1 + 4 * 4, "a page spans at most 4 pages of seqs");
    complete(0, false); /* 1..4, full */
    cr_assert_eq(t.n, 4);
    cr_assert_eq(t.fetches_at_deliver, 2, "the next page was asked for before this one was delivered");
    f = only_fetch();
    cr_assert_eq(f->after, 4, "from the last row of the full page");
    drain();
    cr_assert(ot_sink_live(t.self));
    cr_assert_eq(t.n, 32);
    int k = 0;
    for (int64_t q = 1; q <= 40; q++)
        if (q % 5 != 0)
            cr_assert_eq(t.got[k++], q);
}

Test(sink, a_sink_that_takes_less_than_the_page_drops_the_read_ahead_and_reads_on_from_where_it_is)
{
    outbox(20, 0);
    tsink t = { .room = 2 };
    t.self = ot_sinks_add(&g, "relay", &tops, &t, true);
    complete(0, false);
    complete(0, false); /* 1..4 offered, 2 taken */
    cr_assert_eq(t.n, 2);
    cr_assert_null(only_fetch(), "the read-ahead from 4 is dropped: the sink is at 2 and full");
    wake(&t, SIZE_MAX);
    drain();
    cr_assert_eq(t.n, 20);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(t.got[i], i + 1);
}

Test(sink, after_stopping_mid_page_a_sink_reads_ahead_again_only_once_it_took_a_page_whole)
{
    outbox(40, 0);
    tsink t = { .room = 3 };
    t.self = ot_sinks_add(&g, "search", &tops, &t, true);
    complete(0, false);
    complete(0, false); /* 1..4 offered, 3 taken: read-ahead dropped */
    cr_assert_eq(t.n, 3);
    wake(&t, SIZE_MAX); /* 4 from the held remainder, then a read from 4 */
    req *f = only_fetch();
    cr_assert_eq(f->after, 4);
    int before = db.fetches;
    complete(fetch_index(), false); /* 5..8: taken whole, but the last page was not */
    cr_assert_eq(t.n, 8);
    cr_assert_eq(t.fetches_at_deliver, before, "no read-ahead right after a sink stopped mid-page");
    spin(1);
    f = only_fetch();
    cr_assert_eq(f->after, 8);
    before = db.fetches;
    complete(fetch_index(), false); /* 9..12, and the last page was taken whole: read ahead */
    cr_assert_eq(t.fetches_at_deliver, before + 1);
    drain();
    cr_assert_eq(t.n, 40);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(t.got[i], i + 1);
}

Test(sink, acks_are_coalesced_one_write_in_flight_and_only_move_forward)
{
    db.watermark = 1;
    ot_sinks_advance(&g, 1);
    tsink t = { .room = SIZE_MAX };
    t.self = ot_sinks_add(&g, "relay", &tops, &t, true);
    complete_all();
    ot_sink_ack(t.self, 5);
    ot_sink_ack(t.self, 6);
    ot_sink_ack(t.self, 4);
    ot_sink_ack(t.self, 9);
    cr_assert_eq(db.nreqs, 1, "one write in flight");
    cr_assert_eq(db.reqs[0]->seq, 5);
    complete(0, false);
    cr_assert_eq(db.nreqs, 1);
    cr_assert_eq(db.reqs[0]->seq, 9, "the rest coalesced into one");
    complete(0, true); /* fails: retried after retry_ms */
    cr_assert_eq(db.cursor, 5);
    spin(5);
    cr_assert_eq(db.nreqs, 1);
    complete(0, false);
    cr_assert_eq(db.cursor, 9);
    cr_assert_eq(db.saves, 3);
    cr_assert_eq(ot_sink_acked(t.self), 9);
}

Test(sink, a_sink_may_remove_itself_from_inside_deliver)
{
    db.watermark = 1;
    ot_sinks_advance(&g, 1);
    tsink t = { .room = SIZE_MAX, .remove_at_next = true };
    t.self = ot_sinks_add(&g, "x", &tops, &t, false);
    tsink u = { .room = SIZE_MAX };
    u.self = ot_sinks_add(&g, "y", &tops, &u, false);
    step(1, true);
    step(2, true);
    cr_assert_eq(u.n, 2, "the other sink is unaffected");
    cr_assert_eq(g.head, u.self);
}

Test(sink, names_are_checked)
{
    char longname[OT_SINK_NAME_MAX + 1];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    tsink t = { .room = SIZE_MAX };
    cr_assert_null(ot_sinks_add(&g, longname, &tops, &t, false));
    cr_assert_null(ot_sinks_add(&g, "", &tops, &t, false));
}

/* ------------------------------------------------------------------ the property */


/* One run of the durable sink: what it delivered and where it started. */
static tsink run;
static int64_t run_start;

static void check_run(void)
{
    int64_t q = run_start;
    for (int i = 0; i < run.n; i++) {
        do
            q++;
        while (q < MAXSEQ && !db.committed[q]);
        cr_assert_eq(run.got[i], q, "seed %llu: run from %lld delivered %lld where %lld was due",
                     (unsigned long long)rng, (long long)run_start, (long long)run.got[i], (long long)q);
    }
}

static void start_run(void)
{
    memset(&run, 0, sizeof run);
    run.room = rnd(2) ? SIZE_MAX : rnd(6);
    run_start = db.have_cursor ? db.cursor : 0;
    run.self = ot_sinks_add(&g, "relay", &tops, &run, true);
}

Test(sink, property_every_run_delivers_exactly_the_committed_seqs_above_its_cursor)
{
    for (uint64_t seed = 1; seed <= 300; seed++) {
        teardown();
        setup();
        rng = seed * 0x9E3779B97F4A7C15ull;
        int64_t next = 1 + rnd(5);
        db.watermark = next;
        for (int64_t q = 1; q < next; q++)
            db.committed[q] = rnd(4) != 0;
        if (rnd(2))
            ot_sinks_advance(&g, next);
        else
            db.watermark = 0;
        bool started = g.watermark > 0;
        start_run();
        int crashes = 0;
        for (int it = 0; it < 400; it++) {
            switch (rnd(10)) {
            case 0:
            case 1:
            case 2:
                if (!started) {
                    db.watermark = next;
                    ot_sinks_advance(&g, next);
                    started = true;
                } else if (next < MAXSEQ - 10) {
                    step(next++, rnd(5) != 0);
                }
                break;
            case 3:
            case 4:
                if (db.nreqs > 0)
                    complete((int)rnd((uint32_t)db.nreqs), rnd(8) == 0);
                break;
            case 5:
                if (run.wants_wake || rnd(3) == 0)
                    wake(&run, rnd(3) ? SIZE_MAX : rnd(6));
                break;
            case 6:
                if (run.n > 0)
                    ot_sink_ack(run.self, run.got[rnd((uint32_t)run.n)]);
                break;
            case 7:
                spin(1);
                break;
            case 8:
                if (rnd(6) == 0) { /* crash: unsaved acks and held events are lost */
                    check_run();
                    ot_sink_remove(run.self);
                    start_run();
                    crashes++;
                }
                break;
            default:
                break;
            }
        }
        /* Drain: the reader stops, the sink takes everything. */
        if (!started) {
            db.watermark = next;
            ot_sinks_advance(&g, next);
        }
        for (int i = 0; i < 200 && (!ot_sink_live(run.self) || run.wants_wake || db.nreqs); i++) {
            if (run.wants_wake || run.room != SIZE_MAX)
                wake(&run, SIZE_MAX);
            if (db.nreqs)
                complete(0, false);
            spin(2);
        }
        cr_assert(ot_sink_live(run.self), "seed %llu: never caught up (pos %lld, watermark %lld, reqs %d)",
                  (unsigned long long)seed, (long long)ot_sink_position(run.self), (long long)g.watermark, db.nreqs);
        check_run();
        int64_t last = 0;
        for (int64_t q = 1; q < next; q++)
            if (db.committed[q])
                last = q;
        if (last > run_start)
            cr_assert_eq(run.got[run.n - 1], last, "seed %llu: the last committed event was not delivered",
                         (unsigned long long)seed);
        cr_assert_leq(db.cursor, last);
        (void)crashes;
    }
}

/* ------------------------------------------------------------------ against the real PostgreSQL */
/* The event reader (events.c) with a durable sink on a real pool, in a fresh
 * migrated database: writers commit and roll back while the sink runs; the
 * reader and its sinks are torn down mid-stream (a crash: acks not yet
 * written are lost) and started again. The second run must begin right above
 * the stored cursor and deliver every committed event after it, in order. */

#include <unistd.h>

#include "ot/app/events.h"
#include "ot/cmd/migrate.h"

#define PG_ADMIN "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

static char pg_db[64], pg_url[160];

static PGconn *pg_sync(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

static void pg_do(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
              PQerrorMessage(c));
    PQclear(r);
}

static int64_t pg_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    int64_t v = PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static void pg_setup(void)
{
    snprintf(pg_db, sizeof pg_db, "ot_sink_%d", (int)getpid());
    snprintf(pg_url, sizeof pg_url, "postgresql://postgres@127.0.0.1:5432/%s", pg_db);
    PGconn *c = pg_sync(PG_ADMIN);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", pg_db);
    pg_do(c, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", pg_db);
    pg_do(c, sql);
    PQfinish(c);
    char *argv[] = { "migrate", "--database-url", pg_url, "--sql-dir", "sql", NULL };
    cr_assert_eq(ot_migrate_main(5, argv), 0, "migrations failed");
}

static void pg_teardown(void)
{
    PGconn *c = pg_sync(PG_ADMIN);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_db);
    pg_do(c, sql);
    PQfinish(c);
}

/* Every commit of the writer, as the database numbered it. */
static bool pg_committed[MAXSEQ];

/* rollbacks: only while no reader runs. A live reader proves a rolled-back
 * seq by the cluster-wide xmin, which any long transaction of another
 * database on this shared server holds back; replay (what this tests) sees
 * the gap as a plain missing row below the watermark. */
static void write_events(PGconn *c, int n, bool rollbacks)
{
    for (int i = 0; i < n; i++) {
        bool roll = rollbacks && i % 7 == 3;
        pg_do(c, "BEGIN");
        PGresult *r = PQexec(c, "INSERT INTO order_events (order_id, version, user_id, type, status, payload) "
                                "VALUES (gen_random_uuid(), 1, gen_random_uuid(), 'order.created', 'CREATED', "
                                "'{}') RETURNING seq");
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
        int64_t seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        cr_assert_lt(seq, MAXSEQ);
        pg_do(c, roll ? "ROLLBACK" : "COMMIT");
        pg_committed[seq] = !roll;
    }
}

typedef struct {
    int64_t got[MAXSEQ];
    int n, calls;
    int64_t acked;
    ot_sink *self;
} psink;

/* Acks every third batch only, so a crash leaves unacknowledged events. */
static size_t p_deliver(void *data, const ot_event *evs, size_t n)
{
    psink *p = data;
    for (size_t i = 0; i < n; i++) {
        if (p->n > 0)
            cr_assert_gt(evs[i].seq, p->got[p->n - 1]);
        p->got[p->n++] = evs[i].seq;
    }
    if (++p->calls % 3 == 0) {
        p->acked = evs[n - 1].seq;
        ot_sink_ack(p->self, p->acked);
    }
    return n;
}

static const ot_sink_ops pops = { .deliver = p_deliver };

static ot_pg *pool_new(ot_loop *l)
{
    ot_pg_config pc;
    ot_pg_config_default(&pc);
    pc.conninfo = pg_url;
    pc.pool_size = 2;
    const ot_pg_stmt *groups[] = { ot_events_stmts, ot_sink_stmts };
    size_t counts[] = { ot_events_nstmts, ot_sink_nstmts }, n = 0;
    ot_pg_stmt all[16];
    for (size_t gi = 0; gi < 2; gi++)
        for (size_t i = 0; i < counts[gi]; i++)
            all[n++] = groups[gi][i];
    return ot_pg_new(l, &pc, all, n);
}

static int64_t last_committed(void)
{
    for (int64_t q = MAXSEQ - 1; q > 0; q--)
        if (pg_committed[q])
            return q;
    return 0;
}

/* Runs the loop until the sink has delivered `upto` (or 20 s pass). */
static void run_until_delivered(ot_loop *l, ot_events *e, psink *p, int64_t upto)
{
    for (int i = 0; i < 20000 && (p->n == 0 || p->got[p->n - 1] < upto); i++)
        ot_loop_run_once(l, 1);
    cr_assert(p->n > 0 && p->got[p->n - 1] >= upto, "delivered up to %lld, want %lld (watermark %lld, sink at %lld, %s)",
              p->n ? (long long)p->got[p->n - 1] : 0LL, (long long)upto, (long long)ot_events_watermark(e),
              (long long)ot_sink_position(p->self), ot_sink_live(p->self) ? "live" : "replaying");
}

Test(sink_pg, a_durable_sink_restarted_mid_stream_resumes_at_its_cursor_with_no_gap, .init = pg_setup,
     .fini = pg_teardown, .timeout = 60)
{
    memset(pg_committed, 0, sizeof pg_committed);
    PGconn *writer = pg_sync(pg_url);
    ot_config cfg;
    ot_config_defaults(&cfg);
    cfg.database_url = pg_url;
    cfg.sink_buffer_events = 16;
    ot_events_env w = { 0 };
    w.cfg = &cfg;
    w.loop = ot_loop_new(1024);
    w.pg = pool_new(w.loop);

    /* A backlog before the first start: the sink has no row yet, so it
     * starts at the beginning of the outbox. */
    write_events(writer, 60, true);
    static psink a, b;
    memset(&a, 0, sizeof a);
    ot_events *e = ot_events_start(&w);
    a.self = ot_events_add_sink(e, "it", &pops, &a, true);
    cr_assert_not_null(a.self);
    run_until_delivered(w.loop, e, &a, last_committed());
    write_events(writer, 40, false); /* live now */
    run_until_delivered(w.loop, e, &a, last_committed());
    for (int i = 0; i < 50; i++) /* let the last cursor write land */
        ot_loop_run_once(w.loop, 2);
    int64_t acked_a = a.acked;

    /* The crash: in-memory state goes; what the store holds stays. */
    ot_events_free(e);
    int64_t cursor = pg_int(writer, "SELECT seq FROM ot_sink_cursors WHERE name = 'it'");
    cr_assert_geq(cursor, 1, "a cursor was stored");
    cr_assert_leq(cursor, acked_a, "never beyond what the sink acknowledged");
    write_events(writer, 50, true); /* committed while no reader runs */

    memset(&b, 0, sizeof b);
    e = ot_events_start(&w);
    b.self = ot_events_add_sink(e, "it", &pops, &b, true);
    run_until_delivered(w.loop, e, &b, last_committed());
    write_events(writer, 30, false);
    run_until_delivered(w.loop, e, &b, last_committed());

    /* Run b: exactly the committed seqs above the stored cursor, in order. */
    int64_t q = cursor;
    for (int i = 0; i < b.n; i++) {
        do
            q++;
        while (!pg_committed[q]);
        cr_assert_eq(b.got[i], q, "after cursor %lld: got %lld, due %lld", (long long)cursor, (long long)b.got[i],
                     (long long)q);
    }
    cr_assert_eq(q, last_committed());
    /* Run a began at the first event ever: with b, nothing is missing. */
    cr_assert_eq(a.got[0], 1);
    ot_events_free(e);
    ot_pg_free(w.pg);
    ot_loop_free(w.loop);
    PQfinish(writer);
}
