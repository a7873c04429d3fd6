/* libFuzzer: the search documents and the _bulk answer (codec/search_doc.c).
 * Each input is taken three ways, with a meta record drawn from a hash of it
 * (ids and times as PostgreSQL gives them, and strings that need escaping):
 *  - as the event JSON of an order document: built exactly when the input
 *    is a JSON object; then it is one valid JSON object (by the reader and by
 *    the jsmn oracle of json_ref.h) with the meta's values, the event's
 *    userId/status/payload.items as they were, and createdHour/createdDow as
 *    gmtime says; only appended, and no newline the input did not have;
 *  - as the event JSON of an event document: a JSON object comes back as the
 *    same object plus tsUs (and the stint's three fields), a text that is
 *    not one never becomes valid JSON (Elasticsearch must refuse it, so it is
 *    parked);
 *  - as a _bulk answer: as many items as the array holds, each with the
 *    verdict its status implies and a reason that fits its buffer and is
 *    valid UTF-8 (it goes into a log line and a PostgreSQL text column).
 * The _bulk request lines of each document are an action line that is JSON
 * and the document as built, each ending in a newline. 
 * Invariant violations abort. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_ref.h"
#include "ot/codec/search_doc.h"

#include "fuzz_check.h"

/* Valid JSON by the jsmn-based oracle, not only by the reader under test. */
static bool ref_valid(const char *p, size_t n)
{
    int max = (int)(n / 2 + 2);
    jsmntok_t *t = malloc(sizeof *t * (size_t)max);
    ref_json r;
    bool ok = t && ref_parse(&r, p, n, t, max) == 0;
    free(t);
    return ok;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static const char *const strs[] = {
    "", "0b7e5f52-4c43-4d0e-9a7c-3a1f6e2d9c01", "2001-01-01T10:00:00.000Z", "a\"b\\c", "\x01\n\t\x7f", "caf\xc3\xa9",
    "\xff\xfe", "CREATED", "0123456789abcdef0123456789abcdef0123",
};
static const int64_t nums[] = { 0, 1, -1, 7, 978343200000000LL, 978307199000000LL, INT64_MAX, INT64_MIN, -2, 86400000000LL };

static void pick(char *dst, size_t cap, uint64_t h)
{
    snprintf(dst, cap, "%s", strs[h % OT_ARRAY_LEN(strs)]);
}

static ot_search_doc_meta make_meta(const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    ot_search_doc_meta m;
    memset(&m, 0, sizeof m);
    int64_t *f[] = { &m.seq, &m.version, &m.created_us, &m.at_us, &m.prev_us, &m.end_us };
    for (size_t i = 0; i < OT_ARRAY_LEN(f); i++) {
        h = mix(h + i);
        *f[i] = h & 1 ? nums[(h >> 1) % OT_ARRAY_LEN(nums)] : (int64_t)(h >> 8) - (int64_t)(h >> 60);
    }
    pick(m.order, sizeof m.order, h = mix(h));
    pick(m.created, sizeof m.created, h = mix(h));
    pick(m.updated, sizeof m.updated, h = mix(h));
    pick(m.prev_status, sizeof m.prev_status, h = mix(h));
    return m;
}

static bool raw_eq(ot_str a, ot_str b) { return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0); }

/* The unescaped value of string token t equals what the writer makes of s
 * (invalid UTF-8 bytes become U+FFFD): its raw text is s escaped. */
static bool str_is(const ot_json *d, int t, const char *s)
{
    ot_buf a = OT_BUF_INIT;
    bool ok = ot_json_is_str(d, t) && ot_json_escape(&a, s, strlen(s)) == 0;
    ok = ok && raw_eq(ot_json_raw(d, t), ot_str_make(a.data, a.len));
    ot_buf_free(&a);
    return ok;
}

static bool int_is(const ot_json *d, int t, int64_t v)
{
    int64_t x;
    return t >= 0 && ot_json_get_int64(d, t, &x) == 0 && x == v;
}


static bool has_nl(const char *p, size_t n) { return memchr(p, '\n', n) != NULL; }

