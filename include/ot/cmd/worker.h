/* One worker process: its loop, its listener, its connections and the clients
 * of its external services. Workers share nothing in memory. */
#ifndef OT_WORKER_H
#define OT_WORKER_H

#include "ot/core/config.h"
#include "ot/event/loop.h"
#include "ot/event/service.h"
#include "ot/http/http.h"

typedef struct ot_pg ot_pg;
typedef struct ot_ratelimit ot_ratelimit;
typedef struct ot_app ot_app;

typedef struct ot_worker {
    ot_loop *loop;
    const ot_config *cfg;
    int idx;
    ot_http_server http; /* router, TLS, connections and their limits */
    int listen_fd;
    bool draining;
    ot_timer drain_timer;
    ot_pg *pg;           /* NULL without DATABASE_URL */
    ot_ratelimit *rl_user;
    ot_app *app;         /* orders, events and the WebSocket hub */
    /* Every dependency the worker runs, registered by ot_app_start: /readyz,
     * the SIGTERM drain and /metrics iterate them. */
    ot_services services;
    ot_timer sample_timer;
} ot_worker;

/* Runs a worker until it has drained after SIGTERM; returns the exit code. */
int ot_worker_main(const ot_config *cfg, int idx);
/* Opens a non-blocking SO_REUSEPORT listener. */
int ot_listen_socket(const char *host, int port, int backlog);
/* A connection (HTTP or WebSocket) closed: a drain may end. The layers below
 * report it through their callbacks (ot_http_server.on_closed, the hub's
 * env.closed). */
void ot_worker_conn_closed(ot_worker *w);

#endif
