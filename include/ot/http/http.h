/* The HTTP/1.1 connection: reads, parses (ot/http_parser.h), routes, and
 * writes responses in request order. One request is handled at a time per
 * connection: a pipelined request waits until the previous response has been
 * queued, which keeps responses in order without a reorder buffer and gives
 * natural backpressure (we stop reading while a handler is busy). */
#ifndef OT_HTTP_H
#define OT_HTTP_H

#include <sys/socket.h>

#include "ot/core/buf.h"
#include "ot/codec/http_parser.h"
#include "ot/event/io.h"
#include "ot/codec/jwt.h"
#include "ot/core/config.h"
#include "ot/event/loop.h"
#include "ot/http/router.h"

typedef struct ot_http_conn ot_http_conn;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ot_ratelimit ot_ratelimit;

/* One worker's HTTP side: what its connections share. The owner fills it
 * (loop, cfg, router, tls, limits) before the first connection. */
typedef struct ot_http_server {
    ot_loop *loop;
    const ot_config *cfg;
    ot_router router;
    SSL_CTX *tls;        /* NULL: plain TCP */
    ot_ratelimit *rl_ip; /* per client address (NULL: off) */
    int nconns;          /* HTTP connections (WebSockets are counted by the hub) */
    int max_conns;
    ot_http_conn *conns; /* intrusive list, for draining */
    bool draining;       /* set by ot_http_drain: responses say Connection: close */
    /* A connection closed (a drain may end); NULL: nobody asks. */
    void (*on_closed)(void *data);
    void *data;
} ot_http_server;

struct ot_req {
    ot_http_request head;      /* points into the connection's read buffer; re-anchored by
                                * the connection whenever that buffer moves (http.c) */
    ot_str body;               /* decoded body, same lifetime */
    ot_str params[OT_MAX_PARAMS];
    int nparams;
    int route;                 /* router index, -1 for errors before routing */
    void *data;                /* the matched route's data */
    ot_http_server *srv;
    ot_http_conn *conn;
    uint64_t start_us;
    bool responded;
    bool head_only;            /* HEAD: send headers, not the body */
    ot_jwt_claims auth;        /* filled by ot_req_auth */
    bool authed;
    /* Async handlers: set both before returning without a response. If the
     * connection dies first, on_abort(r) runs and must cancel outstanding
     * work (e.g. ot_pg_cancel) and free ctx; the request is gone after it. */
    void (*on_abort)(ot_req *r);
    void *ctx;
    char extra[768];           /* extra response header lines, see ot_resp_header; a static file's
                                * CSP, validators and coding need ~450 (api/static.c) */
    size_t extra_len;
    char remote[64];           /* client address, for logs and rate limits */
    uint8_t remote_key[16];    /* client IP bytes */
    size_t remote_key_len;
};

/* Accepts ownership of a connected non-blocking socket. */
void ot_http_conn_new(ot_http_server *s, int fd, const struct sockaddr *sa, socklen_t salen);
/* Drain: closes idle keep-alive connections and marks the rest to close
 * after their response. */
void ot_http_drain(ot_http_server *s);

/* Adds a header line to the response ("Retry-After", "5"). */
void ot_resp_header(ot_req *r, const char *name, const char *value);
/* Sends the response. body may be empty. After this the request is finished:
 * r and everything it points to may be reused. */
void ot_respond(ot_req *r, int status, const char *content_type, ot_str body);
void ot_respond_json(ot_req *r, int status, ot_str json);
/* {"error":{"code":code,"message":message}} — the one place errors become JSON. */
void ot_respond_error(ot_req *r, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
const char *ot_http_status_text(int status);


/* Takes the socket out of HTTP for a protocol switch (WebSocket): moves the
 * io (fd + TLS) and any bytes read past the request head into the caller's
 * hands, unregisters and frees the HTTP connection. The request is finished. */
void ot_http_takeover(ot_req *r, ot_io *io_out, ot_buf *leftover);

/* For tests and fuzzing: moves the connection's read buffer to a fresh block
 * (poisoning and freeing the old one), through the same re-anchoring path a
 * growth takes, so a test can move it between a parse and any later use. */
void ot_http_conn_move_rbuf(ot_http_conn *c);

#endif
