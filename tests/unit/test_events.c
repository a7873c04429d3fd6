/* The event sequencer (evseq.h) against a model of PostgreSQL: random
 * interleavings of writers (begin, insert, commit, rollback), lost and
 * reordered notifications, tail queries (sent, run, answered), worker kills
 * and starts (with sql/004's start rule) and client resumes, checked for no
 * gap and no duplicate. Plus the event JSON and pub/sub envelope codec. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>

#include "ot/app/evseq.h"
#include "ot/codec/event_json.h"

#include "rng.h"

/* ------------------------------------------------------------------ the model */

#define MAXSEQ 1024
#define MAXTX 512
#define PAGE 4
enum { S_NONE, S_INFLIGHT, S_COMMITTED, S_ROLLEDBACK };
enum { T_RUNNING, T_DONE };

typedef struct {
    uint64_t xid;
    int state;
    int64_t seqs[2];
    int nseq;
    bool locked;
    int64_t lockv; /* sql/004: the sequence's last value when it first inserted */
} txn;

static struct {
    uint64_t next_xid;
    int64_t seq_ctr;
    int seq[MAXSEQ];
    txn tx[MAXTX];
    int ntx;
} db;

typedef struct {
    bool alive;
    ot_evseq s;
    int start; /* 0 none, 1 query run (answer pending), 2 started */
    int64_t start_p;
    int tail; /* 0 idle, 1 sent, 2 run (answer pending) */
    int64_t tail_from, rows[PAGE];
    int nrows;
    uint64_t tail_xmin, tail_xid;
    int64_t live[MAXSEQ];
    int nlive;
    int64_t emitted_last;
} worker;

#define NW 2
static worker W[NW];

static struct {
    int on; /* worker index, -1: not connected */
    int64_t since, last;
    int64_t got[MAXSEQ];
    int ngot;
} cl;

static uint64_t snap_xmin(void)
{
    uint64_t m = db.next_xid;
    for (int i = 0; i < db.ntx; i++)
        if (db.tx[i].state == T_RUNNING && db.tx[i].xid < m)
            m = db.tx[i].xid;
    return m;
}

static void client_take(int64_t seq, const char *how)
{
    cr_assert(db.seq[seq] == S_COMMITTED, "%s seq %lld that is not committed (%d)", how, (long long)seq, db.seq[seq]);
    cr_assert(seq > cl.last, "%s seq %lld after %lld: duplicate or out of order (seed %llu)", how, (long long)seq,
              (long long)cl.last, (unsigned long long)rng);
    cl.got[cl.ngot++] = seq;
    cl.last = seq;
}

static void sink(void *data, const ot_event *ev)
{
    worker *w = data;
    cr_assert(db.seq[ev->seq] == S_COMMITTED, "delivered seq %lld in state %d", (long long)ev->seq, db.seq[ev->seq]);
    cr_assert(ev->seq > w->emitted_last, "worker emitted %lld after %lld", (long long)ev->seq,
              (long long)w->emitted_last);
    w->emitted_last = ev->seq;
    if (cl.on == w - W && ev->seq > cl.since)
        client_take(ev->seq, "live");
}

static void feed(worker *w, int64_t seq)
{
    char buf[96];
    int n = snprintf(buf, sizeof(buf), "{\"seq\":%lld,\"orderId\":\"o\",\"userId\":\"u\"}", (long long)seq);
    ot_event ev;
    cr_assert(ot_event_parse(ot_str_make(buf, (size_t)n), &ev) == 0);
    ot_evseq_feed(&w->s, &ev);
}

/* ---- writers ---- */

static void tx_begin(void)
{
    if (db.ntx >= MAXTX)
        return;
    db.tx[db.ntx++] = (txn){ .xid = db.next_xid++, .state = T_RUNNING };
}

static txn *running_tx(void)
{
    int n = 0, pick;
    for (int i = 0; i < db.ntx; i++)
        n += db.tx[i].state == T_RUNNING;
    if (!n)
        return NULL;
    pick = (int)rnd((uint32_t)n);
    for (int i = 0; i < db.ntx; i++)
        if (db.tx[i].state == T_RUNNING && pick-- == 0)
            return &db.tx[i];
    return NULL;
}

