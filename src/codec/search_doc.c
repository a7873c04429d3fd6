/* The documents the search indexer writes. See search_doc.h. */
#include "ot/codec/search_doc.h"

#include <stdlib.h>

#include "ot/codec/json.h"

/* Orders are created after 1970: created_us >= 0, so plain division floors. */
#define US_PER_DAY 86400000000LL

int ot_search_doc_order(ot_buf *out, const ot_search_doc_meta *m, ot_str json)
{
    ot_json_tok stack[64], *heap = NULL;
    ot_json d;
    if (ot_json_parse_grow(&d, json.base, json.len, stack, OT_ARRAY_LEN(stack), &heap) < 0)
        return OT_ERR;
    if (!ot_json_is_obj(&d, 0)) {
        free(heap);
        return OT_ERR;
    }
    int pl = ot_json_obj_get(&d, 0, "payload");
    int items = pl >= 0 ? ot_json_obj_get(&d, pl, "items") : -1;
    int uid = ot_json_obj_get(&d, 0, "userId"), st = ot_json_obj_get(&d, 0, "status");
    int ts = ot_json_obj_get(&d, 0, "timestamp");
    ot_jw w;
    ot_jw_init(&w, out);
    ot_jw_obj_open(&w);
    ot_jw_key(&w, "id");
    ot_jw_cstr(&w, m->order);
    ot_jw_key(&w, "orderId");
    ot_jw_cstr(&w, m->order);
    ot_jw_key(&w, "userId");
    ot_jw_raw(&w, uid >= 0 ? ot_json_raw_value(&d, uid) : ot_str_c("null"));
    ot_jw_key(&w, "status");
    ot_jw_raw(&w, st >= 0 ? ot_json_raw_value(&d, st) : ot_str_c("null"));
    ot_jw_key(&w, "items");
    ot_jw_raw(&w, items >= 0 ? ot_json_raw_value(&d, items) : ot_str_c("[]"));
    ot_jw_key(&w, "createdAt");
    ot_jw_cstr(&w, m->created[0] ? m->created : NULL);
    ot_jw_key(&w, "updatedAt");
    if (m->updated[0])
        ot_jw_cstr(&w, m->updated);
    else
        ot_jw_raw(&w, ts >= 0 ? ot_json_raw_value(&d, ts) : ot_str_c("null"));
    ot_jw_key(&w, "version");
    ot_jw_int(&w, m->version);
    ot_jw_key(&w, "createdUs");
    if (m->created_us >= 0) {
        /* UTC hour of day and ISO weekday (1970-01-01 was a Thursday, 4):
         * analytics' busiest period as two terms aggregations. */
        int64_t day = m->created_us / US_PER_DAY;
        ot_jw_int(&w, m->created_us);
        ot_jw_key(&w, "createdHour");
        ot_jw_int(&w, m->created_us % US_PER_DAY / (US_PER_DAY / 24));
        ot_jw_key(&w, "createdDow");
        ot_jw_int(&w, (day + 3) % 7 + 1);
    } else {
        ot_jw_null(&w);
    }
    ot_jw_key(&w, "seq");
    ot_jw_int(&w, m->seq);
    ot_jw_obj_close(&w);
    free(heap);
    return ot_jw_error(&w) ? OT_ERR : 0;
}

int ot_search_doc_event(ot_buf *out, const ot_search_doc_meta *m, ot_str json)
{
    size_t n = json.len;
    while (n > 0 && (json.base[n - 1] == ' ' || json.base[n - 1] == '\n'))
        n--;
    if (n < 2 || json.base[0] != '{' || json.base[n - 1] != '}')
        return ot_buf_append(out, json.base, json.len);
    int rc = ot_buf_append(out, json.base, n - 1);
    bool stint = m->prev_status[0] && m->end_us >= m->prev_us;
    rc |= ot_buf_printf(out, ",\"tsUs\":%lld", (long long)(stint ? m->end_us : m->at_us));
    if (stint)
        rc |= ot_buf_printf(out, ",\"prevStatus\":\"%s\",\"prevUs\":%lld,\"stintSeconds\":%.6f", m->prev_status,
                            (long long)m->prev_us, (double)(m->end_us - m->prev_us) / 1e6);
    return rc | ot_buf_append(out, "}", 1);
}
