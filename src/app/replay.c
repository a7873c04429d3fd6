/* Resume: replaying what a client missed, then releasing the live events
 * held meanwhile. See replay.h for the contract. */
#include "ot/app/replay.h"

#include <stdio.h>
#include <stdlib.h>

#include "ot/codec/event_view.h"

#define OT_HUB_WATERMARK_WAIT_MS 50
#define OT_HUB_WATERMARK_TRIES 200 /* ~10 s for the event stream to start */
#define OT_STR_(x) #x
#define OT_XSTR(x) OT_STR_(x)

const ot_pg_stmt ot_replay_stmts[] = {
    /* Shaped like sink.c's sink_replay (see there): the upper bound outside
     * the LIMIT, the JSON built for the page only. */
    { "hub_replay_all",
      "SELECT p.seq, ot_event_json(p.e) FROM (SELECT x.seq, x AS e FROM order_events x WHERE x.seq > $1::bigint "
      "ORDER BY x.seq LIMIT " OT_XSTR(OT_HUB_REPLAY_PAGE) ") p WHERE p.seq < $2::bigint ORDER BY p.seq",
      2, true },
    /* Separate statement so the (user_id, seq) index serves customers. */
    { "hub_replay_user",
      "SELECT p.seq, ot_event_json(p.e) FROM (SELECT x.seq, x AS e FROM order_events x WHERE x.user_id = $3::uuid "
      "AND x.seq > $1::bigint ORDER BY x.seq LIMIT " OT_XSTR(OT_HUB_REPLAY_PAGE) ") p "
      "WHERE p.seq < $2::bigint ORDER BY p.seq",
      3, true },
};
const size_t ot_replay_nstmts = OT_ARRAY_LEN(ot_replay_stmts);

struct ot_hub_replay {
    ot_hub_client *c;
    int64_t since, cursor, until;
    void *q; /* the source's read in flight */
    ot_wsq held; /* live events (seq >= until) waiting for the replay to end */
    uint32_t count, tries;
    bool paused; /* waiting for the socket's queue to drain */
    ot_timer retry;
};

size_t ot_hub_held_bytes(const ot_hub_client *c) { return c->held ? c->held->bytes : 0; }

/* The source in use: the one set on the hub, else order_events through the
 * pool with the event reader's watermark. */
static ot_hub_source src_of(ot_hub *h);

static void replay_free(ot_hub_replay *rp)
{
    ot_hub *h = rp->c->hub;
    if (rp->q) {
        ot_hub_source src = src_of(h);
        src.cancel(src.ctx, rp->q);
    }
    ot_timer_stop(ot_hub_loop(h), &rp->retry);
    ot_wsq_clear(&rp->held);
    free(rp);
}

/* Ends the replay: the ack (or error), then the held live events. */
static void replay_finish(ot_hub_replay *rp, const char *code, const char *msg)
{
    ot_hub_client *c = rp->c;
    if (code)
        ot_hub_send_fmt(c, "{\"event\":\"error\",\"data\":{\"code\":\"%s\",\"message\":\"%s\",\"lastSeq\":%lld}}", code, msg,
                 (long long)rp->cursor);
    else
        ot_hub_send_fmt(c, "{\"event\":\"resumed\",\"data\":{\"since\":%lld,\"lastSeq\":%lld,\"count\":%u}}",
                 (long long)rp->since, (long long)(rp->since > rp->until - 1 ? rp->since : rp->until - 1),
                 rp->count);
    c->replay = NULL;
    c->held = NULL;
    ot_wsbuf *b;
    /* Already bounded by the cap while held; from now on live sends check it. */
    while ((b = ot_wsq_pop(&rp->held))) {
        ot_ws_send(&c->ws, b);
        ot_wsbuf_unref(b);
    }
    replay_free(rp);
}

static void replay_fetch(ot_hub_replay *rp);

static bool replay_visible(const ot_hub_client *c, const ot_event *ev)
{
    uint8_t oid[16];
    return ot_hub_may_see(c, ev, ot_uuid_to_bytes(ev->order_id, oid) == 0 ? oid : NULL);
}

