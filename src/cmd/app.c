/* The product's wiring: which routes exist and which services a worker runs. */
#include "ot/cmd/app.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ot/api/audit.h"
#include "ot/api/auth.h"
#include "ot/app/events.h"
#include "ot/app/gateway.h"
#include "ot/app/hub.h"
#include "ot/app/hub_msg.h"
#include "ot/app/replay.h"
#include "ot/app/principals.h"
#include "ot/app/indexer.h"
#include "ot/app/search_lifecycle.h"
#include "ot/app/kafka_feed.h"
#include "ot/app/relay.h"
#include "ot/http/http.h"
#include "ot/core/log.h"
#include "ot/core/metrics.h"
#include "ot/api/orders.h"
#include "ot/adapters/pg.h"
#include "ot/core/ratelimit.h"
#include "ot/api/search.h"
#include "ot/api/search_es.h"
#include "ot/api/static.h"
#include "ot/api/system.h"

/* Rate-limit tables: keys beyond this evict the fullest/oldest buckets. */
#define OT_RL_KEYS 65536

static void add_unlimited(ot_router *rt, const char *method, const char *pattern, const char *name, ot_handler *h,
                          ot_api *api)
{
    int i = ot_router_add(rt, method, pattern, name, h, api);
    if (i >= 0)
        rt->routes[i].flags = OT_ROUTE_UNLIMITED;
}

void ot_app_routes(ot_router *rt, ot_api *api, ot_hub *hub)
{
    add_unlimited(rt, "GET", "/healthz", "healthz", ot_h_healthz, api);
    add_unlimited(rt, "GET", "/readyz", "readyz", ot_h_readyz, api);
    add_unlimited(rt, "GET", "/metrics", "metrics", ot_h_metrics, api);
    ot_router_add(rt, "GET", "/openapi.yaml", "openapi", ot_h_openapi, api);
    ot_router_add(rt, "POST", "/auth/register", "auth_register", ot_h_register, api);
    ot_router_add(rt, "POST", "/auth/login", "auth_login", ot_h_login, api);
    ot_router_add(rt, "POST", "/auth/refresh", "auth_refresh", ot_h_refresh, api);
    ot_router_add(rt, "POST", "/orders", "orders_create", ot_h_order_create, api);
    ot_router_add(rt, "GET", "/orders/user/:id", "orders_by_user", ot_h_orders_by_user, api);
    ot_router_add(rt, "GET", "/orders/:id", "orders_get", ot_h_order_get, api);
    ot_router_add(rt, "GET", "/orders/:id/events", "orders_events", ot_h_order_events, api);
    ot_router_add(rt, "PATCH", "/orders/:id/status", "orders_status", ot_h_order_status, api);
    ot_router_add(rt, "GET", "/search/orders", "search_orders", ot_h_search_orders, api);
    ot_router_add(rt, "GET", "/search/orders/:id/history", "search_history", ot_h_search_history, api);
    ot_router_add(rt, "GET", "/search/analytics", "search_analytics", ot_h_search_analytics, api);
    ot_router_add(rt, "GET", "/ws/orders", "ws_orders", ot_h_ws_auth, hub);
    ot_router_add(rt, "GET", "/", "static", ot_h_static, api);
    ot_router_add(rt, "GET", "/admin", "static", ot_h_static_admin, api);
    ot_router_add(rt, "GET", "/web/:file", "static", ot_h_static, api);
    ot_router_add(rt, "GET", "/web/:dir/:file", "static", ot_h_static, api);
}


/* ---- services: what the worker's registry asks of each dependency ---- */

static uint64_t pg_err_seen;
static uint64_t cpu_seen_us;
static unsigned stats_ticks;
static ot_pg_query *outbox_q;

static const ot_pg_stmt ops_stmts[] = {
    { "ops_outbox",
      "SELECT coalesce(max(seq), 0), (SELECT (extract(epoch FROM clock_timestamp() - e.created_at) * 1000)::bigint "
      "FROM order_events e WHERE e.seq >= $1::bigint ORDER BY e.seq LIMIT 1) FROM order_events",
      1, true },
};

static void on_outbox(void *data, int status, PGresult *res)
{
    ot_worker *w = data;
    outbox_q = NULL;
    if (status != OT_PG_OK || PQntuples(res) != 1 || !w->app || !w->app->events)
        return;
    int64_t max = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    int64_t mark = ot_events_watermark(w->app->events);
    int64_t backlog = max >= mark ? max - mark + 1 : 0;
    ot_metrics_set(OT_G_OUTBOX_BACKLOG, backlog);
    ot_metrics_set(OT_G_OUTBOX_OLDEST_MS,
                   backlog > 0 && !PQgetisnull(res, 0, 1) ? strtoll(PQgetvalue(res, 0, 1), NULL, 10) : 0);
}

