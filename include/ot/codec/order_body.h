/* The body of POST /orders: {"items":[{"productId","qty"}...], "userId"?}
 * checked and normalised before anything reaches the database. Pure (codec:
 * fuzzed by tests/fuzz/fuzz_order_validation.c). */
#ifndef OT_ORDER_BODY_H
#define OT_ORDER_BODY_H

#include "ot/core/buf.h"
#include "ot/core/common.h"

#define OT_ITEMS_MAX 100
#define OT_PRODUCT_ID_MAX 64
#define OT_QTY_MAX 10000

/* Validates {items:[{productId,qty}...]} and appends the normalised items
 * array (compact JSON) to out. On failure writes a message naming the field
 * into err (NUL-terminated, valid UTF-8 even when cut at errcap) and returns
 * OT_ERR. *user_id_out (if given) is the "userId" value's text when present
 * (a UUID, not checked against anything else), else OT_STR_NULL; it points
 * into json. */
int ot_orders_validate_items(const char *json, size_t len, ot_buf *out, char *err, size_t errcap,
                             ot_str *user_id_out);

#endif
