/* Internal to the pg adapter: one libpq connection on the loop, the glue the
 * pool (pg_pool.c) and the listener (pg_listen.c) share. The connection policy
 * around it (deadline, backoff, log once per outage) is ot_link's. */
#ifndef OT_PG_CONN_H
#define OT_PG_CONN_H

#include <libpq-fe.h>

#include "ot/core/log.h"
#include "ot/event/watch.h"

typedef struct {
    PGconn *conn;
    ot_watch watch; /* PQsocket(), following libpq through connection set-up */
} ot_pg_conn;

void ot_pg_conn_init(ot_pg_conn *k, ot_loop *loop, ot_fd_cb *cb, void *data);
/* PQconnectStartParams (keepalives on), watching for writable. OT_ERR on failure. */
int ot_pg_conn_start(ot_pg_conn *k, const char *conninfo);
/* One PQconnectPoll step: 1 connected, 0 in progress, -1 failed. */
int ot_pg_conn_poll(ot_pg_conn *k);
/* PQflush: 0 all sent, 1 more to send (now watching writable too), -1 failed. */
int ot_pg_conn_flush(ot_pg_conn *k);
/* Unwatches, then PQfinish. */
void ot_pg_conn_close(ot_pg_conn *k);
/* "<what>: <libpq's last error>" into buf, for the link's log line. */
const char *ot_pg_conn_why(const ot_pg_conn *k, const char *what, char *buf, size_t cap);
/* libpq messages end in a newline; logs them with a prefix. */
void ot_pg_log(ot_log_level lv, const char *what, const char *detail, const char *msg);

#endif
