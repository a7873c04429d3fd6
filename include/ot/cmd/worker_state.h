/* The state of one worker process, shared by the worker (worker.c, which
 * runs it) and the product wiring (app.c, which fills it): a header of its
 * own so neither of the two depends on the other's module. */
#ifndef OT_WORKER_STATE_H
#define OT_WORKER_STATE_H

#include <sys/types.h>

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
    pid_t master;        /* the parent; another getppid() means it died */
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

#endif
