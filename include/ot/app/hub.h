/* The hub: this worker's WebSocket clients, who may see what, and the fanout
 * of order events to them.
 *
 * Index: customers sit in a hash table keyed by their user id (a chain per
 * bucket), admins in one list, so an event visits only the sockets of its
 * owner plus the admins, never every socket. An event's frame is encoded once
 * into a shared buffer (ot_wsbuf) and each socket queues a reference; the
 * sockets touched are flushed together after the loop batch, so a burst of
 * events reaches each socket in one writev.
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
#ifndef OT_HUB_H
#define OT_HUB_H

#include "ot/core/common.h"
#include "ot/app/events.h"
#include "ot/adapters/pg.h"
#include "ot/codec/clientmsg.h" /* ot_hub_parse_msg, ot_uuid_*: the pure part of the hub */

typedef struct ot_worker ot_worker;
typedef struct ot_hub ot_hub;
typedef struct ot_ws_conn ot_ws_conn;
typedef struct ot_hub_slot ot_hub_slot;

#define OT_HUB_MAX_SUBS 64          /* subscriptions per socket */
#define OT_HUB_MAX_SUBQ 8           /* subscribe checks in flight per socket */
#define OT_HUB_REPLAY_PAGE 500
#define OT_HUB_REPLAY_MAX 100000

ot_hub *ot_hub_new(ot_worker *w);
/* Closes every socket at once (no handshake) and frees the hub. */
void ot_hub_free(ot_hub *h);
/* What the hub sink delivers (src/cmd/app.c): queues the event on every socket of this worker allowed
 * to see it (CUSTOMER: its own orders; ADMIN: all; narrowed by subscriptions). */
void ot_hub_event(void *hub, const ot_event *ev);
/* SIGTERM: every socket is closed with 1001 "going away"; new upgrades get 503. */
void ot_hub_drain(ot_hub *h);
/* Open sockets (the worker's drain ends at 0). */
int ot_hub_count(const ot_hub *h);
/* Starts the closing handshake with code/reason on every open socket of
 * user_id (any role; a UUID in either case): token revocation uses 4401.
 * Returns how many were closed. */
int ot_hub_close_user(ot_hub *h, ot_str user_id, uint16_t code, const char *reason);

/* Statements the pool must prepare. */
extern const ot_pg_stmt ot_hub_stmts[];
extern const size_t ot_hub_nstmts;

/* ---- for ws.c ---- */

/* False while draining or over the worker's connection limit. */
bool ot_hub_accepting(const ot_hub *h);
/* The per-user and per-IP caps on open sockets (cfg ws_max_per_user,
 * ws_max_per_ip, per worker). Counts one more socket for user sub (a UUID is
 * counted in its canonical spelling) and client IP bytes ip[0..iplen) (iplen
 * 0: not an IP peer, no IP cap) into slots[0..2). 0, or OT_HUB_OVER_USER /
 * OT_HUB_OVER_IP with nothing counted. Give the slots to the socket before
 * ot_hub_attach (its detach releases them), or back with ot_hub_release. */
#define OT_HUB_OVER_USER 1
#define OT_HUB_OVER_IP 2
int ot_hub_admit(ot_hub *h, const char *sub, size_t sublen, const uint8_t *ip, size_t iplen,
                 ot_hub_slot *slots[2]);
void ot_hub_release(ot_hub *h, ot_hub_slot *slots[2]);
/* Indexes a new open socket (claims already in c). */
void ot_hub_attach(ot_hub *h, ot_ws_conn *c);
/* Unindexes a dying socket, cancels its queries and resume, and schedules
 * the struct to be freed after the current batch. */
void ot_hub_detach(ot_hub *h, ot_ws_conn *c);
/* The socket has bytes queued: flush it after the current batch. */
void ot_hub_mark_dirty(ot_hub *h, ot_ws_conn *c);
/* The per-worker read buffer. */
uint8_t *ot_hub_scratch(ot_hub *h, size_t *cap);
/* A complete text message from the client (valid UTF-8). */
void ot_hub_on_text(ot_ws_conn *c, const uint8_t *p, size_t n);
/* Starts a resume from `since` (answers an error if one is running). */
void ot_hub_resume(ot_ws_conn *c, int64_t since);
/* The socket's output drained: a resume paused by the low-water mark goes on. */
void ot_hub_on_drained(ot_ws_conn *c);
/* Bytes of live events held back by a resume. */
size_t ot_hub_held_bytes(const ot_ws_conn *c);
/* The shared empty Ping frame. */
struct ot_wsbuf *ot_hub_ping_frame(ot_hub *h);
ot_worker *ot_hub_worker(const ot_hub *h);

/* ---- where a resume reads missed events ---- */

/* One order_events row: seq and the event object (ot_event_json). */
typedef struct {
    int64_t seq;
    ot_str json;
} ot_hub_row;

typedef struct ot_hub_replay ot_hub_replay;

/* The default reads order_events through the worker's pool with the
 * watermark of its event reader; tests substitute an in-memory log. */
typedef struct {
    void *ctx;
    bool (*available)(void *ctx);
    /* ot_events_watermark: every seq below it was handed to ot_hub_event (or never existed); <= 0: not yet known. */
    int64_t (*watermark)(void *ctx);
    /* Starts reading, in seq order, at most OT_HUB_REPLAY_PAGE rows with
     * since < seq < until (only user's when user is not NULL), answered later
     * (never from inside the call) with ot_hub_replay_rows(rp, ...). Returns
     * a handle for cancel, or NULL on failure. */
    void *(*fetch)(void *ctx, int64_t since, int64_t until, const char *user, ot_hub_replay *rp);
    /* The socket died: the answer must not come. */
    void (*cancel)(void *ctx, void *q);
} ot_hub_source;

/* NULL: back to the PostgreSQL source. */
void ot_hub_set_source(ot_hub *h, const ot_hub_source *src);
/* A source's answer to fetch (rows valid during the call only; ok false: the read failed). */
void ot_hub_replay_rows(ot_hub_replay *rp, bool ok, const ot_hub_row *rows, int nrows);

/* ---- pure helpers (unit-tested) ---- */

/* A token bucket of `burst` tokens refilled at `rate`/s: takes one token at
 * now_ms (a monotonic ms clock; *last_ms = 0: a full bucket not started yet).
 * rate <= 0 (or NaN) always allows. */
bool ot_hub_bucket_take(double *tokens, uint64_t *last_ms, uint64_t now_ms, double rate, double burst);

#endif