void ot_hub_replay_rows(ot_hub_replay *rp, bool ok, const ot_hub_row *rows, int nrows)
{
    ot_hub_client *c = rp->c;
    rp->q = NULL;
    if (!ok) {
        replay_finish(rp, "resume_failed", "could not read missed events; reload state over HTTP");
        return;
    }
    size_t pace = OT_WS_LOW_WATER(ot_hub_cfg(c->hub)->ws_max_queue);
    for (int i = 0; i < nrows && c->ws.state == OT_WS_OPEN; i++) {
        if (ot_ws_unsent(&c->ws) > pace) {
            /* The reader is behind: stop mid-page and read on from the last
             * row queued once it drained, so a replay never fills the cap. */
            rp->paused = true;
            return;
        }
        rp->cursor = rows[i].seq;
        ot_event ev;
        if (ot_event_parse(rows[i].json, &ev) < 0 || !replay_visible(c, &ev))
            continue;
        ot_wsbuf *f = ot_hub_event_frame(&ev, c->role != OT_ROLE_ADMIN);
        if (!f)
            ot_ws_abort(&c->ws);
        if (!f || ot_ws_send(&c->ws, f) < 0) {
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
    if (c->ws.state != OT_WS_OPEN)
        return;
    if (nrows >= OT_HUB_REPLAY_PAGE)
        replay_fetch(rp);
    else
        replay_finish(rp, NULL, NULL);
}

static void replay_fetch(ot_hub_replay *rp)
{
    ot_hub_client *c = rp->c;
    ot_hub *h = c->hub;
    /* Pace the replay by the reader: pages are read only while the output is
     * under the low-water mark (and ot_hub_replay_rows stops mid-page above it). */
    if (ot_ws_unsent(&c->ws) > OT_WS_LOW_WATER(ot_hub_cfg(h)->ws_max_queue)) {
        rp->paused = true;
        return;
    }
    rp->paused = false;
    ot_hub_source src = src_of(h);
    rp->q = src.fetch(src.ctx, rp->cursor, rp->until, c->role == OT_ROLE_ADMIN ? NULL : c->sub, rp);
    if (!rp->q)
        replay_finish(rp, "resume_failed", "out of memory");
}

/* ---- the PostgreSQL source (order_events) ---- */

static bool pg_available(void *ctx)
{
    return ot_hub_pg(ctx) && ot_hub_events(ctx);
}

static int64_t pg_watermark(void *ctx) { return ot_events_watermark(ot_hub_events(ctx)); }

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
    return ot_pg_exec(ot_hub_pg(ctx), user ? "hub_replay_user" : "hub_replay_all", user ? 3 : 2, vals, NULL,
                      pg_page, rp);
}

static void pg_cancel(void *ctx, void *q) { ot_pg_cancel(q); }

static ot_hub_source src_of(ot_hub *h)
{
    const ot_hub_source *set = ot_hub_get_source(h);
    if (set)
        return *set;
    return (ot_hub_source){ .ctx = h, .available = pg_available, .watermark = pg_watermark, .fetch = pg_fetch,
                            .cancel = pg_cancel };
}

static void replay_begin(ot_hub_replay *rp)
{
    ot_hub_client *c = rp->c;
    ot_hub_source src = src_of(c->hub);
    int64_t wm = src.watermark(src.ctx);
    if (wm <= 0) {
        /* The event stream has not found its start yet: nothing is live, so
         * nothing is lost by waiting for it. */
        if (++rp->tries > OT_HUB_WATERMARK_TRIES) {
            replay_finish(rp, "resume_failed", "the event stream is not ready; try again");
            return;
        }
        ot_timer_start(ot_hub_loop(c->hub), &rp->retry, OT_HUB_WATERMARK_WAIT_MS);
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

void ot_hub_resume(ot_hub_client *c, int64_t since)
{
    if (c->ws.state != OT_WS_OPEN)
        return;
    if (c->replay) {
        ot_hub_send_error(c, "resume_in_progress", "a resume is already running", NULL);
        return;
    }
    /* Whatever happens to the replay, the client has everything <= since. */
    c->floor = since;
    ot_hub_source src = src_of(c->hub);
    if (!src.available(src.ctx)) {
        ot_hub_send_error(c, "unavailable", "resume needs the database", NULL);
        return;
    }
    ot_hub_replay *rp = calloc(1, sizeof(*rp));
    if (!rp) {
        ot_hub_send_error(c, "internal", "out of memory", NULL);
        return;
    }
    rp->c = c;
    rp->since = rp->cursor = since;
    ot_timer_init(&rp->retry, on_retry, rp);
    c->replay = rp;
    c->held = &rp->held;
    replay_begin(rp);
}

void ot_hub_on_drained(ot_hub_client *c)
{
    ot_hub_replay *rp = c->replay;
    if (rp && rp->paused && !rp->q && c->ws.state == OT_WS_OPEN && ot_ws_unsent(&c->ws) <= OT_WS_LOW_WATER(ot_hub_cfg(c->hub)->ws_max_queue))
        replay_fetch(rp);
}

void ot_hub_replay_cancel(ot_hub_client *c)
{
    if (!c->replay)
        return;
    replay_free(c->replay);
    c->replay = NULL;
    c->held = NULL;
}
