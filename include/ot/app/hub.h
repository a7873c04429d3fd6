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
 * Resume (replay.h) and client messages (hub_msg.h) are modules above this
 * one; the gateway (gateway.h) on top wires them to the WebSocket transport.
 * Customers' user ids are compared as text against event userIds, so a UUID
 * sub is spelled in its canonical lower case. */
#ifndef OT_HUB_H
#define OT_HUB_H

#include "ot/core/common.h"
#include "ot/app/events.h"
#include "ot/adapters/pg.h"
#include "ot/codec/clientmsg.h" /* ot_hub_parse_msg, ot_uuid_*: the pure part of the hub */
#include "ot/codec/jwt.h"
#include "ot/http/ws.h"

typedef struct ot_hub ot_hub;
typedef struct ot_hub_slot ot_hub_slot;
typedef struct ot_hub_replay ot_hub_replay;
typedef struct ot_hub_subq ot_hub_subq;

#define OT_HUB_MAX_SUBS 64          /* subscriptions per socket */
#define OT_HUB_MAX_SUBQ 8           /* subscribe checks in flight per socket */

/* One client socket: the transport's part first (ws.h), then what the hub
 * and the modules above it know of the client. One allocation, freed by the
 * transport after the batch in which the socket died. */
typedef struct ot_hub_client ot_hub_client;
struct ot_hub_client {
    ot_ws_conn ws;
    ot_hub *hub;
    /* Index links: the per-user bucket chain (customers) or the admin list. */
    ot_hub_client *prev, *next;
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
    ot_timer expiry;       /* token expiry -> 4401 */
    uint8_t (*subs)[16];   /* subscribed order ids; NULL = every event this socket may see */
    ot_wsq *held;          /* non-NULL while a resume holds live events back (replay.h) */
    ot_hub_replay *replay; /* resume in progress */
    ot_hub_subq *subq;     /* subscribe ownership queries in flight */
    char sub[OT_JWT_SUB_MAX + 1];
};

/* What the hub needs of its worker, given by the wiring above it. */
typedef struct {
    ot_loop *loop;
    const ot_config *cfg;
    ot_pg *pg; /* NULL without a database */
    /* Room for one more socket, `open` being open already (the worker's fd
     * budget and drain); NULL: always. */
    bool (*room)(void *data, int open);
    /* A socket closed: a drain may end. NULL: nobody asks. */
    void (*closed)(void *data);
    void *data;
} ot_hub_env;

ot_hub *ot_hub_new(const ot_hub_env *env);
/* The event reader, once started (its watermark paces a resume). */
void ot_hub_set_events(ot_hub *h, ot_events *ev);
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


/* ---- where a resume reads missed events ---- */

/* One order_events row: seq and the event object (ot_event_json). */
typedef struct {
    int64_t seq;
    ot_str json;
} ot_hub_row;

/* The default reads order_events through the worker's pool with the
 * watermark of its event reader; tests substitute an in-memory log. Its
 * answers go to ot_hub_replay_rows (replay.h). */
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
/* The source set, or NULL for the PostgreSQL one (replay.c). */
const ot_hub_source *ot_hub_get_source(const ot_hub *h);

/* ---- for the modules above (replay, client messages, gateway) ---- */

ot_loop *ot_hub_loop(const ot_hub *h);
const ot_config *ot_hub_cfg(const ot_hub *h);
ot_pg *ot_hub_pg(const ot_hub *h);
ot_events *ot_hub_events(const ot_hub *h);
ot_ws_server *ot_hub_transport(ot_hub *h);
/* False while draining or when the worker has no room. */
bool ot_hub_accepting(const ot_hub *h);
/* The per-user and per-IP caps on open sockets (cfg ws_max_per_user,
 * ws_max_per_ip, per worker). Counts one more socket for user sub (a UUID is
 * counted in its canonical spelling) and client IP bytes ip[0..iplen) (iplen
 * 0: not an IP peer, no IP cap) into slots[0..2). 0, or OT_HUB_OVER_USER /
 * OT_HUB_OVER_IP with nothing counted. Give the slots to the client before
 * ot_hub_attach (its detach releases them), or back with ot_hub_release. */
#define OT_HUB_OVER_USER 1
#define OT_HUB_OVER_IP 2
int ot_hub_admit(ot_hub *h, const char *sub, size_t sublen, const uint8_t *ip, size_t iplen,
                 ot_hub_slot *slots[2]);
void ot_hub_release(ot_hub *h, ot_hub_slot *slots[2]);
/* Indexes a new open socket (claims already in c) and starts its expiry
 * timer at c->exp. */
void ot_hub_attach(ot_hub *h, ot_hub_client *c);
/* Unindexes a dying socket and releases its caps. */
void ot_hub_detach(ot_hub *h, ot_hub_client *c);
/* A re-authenticated client's role changed: move it in the index. */
void ot_hub_set_role(ot_hub_client *c, ot_role role);
/* (Re)arms the expiry timer at c->exp: 4401 "token expired" then. */
void ot_hub_arm_expiry(ot_hub_client *c);
/* Spells a UUID sub in lower case (len becomes 36); anything else stays. */
void ot_hub_normalize_sub(char *sub, size_t *len);
bool ot_hub_has_sub(const ot_hub_client *c, const uint8_t id[16]);
/* Authorisation (CUSTOMER: own orders only) and subscription narrowing;
 * oid: the event's order id, NULL when it is not a UUID. */
bool ot_hub_may_see(const ot_hub_client *c, const ot_event *ev, const uint8_t *oid);
/* The push frame of ev, in the customers' view (no staff-only fields) or the
 * admins'; NULL on allocation failure. */
ot_wsbuf *ot_hub_event_frame(const ot_event *ev, bool customer);
/* Our own replies: a formatted JSON text message (only our literals, numbers
 * and UUIDs go in: no escaping), and {"event":"error",...} with an optional orderId. */
void ot_hub_send_fmt(ot_hub_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ot_hub_send_error(ot_hub_client *c, const char *code, const char *msg, const uint8_t *oid);

#endif
