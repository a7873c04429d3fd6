/* The order life cycle as the pages see it: which statuses an order may move
 * to next, for the caller's role. Pure.
 *
 * CREATED -> ACCEPTED -> PREPARED -> SHIPPED -> DELIVERED, and CANCELED from
 * any state before SHIPPED (sql/001_init.sql ot_transition_allowed, which
 * stays the authority: this only tells a page what to offer). Only admins
 * change statuses (PATCH /orders/:id/status), so a customer's list is
 * always empty. */
#ifndef OT_LIFECYCLE_H
#define OT_LIFECYCLE_H

#include "ot/core/buf.h"
#include "ot/core/common.h"
#include "ot/codec/jwt.h"

#define OT_LIFECYCLE_MAX_NEXT 2

/* Fills next[] with the statuses role may move an order in `status` to, in
 * the order a page should offer them (forward first). Returns the count; 0
 * for a final or unknown status and for a role that may not move orders. */
int ot_lifecycle_next(ot_str status, ot_role role, const char *next[OT_LIFECYCLE_MAX_NEXT]);

/* Appends the JSON object `json` (an order or an order event: its top-level
 * "status") with "nextStatuses":[...] added as its last member. OT_ERR if
 * json is not an object with a string "status", or on allocation failure
 * (out is then left as it was). */
int ot_lifecycle_annotate(ot_str json, ot_role role, ot_buf *out);

/* The same without parsing, for a caller that already knows the status
 * (a column beside the JSON, the event's own field): `obj` must be a JSON
 * object with at least one member (the status itself), as PostgreSQL's
 * json_build_object writes it; only its closing brace is checked. Parsing
 * an order of 40 items to find a field we had cost ~7,000 instructions. */
int ot_lifecycle_splice(ot_str obj, ot_str status, ot_role role, ot_buf *out);

#endif
