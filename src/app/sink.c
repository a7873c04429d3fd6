/* Event sinks: per-sink position, bounded holding, replay and the durable
 * cursor. See sink.h for the model. */
#include "ot/app/sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/codec/event_row.h"
#include "ot/core/list.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"

/* Held events handed over per deliver call: a stack array of parsed events. */
#define OT_SINK_BATCH 64

typedef enum { M_LOADING, M_REPLAY, M_LIVE } sink_mode;

typedef struct {
    int64_t seq;
    uint64_t seen_us;
    char *json;
    size_t len;
} held_ev;

struct ot_sink {
    ot_sink *prev, *next;
    ot_sinks *g;
    char name[OT_SINK_NAME_MAX];
    ot_sink_ops ops;
    void *data;
    bool durable;
    sink_mode mode;
    /* Every seq <= pos was handed to the sink or never existed. */
    int64_t pos;
    /* A short replay page proved every seq below it seen: pos may move up to
     * this once the page's held remainder is delivered. */
    int64_t caught_to;
    bool full;  /* took fewer than offered; waits for ot_sink_wake */
    /* The last replay page was taken whole: read the next one ahead. A sink
     * that stops mid-page (the search indexer, batch by batch) would have
     * each read-ahead cancelled after the database did the work. */
    bool takes_pages;
    /* Held events, a ring in seq order, all above pos. */
    held_ev *held;
    size_t cap, head, nheld, held_bytes;
    /* One store request of each kind at a time. */
    void *fetch_req, *load_req, *save_req;
    int64_t fetch_after, fetch_before, saving, saved, acked;
    ot_timer retry;
    ot_defer wake;
    /* Re-entrancy: deliver may call wake, ack or remove. */
    bool in_pump, pump_again, dead;
    int metrics_idx;
    uint64_t replayed, fallbacks, replayed_seen, fallbacks_seen;
};

static void pump(ot_sink *s);

const char *ot_sink_name(const ot_sink *s) { return s->name; }
int64_t ot_sink_position(const ot_sink *s) { return s->pos; }
int64_t ot_sink_acked(const ot_sink *s) { return s->acked; }
bool ot_sink_live(const ot_sink *s) { return s->mode == M_LIVE; }

/* ---- the held ring ---- */

static held_ev *held_at(ot_sink *s, size_t i) { return &s->held[(s->head + i) % s->cap]; }

static void held_clear(ot_sink *s)
{
    for (size_t i = 0; i < s->nheld; i++)
        free(held_at(s, i)->json);
    s->head = s->nheld = s->held_bytes = 0;
}

static void held_pop(ot_sink *s, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        held_ev *h = held_at(s, i);
        s->held_bytes -= h->len;
        free(h->json);
    }
    s->head = (s->head + k) % s->cap;
    s->nheld -= k;
}

/* OT_ERR when the ring is at its bound (or out of memory): the caller falls
 * back to replay. `force` admits a replay page's remainder past the byte
 * bound: it is at most one page, and was in memory already. */
static int held_push(ot_sink *s, const ot_event *ev, bool force)
{
    const ot_sink_limits *lim = &s->g->lim;
    if (s->nheld >= lim->max_events || (!force && s->held_bytes + ev->json.len > lim->max_bytes))
        return OT_ERR;
    if (s->nheld == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        if (ncap > lim->max_events)
            ncap = lim->max_events;
        held_ev *n = malloc(ncap * sizeof(*n));
        if (!n)
            return OT_ERR;
        for (size_t i = 0; i < s->nheld; i++)
            n[i] = *held_at(s, i);
        free(s->held);
        s->held = n;
        s->cap = ncap;
        s->head = 0;
    }
    char *copy = malloc(ev->json.len ? ev->json.len : 1);
    if (!copy)
        return OT_ERR;
    memcpy(copy, ev->json.base, ev->json.len);
    *held_at(s, s->nheld) = (held_ev){ ev->seq, ev->seen_us, copy, ev->json.len };
    s->nheld++;
    s->held_bytes += ev->json.len;
    return OT_OK;
}

/* ---- delivery ---- */

static void sink_free(ot_sink *s)
{
    ot_sinks *g = s->g;
    const ot_sink_store *st = &g->store;
    if (s->fetch_req)
        st->cancel(st->ctx, s->fetch_req);
    if (s->load_req)
        st->cancel(st->ctx, s->load_req);
    if (s->save_req)
        st->cancel(st->ctx, s->save_req);
    ot_timer_stop(g->loop, &s->retry);
    ot_defer_cancel(g->loop, &s->wake);
    OT_LIST_UNLINK(&g->head, s);
    held_clear(s);
    free(s->held);
    free(s);
}