static void tx_insert(txn *t)
{
    if (t->nseq >= 2 || db.seq_ctr + 1 >= MAXSEQ)
        return;
    if (!t->locked) { /* the statement trigger: lock keyed with the last value, then the seq */
        t->locked = true;
        t->lockv = db.seq_ctr;
    }
    int64_t s = ++db.seq_ctr;
    db.seq[s] = S_INFLIGHT;
    t->seqs[t->nseq++] = s;
}

static void tx_end(txn *t, bool commit)
{
    t->state = T_DONE;
    for (int i = 0; i < t->nseq; i++) {
        db.seq[t->seqs[i]] = commit ? S_COMMITTED : S_ROLLEDBACK;
        if (!commit)
            continue;
        for (int k = 0; k < NW; k++) /* NOTIFY / Redis / own commit: may be lost, arrive in any order */
            if (W[k].alive && rnd(5) != 0)
                W[k].live[W[k].nlive++] = t->seqs[i];
    }
}

/* ---- workers ---- */

static void w_kill(worker *w)
{
    if (!w->alive)
        return;
    ot_evseq_free(&w->s);
    w->alive = false;
    if (cl.on == w - W)
        cl.on = -1;
}

static void w_boot(worker *w)
{
    w_kill(w);
    memset(w, 0, sizeof(*w));
    cr_assert(ot_evseq_init(&w->s, 3, sink, w) == 0);
    w->alive = true;
}

/* ot_event_start_seq(): least(last value, min lock key) + 1, read in that order. */
static void w_start_run(worker *w)
{
    int64_t p = db.seq_ctr;
    for (int i = 0; i < db.ntx; i++)
        if (db.tx[i].state == T_RUNNING && db.tx[i].locked && db.tx[i].lockv < p)
            p = db.tx[i].lockv;
    p++;
    for (int64_t s = 1; s < p; s++)
        cr_assert(db.seq[s] == S_COMMITTED || db.seq[s] == S_ROLLEDBACK,
                  "start %lld passes seq %lld still in flight", (long long)p, (long long)s);
    w->start_p = p;
    w->start = 1;
}

static void w_start_answer(worker *w)
{
    ot_evseq_start(&w->s, w->start_p);
    w->start = 2;
}

static void w_tail_send(worker *w)
{
    ot_evseq_tail_sent(&w->s);
    w->tail_from = w->s.next;
    w->tail = 1;
}

static void w_tail_run(worker *w)
{
    w->nrows = 0;
    for (int64_t s = w->tail_from; s <= db.seq_ctr && w->nrows < PAGE; s++)
        if (db.seq[s] == S_COMMITTED)
            w->rows[w->nrows++] = s;
    w->tail_xmin = snap_xmin();
    /* Taken after the snapshot, as pg_current_xact_id() in it; or none (the
     * reader's xid-less read). */
    w->tail_xid = rnd(3) == 0 ? 0 : db.next_xid++;
    w->tail = 2;
}

static void w_tail_answer(worker *w)
{
    int64_t max_row = 0;
    for (int i = 0; i < w->nrows; i++) {
        feed(w, w->rows[i]);
        max_row = w->rows[i];
    }
    ot_evseq_tail_done(&w->s, w->tail_xmin, w->tail_xid, max_row);
    w->tail = 0;
}

static void w_live(worker *w)
{
    int i = (int)rnd((uint32_t)w->nlive);
    int64_t s = w->live[i];
    w->live[i] = w->live[--w->nlive];
    feed(w, s);
}

/* ---- the client: resume with since = last on a started worker ---- */

static void client_resume(int k)
{
    worker *w = &W[k];
    int64_t wm = w->s.next;
    cl.on = k;
    cl.since = cl.last;
    for (int64_t s = cl.since + 1; s < wm; s++) {
        cr_assert(db.seq[s] != S_INFLIGHT, "watermark %lld passes seq %lld still in flight", (long long)wm,
                  (long long)s);
        if (db.seq[s] == S_COMMITTED)
            client_take(s, "replayed");
    }
}

static void step(void)
{
    worker *w = &W[rnd(NW)];
    txn *t;
    switch (rnd(14)) {
    case 0: tx_begin(); break;
    case 1: case 2: if ((t = running_tx())) tx_insert(t); break;
    case 3: if ((t = running_tx())) tx_end(t, rnd(3) != 0); break;
    case 4: if (!w->alive || rnd(20) == 0) w_boot(w); break;
    case 5: if (w->alive && w->start == 0) w_start_run(w); else if (w->alive && w->start == 1) w_start_answer(w); break;
    case 6: case 7:
        if (w->alive && w->start == 2) {
            if (w->tail == 0) w_tail_send(w);
            else if (w->tail == 1) w_tail_run(w);
            else w_tail_answer(w);
        }
        break;
    case 8: case 9: case 10: if (w->alive && w->nlive) w_live(w); break;
    case 11: if (w->alive && w->start == 2 && (cl.on < 0 || rnd(4) == 0)) client_resume((int)(w - W)); break;
    default: break;
    }
}

