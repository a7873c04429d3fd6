/* The plumbing every asynchronous API handler shares: a per-request context
 * whose head is ot_api_ctx, the abort hook that cancels its query, finishing
 * (detach, then respond), and one mapping of database failures to responses. */
#ifndef OT_API_HELPERS_H
#define OT_API_HELPERS_H

#include <libpq-fe.h>

#include "ot/adapters/pg.h"
#include "ot/event/service.h"
#include "ot/codec/json.h"
#include "ot/http/http.h"

typedef struct ot_events ot_events;

/* What the API handlers use of their worker: the data of every API route
 * (r->data), filled by the wiring above. */
typedef struct ot_api {
    ot_pg *pg;                 /* NULL without a database */
    ot_events *events;         /* NULL without a database */
    ot_ratelimit *rl_user;     /* per user (NULL: off) */
    const ot_services *services; /* /readyz, /metrics */
} ot_api;

static inline ot_api *ot_api_of(const ot_req *r) { return r->data; }

/* Request guards shared by the API handlers. Each answers the error itself
 * (415 / 503 + Retry-After) and returns false when the request cannot go on. */
bool ot_req_json_content(ot_req *r);
bool ot_req_need_db(ot_req *r);

/* First member of every handler context, so the shared hooks can reach it. */
typedef struct {
    ot_req *r;
    ot_pg_query *q; /* the query in flight, cancelled on abort */
    void (*release)(void *ctx); /* frees the context; NULL: free() */
} ot_api_ctx;

/* calloc(size) with its head set, installed as r->ctx with on_abort (NULL:
 * ot_api_abort). On allocation failure answers 500 and returns NULL. */
void *ot_api_ctx_new(ot_req *r, size_t size, void (*on_abort)(ot_req *r));
/* The default abort hook: cancel the query, release the context. */
void ot_api_abort(ot_req *r);
/* Unhooks the context from its request (no abort may reach it after) and
 * returns the request, so the caller may free the context and respond. */
ot_req *ot_api_detach(ot_api_ctx *c);
/* ot_api_detach, then release (or free) the context; returns the request. */
ot_req *ot_api_finish(void *ctx);
/* Runs the prepared statement for c (cb gets c); on failure finishes c and
 * answers 500. false then: c is gone. */
bool ot_api_exec(void *ctx, const char *stmt, int n, const char *const *vals, const int *lens, ot_pg_cb *cb);

/* Refusals that rolled the statement back and may pass on a retry: lost
 * connection (08), serialization failure or deadlock (40), out of resources
 * (53), statement_timeout / shutdown (57), lock timeout (55P03). */
bool ot_api_sqlstate_transient(const char *sqlstate);
/* false for OT_PG_OK. Otherwise answers and returns true: 503 with
 * Retry-After for what may pass on a retry (no connection, queue full,
 * timeout, a transient SQLSTATE), 500 for any other refusal. */
bool ot_api_db_error(ot_req *r, int status, const PGresult *res);

/* Into an open JSON object: "orders": column 0 of the first n rows (each
 * with the nextStatuses of role, codec/lifecycle.h), and
 * "nextCursor": the cursor of row n - 1 (codec/cursor.h, from columns 1 =
 * created_at microseconds and 2 = id) when more, else null. */
/* Each order annotated with nextStatuses for `role`, from the status in
 * column status_col (or, with -1, found by parsing the order); false when
 * one could not be encoded. */
bool ot_api_put_order_page(ot_jw *w, const PGresult *res, int n, bool more, ot_role role, int status_col);
/* Into an open JSON object: "orderId", "events": column `col` of the rows (at
 * most max) and "truncated" (more rows than max). */
void ot_api_put_event_list(ot_jw *w, const char *order_id, const PGresult *res, int col, int max);
/* 200 with b's JSON, or 500 if building it ran out of memory; frees b. */
void ot_api_respond_built(ot_req *r, const ot_jw *w, ot_buf *b);

#endif
