/* libFuzzer: the body of POST /orders through ot_orders_validate_items.
 * Invariants: the answer is 0 or OT_ERR and the same on a second run; an
 * error message is non-empty, NUL-terminated and valid UTF-8 whatever
 * buffer size it is cut to; accepted bodies yield a JSON array of 1..100
 * {productId: 1..64 bytes without control characters, qty: 1..10000}, and a
 * userId, when given, is a UUID inside the input. */
#include <stdlib.h>
#include <string.h>

#include "ot/codec/json.h"
#include "ot/codec/order_body.h"
#include "ot/codec/uuid.h"

static void check_msg(const char *err, size_t cap)
{
    size_t n = strnlen(err, cap);
    if (n == cap || (n == 0 && cap > 1))
        abort();
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = ot_utf8_seq_len((const unsigned char *)err + i, n - i)))
            abort();
}

static void check_items(const ot_buf *out)
{
    ot_json_tok toks[OT_ITEMS_MAX * 5 + 16];
    ot_json d;
    if (ot_json_parse(&d, out->data, out->len, toks, (int)(sizeof toks / sizeof toks[0])) < 0 ||
        !ot_json_is_arr(&d, 0))
        abort();
    int n = ot_json_arr_len(&d, 0);
    if (n < 1 || n > OT_ITEMS_MAX)
        abort();
    for (int i = 0; i < n; i++) {
        int it = ot_json_arr_at(&d, 0, i);
        int p = ot_json_obj_get(&d, it, "productId"), q = ot_json_obj_get(&d, it, "qty");
        char pid[OT_PRODUCT_ID_MAX + 1];
        size_t plen;
        int64_t qty;
        if (!ot_json_is_obj(&d, it) || ot_json_skip(&d, it) != it + 5 || p < 0 || q < 0 ||
            ot_json_get_str_buf(&d, p, pid, sizeof pid, &plen) < 0 || plen < 1 || plen > OT_PRODUCT_ID_MAX ||
            ot_json_get_int64(&d, q, &qty) < 0 || qty < 1 || qty > OT_QTY_MAX)
            abort();
        for (size_t k = 0; k < plen; k++)
            if ((unsigned char)pid[k] < 0x20)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *js = (const char *)data;
    char err[200], err2[200];
    ot_buf out = OT_BUF_INIT, out2 = OT_BUF_INIT;
    ot_str uid;
    memset(err, 0x7f, sizeof err);
    int rc = ot_orders_validate_items(js, size, &out, err, sizeof err, &uid);
    if (rc != 0 && rc != OT_ERR)
        abort();
    if (rc == 0) {
        check_items(&out);
        if (uid.len && (!ot_uuid_valid(uid) || uid.base < js || uid.base + uid.len > js + size))
            abort();
    } else {
        check_msg(err, sizeof err);
    }
    /* Again, with a message buffer cut short: same verdict, output, text. */
    size_t cap = 1 + size % 48;
    int rc2 = ot_orders_validate_items(js, size, &out2, err2, cap, NULL);
    if (rc2 != rc || (rc == 0 && (out.len != out2.len || memcmp(out.data, out2.data, out.len) != 0)))
        abort();
    if (rc2 != 0) {
        check_msg(err2, cap);
        if (strncmp(err, err2, strlen(err2)) != 0)
            abort();
    }
    ot_buf_free(&out);
    ot_buf_free(&out2);
    return 0;
}