/* RSS, fds and CPU of this process, from /proc (Linux). */
static void sample_process(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        uint64_t us = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
                      (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
        if (us > cpu_seen_us)
            ot_metrics_inc(OT_C_PROCESS_CPU_US, us - cpu_seen_us);
        cpu_seen_us = us;
    }
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long size, resident;
        if (fscanf(f, "%lu %lu", &size, &resident) == 2)
            ot_metrics_set(OT_G_PROCESS_RSS_BYTES, (int64_t)resident * sysconf(_SC_PAGESIZE));
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int64_t n = 0;
        while (readdir(d))
            n++;
        closedir(d);
        ot_metrics_set(OT_G_PROCESS_OPEN_FDS, n - 3); /* ".", ".." and the directory's own fd */
    }
}

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

/* Process gauges and the outbox backlog (operations dashboards, soak). The
 * outbox query is one index probe at each end of order_events, sent every
 * OT_OUTBOX_STATS_EVERY-th sample and never two at once. */
#define OT_OUTBOX_STATS_EVERY 5
static void ops_sample(void *data)
{
    ot_worker *w = data;
    sample_process();
    if (w->app)
        ot_events_sample(w->app->events);
    /* Watermark 0: the reader has not found its starting point yet. */
    if (w->pg && w->app && w->app->events && ot_events_watermark(w->app->events) > 0 && !outbox_q &&
        stats_ticks++ % OT_OUTBOX_STATS_EVERY == 0) {
        char mark[24];
        snprintf(mark, sizeof mark, "%lld", (long long)ot_events_watermark(w->app->events));
        const char *vals[1] = { mark };
        outbox_q = ot_pg_exec(w->pg, "ops_outbox", 1, vals, NULL, on_outbox, w);
    }
}

static bool pg_ready(void *data) { return ot_pg_ready(data); }

static size_t hub_deliver(void *data, const ot_event *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ot_hub_event(data, &evs[i]);
    return n;
}
static void hub_drain(void *data) { ot_hub_drain(data); }
static bool hub_drained(void *data) { return ot_hub_count(data) == 0; }

/* WebSockets leave the HTTP count at takeover; together they stay under the
 * worker's fd budget (the request being upgraded is still counted). */
static bool hub_room(void *data, int open)
{
    ot_worker *w = data;
    return !w->draining && open + w->http.nconns <= w->http.max_conns;
}

/* The worker's own hook for a closed connection (a drain may end). */
static void hub_closed(void *data)
{
    ot_worker *w = data;
    w->http.on_closed(w->http.data);
}

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

ot_pg_stmt *ot_app_pool_stmts(size_t *n)
{
    /* Gathered from the modules and sized from what they declare. */
    const ot_pg_stmt *groups[] = { ot_auth_stmts, ot_orders_stmts, ot_events_stmts, ot_hub_msg_stmts, ot_replay_stmts,
                                   ot_audit_stmts, ops_stmts, ot_principals_stmts, ot_sink_stmts, ot_search_stmts,
                                   ot_indexer_stmts };
    size_t counts[] = { ot_auth_nstmts, ot_orders_nstmts, ot_events_nstmts, ot_hub_msg_nstmts, ot_replay_nstmts,
                        ot_audit_nstmts, OT_ARRAY_LEN(ops_stmts), ot_principals_nstmts, ot_sink_nstmts, ot_search_nstmts,
                        ot_indexer_nstmts };
    return ot_app_stmts(groups, counts, OT_ARRAY_LEN(groups), n);
}

/* A user's tokens died (deleted, disabled, demoted, new password): so do its
 * sockets on this worker, the way an expired token closes them. */
static void on_user_changed(void *data, const char *user_id)
{
    ot_worker *w = data;
    if (w->app && w->app->hub)
        ot_hub_close_user(w->app->hub, ot_str_c(user_id), 4401, "token revoked");
}

