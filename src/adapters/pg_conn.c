/* libpq on the loop: the part every PostgreSQL connection shares. libpq's
 * fd is watched level-triggered (ot_watch): libpq reads what it wants per
 * call, and a missed edge would be a silent stall. */
#include "ot/adapters/pg_conn.h"

#include <stdio.h>

void ot_pg_conn_init(ot_pg_conn *k, ot_loop *loop, ot_fd_cb *cb, void *data)
{
    k->conn = NULL;
    ot_watch_init(&k->watch, loop, cb, data);
}

/* Re-registers PQsocket() after every connect step. libpq may close its socket
 * and open another (next address, SSL/GSS fallback), possibly under the same
 * number: the kernel then already dropped the old registration. */
static int watch_socket(ot_pg_conn *k, unsigned mask) { return ot_watch_readd(&k->watch, PQsocket(k->conn), mask); }

/* Server notices (and the FATAL a terminated backend sends) go to our log
 * with a prefix instead of libpq's bare stderr line. */
void ot_pg_log(ot_log_level lv, const char *what, const char *detail, const char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    ot_logf(lv, "pg: %s (%s): %.*s", what, detail, (int)n, msg);
}

static void on_notice(void *arg, const char *msg) { ot_pg_log(OT_LOG_WARN, "notice", "server", msg); }

int ot_pg_conn_start(ot_pg_conn *k, const char *conninfo)
{
    /* Keepalives come BEFORE dbname so the expanded conninfo may override
     * them (libpq: the last processed keyword wins). They are how a silent
     * peer (network partition) is ever noticed on an idle LISTEN socket. */
    const char *keys[] = { "keepalives_idle", "keepalives_interval", "keepalives_count", "dbname", NULL };
    const char *vals[] = { "30", "10", "3", conninfo, NULL };
    k->conn = PQconnectStartParams(keys, vals, 1);
    if (!k->conn || PQstatus(k->conn) == CONNECTION_BAD)
        return OT_ERR;
    PQsetNoticeProcessor(k->conn, on_notice, NULL);
    /* libpq: start as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
    return watch_socket(k, OT_WRITABLE);
}

int ot_pg_conn_poll(ot_pg_conn *k)
{
    switch (PQconnectPoll(k->conn)) {
    case PGRES_POLLING_READING:
        return watch_socket(k, OT_READABLE);
    case PGRES_POLLING_WRITING:
        return watch_socket(k, OT_WRITABLE);
    case PGRES_POLLING_OK:
        return 1;
    default:
        return -1;
    }
}

int ot_pg_conn_flush(ot_pg_conn *k)
{
    int r = PQflush(k->conn);
    if (r >= 0)
        ot_watch_mask(&k->watch, OT_READABLE | (r == 1 ? OT_WRITABLE : 0u));
    return r;
}

void ot_pg_conn_close(ot_pg_conn *k)
{
    ot_watch_remove(&k->watch); /* before PQfinish closes it */
    if (k->conn)
        PQfinish(k->conn);
    k->conn = NULL;
}

const char *ot_pg_conn_why(const ot_pg_conn *k, const char *what, char *buf, size_t cap)
{
    const char *m = k->conn ? PQerrorMessage(k->conn) : "no connection object (out of memory or bad conninfo)";
    size_t n = strlen(m);
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    snprintf(buf, cap, "%s: %.*s", what, (int)n, n ? m : "-");
    return buf;
}
