/* What a customer may see of an order event. Pure.
 *
 * Events (sql/001_init.sql ot_event_json) carry `actor`, the id of whoever
 * made the change: for an admin's change, the admin's user id. Customers get
 * the event without it (issue 10: staff identities are not theirs to see);
 * admins get it whole. */
#ifndef OT_EVENT_VIEW_H
#define OT_EVENT_VIEW_H

#include "ot/core/buf.h"
#include "ot/core/common.h"

/* Fields of the event object a customer's copy leaves out. */
#define OT_EVENT_STAFF_FIELDS { "actor" }

/* Appends the JSON object `json` without its staff-only top-level members
 * (compact separators between members, members themselves byte for byte).
 * OT_ERR if json is not a valid JSON object, or on allocation failure (out
 * is then left as it was). */
int ot_event_view_customer(ot_str json, ot_buf *out);

#endif
