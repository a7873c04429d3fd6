#include "ot/codec/order_body.h"

#include <stdarg.h>
#include <stdio.h>

#include "ot/codec/json.h"
#include "ot/codec/uuid.h"

/* snprintf cuts at a byte count: drop a partial UTF-8 sequence it left at the
 * end, so the message stays valid text (and JSON once escaped). */
static int fail(char *err, size_t errcap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errcap, const char *fmt, ...)
{
    if (errcap == 0)
        return OT_ERR;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n >= errcap ? errcap - 1 : (size_t)n;
    err[ot_utf8_valid_prefix((const unsigned char *)err, len, len)] = '\0';
    return OT_ERR;
}


#define ERR(...) fail(err, errcap, __VA_ARGS__)

int ot_orders_validate_items(const char *json, size_t len, ot_buf *out, char *err, size_t errcap, ot_str *user_id_out)
{
    /* 100 items x 5 tokens + the envelope. */
    ot_json_tok toks[OT_ITEMS_MAX * 5 + 16];
    ot_json d;
    if (ot_json_parse(&d, json, len, toks, (int)OT_ARRAY_LEN(toks)) < 0 || !ot_json_is_obj(&d, 0))
        return ERR("body must be a JSON object (at most %d items)", OT_ITEMS_MAX);
    /* Unknown fields are refused rather than ignored: a typo must not pass silently. */
    for (int t = 1; t < d.ntoks; t = ot_json_skip(&d, t + 1)) {
        if (!ot_json_str_eq(&d, t, "items") && !ot_json_str_eq(&d, t, "userId"))
            return ERR("unknown field: %.*s", (int)ot_json_raw(&d, t).len, ot_json_raw(&d, t).base);
    }
    /* Checked whether or not the caller wants it: the verdict on a body must
     * not depend on who asks (found by fuzz_order_validation). */
    int uid = ot_json_obj_get(&d, 0, "userId");
    if (user_id_out)
        *user_id_out = OT_STR_NULL;
    if (uid >= 0) {
        if (!ot_json_is_str(&d, uid) || !ot_uuid_valid(ot_json_raw(&d, uid)))
            return ERR("userId: must be a UUID string");
        if (user_id_out)
            *user_id_out = ot_json_raw(&d, uid);
    }
    int items = ot_json_obj_get(&d, 0, "items");
    if (items < 0)
        return ERR("items: required");
    if (!ot_json_is_arr(&d, items))
        return ERR("items: must be an array");
    int n = ot_json_arr_len(&d, items);
    if (n < 1 || n > OT_ITEMS_MAX)
        return ERR("items: must hold 1..%d entries", OT_ITEMS_MAX);
    ot_jw w;
    ot_jw_init(&w, out);
    ot_jw_arr_open(&w);
    char pid[OT_PRODUCT_ID_MAX * 4 + 1];
    for (int i = 0; i < n; i++) {
        int it = ot_json_arr_at(&d, items, i);
        if (!ot_json_is_obj(&d, it))
            return ERR("items[%d]: must be an object", i);
        for (int t = it + 1; t < ot_json_skip(&d, it); t = ot_json_skip(&d, t + 1)) {
            if (!ot_json_str_eq(&d, t, "productId") && !ot_json_str_eq(&d, t, "qty"))
                return ERR("items[%d]: unknown field %.*s", i, (int)ot_json_raw(&d, t).len, ot_json_raw(&d, t).base);
        }
        int p = ot_json_obj_get(&d, it, "productId");
        int q = ot_json_obj_get(&d, it, "qty");
        size_t plen = 0;
        if (p < 0 || !ot_json_is_str(&d, p))
            return ERR("items[%d].productId: required string", i);
        if (ot_json_get_str_buf(&d, p, pid, sizeof(pid), &plen) < 0 || plen == 0 || plen > OT_PRODUCT_ID_MAX)
            return ERR("items[%d].productId: must be 1..%d bytes", i, OT_PRODUCT_ID_MAX);
        for (size_t k = 0; k < plen; k++)
            if ((unsigned char)pid[k] < 0x20)
                return ERR("items[%d].productId: control characters are not allowed", i);
        int64_t qty;
        if (q < 0)
            return ERR("items[%d].qty: required", i);
        if (ot_json_get_int64(&d, q, &qty) < 0 || qty < 1 || qty > OT_QTY_MAX)
            return ERR("items[%d].qty: must be an integer 1..%d", i, OT_QTY_MAX);
        ot_jw_obj_open(&w);
        ot_jw_key(&w, "productId");
        ot_jw_str(&w, ot_str_make(pid, plen));
        ot_jw_key(&w, "qty");
        ot_jw_int(&w, qty);
        ot_jw_obj_close(&w);
    }
    ot_jw_arr_close(&w);
    return ot_jw_error(&w) ? ERR("internal: encoding failed") : 0;
}

