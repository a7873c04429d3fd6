/* The LISTEN connection: an ot_link over ot_pg_conn whose attempt lasts
 * until LISTEN is confirmed (the connect deadline covers both). */
#include "ot/adapters/pg.h"

#include <stdlib.h>

#include "ot/adapters/pg_conn.h"
#include "ot/event/link.h"

struct ot_pg_listener {
    ot_loop *loop;
    ot_pg_conn k;
    ot_link link; /* CONNECTING until LISTEN is confirmed */
    bool listening; /* CONNECTING: LISTEN sent, awaiting its result */
    char *conninfo, *channel;
    ot_pg_notify_cb *cb;
    ot_pg_listen_state_cb *state_cb;
    void *data;
    bool listen_ok;
};

static void lis_fail(ot_pg_listener *l, const char *what)
{
    char why[160];
    ot_link_fail(&l->link, ot_pg_conn_why(&l->k, what, why, sizeof(why)));
}

static int lis_connect(ot_link *lk)
{
    ot_pg_listener *l = lk->data;
    l->listening = false;
    if (ot_pg_conn_start(&l->k, l->conninfo) < 0) {
        char why[160];
        ot_link_set_error(lk, ot_pg_conn_why(&l->k, "start", why, sizeof(why)));
        ot_pg_conn_close(&l->k);
        return OT_ERR;
    }
    return 0;
}

static void lis_close(ot_link *lk) { ot_pg_conn_close(&((ot_pg_listener *)lk->data)->k); }

static void lis_down(ot_link *lk, bool was_up)
{
    ot_pg_listener *l = lk->data;
    if (was_up && l->state_cb)
        l->state_cb(l->data, false);
}

static const ot_link_ops listen_link_ops = { lis_connect, lis_close, lis_down };

static void lis_send_listen(ot_pg_listener *l)
{
    PGconn *conn = l->k.conn;
    if (PQsetnonblocking(conn, 1) != 0) {
        lis_fail(l, "nonblocking");
        return;
    }
    /* Quote the channel as an identifier: LISTEN takes no parameters. */
    char *id = PQescapeIdentifier(conn, l->channel, strlen(l->channel));
    char *sql = id ? malloc(strlen(id) + 8) : NULL;
    int ok = 0;
    if (sql) {
        memcpy(sql, "LISTEN ", 7);
        strcpy(sql + 7, id);
        ok = PQsendQuery(conn, sql);
    }
    free(sql);
    PQfreemem(id);
    if (!ok || ot_pg_conn_flush(&l->k) < 0) {
        lis_fail(l, "LISTEN");
        return;
    }
    l->listening = true;
    l->listen_ok = false;
}

static void lis_drain(ot_pg_listener *l)
{
    PGnotify *n;
    while (ot_link_is_up(&l->link) && (n = PQnotifies(l->k.conn))) {
        if (l->cb)
            l->cb(l->data, n->relname, n->extra, strlen(n->extra));
        PQfreemem(n);
    }
}

static void lis_io(ot_loop *loop, int fd, unsigned ev, void *data)
{
    ot_pg_listener *l = data;
    if (l->link.state == OT_LINK_CONNECTING && !l->listening) {
        int r = ot_pg_conn_poll(&l->k);
        if (r < 0)
            lis_fail(l, "connect");
        else if (r == 1)
            lis_send_listen(l);
        return;
    }
    if (l->link.state == OT_LINK_DOWN)
        return;
    if ((ev & (OT_READABLE | OT_HANGUP)) && !PQconsumeInput(l->k.conn)) {
        lis_fail(l, "read");
        return;
    }
    if ((l->k.watch.mask & OT_WRITABLE) && ot_pg_conn_flush(&l->k) < 0) {
        lis_fail(l, "write");
        return;
    }
    while (l->listening && !PQisBusy(l->k.conn)) {
        PGresult *r = PQgetResult(l->k.conn);
        if (!r) {
            if (!l->listen_ok) {
                lis_fail(l, "LISTEN");
                return;
            }
            l->listening = false;
            ot_link_up_healthy(&l->link);
            if (l->state_cb)
                l->state_cb(l->data, true);
            break;
        }
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            l->listen_ok = true;
        else
            ot_pg_log(OT_LOG_ERROR, "LISTEN failed", l->channel, PQresultErrorMessage(r));
        PQclear(r);
    }
    if (ot_link_is_up(&l->link) && PQstatus(l->k.conn) == CONNECTION_BAD) {
        lis_fail(l, "read");
        return;
    }
    lis_drain(l);
}

ot_pg_listener *ot_pg_listen(ot_loop *loop, const ot_pg_config *cfg, const char *channel, ot_pg_notify_cb *cb,
                             ot_pg_listen_state_cb *state_cb, void *data)
{
    ot_pg_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    ot_pg_config def;
    ot_pg_config_default(&def);
    l->loop = loop;
    l->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    l->channel = strdup(channel);
    if (!l->conninfo || !l->channel) {
        free(l->conninfo);
        free(l->channel);
        free(l);
        return NULL;
    }
    l->cb = cb;
    l->state_cb = state_cb;
    l->data = data;
    ot_pg_conn_init(&l->k, loop, lis_io, l);
    ot_link_init(&l->link, loop, "pg listen", &listen_link_ops, l,
                 cfg->connect_timeout_ms ? cfg->connect_timeout_ms : def.connect_timeout_ms, cfg->backoff_min_ms,
                 cfg->backoff_max_ms ? cfg->backoff_max_ms : def.backoff_max_ms);
    ot_link_start(&l->link);
    return l;
}

bool ot_pg_listener_up(const ot_pg_listener *l) { return ot_link_is_up(&l->link); }

void ot_pg_listener_free(ot_pg_listener *l)
{
    if (!l)
        return;
    ot_link_stop(&l->link);
    ot_pg_conn_close(&l->k);
    free(l->conninfo);
    free(l->channel);
    free(l);
}
