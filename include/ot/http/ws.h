/* The WebSocket transport (RFC 6455): frames in and out of one upgraded
 * socket. It knows nothing of who is on the socket or what they may see: the
 * application gives each connection an ops table (on_text, on_drained,
 * on_close, ...) and a data pointer, as h2o's websocket API does, and sits
 * above (app/gateway.h); this module owns the bytes.
 *
 * Memory is the design constraint (100k idle sockets per worker): a socket
 * owns no fixed buffers. Reads land in one per-worker scratch buffer (the
 * ot_ws_server's) and only the tail of an incomplete frame is copied into a
 * per-socket buffer, freed as soon as it empties; the outgoing queue holds
 * references to frames that are built once and shared by every socket they
 * go to (ot_wsbuf). */
#ifndef OT_WS_H
#define OT_WS_H

#include "ot/codec/ws_frame.h"
#include "ot/core/buf.h"
#include "ot/core/config.h"
#include "ot/core/utf8.h"
#include "ot/event/io.h"
#include "ot/event/loop.h"

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

typedef struct ot_ws_conn ot_ws_conn;
typedef struct ot_ws_server ot_ws_server;

/* What the application is told about one socket. Every hook may queue,
 * close or abort; c stays readable until the end of the loop batch in which
 * it died. */
typedef struct {
    /* A complete text message (valid UTF-8). */
    void (*on_text)(ot_ws_conn *c, const uint8_t *p, size_t n);
    /* The output queue emptied while open (NULL: not wanted). */
    void (*on_drained)(ot_ws_conn *c);
    /* The socket died (once, from ot_ws_abort): release what the app holds
     * for it; its memory is freed after the current batch (on_free). */
    void (*on_close)(ot_ws_conn *c);
    /* Bytes the app holds for c outside its output queue (frames it will
     * send later), counted against the one cap below (NULL: none). */
    size_t (*held_bytes)(const ot_ws_conn *c);
    /* Frees the memory c lives in, after the batch (NULL: free(c)). */
    void (*on_free)(ot_ws_conn *c);
} ot_ws_ops;

struct ot_ws_conn {
    ot_io io;
    ot_ws_server *srv;
    const ot_ws_ops *ops;
    void *data;            /* the application's */
    ot_ws_conn *zombie;    /* after death: the server's list of sockets to free */
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
    bool dirty;            /* in the server's flush list */
    bool drop_input;       /* after a protocol error: discard whatever else arrives */
    bool rd_paused;        /* output over the high-water mark: input waits (see ot_ws_enqueue) */
    bool in_read;          /* ws_read is on the stack (no re-entry from a flush) */
    ot_timer timer;        /* ping / pong deadline / close linger */
};

/* ---- the per-worker transport ---- */

/* Limits come from cfg (ws_max_queue, ws_max_message, ws_ping_ms,
 * ws_pong_timeout_ms); NULL on allocation failure. */
ot_ws_server *ot_ws_server_new(ot_loop *loop, const ot_config *cfg);
/* Frees the sockets that died; abort the open ones first (their owner
 * indexes them). */
void ot_ws_server_free(ot_ws_server *s);
ot_loop *ot_ws_loop(const ot_ws_conn *c);
const ot_config *ot_ws_cfg(const ot_ws_conn *c);

/* Sets up c (zeroed memory of the caller's, freed by ops->on_free) on io,
 * a socket taken over from HTTP; nothing is sent or read yet. */
void ot_ws_conn_init(ot_ws_server *s, ot_ws_conn *c, const ot_ws_ops *ops, void *data, ot_io io);
/* Queues hello (the 101 response; the reference is taken over), registers
 * the socket with the loop and starts the ping timer, then parses `early`
 * (frames the client sent right behind its handshake). OT_ERR: c was
 * aborted. */
int ot_ws_open(ot_ws_conn *c, ot_wsbuf *hello, const ot_buf *early);

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

/* Queues a reference to b (taking a new one) on q (a queue the application
 * holds for the socket, see ops->held_bytes), or on the socket's output
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
/* Writes what is queued until done or EAGAIN. */
void ot_ws_flush(ot_ws_conn *c);
/* Bytes waiting: the outgoing queue plus what the application holds. */
size_t ot_ws_queued(const ot_ws_conn *c);
/* Unsent bytes of the outgoing queue alone (what the high-water mark limits). */
size_t ot_ws_unsent(const ot_ws_conn *c);

#endif
