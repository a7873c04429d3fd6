/* The event sequencer: the pure core of the event reader (events.c). It is
 * fed observations from every source (live events, tail-query rows, and each
 * tail query's xid bounds) and hands events to its sink exactly once each, in
 * seq order, never skipping a seq it has not seen commit or proven rolled back.
 * No I/O, no clock, no loop: tests/unit/test_events.c drives it against a
 * model of PostgreSQL with random interleavings.
 *
 * Invariant: `next` is the lowest seq not yet handed to the sink, and every
 * seq below it was delivered or proven to belong to a rolled-back transaction.
 *
 * The proof of a rollback. Seqs are taken before commit, so they become
 * visible out of order. Every writer takes its xid before its seq (sql/004
 * makes that true for any INSERT), so once an event above a gap had committed
 * before a tail query ran, that query's own xid X bounds the gap's owner: it
 * is below X. When a later snapshot's xmin reaches X that owner has ended, and
 * if its row is still not visible it rolled back. */
#ifndef OT_EVSEQ_H
#define OT_EVSEQ_H

#include "ot/core/common.h"
#include "ot/codec/event_json.h"

typedef void ot_evseq_sink(void *data, const ot_event *ev);

typedef struct {
    int64_t seq;
    uint64_t seen_us;
    char *json;
    size_t len;
} ot_evseq_held;

typedef struct {
    ot_evseq_sink *sink;
    void *sink_data;
    int64_t next;             /* 0 until started */
    ot_evseq_held *pending;   /* sorted by seq, all > next */
    size_t npending, max_pending;
    /* The gap at `next` once a tail query has bounded it by its xid. */
    int64_t gap_seq;
    uint64_t gap_xid;
    bool gap_known;
    /* Highest seq fed so far, and its value when the tail query in flight was
     * sent: every commit up to it happened before that query ran. */
    int64_t seen_max, tail_seen_max;
    uint64_t delivered, gaps_skipped; /* seqs given up as rolled back */
} ot_evseq;

/* Beyond max_pending held events the highest are forgotten: the tail query
 * re-reads them once the gap resolves, so memory stays bounded and nothing
 * is lost. OT_ERR on allocation failure. */
int ot_evseq_init(ot_evseq *s, size_t max_pending, ot_evseq_sink *sink, void *sink_data);
void ot_evseq_free(ot_evseq *s);

/* Live delivery begins at `next` (> 0): every lower seq must be final. */
void ot_evseq_start(ot_evseq *s, int64_t next);
static inline bool ot_evseq_started(const ot_evseq *s) { return s->next > 0; }

/* One committed event, from any source, in any order, any number of times.
 * Returns true when it was held behind a gap not yet bounded: the caller
 * should run a tail query soon (that query can bound it). */
bool ot_evseq_feed(ot_evseq *s, const ot_event *ev);

/* A tail query (rows with seq >= next, with the query's snapshot xmin and its
 * own xid) is being sent now. */
void ot_evseq_tail_sent(ot_evseq *s);
/* Its rows have all been fed (max_row_seq: the highest seq it returned, 0 if
 * none); bound the gap by its xid, or skip a gap whose owner has ended. xid 0:
 * a read that took no xid; its xmin may still prove a bounded gap's owner
 * ended. */
void ot_evseq_tail_done(ot_evseq *s, uint64_t xmin, uint64_t xid, int64_t max_row_seq);

#endif