int ot_app_start(ot_worker *w)
{
    ot_app *app = calloc(1, sizeof(*app));
    if (!app)
        return OT_ERR;
    w->app = app;
    if (w->cfg->rate_ip > 0)
        w->http.rl_ip = ot_ratelimit_new(w->cfg->rate_ip, w->cfg->rate_ip_burst, OT_RL_KEYS);
    if (w->cfg->rate_user > 0)
        w->rl_user = ot_ratelimit_new(w->cfg->rate_user, w->cfg->rate_user_burst, OT_RL_KEYS);
    if (w->cfg->database_url) {
        size_t n = 0;
        ot_pg_stmt *stmts = ot_app_pool_stmts(&n);
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
        app->principals = ot_principals_new(w->loop, w->pg, &pc, w->cfg->auth_cache_users, on_user_changed, w);
        if (!app->principals) {
            ot_logf(OT_LOG_ERROR, "token revocation cache setup failed");
            return OT_ERR;
        }
        if (ot_auth_setup(w->cfg, app->principals) < 0) {
            ot_logf(OT_LOG_ERROR, "login limits setup failed (--kdf-max-queue and --kdf-max-per-ip must be >= 1)");
            return OT_ERR;
        }
    }
    app->hub = ot_hub_new(&(ot_hub_env){ .loop = w->loop, .cfg = w->cfg, .pg = w->pg, .room = hub_room,
                                         .closed = hub_closed, .data = w });
    if (!app->hub)
        return OT_ERR;
    if (w->pg) {
        app->events = ot_events_start(&(ot_events_env){ .loop = w->loop, .cfg = w->cfg, .pg = w->pg });
        /* The hub never says full: a slow socket is its own problem (dropped
         * at its queue cap), never the other sockets'. */
        static const ot_sink_ops hub_sink = { .deliver = hub_deliver };
        if (!app->events || !ot_events_add_sink(app->events, "hub", &hub_sink, app->hub, false)) {
            ot_logf(OT_LOG_ERROR, "event reader setup failed");
            return OT_ERR;
        }
        ot_hub_set_events(app->hub, app->events);
        ot_search_setup(w->cfg, app->events);
        if (ot_search_es_setup(w->loop, w->cfg) < 0) {
            ot_logf(OT_LOG_ERROR, "search client setup failed");
            return OT_ERR;
        }
        if (w->cfg->kafka_brokers) {
            app->relay = ot_relay_new(w->loop, w->cfg, app->events);
            if (!app->relay) {
                ot_logf(OT_LOG_ERROR, "Kafka relay setup failed");
                return OT_ERR;
            }
            app->feed = ot_kafka_feed_new(w->loop, w->cfg, app->events);
            if (!app->feed) {
                ot_logf(OT_LOG_ERROR, "Kafka feed setup failed");
                return OT_ERR;
            }
        }
        /* One indexer per node (see indexer.h): worker 0's. */
        if (w->cfg->elasticsearch_url && w->idx == 0) {
            app->indexer = ot_indexer_new(w->loop, w->cfg, app->events, w->pg);
            if (!app->indexer) {
                ot_logf(OT_LOG_ERROR, "search indexer setup failed");
                return OT_ERR;
            }
            if (ot_search_lifecycle_wanted(w->cfg) && !(app->lifecycle = ot_search_lifecycle_new(w->loop, w->cfg))) {
                ot_logf(OT_LOG_ERROR, "search lifecycle setup failed");
                return OT_ERR;
            }
        }
    }
    app->api = (ot_api){ .pg = w->pg, .events = app->events, .rl_user = w->rl_user, .services = &w->services };
    ot_app_routes(&w->http.router, &app->api, app->hub);
    /* A service without `ready` shows in /readyz as "not configured". */
    ot_services_add(&w->services, &(ot_service){ .name = "database", .data = w->pg, .ready = w->pg ? pg_ready : NULL,
                                                 .required = true, .code = "database_unavailable",
                                                 .message = "PostgreSQL is not reachable",
                                                 .sample = w->pg ? pg_sample : NULL });
    ot_services_add(&w->services, &(ot_service){ .name = "websockets", .data = app->hub, .drain = hub_drain,
                                                 .drained = hub_drained });
    ot_services_add(&w->services, &(ot_service){ .name = "process", .data = w, .sample = ops_sample });
    /* Not required: with Kafka away writes go on into the outbox (degraded). */
    if (app->relay)
        ot_services_add(&w->services, &(ot_service){ .name = "kafka", .data = app->relay, .ready = ot_relay_ready,
                                                     .sample = ot_relay_sample });
    /* Not required either: writes go on, the backlog waits in the outbox. */
    if (app->indexer)
        ot_services_add(&w->services, &(ot_service){ .name = "elasticsearch", .data = app->indexer,
                                                     .ready = ot_indexer_ready, .sample = ot_indexer_sample });
    /* Not required either: the indexer then reads PostgreSQL at tail pace. */
    if (ot_indexer_uses_kafka(app->indexer))
        ot_services_add(&w->services, &(ot_service){ .name = "kafka-search", .data = app->indexer,
                                                     .ready = ot_indexer_kafka_ready });
    /* Not required either: without it pushes follow the PostgreSQL tail. */
    if (app->feed)
        ot_services_add(&w->services, &(ot_service){ .name = "kafka-feed", .data = app->feed,
                                                     .ready = ot_kafka_feed_ready, .sample = ot_kafka_feed_sample });
    return 0;
}

void ot_app_drain(ot_worker *w) { ot_hub_drain(w->app->hub); }

bool ot_app_drained(ot_worker *w) { return !w->app || ot_hub_count(w->app->hub) == 0; }

void ot_app_stop(ot_worker *w)
{
    ot_app *app = w->app;
    if (!app)
        return;
    if (outbox_q) {
        ot_pg_cancel(outbox_q);
        outbox_q = NULL;
    }
    ot_kafka_feed_free(app->feed); /* it feeds the reader: first */
    ot_relay_free(app->relay); /* its sink belongs to the reader: first */
    ot_search_lifecycle_free(app->lifecycle);
    ot_indexer_free(app->indexer);
    ot_search_es_teardown();
    ot_events_free(app->events);
    ot_auth_teardown();
    ot_principals_free(app->principals);
    ot_hub_free(app->hub);
    if (w->pg)
        ot_pg_free(w->pg);
    free(app);
    w->app = NULL;
}