/* Offers events; returns how many were taken and marks the sink full when
 * fewer. The caller checks s->dead afterwards. */
static size_t offer(ot_sink *s, const ot_event *evs, size_t n)
{
    size_t k = s->ops.deliver(s->data, evs, n);
    if (k > n)
        k = n;
    if (k > 0 && evs[k - 1].seq > s->pos)
        s->pos = evs[k - 1].seq;
    if (k < n)
        s->full = true;
    return k;
}

/* Hands over held events until the sink is full or none is left. */
static void deliver_held(ot_sink *s)
{
    while (s->nheld > 0 && !s->full && !s->dead) {
        ot_event evs[OT_SINK_BATCH];
        size_t n = 0, bad = 0;
        while (n < OT_SINK_BATCH && n + bad < s->nheld) {
            held_ev *h = held_at(s, n + bad);
            /* Parsed before it was held, so this cannot fail; if it ever did,
             * the event would be skipped rather than stall every later one. */
            if (ot_event_parse(ot_str_make(h->json, h->len), &evs[n]) < 0) {
                ot_logf(OT_LOG_ERROR, "sink %s: held event %lld unparsable, skipped", s->name, (long long)h->seq);
                if (n == 0) {
                    held_pop(s, 1);
                    continue;
                }
                break;
            }
            evs[n].seen_us = h->seen_us;
            n++;
        }
        if (n == 0)
            continue;
        size_t k = offer(s, evs, n);
        held_pop(s, k);
    }
}

/* A page reads (after, before) with before at most OT_SINK_SPAN pages of seqs
 * above `after`: whatever plan the database picks (stale statistics after a
 * bulk load can turn the ORDER BY ... LIMIT into a sort of the whole range),
 * one query touches a bounded number of rows. A sparse range (rolled-back
 * seqs) just gives a short page that is complete up to its bound. */
#define OT_SINK_SPAN 4

static int64_t page_before(const ot_sinks *g, int64_t after)
{
    int64_t cap = after + (int64_t)(OT_SINK_SPAN * g->lim.page) + 1;
    return cap < g->watermark ? cap : g->watermark;
}

static bool fetch_from(ot_sink *s, int64_t after)
{
    ot_sinks *g = s->g;
    s->fetch_before = page_before(g, after);
    s->fetch_after = after;
    s->fetch_req = g->store.fetch(g->store.ctx, s, after, s->fetch_before, g->lim.page);
    return s->fetch_req != NULL;
}

static void fetch_next(ot_sink *s)
{
    ot_sinks *g = s->g;
    if (s->fetch_req || ot_timer_active(&s->retry) || !g->store.fetch)
        return;
    if (!fetch_from(s, s->pos))
        ot_timer_start(g->loop, &s->retry, g->lim.retry_ms);
}

/* The one place that moves a sink forward: held events, then the end of a
 * replay page, then the next page or the switch to live. */
static void pump(ot_sink *s)
{
    if (s->in_pump) {
        s->pump_again = true;
        return;
    }
    s->in_pump = true;
    do {
        s->pump_again = false;
        deliver_held(s);
        if (s->dead || s->full || s->nheld > 0)
            break;
        if (s->caught_to > s->pos)
            s->pos = s->caught_to;
        s->caught_to = 0;
        if (s->mode != M_REPLAY || s->g->watermark <= 0)
            break; /* loading, live, or the reader has not found its start */
        if (s->pos >= s->g->watermark - 1) {
            s->mode = M_LIVE;
            break;
        }
        fetch_next(s);
    } while (s->pump_again && !s->dead);
    s->in_pump = false;
    if (s->dead)
        sink_free(s);
}

static void on_wake(ot_loop *loop, ot_defer *d)
{
    ot_sink *s = d->data;
    s->full = false;
    pump(s);
}

void ot_sink_wake(ot_sink *s)
{
    if (!s->dead)
        ot_defer_queue(s->g->loop, &s->wake);
}

static void fall_back(ot_sink *s)
{
    held_clear(s);
    s->caught_to = 0;
    s->mode = M_REPLAY;
    s->fallbacks++;
    ot_logf(OT_LOG_DEBUG, "sink %s: behind by more than its buffer at seq %lld; replaying from the database",
            s->name, (long long)s->pos);
}

