/* The audit trail of one order for admins: GET /orders/:id/events, read from
 * the append-only order_events table (the outbox is the audit log). */
#ifndef OT_AUDIT_H
#define OT_AUDIT_H

#include "ot/adapters/pg.h"
#include "ot/http/http.h"

/* Most events returned for one order; beyond it the answer says truncated. */
#define OT_AUDIT_MAX_EVENTS 1000

extern const ot_pg_stmt ot_audit_stmts[];
extern const size_t ot_audit_nstmts;

/* 200 {"orderId","events":[event...],"truncated"} in version order; 400 bad
 * UUID, 401, 403 for non-admins, 404 for an order without events. */
void ot_h_order_events(ot_req *r);

#endif
