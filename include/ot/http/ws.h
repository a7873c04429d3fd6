/* The WebSocket gateway (RFC 6455): the upgrade of GET /ws/orders and the
 * protocol on the socket afterwards. What the socket is told, and which events
 * it may see, is the hub's business (hub.h); this module owns the bytes.
 *
 * Memory is the design constraint (100k idle sockets per worker): a socket
 * owns no fixed buffers. Reads land in one per-worker scratch buffer and only
 * the tail of an incomplete frame is copied into a per-socket buffer, freed as
 * soon as it empties; the outgoing queue holds references to frames that are
 * built once and shared by every socket they go to (ot_wsbuf). */
#ifndef OT_WS_H
#define OT_WS_H

#include "ot/app/hub.h"
#include "ot/http/http.h"
#include "ot/event/io.h"
#include "ot/codec/jwt.h"
#include "ot/event/loop.h"
#include "ot/codec/ws_frame.h"

/* GET /ws/orders. Checks the handshake (§4.2.1) and the token, then takes the
 * socket over from HTTP and answers 101 itself. Query: access_token (when no
 * Authorization header), since=SEQ (resume, see hub.h). */
void ot_h_ws(ot_req *r);

/* ---- shared frames ---- */

/* A complete server frame (header + payload), reference counted so one event
 * is encoded once and queued on every socket that may see it. */
typedef struct ot_wsbuf {
    uint32_t refs;
    uint32_t len;
    int64_t seq;      /* event seq for pushes (held-back filtering), else 0 */
    uint64_t seen_us; /* != 0: a push; its latency is recorded once written */
    uint8_t data[];
} ot_wsbuf;

/* A frame whose payload is a, b and c back to back (any may be empty); one
 * reference, NULL on allocation failure or a payload >= 4 GiB. */
ot_wsbuf *ot_wsbuf_frame(uint8_t opcode, ot_str a, ot_str b, ot_str c);
/* Raw bytes that are not a frame (the 101 response). */
ot_wsbuf *ot_wsbuf_raw(ot_str bytes);
static inline ot_wsbuf *ot_wsbuf_ref(ot_wsbuf *b)
{
    b->refs++;
    return b;
}
void ot_wsbuf_unref(ot_wsbuf *b);

/* A FIFO of frame references: a ring grown by doubling, allocated on first
 * use. It owns one reference per element. */
typedef struct {
    ot_wsbuf **items;
    uint32_t head, len, cap;
    size_t bytes; /* sum of element lengths */
} ot_wsq;

/* Takes over the caller's reference. OT_ERR on allocation failure (the
 * reference is then still the caller's). */
int ot_wsq_push(ot_wsq *q, ot_wsbuf *b);
static inline ot_wsbuf *ot_wsq_peek(const ot_wsq *q, uint32_t i)
{
    return q->items[(q->head + i) & (q->cap - 1)];
}
/* Removes the head and returns its reference to the caller; NULL if empty. */
ot_wsbuf *ot_wsq_pop(ot_wsq *q);
/* Drops every reference and frees the ring. */
void ot_wsq_clear(ot_wsq *q);

/* ---- one socket ---- */

enum ot_ws_state {
    OT_WS_OPEN,
    OT_WS_CLOSING, /* our Close frame is queued: flush it, then half-close and linger */
    OT_WS_DEAD,    /* socket closed; the struct is freed after the current loop batch */
};

typedef struct ot_hub_replay ot_hub_replay;
typedef struct ot_hub_subq ot_hub_subq;
typedef struct ot_hub_slot ot_hub_slot;

typedef struct ot_ws_conn ot_ws_conn;
struct ot_ws_conn {
    ot_io io;
    ot_hub *hub;
    /* Hub index links: the per-user bucket chain (customers) or the admin
     * list; after death, the hub's list of sockets to free. */
    ot_ws_conn *prev, *next;
    ot_wsq out;
    uint32_t out_off;      /* bytes of the head element already written */
    uint32_t rlen, rcap;   /* incomplete input, lazily allocated */
    uint8_t *rbuf;
    uint8_t *msg;          /* fragmented message being reassembled, lazily allocated */
    uint32_t msg_len, msg_cap;
    ot_utf8 utf8;          /* validator state across the fragments of a text message */
    uint8_t msg_op;        /* opcode of the message in progress, 0 = none */
    uint8_t state;         /* enum ot_ws_state */
    bool ping_out;         /* a ping is unanswered */
    bool close_rcvd;       /* the peer's Close frame arrived */
    bool shut;             /* our side is half-closed: only waiting for EOF */
    bool dirty;            /* in the hub's flush list */
    bool drop_input;       /* after a protocol error: discard whatever else arrives */
    bool rd_paused;        /* output over the high-water mark: input waits (see ot_ws_enqueue) */
    bool in_read;          /* ws_read is on the stack (no re-entry from a flush) */
    uint8_t nsubs, subs_cap, nsubq;
    uint8_t sub_len;
    ot_role role;
    uint32_t hash;         /* of sub, for the per-user index */
    int64_t exp;           /* token expiry, seconds since the epoch */
    int64_t floor;         /* the client has every event with seq <= floor (resume): never push those */
    ot_hub_slot *user_slot, *ip_slot; /* this socket's share of the per-user / per-IP caps */
    double tokens;         /* action token bucket (cfg ws_rate, ws_rate_burst) */
    uint64_t tokens_ms;    /* last refill, loop clock; 0 = bucket not started */
    uint16_t refused;      /* actions refused in a row by the bucket */
    ot_timer timer;        /* ping / pong deadline / close linger */
    ot_timer expiry;       /* token expiry -> 4401 */
    uint8_t (*subs)[16];   /* subscribed order ids; NULL = every event this socket may see */
    ot_hub_replay *replay; /* resume in progress */
    ot_hub_subq *subq;     /* subscribe ownership queries in flight */
    char sub[OT_JWT_SUB_MAX + 1];
};

