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
 * Resume (since=SEQ, on the URL or as {"action":"resume"}): W is taken from
 * ot_events_watermark() at that moment; live events from then on (seq >= W)
 * are held for the socket while the rows since < seq < W it may see are read
 * from order_events in pages of OT_HUB_REPLAY_PAGE, then the held events are
 * released: no gap, no duplicate. Pages are fetched only while the socket's
 * queue is under a quarter of ws_max_queue, so a replay moves at the reader's
 * pace; the held live events have their own ws_max_queue cap (a client that
 * does not read during a long replay is dropped as a slow consumer). At most OT_HUB_REPLAY_MAX events are replayed: beyond, the
 * client gets {"event":"error","data":{"code":"resume_truncated","lastSeq":N}}
 * and live events continue; it may resume again from N (events it then sees
 * twice carry the same eventId) or reload state over HTTP. */
#ifndef OT_HUB_H
#define OT_HUB_H

#include "ot/core/common.h"
#include "ot/app/events.h"
#include "ot/adapters/pg.h"

typedef struct ot_worker ot_worker;
typedef struct ot_hub ot_hub;
typedef struct ot_ws_conn ot_ws_conn;

#define OT_HUB_MAX_SUBS 64          /* subscriptions per socket */
#define OT_HUB_MAX_SUBQ 8           /* subscribe checks in flight per socket */
#define OT_HUB_REPLAY_PAGE 500
#define OT_HUB_REPLAY_MAX 100000

ot_hub *ot_hub_new(ot_worker *w);
/* Closes every socket at once (no handshake) and frees the hub. */
void ot_hub_free(ot_hub *h);
/* An ot_event_sink: queues the event on every socket of this worker allowed
 * to see it (CUSTOMER: its own orders; ADMIN: all; narrowed by subscriptions). */
void ot_hub_event(void *hub, const ot_event *ev);
/* SIGTERM: every socket is closed with 1001 "going away"; new upgrades get 503. */
void ot_hub_drain(ot_hub *h);
/* Closes every open socket of user_id (its tokens were revoked), e.g. with
 * 4401; a NUL-terminated id in any case spelling. */
void ot_hub_close_user(ot_hub *h, const char *user_id, uint16_t code, const char *reason);
/* Open sockets (the worker's drain ends at 0). */
int ot_hub_count(const ot_hub *h);

/* Statements the pool must prepare. */
extern const ot_pg_stmt ot_hub_stmts[];
extern const size_t ot_hub_nstmts;

/* ---- for ws.c ---- */

/* False while draining or over the worker's connection limit. */
bool ot_hub_accepting(const ot_hub *h);
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
/* The socket's queue drained below half the cap: a paused resume goes on. */
void ot_hub_on_drained(ot_ws_conn *c);
/* Bytes of live events held back by a resume. */
size_t ot_hub_held_bytes(const ot_ws_conn *c);
/* The shared empty Ping frame. */
struct ot_wsbuf *ot_hub_ping_frame(ot_hub *h);
ot_worker *ot_hub_worker(const ot_hub *h);

/* ---- pure helpers (unit-tested) ---- */

/* Canonical 8-4-4-4-12 hex UUID (either case) -> 16 bytes; OT_ERR otherwise. */
int ot_uuid_parse(ot_str s, uint8_t out[16]);
void ot_uuid_format(const uint8_t id[16], char out[37]);

typedef enum {
    OT_HUB_MSG_INVALID = -1, /* not JSON, no/unknown action, bad field: m->error says why */
    OT_HUB_MSG_SUBSCRIBE = 1,
    OT_HUB_MSG_UNSUBSCRIBE,
    OT_HUB_MSG_AUTH,
    OT_HUB_MSG_RESUME,
    OT_HUB_MSG_PING,
} ot_hub_msg_kind;

typedef struct {
    uint8_t order_id[16];  /* subscribe / unsubscribe */
    size_t token_len;      /* auth: token in the caller's buffer */
    int64_t since;         /* resume */
    const char *error;     /* code for {"event":"error"} when INVALID */
    const char *message;
} ot_hub_msg;

/* Parses one client message ({"action":...}). The token of an auth message is
 * unescaped into tok[0..tokcap). */
ot_hub_msg_kind ot_hub_parse_msg(ot_str text, ot_hub_msg *m, char *tok, size_t tokcap);

#endif
