#include "ot/codec/event_view.h"

#include <stdlib.h>

#include "ot/codec/json.h"

/* An event of 100 items is ~530 tokens; a bigger one gets a heap array. */
#define VIEW_STACK_TOKS 1024

static bool staff_only(const ot_json *d, int key)
{
    static const char *const staff[] = OT_EVENT_STAFF_FIELDS;
    for (size_t i = 0; i < OT_ARRAY_LEN(staff); i++)
        if (ot_json_str_eq(d, key, staff[i]))
            return true;
    return false;
}

int ot_event_view_customer(ot_str json, ot_buf *out)
{
    ot_json_tok stack[VIEW_STACK_TOKS], *heap;
    ot_json d;
    int rc = ot_json_parse_grow(&d, json.base, json.len, stack, VIEW_STACK_TOKS, &heap);
    size_t start = out->len;
    if (rc < 0 || !ot_json_is_obj(&d, 0)) {
        rc = OT_ERR;
        goto done;
    }
    bool first = true;
    rc = ot_buf_append(out, "{", 1);
    for (int k = 1; rc == 0 && k < d.ntoks; k = ot_json_skip(&d, k + 1)) {
        if (staff_only(&d, k))
            continue;
        ot_str key = ot_json_raw_value(&d, k), val = ot_json_raw_value(&d, k + 1);
        if ((!first && ot_buf_append(out, ",", 1) < 0) || ot_buf_append(out, key.base, key.len) < 0 ||
            ot_buf_append(out, ":", 1) < 0 || ot_buf_append(out, val.base, val.len) < 0)
            rc = OT_ERR;
        first = false;
    }
    if (rc == 0)
        rc = ot_buf_append(out, "}", 1);
done:
    if (rc < 0)
        out->len = start;
    free(heap);
    return rc < 0 ? OT_ERR : 0;
}
