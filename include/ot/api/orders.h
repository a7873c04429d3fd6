/* The order API: create, read, list, change status. Every write is one call
 * of a stored function (sql/001_init.sql) so the row, its event (the outbox)
 * and the NOTIFY commit together. */
#ifndef OT_ORDERS_H
#define OT_ORDERS_H

#include "ot/http/http.h"
#include "ot/adapters/pg.h"
#include "ot/codec/order_body.h"

extern const ot_pg_stmt ot_orders_stmts[];
extern const size_t ot_orders_nstmts;

#define OT_IDEM_KEY_MAX 200
#define OT_LIST_LIMIT_MAX 100

void ot_h_order_create(ot_req *r);
void ot_h_order_get(ot_req *r);
void ot_h_orders_by_user(ot_req *r);
void ot_h_order_status(ot_req *r);

/* ot_orders_validate_items (the body of POST /orders): ot/codec/order_body.h. */
/* Parses an order status name; OT_ERR if unknown. Pure. */
int ot_order_status_valid(ot_str s);

#endif
