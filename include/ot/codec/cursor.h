/* The opaque keyset cursor of the paginated lists (GET /orders/user/:id,
 * GET /search/orders): base64url("<created_at in microseconds>|<uuid>") of
 * the last row of a page. Pure. */
#ifndef OT_CURSOR_H
#define OT_CURSOR_H

#include "ot/core/common.h"

/* Room for an encoded cursor and its NUL. */
#define OT_CURSOR_MAX 80

/* us: decimal digits (at most 18), id: a UUID's 36 characters. Returns the
 * length written to out (NUL-terminated), 0 if either does not fit. */
size_t ot_cursor_encode(const char *us, const char *id, char out[OT_CURSOR_MAX]);
/* The url-decoded cursor text. Checked by length: the decoded bytes may hold
 * anything, NULs included. At most 18 digits, so the value always fits a
 * bigint (a 19-digit one may not). Fills us (NUL-terminated digits) and id
 * (the UUID, NUL-terminated); OT_ERR on anything malformed. */
int ot_cursor_decode(ot_str s, char us[20], char id[37]);

#endif