static void check_order(const ot_search_doc_meta *m, const char *p, size_t n, const ot_json *in, bool obj)
{
    ot_buf out = OT_BUF_INIT;
    ot_buf_append(&out, "X", 1);
    int rc = ot_search_doc_order(&out, m, ot_str_make(p, n));
    CHECK(out.data[0] == 'X');
    CHECK((rc == 0) == obj);
    if (rc != 0) {
        ot_buf_free(&out);
        return;
    }
    const char *o = out.data + 1;
    size_t on = out.len - 1;
    CHECK(ref_valid(o, on));
    CHECK(has_nl(p, n) || !has_nl(o, on));
    ot_json_tok st[64], *heap = NULL;
    ot_json d;
    CHECK(ot_json_parse_grow(&d, o, on, st, 64, &heap) == 0 && ot_json_is_obj(&d, 0));
    CHECK(str_is(&d, ot_json_obj_get(&d, 0, "id"), m->order));
    CHECK(str_is(&d, ot_json_obj_get(&d, 0, "orderId"), m->order));
    CHECK(int_is(&d, ot_json_obj_get(&d, 0, "version"), m->version));
    CHECK(int_is(&d, ot_json_obj_get(&d, 0, "seq"), m->seq));
    int uid = ot_json_obj_get(in, 0, "userId"), sta = ot_json_obj_get(in, 0, "status");
    int pl = ot_json_obj_get(in, 0, "payload"), items = pl >= 0 ? ot_json_obj_get(in, pl, "items") : -1;
    CHECK(raw_eq(ot_json_raw_value(&d, ot_json_obj_get(&d, 0, "userId")),
                 uid >= 0 ? ot_json_raw_value(in, uid) : ot_str_c("null")));
    CHECK(raw_eq(ot_json_raw_value(&d, ot_json_obj_get(&d, 0, "status")),
                 sta >= 0 ? ot_json_raw_value(in, sta) : ot_str_c("null")));
    CHECK(raw_eq(ot_json_raw_value(&d, ot_json_obj_get(&d, 0, "items")),
                 items >= 0 ? ot_json_raw_value(in, items) : ot_str_c("[]")));
    int ca = ot_json_obj_get(&d, 0, "createdAt");
    CHECK(m->created[0] ? str_is(&d, ca, m->created) : ot_json_is_null(&d, ca));
    int ua = ot_json_obj_get(&d, 0, "updatedAt"), ts = ot_json_obj_get(in, 0, "timestamp");
    if (m->updated[0])
        CHECK(str_is(&d, ua, m->updated));
    else
        CHECK(raw_eq(ot_json_raw_value(&d, ua), ts >= 0 ? ot_json_raw_value(in, ts) : ot_str_c("null")));
    int cu = ot_json_obj_get(&d, 0, "createdUs"), hr = ot_json_obj_get(&d, 0, "createdHour"),
        dow = ot_json_obj_get(&d, 0, "createdDow");
    if (m->created_us >= 0) {
        time_t s = (time_t)(m->created_us / 1000000);
        struct tm tm;
        CHECK(gmtime_r(&s, &tm) != NULL);
        CHECK(int_is(&d, cu, m->created_us));
        CHECK(int_is(&d, hr, tm.tm_hour));
        CHECK(int_is(&d, dow, tm.tm_wday ? tm.tm_wday : 7));
        CHECK(d.toks[0].size == 12);
    } else {
        CHECK(ot_json_is_null(&d, cu) && hr < 0 && dow < 0 && d.toks[0].size == 10);
    }
    free(heap);
    /* The _bulk lines: the action, then this same document, or nothing. */
    ot_buf lines = OT_BUF_INIT;
    CHECK(ot_search_bulk_order(&lines, "p-orders", m, ot_str_make(p, n)) == 0);
    const char *nl = memchr(lines.data, '\n', lines.len);
    CHECK(nl && ref_valid(lines.data, (size_t)(nl - lines.data)));
    CHECK((size_t)(lines.data + lines.len - nl) == on + 2 && memcmp(nl + 1, o, on) == 0 && lines.data[lines.len - 1] == '\n');
    ot_buf_free(&lines);
    ot_buf_free(&out);
}

