/* The event JSON written from an order_events row's columns (event_row.h):
 * the text ot_event_json gives for the same row (outputs recorded from
 * PostgreSQL 15; tests/integration/test_event_row.py compares against the live
 * function), and the event fields ot_event_parse would read from it. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/codec/event_row.h"
#include "ot/codec/json.h"
#include "ot/core/buf.h"

#include "rng.h"

static ot_event_row sample(void)
{
    return (ot_event_row){ OT_STR("2"), OT_STR("2"), OT_STR("88f6f47d-68db-445f-90fe-1f6cbbe0bb13"),
                           OT_STR("00728c5c-f637-42e8-acc4-be2699e35547"),
                           OT_STR("6e9fec1b-52eb-4279-b817-26824266acc4"), OT_STR("order.updated"),
                           OT_STR("ACCEPTED"), OT_STR("2026-12-04T01:08:34.182Z"),
                           OT_STR("{\"items\": [{\"qty\": 1, \"productId\": \"sku-bench\"}]}"),
                           OT_STR("6e9fec1b-52eb-4279-b817-26824266acc4") };
}

/* Writes r; checks the bound, and that ot_event_parse over the text gives
 * the same event (the same slices). Returns the text (static). */
static const char *write_checked(const ot_event_row *r)
{
    static char out[1 << 16];
    size_t bound = ot_event_row_json_bound(r);
    cr_assert_leq(bound, sizeof out);
    memset(out, 0x55, sizeof out);
    ot_event ev, parsed;
    size_t n = ot_event_row_json(r, out, &ev);
    cr_assert_gt(n, 0);
    cr_assert_leq(n, bound);
    cr_assert_eq(ev.json.base, out);
    cr_assert_eq(ev.json.len, n);
    cr_assert_eq(ot_event_parse(ev.json, &parsed), 0, "%.*s", (int)n, out);
    parsed.seen_us = 0;
    cr_assert_eq(memcmp(&ev, &parsed, sizeof ev), 0, "fields differ from the parser's for %.*s", (int)n, out);
    out[n] = 0;
    return out;
}

Test(event_row, a_row_is_written_as_ot_event_json_writes_it)
{
    ot_event_row r = sample();
    cr_assert_str_eq(write_checked(&r),
                     "{\"seq\" : 2, \"version\" : 2, \"eventId\" : \"88f6f47d-68db-445f-90fe-1f6cbbe0bb13\", "
                     "\"orderId\" : \"00728c5c-f637-42e8-acc4-be2699e35547\", \"userId\" : "
                     "\"6e9fec1b-52eb-4279-b817-26824266acc4\", \"type\" : \"order.updated\", \"status\" : "
                     "\"ACCEPTED\", \"timestamp\" : \"2026-12-04T01:08:34.182Z\", \"payload\" : {\"items\": "
                     "[{\"qty\": 1, \"productId\": \"sku-bench\"}]}, \"actor\" : "
                     "\"6e9fec1b-52eb-4279-b817-26824266acc4\"}");
}

Test(event_row, a_null_column_is_null_and_its_field_empty)
{
    ot_event_row r = sample();
    r.actor = OT_STR_NULL;
    r.status = OT_STR_NULL;
    r.payload = OT_STR_NULL;
    const char *j = write_checked(&r);
    cr_assert(strstr(j, "\"status\" : null, "), "%s", j);
    cr_assert(strstr(j, "\"payload\" : null, \"actor\" : null}"), "%s", j);
    ot_event ev;
    char out[1024];
    ot_event_row_json(&r, out, &ev);
    cr_assert_eq(ev.status.len, 0);
}

Test(event_row, strings_are_escaped_as_postgresql_escape_json_does)
{
    ot_event_row r = sample();
    /* From SELECT json_build_object('type', E'...'): named escapes for the
     * five, lower-case \u00xx for other controls, DEL and UTF-8 as they are,
     * and a byte that is not UTF-8 (SQL_ASCII) as it is too. */
    r.type = OT_STR("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9 \xf0\x9f\x93\xa6");
    const char *j = write_checked(&r);
    cr_assert(strstr(j, "\"type\" : \"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f \xc3\xa9 \xf0\x9f\x93\xa6\", "),
              "%s", j);
    /* (Not through the parser: it refuses text that is not UTF-8.) */
    r.type = OT_STR("a\xff\xc3\"");
    char out[2048];
    ot_event ev;
    size_t n = ot_event_row_json(&r, out, &ev);
    cr_assert(n > 0 && n < sizeof out);
    out[n] = 0;
    cr_assert(strstr(out, "\"type\" : \"a\xff\xc3\\\"\", "), "%s", out);
    cr_assert_eq(ev.type.len, 5);
}

