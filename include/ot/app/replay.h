/* Resume: a client that reconnects (or asks) gets the events it missed.
 *
 * Resume (since=SEQ, on the URL or as {"action":"resume"}): the socket's
 * floor becomes SEQ (events <= floor are never pushed to it: the client has
 * them, even if this worker is behind and delivers them only later). W is taken from
 * ot_events_watermark() at that moment; live events from then on (seq >= W)
 * are held for the socket while the rows since < seq < W it may see are read
 * from order_events in pages of OT_HUB_REPLAY_PAGE, then the held events are
 * released: no gap, no duplicate. Pages are read only while the socket's
 * unsent output is under the low-water mark (ws.h), and a page stops midway
 * above it (the next fetch starts after the last row queued), so a replay
 * moves at the reader's pace; held live events count against the same
 * ws_max_queue cap as everything else (a client that does not read during a
 * long replay is dropped as a slow consumer). At most OT_HUB_REPLAY_MAX events are replayed: beyond, the
 * client gets {"event":"error","data":{"code":"resume_truncated","lastSeq":N}}
 * and live events continue; it may resume again from N (events it then sees
 * twice carry the same eventId) or reload state over HTTP. */
#ifndef OT_REPLAY_H
#define OT_REPLAY_H

#include "ot/app/hub.h"

#define OT_HUB_REPLAY_PAGE 500
#define OT_HUB_REPLAY_MAX 100000

/* Statements the pool must prepare. */
extern const ot_pg_stmt ot_replay_stmts[];
extern const size_t ot_replay_nstmts;

/* Starts a resume from `since` (answers an error if one is running). */
void ot_hub_resume(ot_hub_client *c, int64_t since);
/* The socket's output drained: a resume paused by the low-water mark goes on. */
void ot_hub_on_drained(ot_hub_client *c);
/* Bytes of live events held back by a resume. */
size_t ot_hub_held_bytes(const ot_hub_client *c);
/* The socket died: the resume stops (its read is cancelled, held events freed). */
void ot_hub_replay_cancel(ot_hub_client *c);

/* A source's answer to fetch (hub.h, ot_hub_source; rows valid during the call only; ok false: the read failed). */
void ot_hub_replay_rows(ot_hub_replay *rp, bool ok, const ot_hub_row *rows, int nrows);

#endif