static void feed_one(ot_sink *s, const ot_event *ev)
{
    if (s->mode != M_LIVE || ev->seq <= s->pos)
        return; /* loading or replaying: the replay reads it from the database */
    if (s->nheld == 0 && !s->full && !s->in_pump) {
        s->in_pump = true;
        offer(s, ev, 1);
        s->in_pump = false;
        if (s->dead) {
            sink_free(s);
            return;
        }
        if (!s->full || ev->seq <= s->pos)
            return;
    }
    if (held_push(s, ev, false) < 0)
        fall_back(s);
}

void ot_sinks_feed(ot_sinks *g, const ot_event *ev)
{
    if (ev->seq + 1 > g->watermark)
        g->watermark = ev->seq + 1;
    for (ot_sink *s = g->head, *next; s; s = next) {
        next = s->next;
        feed_one(s, ev);
    }
}

void ot_sinks_advance(ot_sinks *g, int64_t watermark)
{
    if (watermark <= g->watermark)
        return;
    g->watermark = watermark;
    for (ot_sink *s = g->head, *next; s; s = next) {
        next = s->next;
        if (s->mode == M_REPLAY && !s->fetch_req)
            pump(s);
    }
}

/* ---- store results ---- */

void ot_sink_fetched(ot_sink *s, bool ok, const ot_event *evs, size_t n, bool complete)
{
    s->fetch_req = NULL;
    if (!ok) {
        ot_timer_start(s->g->loop, &s->retry, s->g->lim.retry_ms);
        return;
    }
    /* Rows at or below pos cannot come back (the query starts above it), but a
     * store that returned them must not make the sink see one twice. */
    size_t skip = 0;
    while (skip < n && evs[skip].seq <= s->pos)
        skip++;
    evs += skip;
    n -= skip;
    s->replayed += n;
    int64_t before = s->fetch_before;
    /* Prefetch: a full page means more rows after its last one; ask for them
     * now so the database reads the next page while this one is delivered.
     * It starts where this page ends, which is where pos will be once the
     * sink took all of it; if the sink takes less, the prefetch is dropped
     * below and the pump reads again from pos. */
    bool pre = !complete && n > 0 && !s->full && s->nheld == 0 && s->mode == M_REPLAY && s->takes_pages &&
               fetch_from(s, evs[n - 1].seq);
    size_t k = 0;
    s->in_pump = true;
    if (n > 0 && !s->full && s->nheld == 0)
        k = offer(s, evs, n);
    s->in_pump = false;
    if (s->dead) {
        sink_free(s);
        return;
    }
    if (n > 0)
        s->takes_pages = k == n;
    if (pre && s->fetch_req && (k < n || s->pos != s->fetch_after)) {
        s->g->store.cancel(s->g->store.ctx, s->fetch_req);
        s->fetch_req = NULL;
    }
    for (size_t i = k; i < n; i++)
        if (held_push(s, &evs[i], true) < 0) {
            /* Out of memory: forget the rest, read it again later. */
            held_clear(s);
            s->caught_to = 0;
            pump(s);
            return;
        }
    /* Every seq below `before` was seen: the rolled-back ones too. */
    if (complete)
        s->caught_to = before - 1;
    pump(s);
}

void ot_sink_loaded(ot_sink *s, bool ok, bool found, int64_t seq)
{
    s->load_req = NULL;
    if (!ok) {
        ot_timer_start(s->g->loop, &s->retry, s->g->lim.retry_ms);
        return;
    }
    s->pos = found && seq > 0 ? seq : 0;
    s->acked = s->saved = s->pos;
    s->mode = M_REPLAY;
    ot_logf(OT_LOG_INFO, "sink %s: resuming after seq %lld", s->name, (long long)s->pos);
    pump(s);
}

static void save_maybe(ot_sink *s)
{
    ot_sinks *g = s->g;
    if (!s->durable || s->save_req || s->acked <= s->saved || ot_timer_active(&s->retry) || s->dead)
        return;
    s->saving = s->acked;
    s->save_req = g->store.save(g->store.ctx, s, s->name, s->saving);
    if (!s->save_req)
        ot_timer_start(g->loop, &s->retry, g->lim.retry_ms);
}

void ot_sink_saved(ot_sink *s, bool ok)
{
    s->save_req = NULL;
    if (ok) {
        if (s->saving > s->saved)
            s->saved = s->saving;
        save_maybe(s);
    } else {
        ot_timer_start(s->g->loop, &s->retry, s->g->lim.retry_ms);
    }
}

void ot_sink_ack(ot_sink *s, int64_t seq)
{
    if (seq <= s->acked)
        return;
    s->acked = seq;
    save_maybe(s);
}