/* The queue policy. Every byte queued to a socket (pushes, replayed events,
 * live events held by a resume, replies and errors, pongs, pings, the 101)
 * goes through ot_ws_enqueue and counts against one cap, cfg->ws_max_queue,
 * measured by ot_ws_queued():
 *  - hard cap: a frame that would take ot_ws_queued() past ws_max_queue is
 *    not queued; the socket is dropped as a slow consumer (1008).
 *  - high-water (ws_max_queue / 2) on the unsent output: above it no further
 *    input frame is parsed, so a client that sends without reading stops
 *    being read (TCP pushes back on it) instead of piling up replies;
 *  - low-water (ws_max_queue / 4): once the output drained below, parsing
 *    and reading resume where they stopped.
 * Only our Close frame (<= 127 bytes) may go past the cap: unsent frames are
 * discarded first when it would not fit, as it is the last frame anyway. */
#define OT_WS_HIGH_WATER(cap) ((cap) / 2)
#define OT_WS_LOW_WATER(cap) ((cap) / 4)

/* Queues a reference to b (taking a new one) on q, or on the socket's output
 * when q is NULL (then flushed after the current loop batch). OT_ERR when the
 * socket is not open, is over the cap (then dropped, see above) or out of
 * memory (then aborted). */
int ot_ws_enqueue(ot_ws_conn *c, ot_wsbuf *b, ot_wsq *q);
/* ot_ws_enqueue on the socket's output. */
int ot_ws_send(ot_ws_conn *c, ot_wsbuf *b);
/* A JSON text message of our own (acks, errors), through ot_ws_send. */
int ot_ws_send_text(ot_ws_conn *c, ot_str json);
/* Starts the closing handshake (§7.1.2) with code and reason (UTF-8, <= 123
 * bytes): no more data is queued after it. */
void ot_ws_close(ot_ws_conn *c, uint16_t code, const char *reason);
/* Closes the socket now, without a handshake. */
void ot_ws_abort(ot_ws_conn *c);
/* Drops the socket as a slow consumer: unsent frames are freed, then a Close
 * 1008 "slow consumer" is attempted; counted in OT_C_WS_SLOW_DROPPED. */
void ot_ws_drop_slow(ot_ws_conn *c);
/* (Re)arms the expiry timer at c->exp: 4401 "token expired" then. */
void ot_ws_arm_expiry(ot_ws_conn *c);
/* Writes what is queued until done or EAGAIN. */
void ot_ws_flush(ot_ws_conn *c);
/* Frees a dead socket's struct (the hub calls it after the batch). */
void ot_ws_conn_free(ot_ws_conn *c);
/* Bytes waiting: the outgoing queue plus events held back by a resume. */
size_t ot_ws_queued(const ot_ws_conn *c);
/* Unsent bytes of the outgoing queue alone (what the high-water mark limits). */
size_t ot_ws_unsent(const ot_ws_conn *c);

/* ---- pure helpers (unit-tested) ---- */

/* RFC 6455 §4.2.1 on a parsed request head: 0 and accept filled, or the HTTP
 * status to answer: 400 (not a valid handshake) or 426 (Sec-WebSocket-Version
 * missing or not 13; answer with "Sec-WebSocket-Version: 13", §4.4).
 * *why gets a short message for the error body. */
int ot_ws_check_handshake(const ot_http_request *h, char accept[29], const char **why);
/* The bearer token of the upgrade: "Authorization: Bearer <t>" (scheme
 * case-insensitive, RFC 7235 §2.1), else the percent-decoded ?access_token=
 * (RFC 6750 §2.3: browsers cannot set headers on a WebSocket). 0 with the
 * token in out[0..*len), or OT_ERR (none, or malformed). */
int ot_ws_token(const ot_http_request *h, char *out, size_t cap, size_t *len);

#endif