Test(event_row, seq_and_version_must_be_64_bit_integers)
{
    const char *bad[] = { "", "-", "1.5", "1e3", " 1", "9223372036854775808", "-9223372036854775809", "0x10",
                          "01", "-01" };
    char out[2048];
    ot_event ev;
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++) {
        ot_event_row r = sample();
        r.seq = ot_str_c(bad[i]);
        cr_assert_eq(ot_event_row_json(&r, out, &ev), 0, "seq %s", bad[i]);
        r = sample();
        r.version = ot_str_c(bad[i]);
        cr_assert_eq(ot_event_row_json(&r, out, &ev), 0, "version %s", bad[i]);
    }
    ot_event_row r = sample();
    r.seq = OT_STR_NULL;
    cr_assert_eq(ot_event_row_json(&r, out, &ev), 0);
    r = sample();
    r.seq = OT_STR("9223372036854775807");
    r.version = OT_STR("-9223372036854775808");
    write_checked(&r);
    ot_event_row_json(&r, out, &ev);
    cr_assert_eq(ev.seq, INT64_MAX);
    cr_assert_eq(ev.version, INT64_MIN);
}

/* Random bytes in every string column (NULL now and then), a large payload
 * sometimes: the text parses, back to the same fields, each string column
 * unescapes to its bytes, and the bound holds. */
Test(event_row, random_columns_round_trip_through_the_parser)
{
    rng = 0x9e3779b97f4a7c15ULL;
    static char cols[7][300];
    static char payload[40000];
    for (int iter = 0; iter < 3000; iter++) {
        ot_event_row r = sample();
        ot_str *strs[] = { &r.event_id, &r.order_id, &r.user_id, &r.type, &r.status, &r.timestamp, &r.actor };
        for (int c = 0; c < 7; c++) {
            if (rnd(10) == 0) {
                *strs[c] = OT_STR_NULL;
                continue;
            }
            size_t n = rnd(40);
            for (size_t i = 0; i < n; i++) {
                /* Controls, quotes, backslashes and ASCII; UTF-8 in one column. */
                unsigned b = rnd(4) == 0 ? rnd(0x20) : rnd(3) == 0 ? (unsigned char)"\"\\/"[rnd(3)] : 0x20 + rnd(0x5f);
                cols[c][i] = (char)b;
            }
            if (c == 3 && n + 4 < sizeof cols[c]) {
                memcpy(cols[c] + n, "\xc3\xa9\xe2\x82\xac", 5);
                n += 5;
            }
            *strs[c] = ot_str_make(cols[c], n);
        }
        /* [1,1,...,1]: k items, 2k + 1 bytes. */
        size_t k = rnd(8) == 0 ? 15000 + rnd(2000) : 1 + rnd(25), plen = 2 * k + 1;
        payload[0] = '[';
        for (size_t i = 0; i < k; i++)
            payload[1 + 2 * i] = '1', payload[2 + 2 * i] = ',';
        payload[plen - 1] = ']';
        r.payload = ot_str_make(payload, plen);
        char seq[24];
        snprintf(seq, sizeof seq, "%u", rnd(1000000000));
        r.seq = ot_str_c(seq);
        static char out[1 << 17];
        size_t bound = ot_event_row_json_bound(&r);
        cr_assert_leq(bound, sizeof out);
        ot_event ev;
        size_t n = ot_event_row_json(&r, out, &ev);
        cr_assert(n > 0 && n <= bound, "iteration %d: %zu of %zu", iter, n, bound);
        ot_json_tok *toks = malloc(40000 * sizeof(*toks));
        ot_json d;
        cr_assert_eq(ot_json_parse(&d, out, n, toks, 40000), 0, "iteration %d: %.*s", iter, (int)n, out);
        static const char *const keys[] = { "eventId", "orderId", "userId", "type", "status", "timestamp", "actor" };
        for (int c = 0; c < 7; c++) {
            int t = ot_json_obj_get(&d, 0, keys[c]);
            cr_assert_geq(t, 0);
            if (!strs[c]->base) {
                cr_assert(ot_json_is_null(&d, t));
                continue;
            }
            ot_buf b;
            ot_buf_init(&b);
            cr_assert_eq(ot_json_get_str(&d, t, &b), 0);
            cr_assert_eq(b.len, strs[c]->len, "iteration %d, %s", iter, keys[c]);
            cr_assert(b.len == 0 || memcmp(b.data, strs[c]->base, b.len) == 0, "iteration %d, %s", iter, keys[c]);
            ot_buf_free(&b);
        }
        free(toks);
        ot_event parsed;
        cr_assert_eq(ot_event_parse(ev.json, &parsed), 0);
        parsed.seen_us = 0;
        cr_assert_eq(memcmp(&ev, &parsed, sizeof ev), 0, "iteration %d", iter);
    }
}
