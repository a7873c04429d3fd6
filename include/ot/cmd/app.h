/* Wires the product into a worker: routes, database pool, event delivery and
 * the WebSocket hub. Each feature module registers itself from here. */
#ifndef OT_APP_H
#define OT_APP_H

#include "ot/adapters/pg.h"
#include "ot/api/helpers.h"
#include "ot/cmd/worker_state.h"

typedef struct ot_events ot_events;
typedef struct ot_hub ot_hub;

/* Per-worker product state; handlers reach what they need through their route's data (api, hub). */
struct ot_app {
    ot_events *events; /* seq-ordered committed events (events.h) */
    ot_hub *hub;       /* WebSocket clients of this worker (ws.h) */
    struct ot_relay *relay; /* the Kafka outbox relay; NULL without KAFKA_BROKERS */
    struct ot_indexer *indexer; /* the search indexer: worker 0 with ELASTICSEARCH_URL, else NULL */
    struct ot_search_lifecycle *lifecycle; /* rollover + retention of the events indices, beside the indexer */
    struct ot_kafka_feed *feed; /* the push path's Kafka consumer; NULL without KAFKA_BROKERS */
    struct ot_principals *principals; /* token revocation cache; NULL without a database */
    ot_api api;        /* the API routes' data */
};

/* Registers every route (also used by the master to name metrics, with
 * NULL data). */
void ot_app_routes(ot_router *rt, ot_api *api, ot_hub *hub);
int ot_app_start(ot_worker *w);
/* SIGTERM: stop taking new work; close WebSockets with 1001. */
void ot_app_drain(ot_worker *w);
/* True once nothing the app owns keeps the worker alive. */
bool ot_app_drained(ot_worker *w);
void ot_app_stop(ot_worker *w);

/* The pool's statement table: every module's table concatenated, sized from
 * their counts (caller frees). NULL, logged, on a name declared twice or
 * allocation failure: the worker refuses to start rather than drop one. */
ot_pg_stmt *ot_app_stmts(const ot_pg_stmt *const *groups, const size_t *counts, size_t ngroups, size_t *n);
/* ot_app_stmts over every module the worker's pool serves. */
ot_pg_stmt *ot_app_pool_stmts(size_t *n);

#endif