static void run_one(uint64_t seed, int steps)
{
    memset(&db, 0, sizeof(db));
    memset(&cl, 0, sizeof(cl));
    memset(W, 0, sizeof(W));
    db.next_xid = 100;
    cl.on = -1;
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < steps; i++)
        step();
    /* Quiesce: every writer ends, every notification arrives, one worker is up
     * with the client on it, and tails run until nothing is held. */
    txn *t;
    while ((t = running_tx()))
        tx_end(t, rnd(2));
    worker *w = &W[0];
    if (!w->alive)
        w_boot(w);
    if (w->start == 0)
        w_start_run(w);
    if (w->start == 1)
        w_start_answer(w);
    while (w->nlive)
        w_live(w);
    if (cl.on != 0)
        client_resume(0);
    int64_t top = 0;
    for (int64_t s = 1; s <= db.seq_ctr; s++)
        if (db.seq[s] == S_COMMITTED)
            top = s;
    /* Pages of PAGE rows, two tails per gap (bound, then skip): bounded. */
    for (int i = 0; i < 2 * MAXSEQ && (w->s.npending || w->s.next <= top); i++) {
        if (w->tail == 0)
            w_tail_send(w);
        if (w->tail == 1)
            w_tail_run(w);
        w_tail_answer(w);
    }
    /* Exactly the committed seqs, in order: no gap, no duplicate. */
    int n = 0;
    for (int64_t s = 1; s <= db.seq_ctr; s++)
        if (db.seq[s] == S_COMMITTED) {
            cr_assert(n < cl.ngot && cl.got[n] == s, "seed %llu: client missed seq %lld (got %d events)",
                      (unsigned long long)seed, (long long)s, cl.ngot);
            n++;
        }
    cr_assert_eq(n, cl.ngot, "seed %llu: client got %d events, %d were committed", (unsigned long long)seed,
                 cl.ngot, n);
    for (int k = 0; k < NW; k++)
        w_kill(&W[k]);
}

Test(evseq, random_interleavings_deliver_every_commit_once_in_order)
{
    for (uint64_t seed = 1; seed <= 3000; seed++)
        run_one(seed, 250);
}

Test(evseq, long_runs_with_many_restarts)
{
    for (uint64_t seed = 10001; seed <= 10100; seed++)
        run_one(seed, 2500);
}

/* ------------------------------------------------------------------ directed cases */

static int64_t emitted[64];
static int nemitted;
static void rec(void *data, const ot_event *ev) { emitted[nemitted++] = ev->seq; }

static void feed_seq(ot_evseq *s, int64_t seq)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "{\"seq\":%lld,\"orderId\":\"o\"}", (long long)seq);
    ot_event ev;
    cr_assert(ot_event_parse(ot_str_make(buf, (size_t)n), &ev) == 0);
    ot_evseq_feed(s, &ev);
}

Test(evseq, a_gap_is_skipped_only_after_xmin_passes_the_bounding_xid)
{
    ot_evseq s;
    nemitted = 0;
    cr_assert(ot_evseq_init(&s, 8, rec, NULL) == 0);
    ot_evseq_start(&s, 5);
    feed_seq(&s, 6); /* 5 is missing */
    cr_assert_eq(nemitted, 0);
    ot_evseq_tail_sent(&s);
    ot_evseq_tail_done(&s, 90, 100, 6); /* bounds the gap: owner < xid 100 */
    cr_assert_eq(nemitted, 0);
    ot_evseq_tail_sent(&s);
    ot_evseq_tail_done(&s, 99, 101, 6); /* xmin 99: the owner may still run */
    cr_assert_eq(nemitted, 0);
    ot_evseq_tail_sent(&s);
    ot_evseq_tail_done(&s, 100, 102, 6);
    cr_assert_eq(nemitted, 1);
    cr_assert_eq(emitted[0], 6);
    cr_assert_eq(s.gaps_skipped, 1);
    feed_seq(&s, 5); /* a late 5 is not delivered after 6 */
    cr_assert_eq(nemitted, 1);
    ot_evseq_free(&s);
}

