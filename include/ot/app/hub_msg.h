/* What a client may ask on its socket: subscribe / unsubscribe to an order
 * (ownership checked in the database), re-authenticate with a fresh token,
 * resume, ping; parsed by codec/clientmsg.h. Actions that cost a query or a
 * signature check are rate limited per socket. */
#ifndef OT_HUB_MSG_H
#define OT_HUB_MSG_H

#include "ot/app/hub.h"

/* Statements the pool must prepare. */
extern const ot_pg_stmt ot_hub_msg_stmts[];
extern const size_t ot_hub_msg_nstmts;

/* A complete text message from the client (valid UTF-8). */
void ot_hub_on_text(ot_hub_client *c, const uint8_t *p, size_t n);
/* The socket died: its subscribe checks in flight must not answer. */
void ot_hub_msg_cancel(ot_hub_client *c);

/* ---- pure helpers (unit-tested) ---- */

/* A token bucket of `burst` tokens refilled at `rate`/s: takes one token at
 * now_ms (a monotonic ms clock; *last_ms = 0: a full bucket not started yet).
 * rate <= 0 (or NaN) always allows. */
bool ot_hub_bucket_take(double *tokens, uint64_t *last_ms, uint64_t now_ms, double rate, double burst);

#endif
