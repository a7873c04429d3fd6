/* The product's wiring: which routes exist and which services a worker runs. */
#include "ot/cmd/app.h"

#include <stdlib.h>

#include "ot/api/auth.h"
#include "ot/app/events.h"
#include "ot/http/http.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"
#include "ot/api/orders.h"
#include "ot/adapters/pg.h"
#include "ot/core/ratelimit.h"
#include "ot/api/system.h"
#include "ot/http/ws.h"

/* Rate-limit tables: keys beyond this evict the fullest/oldest buckets. */
#define OT_RL_KEYS 65536

static void add_unlimited(ot_router *rt, const char *method, const char *pattern, const char *name, ot_handler *h)
{
    int i = ot_router_add(rt, method, pattern, name, h);
    if (i >= 0)
        rt->routes[i].flags = OT_ROUTE_UNLIMITED;
}

void ot_app_routes(ot_router *rt)
{
    add_unlimited(rt, "GET", "/healthz", "healthz", ot_h_healthz);
    add_unlimited(rt, "GET", "/readyz", "readyz", ot_h_readyz);
    add_unlimited(rt, "GET", "/metrics", "metrics", ot_h_metrics);
    ot_router_add(rt, "GET", "/openapi.yaml", "openapi", ot_h_openapi);
    ot_router_add(rt, "POST", "/auth/register", "auth_register", ot_h_register);
    ot_router_add(rt, "POST", "/auth/login", "auth_login", ot_h_login);
    ot_router_add(rt, "POST", "/orders", "orders_create", ot_h_order_create);
    ot_router_add(rt, "GET", "/orders/user/:id", "orders_by_user", ot_h_orders_by_user);
    ot_router_add(rt, "GET", "/orders/:id", "orders_get", ot_h_order_get);
    ot_router_add(rt, "PATCH", "/orders/:id/status", "orders_status", ot_h_order_status);
    ot_router_add(rt, "GET", "/ws/orders", "ws_orders", ot_h_ws);
    ot_router_add(rt, "GET", "/", "static", ot_h_static);
    ot_router_add(rt, "GET", "/web/:file", "static", ot_h_static);
}


/* ---- services: what the worker's registry asks of each dependency ---- */

static uint64_t pg_err_seen;

static void pg_sample(void *data)
{
    ot_pg_stats st;
    ot_pg_get_stats(data, &st);
    ot_metrics_set(OT_G_PG_CONNS_UP, st.conns_up);
    ot_metrics_set(OT_G_PG_QUEUE, (int64_t)st.queued);
    if (st.queries_err > pg_err_seen)
        ot_metrics_inc(OT_C_PG_ERRORS, st.queries_err - pg_err_seen);
    pg_err_seen = st.queries_err;
}

static bool pg_ready(void *data) { return ot_pg_ready(data); }
static void hub_drain(void *data) { ot_hub_drain(data); }
static bool hub_drained(void *data) { return ot_hub_count(data) == 0; }

ot_pg_stmt *ot_app_stmts(const ot_pg_stmt *const *groups, const size_t *counts, size_t ngroups, size_t *n)
{
    size_t total = 0;
    for (size_t g = 0; g < ngroups; g++)
        total += counts[g];
    ot_pg_stmt *all = calloc(total ? total : 1, sizeof(*all));
    if (!all) {
        ot_logf(OT_LOG_ERROR, "statement table: out of memory for %zu statements", total);
        return NULL;
    }
    size_t k = 0;
    for (size_t g = 0; g < ngroups; g++) {
        for (size_t i = 0; i < counts[g]; i++) {
            /* Two modules preparing one name would silently run the other's SQL. */
            for (size_t j = 0; j < k; j++) {
                if (strcmp(all[j].name, groups[g][i].name) == 0) {
                    ot_logf(OT_LOG_ERROR, "statement table: %s is declared twice", groups[g][i].name);
                    free(all);
                    return NULL;
                }
            }
            all[k++] = groups[g][i];
        }
    }
    *n = k;
    return all;
}

int ot_app_start(ot_worker *w)
{
    ot_app_routes(&w->router);
    ot_app *app = calloc(1, sizeof(*app));
    if (!app)
        return OT_ERR;
    w->app = app;
    app->hub = ot_hub_new(w);
    if (!app->hub)
        return OT_ERR;
    if (w->cfg->rate_ip > 0)
        w->rl_ip = ot_ratelimit_new(w->cfg->rate_ip, w->cfg->rate_ip_burst, OT_RL_KEYS);
    if (w->cfg->rate_user > 0)
        w->rl_user = ot_ratelimit_new(w->cfg->rate_user, w->cfg->rate_user_burst, OT_RL_KEYS);
    if (w->cfg->database_url) {
        /* One statement table for the pool, gathered from the modules and
         * sized from what they declare. */
        const ot_pg_stmt *groups[] = { ot_auth_stmts, ot_orders_stmts, ot_events_stmts, ot_hub_stmts };
        size_t counts[] = { ot_auth_nstmts, ot_orders_nstmts, ot_events_nstmts, ot_hub_nstmts };
        size_t n = 0;
        ot_pg_stmt *stmts = ot_app_stmts(groups, counts, OT_ARRAY_LEN(groups), &n);
        if (!stmts)
            return OT_ERR;
        ot_pg_config pc;
        ot_pg_config_default(&pc);
        pc.conninfo = w->cfg->database_url;
        pc.pool_size = w->cfg->pg_pool;
        w->pg = ot_pg_new(w->loop, &pc, stmts, n); /* copies the table */
        free(stmts);
        if (!w->pg) {
            ot_logf(OT_LOG_ERROR, "database pool setup failed");
            return OT_ERR;
        }
        app->events = ot_events_start(w, ot_hub_event, app->hub);
    }
    /* A service without `ready` shows in /readyz as "not configured". */
    ot_services_add(&w->services, &(ot_service){ .name = "database", .data = w->pg, .ready = w->pg ? pg_ready : NULL,
                                                 .required = true, .code = "database_unavailable",
                                                 .message = "PostgreSQL is not reachable",
                                                 .sample = w->pg ? pg_sample : NULL });
    ot_services_add(&w->services, &(ot_service){ .name = "websockets", .data = app->hub, .drain = hub_drain,
                                                 .drained = hub_drained });
    return 0;
}

void ot_app_drain(ot_worker *w) { ot_hub_drain(w->app->hub); }

bool ot_app_drained(ot_worker *w) { return !w->app || ot_hub_count(w->app->hub) == 0; }

void ot_app_stop(ot_worker *w)
{
    ot_app *app = w->app;
    if (!app)
        return;
    ot_events_free(app->events);
    ot_hub_free(app->hub);
    if (w->pg)
        ot_pg_free(w->pg);
    free(app);
    w->app = NULL;
}