Test(evseq, an_event_learnt_during_a_tail_does_not_let_that_tail_bound_its_gap)
{
    ot_evseq s;
    nemitted = 0;
    cr_assert(ot_evseq_init(&s, 8, rec, NULL) == 0);
    ot_evseq_start(&s, 1);
    ot_evseq_tail_sent(&s);
    feed_seq(&s, 3); /* live, while the tail is in flight: its owner of 1/2 may be younger */
    ot_evseq_tail_done(&s, 200, 201, 0);
    cr_assert(!s.gap_known);
    ot_evseq_free(&s);
}

Test(evseq, a_read_without_an_xid_never_bounds_a_gap_but_its_xmin_may_close_one)
{
    ot_evseq s;
    nemitted = 0;
    cr_assert(ot_evseq_init(&s, 8, rec, NULL) == 0);
    ot_evseq_start(&s, 1);
    feed_seq(&s, 2);
    ot_evseq_tail_sent(&s);
    ot_evseq_tail_done(&s, 1000, 0, 2); /* any xmin: no bound was ever set */
    cr_assert(!s.gap_known);
    cr_assert_eq(nemitted, 0);
    ot_evseq_tail_sent(&s);
    ot_evseq_tail_done(&s, 10, 50, 2); /* bound: owner < 50 */
    cr_assert(s.gap_known);
    ot_evseq_tail_sent(&s);
    ot_evseq_tail_done(&s, 50, 0, 2); /* an xid-less read whose xmin passed it */
    cr_assert_eq(nemitted, 1);
    cr_assert_eq(emitted[0], 2);
    ot_evseq_free(&s);
}

/* ------------------------------------------------------------------ codec: event JSON and envelope */

Test(event_json, parse_reads_the_fields_and_refuses_a_non_integer_seq)
{
    ot_event ev;
    const char *j = "{\"seq\":42,\"version\":3,\"orderId\":\"a\",\"userId\":\"b\",\"status\":\"SHIPPED\","
                    "\"type\":\"order.updated\"}";
    cr_assert(ot_event_parse(ot_str_c(j), &ev) == 0);
    cr_assert_eq(ev.seq, 42);
    cr_assert_eq(ev.version, 3);
    cr_assert(ot_str_eq_lit(ev.status, "SHIPPED"));
    /* Larger than any order the API writes (>1024 tokens): still an event. */
    char big[40000];
    size_t n = (size_t)snprintf(big, sizeof(big), "{\"seq\":9,\"orderId\":\"o\",\"payload\":{\"items\":[");
    for (int i = 0; i < 1500; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s{\"q\":%d}", i ? "," : "", i);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "]}}");
    cr_assert(ot_event_parse(ot_str_make(big, n), &ev) == 0);
    cr_assert_eq(ev.seq, 9);
    cr_assert(ot_str_eq_lit(ev.order_id, "o"));
    big[n - 1] = ','; /* and still refused when broken */
    cr_assert(ot_event_parse(ot_str_make(big, n), &ev) < 0);
    cr_assert(ot_event_parse(ot_str_c("{\"seq\":1.5}"), &ev) < 0);
    cr_assert(ot_event_parse(ot_str_c("[1]"), &ev) < 0);
    cr_assert(ot_event_parse(ot_str_c("{\"version\":1}"), &ev) < 0);
}

