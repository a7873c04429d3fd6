#include "ot/codec/lifecycle.h"

#include <stdlib.h>

#include "ot/codec/json.h"

static const struct {
    const char *from;
    const char *to[OT_LIFECYCLE_MAX_NEXT];
} moves[] = {
    { "CREATED", { "ACCEPTED", "CANCELED" } },
    { "ACCEPTED", { "PREPARED", "CANCELED" } },
    { "PREPARED", { "SHIPPED", "CANCELED" } },
    { "SHIPPED", { "DELIVERED", NULL } },
};

int ot_lifecycle_next(ot_str status, ot_role role, const char *next[OT_LIFECYCLE_MAX_NEXT])
{
    if (role != OT_ROLE_ADMIN)
        return 0;
    for (size_t i = 0; i < OT_ARRAY_LEN(moves); i++) {
        if (!ot_str_eq_lit(status, moves[i].from))
            continue;
        int n = 0;
        for (int k = 0; k < OT_LIFECYCLE_MAX_NEXT && moves[i].to[k]; k++)
            next[n++] = moves[i].to[k];
        return n;
    }
    return 0;
}

int ot_lifecycle_annotate(ot_str json, ot_role role, ot_buf *out)
{
    /* An API order or event (100 items) fits the stack; events written
     * around the API may be bigger (test_events.py) and get a heap array. */
    ot_json_tok stack[1024], *heap;
    ot_json d;
    int t = -1;
    if (ot_json_parse_grow(&d, json.base, json.len, stack, (int)OT_ARRAY_LEN(stack), &heap) == 0 &&
        ot_json_is_obj(&d, 0))
        t = ot_json_obj_get(&d, 0, "status");
    if (t < 0 || !ot_json_is_str(&d, t)) {
        free(heap);
        return OT_ERR;
    }
    int rc = ot_lifecycle_splice(ot_json_raw_value(&d, 0), ot_json_raw(&d, t), role, out);
    free(heap);
    return rc;
}

int ot_lifecycle_splice(ot_str obj, ot_str status, ot_role role, ot_buf *out)
{
    while (obj.len && (obj.base[0] == ' ' || obj.base[0] == '\n' || obj.base[0] == '\t' || obj.base[0] == '\r'))
        obj.base++, obj.len--;
    while (obj.len && (obj.base[obj.len - 1] == ' ' || obj.base[obj.len - 1] == '\n' ||
                       obj.base[obj.len - 1] == '\t' || obj.base[obj.len - 1] == '\r'))
        obj.len--;
    /* "{" + a member + "}": the member before ours needs the comma. */
    if (obj.len < 3 || obj.base[0] != '{' || obj.base[obj.len - 1] != '}')
        return OT_ERR;
    const char *next[OT_LIFECYCLE_MAX_NEXT];
    int n = ot_lifecycle_next(status, role, next);
    size_t before = out->len;
    bool ok = ot_buf_append(out, obj.base, obj.len - 1) == 0 && ot_buf_append_str(out, ",\"nextStatuses\":[") == 0;
    for (int i = 0; ok && i < n; i++)
        ok = (!i || ot_buf_append(out, ",", 1) == 0) && ot_buf_append(out, "\"", 1) == 0 &&
             ot_buf_append_str(out, next[i]) == 0 && ot_buf_append(out, "\"", 1) == 0;
    ok = ok && ot_buf_append_str(out, "]}") == 0;
    if (!ok)
        out->len = before;
    return ok ? OT_OK : OT_ERR;
}