/* One timer for every failed request: whatever is due is tried again. */
static void on_retry(ot_loop *loop, ot_timer *t)
{
    ot_sink *s = t->data;
    ot_sinks *g = s->g;
    if (s->mode == M_LOADING) {
        if (!s->load_req) {
            s->load_req = g->store.load(g->store.ctx, s, s->name);
            if (!s->load_req)
                ot_timer_start(loop, &s->retry, g->lim.retry_ms);
        }
        return;
    }
    save_maybe(s);
    pump(s);
}

/* ---- the group ---- */

void ot_sinks_init(ot_sinks *g, ot_loop *loop, const ot_sink_store *store, const ot_sink_limits *lim)
{
    memset(g, 0, sizeof(*g));
    g->loop = loop;
    g->store = *store;
    g->lim = *lim;
    if (g->lim.max_events < 1)
        g->lim.max_events = 1;
    if (g->lim.page < 1)
        g->lim.page = 1;
    if (g->lim.retry_ms < 1)
        g->lim.retry_ms = 1;
}

void ot_sinks_free(ot_sinks *g)
{
    while (g->head) {
        ot_sink *s = g->head;
        if (s->in_pump) { /* freed by its own pump; unlink so the loop ends */
            s->dead = true;
            OT_LIST_UNLINK(&g->head, s);
            continue;
        }
        sink_free(s);
    }
}

ot_sink *ot_sinks_add(ot_sinks *g, const char *name, const ot_sink_ops *ops, void *data, bool durable)
{
    if (!name || !ops || !ops->deliver || strlen(name) >= OT_SINK_NAME_MAX || !*name)
        return NULL;
    ot_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->g = g;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->ops = *ops;
    s->data = data;
    s->durable = durable;
    s->takes_pages = true;
    ot_timer_init(&s->retry, on_retry, s);
    ot_defer_init(&s->wake, on_wake, s);
    s->metrics_idx = ot_metrics_sink(name);
    OT_LIST_PUSH_FRONT(&g->head, s);
    if (durable) {
        s->mode = M_LOADING;
        s->load_req = g->store.load(g->store.ctx, s, s->name);
        if (!s->load_req)
            ot_timer_start(g->loop, &s->retry, g->lim.retry_ms);
    } else {
        /* Live from where the reader is (from its start if it has none yet). */
        s->mode = M_LIVE;
        s->pos = g->watermark > 0 ? g->watermark - 1 : 0;
    }
    return s;
}

void ot_sink_remove(ot_sink *s)
{
    if (!s || s->dead)
        return;
    if (s->in_pump) {
        s->dead = true;
        return;
    }
    sink_free(s);
}

void ot_sinks_sample(ot_sinks *g)
{
    for (ot_sink *s = g->head; s; s = s->next) {
        int64_t lag = g->watermark > 0 && s->mode != M_LOADING ? g->watermark - 1 - s->pos : 0;
        ot_metrics_sink_vals v = { .position = s->pos, .acked = s->acked, .lag = lag > 0 ? lag : 0,
                                   .held = (int64_t)s->nheld, .live = s->mode == M_LIVE,
                                   .replayed = s->replayed - s->replayed_seen,
                                   .fallbacks = s->fallbacks - s->fallbacks_seen };
        ot_metrics_sink_set(s->metrics_idx, &v);
        s->replayed_seen = s->replayed;
        s->fallbacks_seen = s->fallbacks;
    }
}

/* ---- the PostgreSQL store ---- */

const ot_pg_stmt ot_sink_stmts[] = {
    /* Rows below the reader's watermark are final (committed, or rolled back
     * for good): the same rule a WebSocket resume replays by. */
    { "sink_replay",
      /* The upper bound outside the LIMIT (the same rows: they come in seq
       * order) and the JSON built only for the page: with both bounds in
       * one range the planner, without statistics for the newest rows,
       * sorted the whole range after building every row's JSON
       * (tests/integration/test_query_plans.py). */
      /* The columns, not ot_event_json: pg_page writes the same JSON from
       * them (codec/event_row.h) at a third of the query's cost. In
       * ot_event_row's order. */
      "SELECT p.seq, p.version, p.event_id, p.order_id, p.user_id, p.type, p.status, ot_iso(p.created_at), "
      "p.payload, p.actor FROM (SELECT x.* FROM order_events x WHERE x.seq > $1::bigint "
      "ORDER BY x.seq LIMIT $3::int) p WHERE p.seq < $2::bigint ORDER BY p.seq",
      3, true },
    { "sink_cursor_get", "SELECT seq FROM ot_sink_cursors WHERE name = $1", 1, true },
    /* GREATEST: a late write of a former holder never moves the cursor back. */
    { "sink_cursor_put",
      "INSERT INTO ot_sink_cursors (name, seq, updated_at) VALUES ($1, $2::bigint, now()) "
      "ON CONFLICT (name) DO UPDATE SET seq = GREATEST(ot_sink_cursors.seq, EXCLUDED.seq), updated_at = now()",
      2, false },
};
const size_t ot_sink_nstmts = OT_ARRAY_LEN(ot_sink_stmts);