Test(event_json, a_sealed_event_opens_only_with_its_key_channel_and_bytes)
{
    uint8_t key[OT_EVENT_MAC_KEY_LEN], other[OT_EVENT_MAC_KEY_LEN];
    cr_assert(ot_event_mac_key(OT_STR("secret-one"), key) == 0);
    cr_assert(ot_event_mac_key(OT_STR("secret-two"), other) == 0);
    cr_assert(memcmp(key, other, sizeof(key)) != 0);
    cr_assert(ot_event_mac_key(OT_STR(""), key) < 0);
    cr_assert(ot_event_mac_key(OT_STR("secret-one"), key) == 0);
    const char *j = "{\"seq\":7,\"orderId\":\"x\"}";
    char buf[256];
    size_t n = ot_event_seal(key, OT_STR("ot:admin"), ot_str_c(j), buf, sizeof(buf));
    cr_assert_eq(n, strlen(j) + OT_EVENT_SEAL_OVERHEAD);
    cr_assert(memcmp(buf, "ot1:", 4) == 0);
    ot_str out;
    cr_assert(ot_event_open(key, OT_STR("ot:admin"), ot_str_make(buf, n), &out) == 0);
    cr_assert(ot_str_eq_lit(out, j));
    cr_assert(ot_event_open(other, OT_STR("ot:admin"), ot_str_make(buf, n), &out) < 0);
    cr_assert(ot_event_open(key, OT_STR("ot:user:u"), ot_str_make(buf, n), &out) < 0);
    cr_assert(out.len == 0);
    for (size_t i = 0; i < n; i++) { /* every single-byte change is refused */
        char t[256];
        memcpy(t, buf, n);
        t[i] ^= 0x01;
        cr_assert(ot_event_open(key, OT_STR("ot:admin"), ot_str_make(t, n), &out) < 0, "byte %zu", i);
    }
    cr_assert(ot_event_open(key, OT_STR("ot:admin"), ot_str_make(buf, n - 1), &out) < 0);
    cr_assert(ot_event_open(key, OT_STR("ot:admin"), ot_str_c(j), &out) < 0);
    cr_assert(ot_event_open(key, OT_STR("ot:admin"), ot_str_make(buf, 10), &out) < 0);
    cr_assert_eq(ot_event_seal(key, OT_STR("ot:admin"), ot_str_c(j), buf, strlen(j) + 68), 0);
}

Test(event_json, the_seal_hex_alone_is_the_mac_in_the_envelope)
{
    uint8_t key[OT_EVENT_MAC_KEY_LEN];
    cr_assert(ot_event_mac_key(OT_STR("secret-one"), key) == 0);
    const char *j = "{\"seq\" : 7, \"orderId\" : \"x\"}";
    char buf[256], hex[OT_EVENT_SEAL_HEX], other[OT_EVENT_SEAL_HEX];
    size_t n = ot_event_seal(key, OT_STR(OT_EVENT_KAFKA_CHANNEL), ot_str_c(j), buf, sizeof(buf));
    cr_assert_eq(n, strlen(j) + OT_EVENT_SEAL_OVERHEAD);
    cr_assert_eq(ot_event_seal_hex(key, OT_STR(OT_EVENT_KAFKA_CHANNEL), ot_str_c(j), hex), 0);
    cr_assert_eq(memcmp(hex, buf + 4, OT_EVENT_SEAL_HEX), 0);
    for (int i = 0; i < OT_EVENT_SEAL_HEX; i++)
        cr_assert((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
    cr_assert_eq(ot_event_seal_hex(key, OT_STR("ot:admin"), ot_str_c(j), other), 0);
    cr_assert_neq(memcmp(hex, other, OT_EVENT_SEAL_HEX), 0, "the channel is covered");
}

Test(event_json, peek_seq_reads_only_a_leading_seq_member)
{
    int64_t s = -1;
    /* The two shapes sql/001 writes: ot_event_json (json_build_object's
     * spacing) and the large-event stub. */
    cr_assert_eq(ot_event_peek_seq(OT_STR("{\"seq\" : 42, \"version\" : 1}"), &s), 0);
    cr_assert_eq(s, 42);
    cr_assert_eq(ot_event_peek_seq(OT_STR("{\"seq\":9007199254740993}"), &s), 0);
    cr_assert_eq(s, 9007199254740993LL);
    cr_assert_eq(ot_event_peek_seq(OT_STR(" \n{ \"seq\"\t:\r0 }"), &s), 0);
    cr_assert_eq(s, 0);
    /* Anything else is "unknown" (the caller tails): never a wrong number. */
    const char *bad[] = { "",          "{",           "{}",           "[\"seq\",1]",     "{\"version\":1,\"seq\":2}",
                          "{\"seq\":}", "{\"seq\":-1}", "{\"seq\":01}", "{\"seq\":1.5}",   "{\"seq\":1e3}",
                          "{\"seq\":\"1\"}", "{\"seq\" 1}", "{\"seq\":1",  "{\"seqx\":1}",    "{\"se\\u0071\":1}",
                          "{\"seq\":1234567890123456789}" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++) {
        s = -1;
        cr_assert_eq(ot_event_peek_seq(ot_str_c(bad[i]), &s), OT_ERR, "%s", bad[i]);
        cr_assert_eq(s, -1, "%s: untouched", bad[i]);
    }
}
