/* The event sequencer; see evseq.h for the invariant and the rollback proof. */
#include "ot/app/evseq.h"

#include <stdlib.h>

int ot_evseq_init(ot_evseq *s, size_t max_pending, ot_evseq_sink *sink, void *sink_data)
{
    memset(s, 0, sizeof(*s));
    if (max_pending == 0 || !(s->pending = calloc(max_pending, sizeof(*s->pending))))
        return OT_ERR;
    s->max_pending = max_pending;
    s->sink = sink;
    s->sink_data = sink_data;
    return 0;
}

void ot_evseq_free(ot_evseq *s)
{
    for (size_t i = 0; i < s->npending; i++)
        free(s->pending[i].json);
    free(s->pending);
    s->pending = NULL;
    s->npending = 0;
}

void ot_evseq_start(ot_evseq *s, int64_t next)
{
    if (s->next == 0 && next > 0)
        s->next = next;
}

static void deliver(ot_evseq *s, const ot_event *ev)
{
    s->next = ev->seq + 1;
    s->delivered++;
    s->sink(s->sink_data, ev);
}

static void drain_pending(ot_evseq *s)
{
    size_t i = 0;
    while (i < s->npending && s->pending[i].seq <= s->next) {
        ot_evseq_held *p = &s->pending[i];
        ot_event ev;
        /* Held events are kept as text and parsed once more on the way out:
         * the parsed form points into buffers that did not outlive the feed. */
        if (p->seq == s->next && ot_event_parse(ot_str_make(p->json, p->len), &ev) == 0) {
            ev.seen_us = p->seen_us;
            deliver(s, &ev);
        }
        free(p->json);
        i++;
    }
    if (i) {
        memmove(s->pending, s->pending + i, (s->npending - i) * sizeof(*s->pending));
        s->npending -= i;
    }
    if (s->npending == 0)
        s->gap_known = false;
}

static void hold(ot_evseq *s, const ot_event *ev)
{
    size_t lo = 0, hi = s->npending;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->pending[mid].seq < ev->seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->npending && s->pending[lo].seq == ev->seq)
        return; /* duplicate */
    if (s->npending >= s->max_pending) {
        if (lo >= s->npending)
            return; /* highest of all: forget it, the tail re-reads it */
        free(s->pending[s->npending - 1].json);
        s->npending--;
    }
    char *copy = malloc(ev->json.len ? ev->json.len : 1);
    if (!copy)
        return; /* forgotten like an overflow: the tail re-reads it */
    memcpy(copy, ev->json.base, ev->json.len);
    memmove(s->pending + lo + 1, s->pending + lo, (s->npending - lo) * sizeof(*s->pending));
    s->pending[lo] = (ot_evseq_held){ ev->seq, ev->seen_us, copy, ev->json.len };
    s->npending++;
}

bool ot_evseq_feed(ot_evseq *s, const ot_event *ev)
{
    if (ev->seq > s->seen_max)
        s->seen_max = ev->seq;
    if (s->next == 0 || ev->seq < s->next)
        return false; /* not started yet (the start covers it) or already delivered */
    if (ev->seq == s->next) {
        deliver(s, ev);
        drain_pending(s);
        return false;
    }
    hold(s, ev);
    return !s->gap_known || s->gap_seq != s->next;
}

void ot_evseq_tail_sent(ot_evseq *s) { s->tail_seen_max = s->seen_max; }

void ot_evseq_tail_done(ot_evseq *s, uint64_t xmin, uint64_t xid, int64_t max_row_seq)
{
    int64_t known = s->tail_seen_max > max_row_seq ? s->tail_seen_max : max_row_seq;
    if (s->npending == 0 || s->next == 0)
        return;
    if (!s->gap_known || s->gap_seq != s->next) {
        if (xid == 0)
            return; /* a read without an xid cannot bound anything */
        /* This query's xid bounds the gap's owner only if an event above the
         * gap had committed before the query ran. An event learnt while it
         * was in flight may sit above a gap whose owner began later: skipping
         * on that bound would lose a commit still in progress. The next
         * query, sent after it, can bound that gap. */
        if (s->pending[0].seq <= known) {
            s->gap_known = true;
            s->gap_seq = s->next;
            s->gap_xid = xid;
        }
    } else if (xmin >= s->gap_xid) {
        /* Every transaction that could own the missing numbers has ended and
         * none of them committed a row: they rolled back. */
        int64_t upto = s->pending[0].seq;
        s->gaps_skipped += (uint64_t)(upto - s->next);
        s->next = upto;
        drain_pending(s);
    }
}
