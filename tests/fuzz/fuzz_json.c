/* libFuzzer: ot_json_parse on arbitrary bytes, then every accessor on every
 * token. Invariants checked (abort on violation): the one-pass reader gives
 * the same verdict and the same tokens as the previous two-pass reader
 * (json_ref.h: jsmn, then a validation walk), an accepted document's subtree
 * skips are consistent, every string unescapes to valid UTF-8 no longer than
 * its raw form, and writer output always parses back. */
#include <stdlib.h>

#include "json_ref.h"
#include "ot/codec/json.h"

/* Same verdict; when accepted, token for token the same shape. */
static void differential(const ot_json *d, int rc, const uint8_t *data, size_t size, int max)
{
    static jsmntok_t rt[256];
    ref_json r;
    int rrc = ref_parse(&r, (const char *)data, size, rt, max);
    if ((rc == 0) != (rrc == 0))
        abort();
    if (rc != 0)
        return;
    if (r.ntoks != d->ntoks)
        abort();
    static const int type_of[] = { [JSMN_OBJECT] = OT_JSON_OBJ, [JSMN_ARRAY] = OT_JSON_ARR,
                                   [JSMN_STRING] = OT_JSON_STR, [JSMN_PRIMITIVE] = OT_JSON_PRIM };
    for (int t = 0; t < d->ntoks; t++) {
        const ot_json_tok *a = &d->toks[t];
        const jsmntok_t *b = &rt[t];
        if (a->type != type_of[b->type] || a->start != b->start || a->end != b->end || a->size != b->size ||
            a->next != ref_skip(&r, t))
            abort();
        if (a->type == OT_JSON_STR && a->esc != (memchr(data + a->start, '\\', (size_t)(a->end - a->start)) != NULL))
            abort();
    }
}

static bool utf8_ok(const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = ot_utf8_seq_len((const unsigned char *)s + i, n - i)))
            return false;
    return true;
}

static void walk(const ot_json *d, ot_buf *b)
{
    for (int t = 0; t < d->ntoks; t++) {
        int s = ot_json_skip(d, t);
        if (s <= t || s > d->ntoks)
            abort();
        if (ot_json_is_str(d, t)) {
            ot_buf_reset(b);
            if (ot_json_get_str(d, t, b) < 0 || b->len > ot_json_raw(d, t).len || !utf8_ok(b->data, b->len))
                abort();
            char small[8];
            size_t n;
            if (ot_json_get_str_buf(d, t, small, sizeof small, &n) == 0 &&
                (n != b->len || (n && memcmp(small, b->data, n) != 0)))
                abort();
            ot_json_str_eq(d, t, "id");
        }
        int64_t v;
        bool bv;
        ot_json_get_int64(d, t, &v);
        ot_json_get_bool(d, t, &bv);
        ot_json_raw_value(d, t);
        if (ot_json_is_arr(d, t)) {
            int n = ot_json_arr_len(d, t), last = ot_json_arr_at(d, t, n - 1);
            if (n > 0 && (last < 0 || ot_json_skip(d, last) != s))
                abort();
        }
        if (ot_json_is_obj(d, t))
            ot_json_obj_get(d, t, "id");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ot_json_tok toks[256];
    ot_json d;
    ot_buf b = OT_BUF_INIT, w = OT_BUF_INIT;
    int rc = ot_json_parse(&d, (const char *)data, size, toks, 256);
    differential(&d, rc, data, size, 256);
    if (rc == 0) {
        if (ot_json_skip(&d, 0) != d.ntoks)
            abort();
        walk(&d, &b);
    }
    /* The input as a string value and key: the writer must yield valid JSON. */
    ot_jw jw;
    ot_jw_init(&jw, &w);
    ot_jw_obj_open(&jw);
    ot_jw_key_str(&jw, ot_str_make((const char *)data, size));
    ot_jw_str(&jw, ot_str_make((const char *)data, size));
    ot_jw_obj_close(&jw);
    if (ot_jw_error(&jw) != 0 || ot_json_parse(&d, w.data, w.len, toks, 256) != 0)
        abort();
    ot_buf_free(&b);
    ot_buf_free(&w);
    return 0;
}