static void check_event(const ot_search_doc_meta *m, const char *p, size_t n, const ot_json *in, bool obj)
{
    /* Members the event document adds: an event that had them already would
     * get two of each (ot_event_json writes none of them). */
    static const char *const added[] = { "tsUs", "prevStatus", "prevUs", "stintSeconds" };
    bool clash = false;
    for (size_t i = 0; obj && i < OT_ARRAY_LEN(added); i++)
        clash |= ot_json_obj_get(in, 0, added[i]) >= 0;
    ot_buf out = OT_BUF_INIT;
    ot_buf_append(&out, "X", 1);
    CHECK(ot_search_doc_event(&out, m, ot_str_make(p, n)) == 0);
    CHECK(out.data[0] == 'X');
    const char *o = out.data + 1;
    size_t on = out.len - 1;
    CHECK(has_nl(p, n) || !has_nl(o, on));
    ot_buf lines = OT_BUF_INIT;
    CHECK(ot_search_bulk_event(&lines, "p-events", m->order, m, ot_str_make(p, n)) == 0);
    const char *nl = memchr(lines.data, '\n', lines.len);
    CHECK(nl && ref_valid(lines.data, (size_t)(nl - lines.data)));
    CHECK((size_t)(lines.data + lines.len - nl) == on + 2 && memcmp(nl + 1, o, on) == 0 && lines.data[lines.len - 1] == '\n');
    ot_buf_free(&lines);
    if (!obj) {
        CHECK(!ref_valid(o, on) || (on == n && memcmp(o, p, n) == 0));
        ot_buf_free(&out);
        return;
    }
    if (clash) {
        ot_buf_free(&out);
        return;
    }
    CHECK(ref_valid(o, on));
    ot_json_tok st[64], *heap = NULL;
    ot_json d;
    CHECK(ot_json_parse_grow(&d, o, on, st, 64, &heap) == 0 && ot_json_is_obj(&d, 0));
    bool stint = m->prev_status[0] && m->end_us >= m->prev_us;
    CHECK(d.toks[0].size == in->toks[0].size + (stint ? 4 : 1));
    /* Every member of the event, unchanged and in its place. */
    for (int k = 1, j = 1; k < in->toks[0].next; k = in->toks[k].next, j = d.toks[j].next)
        CHECK(raw_eq(ot_json_raw_value(in, k), ot_json_raw_value(&d, j)) &&
              raw_eq(ot_json_raw_value(in, k + 1), ot_json_raw_value(&d, j + 1)));
    CHECK(int_is(&d, ot_json_obj_get(&d, 0, "tsUs"), stint ? m->end_us : m->at_us));
    if (stint) {
        CHECK(str_is(&d, ot_json_obj_get(&d, 0, "prevStatus"), m->prev_status));
        CHECK(int_is(&d, ot_json_obj_get(&d, 0, "prevUs"), m->prev_us));
        int ss = ot_json_obj_get(&d, 0, "stintSeconds");
        CHECK(ot_json_is_num(&d, ss));
        double want = (double)((uint64_t)m->end_us - (uint64_t)m->prev_us) / 1e6;
        CHECK(fabs(strtod(d.js + d.toks[ss].start, NULL) - want) <= 1e-6 + want * 1e-12);
    }
    free(heap);
    ot_buf_free(&out);
}

static ot_search_verdict expect(int64_t st)
{
    if (st >= 200 && st < 300)
        return OT_SEARCH_DONE;
    if (st == 409)
        return OT_SEARCH_NEWER;
    if (st == 0 || st == 429 || st >= 500)
        return OT_SEARCH_RETRY;
    return OT_SEARCH_REFUSED;
}

static void check_bulk(const char *p, size_t n, const ot_json *in, bool parsed)
{
    ot_search_bulk a;
    int items = parsed ? ot_json_obj_get(in, 0, "items") : -1;
    int want = parsed ? ot_json_arr_len(in, items) : -1;
    int got = ot_search_bulk_parse(&a, ot_str_make(p, n));
    CHECK(got == (parsed ? (want >= 0 ? want : OT_ERR) : OT_ERR));
    if (got < 0)
        return;
    static const size_t caps[] = { 1, 2, 5, 17, 101, 400 };
    ot_search_verdict v;
    int64_t st;
    int i = 0;
    for (;; i++) {
        size_t cap = caps[((size_t)i + n) % OT_ARRAY_LEN(caps)];
        char why[400 + 1];
        memset(why, 0x55, sizeof why);
        int r = ot_search_bulk_next(&a, &v, &st, why, cap);
        if (r == 0)
            break;
        CHECK(r == 1 && i < got);
        size_t wl = strnlen(why, cap);
        CHECK(wl < cap && (unsigned char)why[cap] == 0x55);
        CHECK(ot_utf8_valid((const uint8_t *)why, wl));
        CHECK(v == expect(st));
        /* The status is the item's own: {"<action>":{"status":N,...}} */
        int t = ot_json_arr_at(in, items, i);
        int inner = ot_json_is_obj(in, t) && in->toks[t].size == 1 ? t + 2 : -1;
        int sv = inner >= 0 ? ot_json_obj_get(in, inner, "status") : -1;
        int64_t x;
        CHECK(st == (sv >= 0 && ot_json_get_int64(in, sv, &x) == 0 ? x : 0));
    }
    CHECK(i == got);
    CHECK(ot_search_bulk_next(&a, &v, &st, (char[1]){ 0 }, 1) == 0);
    ot_search_bulk_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    const char *p = (const char *)data;
    ot_search_doc_meta m = make_meta(data, size);
    ot_json_tok st[64], *heap = NULL;
    ot_json in;
    bool parsed = ot_json_parse_grow(&in, p, size, st, 64, &heap) == 0;
    bool obj = parsed && ot_json_is_obj(&in, 0);
    CHECK(parsed == ref_valid(p, size));
    check_order(&m, p, size, &in, obj);
    check_event(&m, p, size, &in, obj);
    check_bulk(p, size, &in, parsed);
    free(heap);
    return 0;
}
