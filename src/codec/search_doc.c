/* The documents the search indexer writes. See search_doc.h. */
#include "ot/codec/search_doc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/codec/json.h"

/* Orders are created after 1970: created_us >= 0, so plain division floors. */
#define US_PER_DAY 86400000000LL

int ot_search_doc_order(ot_buf *out, const ot_search_doc_meta *m, ot_str json)
{
    ot_json_tok stack[64], *heap = NULL;
    ot_json d;
    /* A failed parse may leave the heap array of its second try. */
    if (ot_json_parse_grow(&d, json.base, json.len, stack, OT_ARRAY_LEN(stack), &heap) < 0 || !ot_json_is_obj(&d, 0)) {
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

static bool json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; } /* RFC 8259 §2 */

int ot_search_doc_event(ot_buf *out, const ot_search_doc_meta *m, ot_str json)
{
    /* Spliced, not parsed: the text is ot_event_json's, an object already;
     * anything else is left for Elasticsearch to refuse. */
    size_t a = 0, n = json.len;
    while (a < n && json_ws(json.base[a]))
        a++;
    while (n > a && json_ws(json.base[n - 1]))
        n--;
    if (n - a < 2 || json.base[a] != '{' || json.base[n - 1] != '}')
        return ot_buf_append(out, json.base, json.len);
    size_t last = n - 1; /* the closing brace; is there a member before it? */
    while (last > a + 1 && json_ws(json.base[last - 1]))
        last--;
    bool empty = last == a + 1;
    int rc = ot_buf_append(out, json.base, n - 1);
    bool stint = m->prev_status[0] && m->end_us >= m->prev_us;
    rc |= ot_buf_printf(out, "%s\"tsUs\":%lld", empty ? "" : ",", (long long)(stint ? m->end_us : m->at_us));
    if (stint) {
        /* Unsigned: end >= prev, and the difference of two far-apart int64
         * times does not fit one. */
        uint64_t d = (uint64_t)m->end_us - (uint64_t)m->prev_us;
        rc |= ot_buf_append_str(out, ",\"prevStatus\":\"");
        rc |= ot_json_escape(out, m->prev_status, strlen(m->prev_status));
        rc |= ot_buf_printf(out, "\",\"prevUs\":%lld,\"stintSeconds\":%.6f", (long long)m->prev_us, (double)d / 1e6);
    }
    return rc | ot_buf_append(out, "}", 1);
}

/* {"<action>":{"_index":"<index>","_id":"<id>"<more>}}\n: ids are UUIDs
 * in practice, escaped anyway so the line is JSON whatever the caller has. */
static int action_line(ot_buf *out, const char *action, const char *index, const char *id, const char *more)
{
    int rc = ot_buf_printf(out, "{\"%s\":{\"_index\":\"%s\",\"_id\":\"", action, index);
    rc |= ot_json_escape(out, id, strlen(id));
    return rc | ot_buf_printf(out, "\"%s}}\n", more);
}

int ot_search_bulk_event(ot_buf *out, const char *index, const char *event_id, const ot_search_doc_meta *m,
                         ot_str json)
{
    size_t mark = out->len;
    if (action_line(out, "create", index, event_id, "") < 0 || ot_search_doc_event(out, m, json) < 0 ||
        ot_buf_append(out, "\n", 1) < 0) {
        out->len = mark;
        return OT_ERR;
    }
    return 0;
}

int ot_search_bulk_order(ot_buf *out, const char *index, const ot_search_doc_meta *m, ot_str json)
{
    size_t mark = out->len;
    char more[64];
    snprintf(more, sizeof more, ",\"version\":%lld,\"version_type\":\"external\"", (long long)m->version);
    if (action_line(out, "index", index, m->order, more) < 0 || ot_search_doc_order(out, m, json) < 0 ||
        ot_buf_append(out, "\n", 1) < 0) {
        out->len = mark;
        return OT_ERR;
    }
    return 0;
}

int ot_search_bulk_parse(ot_search_bulk *a, ot_str body)
{
    if (ot_json_parse_grow(&a->d, body.base, body.len, a->stack, OT_ARRAY_LEN(a->stack), &a->heap) < 0) {
        ot_search_bulk_free(a); /* a heap array may be left from the second try */
        return OT_ERR;
    }
    a->items = ot_json_obj_get(&a->d, 0, "items");
    a->n = ot_json_arr_len(&a->d, a->items);
    if (a->n < 0) {
        ot_search_bulk_free(a);
        return OT_ERR;
    }
    a->i = 0;
    a->t = a->items + 1;
    return a->n;
}

/* Appends the unescaped string token t (or `dflt`) to out[*at..cap-1),
 * at most max bytes of it, cut between characters (the JSON reader checked
 * the UTF-8). A \u0000 ends the text there, as it would in C. */
static void put_str(const ot_json *d, int t, const char *dflt, size_t max, char *out, size_t cap, size_t *at)
{
    ot_buf s = OT_BUF_INIT;
    const char *p = dflt;
    size_t n = strlen(dflt);
    if (t >= 0 && ot_json_get_str(d, t, &s) == 0) {
        p = s.data ? s.data : "";
        n = s.len;
    }
    size_t room = cap - 1 - *at;
    size_t k = ot_utf8_valid_prefix((const unsigned char *)p, n, max < room ? max : room);
    memcpy(out + *at, p, k);
    *at += k;
    out[*at] = 0;
    ot_buf_free(&s);
}

/* "type: reason" of the item's error object: the type cut at 100 bytes so
 * the reason shows. */
static void item_reason(const ot_json *d, int item, char *out, size_t cap)
{
    int err = item >= 0 ? ot_json_obj_get(d, item, "error") : -1;
    size_t at = 0;
    out[0] = 0;
    if (err < 0)
        return;
    put_str(d, ot_json_obj_get(d, err, "type"), "?", 100, out, cap, &at);
    put_str(d, -1, ": ", 2, out, cap, &at);
    put_str(d, ot_json_obj_get(d, err, "reason"), "", cap, out, cap, &at);
}

int ot_search_bulk_next(ot_search_bulk *a, ot_search_verdict *v, int64_t *status, char *why, size_t cap)
{
    if (a->i >= a->n)
        return 0;
    const ot_json *d = &a->d;
    int t = a->t;
    a->t = ot_json_skip(d, t);
    a->i++;
    /* {"create":{...}} or {"index":{...}}: the value of the only key. */
    int item = ot_json_is_obj(d, t) && d->toks[t].size == 1 ? t + 2 : -1;
    int sv = item >= 0 ? ot_json_obj_get(d, item, "status") : -1;
    int64_t st = 0;
    if (sv < 0 || ot_json_get_int64(d, sv, &st) < 0)
        st = 0;
    *status = st;
    if (st >= 200 && st < 300)
        *v = OT_SEARCH_DONE;
    else if (st == 409)
        *v = OT_SEARCH_NEWER;
    else if (st == 0 || st == 429 || st >= 500)
        *v = OT_SEARCH_RETRY;
    else
        *v = OT_SEARCH_REFUSED;
    item_reason(d, item, why, cap);
    return 1;
}

void ot_search_bulk_free(ot_search_bulk *a)
{
    free(a->heap);
    a->heap = NULL;
}