/* Column j of row i; SQL NULL as a NULL base. */
static ot_str col(const PGresult *res, int i, int j)
{
    if (PQgetisnull(res, i, j))
        return OT_STR_NULL;
    return ot_str_make(PQgetvalue(res, i, j), (size_t)PQgetlength(res, i, j));
}

static ot_event_row row_at(const PGresult *res, int i)
{
    return (ot_event_row){ col(res, i, 0), col(res, i, 1), col(res, i, 2), col(res, i, 3), col(res, i, 4),
                           col(res, i, 5), col(res, i, 6), col(res, i, 7), col(res, i, 8), col(res, i, 9) };
}

static void pg_page(void *data, int status, PGresult *res)
{
    ot_sink *s = data;
    if (status != OT_PG_OK || PQnfields(res) != 10) {
        ot_sink_fetched(s, false, NULL, 0, false);
        return;
    }
    int rows = PQntuples(res) > 0 ? PQntuples(res) : 0;
    /* The columns read out once (libpq's accessors were ~10 % of the page's
     * cost when called twice per column), then the page's JSON texts side by
     * side in one block: one allocation per page, not per event. */
    ot_event_row *cols = malloc(((size_t)rows + 1) * sizeof(*cols));
    ot_event *evs = calloc((size_t)rows + 1, sizeof(*evs));
    size_t bytes = 1;
    for (int i = 0; cols && i < rows; i++) {
        cols[i] = row_at(res, i);
        bytes += ot_event_row_json_bound(&cols[i]);
    }
    char *text = malloc(bytes);
    if (!cols || !evs || !text) {
        free(cols);
        free(evs);
        free(text);
        ot_sink_fetched(s, false, NULL, 0, false);
        return;
    }
    uint64_t now = ot_now_us();
    size_t n = 0, used = 0;
    for (int i = 0; i < rows; i++) {
        size_t len = ot_event_row_json(&cols[i], text + used, &evs[n]);
        if (len == 0) {
            ot_logf(OT_LOG_ERROR, "sink %s: order_events row %.*s unparsable, skipped", s->name,
                    (int)cols[i].seq.len, cols[i].seq.base ? cols[i].seq.base : "");
            continue;
        }
        used += len;
        evs[n++].seen_us = now;
    }
    /* A short page (fewer rows than asked, unparsable ones included) saw
     * every seq below the bound. */
    ot_sink_fetched(s, true, evs, n, (size_t)rows < s->g->lim.page);
    free(text);
    free(evs);
    free(cols);
}

static void *pg_fetch(void *ctx, ot_sink *s, int64_t after, int64_t before, size_t limit)
{
    char a[24], b[24], l[24];
    snprintf(a, sizeof a, "%lld", (long long)after);
    snprintf(b, sizeof b, "%lld", (long long)before);
    snprintf(l, sizeof l, "%zu", limit);
    const char *vals[3] = { a, b, l };
    return ot_pg_exec(ctx, "sink_replay", 3, vals, NULL, pg_page, s);
}

static void pg_loaded(void *data, int status, PGresult *res)
{
    if (status != OT_PG_OK) {
        ot_sink_loaded(data, false, false, 0);
        return;
    }
    bool found = PQntuples(res) == 1;
    ot_sink_loaded(data, true, found, found ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0);
}

static void *pg_load(void *ctx, ot_sink *s, const char *name)
{
    const char *vals[1] = { name };
    return ot_pg_exec(ctx, "sink_cursor_get", 1, vals, NULL, pg_loaded, s);
}

static void pg_saved(void *data, int status, PGresult *res) { ot_sink_saved(data, status == OT_PG_OK); }

static void *pg_save(void *ctx, ot_sink *s, const char *name, int64_t seq)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)seq);
    const char *vals[2] = { name, v };
    return ot_pg_exec(ctx, "sink_cursor_put", 2, vals, NULL, pg_saved, s);
}

static void pg_cancel(void *ctx, void *req) { ot_pg_cancel(req); }

void ot_sink_store_pg(ot_sink_store *st, ot_pg *pg)
{
    *st = (ot_sink_store){ .ctx = pg, .fetch = pg_fetch, .load = pg_load, .save = pg_save, .cancel = pg_cancel };
}
