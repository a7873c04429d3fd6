/* codec/search_doc: the order and event documents of the search indexer. */
#include <criterion/criterion.h>
#include <string.h>

#include "ot/codec/search_doc.h"

#define EV "{\"seq\" : 7, \"version\" : 2, \"eventId\" : \"e1\", \"orderId\" : \"o1\", \"userId\" : \"u1\", " \
           "\"type\" : \"order.updated\", \"status\" : \"ACCEPTED\", \"timestamp\" : \"2001-01-01T10:30:00.000Z\", " \
           "\"payload\" : {\"items\": [{\"qty\": 2, \"productId\": \"sku-1\"}]}, \"actor\" : null}"

static ot_search_doc_meta meta(void)
{
    ot_search_doc_meta m = { .seq = 7, .version = 2, .created_us = 978343200000000LL, /* 2001-01-01T10:00Z, a Monday */
                             .at_us = 978345000000000LL, .prev_us = 978343200000000LL, .end_us = 978345000123456LL };
    strcpy(m.order, "o1");
    strcpy(m.created, "2001-01-01T10:00:00.000Z");
    strcpy(m.prev_status, "CREATED");
    return m;
}

Test(search_doc, order_document_is_the_order_json_plus_search_fields)
{
    ot_search_doc_meta m = meta();
    ot_buf b = OT_BUF_INIT;
    cr_assert_eq(ot_search_doc_order(&b, &m, ot_str_c(EV)), 0);
    ot_buf_append(&b, "", 1);
    cr_expect_str_eq(b.data, "{\"id\":\"o1\",\"orderId\":\"o1\",\"userId\":\"u1\",\"status\":\"ACCEPTED\","
                             "\"items\":[{\"qty\": 2, \"productId\": \"sku-1\"}],\"createdAt\":\"2001-01-01T10:00:00.000Z\","
                             "\"updatedAt\":\"2001-01-01T10:30:00.000Z\",\"version\":2,\"createdUs\":978343200000000,"
                             "\"createdHour\":10,\"createdDow\":1,\"seq\":7}");
    /* The row's updatedAt wins when the row is at this version; unknown createdAt is null. */
    strcpy(m.updated, "2001-01-01T10:30:00.010Z");
    m.created[0] = 0;
    m.created_us = -1;
    b.len = 0;
    cr_assert_eq(ot_search_doc_order(&b, &m, ot_str_c(EV)), 0);
    ot_buf_append(&b, "", 1);
    cr_expect(strstr(b.data, "\"createdAt\":null,\"updatedAt\":\"2001-01-01T10:30:00.010Z\""), "%s", b.data);
    cr_expect(strstr(b.data, "\"createdUs\":null,\"seq\":7}"), "%s", b.data);
    b.len = 0;
    cr_expect_eq(ot_search_doc_order(&b, &m, ot_str_c("[1]")), OT_ERR);
    ot_buf_free(&b);
}

Test(search_doc, weekday_and_hour_are_utc_iso)
{
    ot_search_doc_meta m = meta();
    ot_buf b = OT_BUF_INIT;
    m.created_us = 978307199000000LL; /* 2000-12-31T23:59:59Z, a Sunday */
    cr_assert_eq(ot_search_doc_order(&b, &m, ot_str_c(EV)), 0);
    ot_buf_append(&b, "", 1);
    cr_expect(strstr(b.data, "\"createdHour\":23,\"createdDow\":7"), "%s", b.data);
    ot_buf_free(&b);
}

Test(search_doc, event_document_carries_the_stint_it_ends)
{
    ot_search_doc_meta m = meta();
    ot_buf b = OT_BUF_INIT;
    cr_assert_eq(ot_search_doc_event(&b, &m, ot_str_c(EV)), 0);
    ot_buf_append(&b, "", 1);
    cr_expect(strncmp(b.data, EV, strlen(EV) - 1) == 0);
    cr_expect(strstr(b.data, "\"actor\" : null,\"tsUs\":978345000123456,\"prevStatus\":\"CREATED\","
                             "\"prevUs\":978343200000000,\"stintSeconds\":1800.123456}"), "%s", b.data);
    /* The first event ends no stint; a non-object goes as it is. */
    m.prev_status[0] = 0;
    b.len = 0;
    cr_assert_eq(ot_search_doc_event(&b, &m, ot_str_c(EV)), 0);
    ot_buf_append(&b, "", 1);
    cr_expect(strstr(b.data, "\"actor\" : null,\"tsUs\":978345000000000}"), "%s", b.data);
    b.len = 0;
    cr_assert_eq(ot_search_doc_event(&b, &m, ot_str_c("not json")), 0);
    cr_expect_eq(b.len, 8);
    ot_buf_free(&b);
}

Test(search_bulk, each_item_gets_its_verdict_status_and_reason_in_order)
{
    static const char body[] =
        "{\"items\":[{\"create\":{\"status\":201}},{\"index\":{\"status\":409,\"error\":{\"type\":\"version_conflict\"}}},"
        "{\"index\":{\"status\":429}},{\"create\":{\"status\":503}},{\"index\":{}},{\"a\":{\"status\":1},\"b\":{}},"
        "{\"create\":{\"status\":400,\"error\":{\"type\":\"document_parsing_exception\",\"reason\":\"qty\"}}}]}";
    static const struct { ot_search_verdict v; int64_t st; const char *why; } want[] = {
        { OT_SEARCH_DONE, 201, "" },          { OT_SEARCH_NEWER, 409, "version_conflict: " },
        { OT_SEARCH_RETRY, 429, "" },         { OT_SEARCH_RETRY, 503, "" },
        { OT_SEARCH_RETRY, 0, "" },           { OT_SEARCH_RETRY, 0, "" },
        { OT_SEARCH_REFUSED, 400, "document_parsing_exception: qty" },
    };
    ot_search_bulk a;
    cr_assert_eq(ot_search_bulk_parse(&a, ot_str_c(body)), 7);
    ot_search_verdict v;
    int64_t st;
    char why[64];
    for (size_t i = 0; i < 7; i++) {
        cr_assert_eq(ot_search_bulk_next(&a, &v, &st, why, sizeof why), 1);
        cr_expect_eq(v, want[i].v, "item %zu", i);
        cr_expect_eq(st, want[i].st, "item %zu", i);
        cr_expect_str_eq(why, want[i].why, "item %zu", i);
    }
    cr_expect_eq(ot_search_bulk_next(&a, &v, &st, why, sizeof why), 0);
    ot_search_bulk_free(&a);
    cr_expect_eq(ot_search_bulk_parse(&a, ot_str_c("{\"items\":{}}")), OT_ERR);
    cr_expect_eq(ot_search_bulk_parse(&a, ot_str_c("{\"error\":\"x\"}")), OT_ERR);
    cr_expect_eq(ot_search_bulk_parse(&a, ot_str_c("[")), OT_ERR);
}

/* Found by tests/fuzz/fuzz_search_doc.c: what the event document appends
 * must keep a JSON object one. */
Test(search_doc, an_empty_or_whitespace_padded_object_still_gets_its_fields)
{
    ot_search_doc_meta m = meta();
    m.prev_status[0] = 0;
    ot_buf b = OT_BUF_INIT;
    static const char *const in[] = { "{}", "{ }", " {\"a\":1}", "{\"a\":1}\t\r\n " };
    static const char *const out[] = { "{\"tsUs\":978345000000000}", "{ \"tsUs\":978345000000000}",
                                       " {\"a\":1,\"tsUs\":978345000000000}", "{\"a\":1,\"tsUs\":978345000000000}" };
    for (size_t i = 0; i < OT_ARRAY_LEN(in); i++) {
        b.len = 0;
        cr_assert_eq(ot_search_doc_event(&b, &m, ot_str_c(in[i])), 0);
        ot_buf_append(&b, "", 1);
        cr_expect_str_eq(b.data, out[i], "input %zu", i);
    }
    ot_buf_free(&b);
}

Test(search_doc, the_stint_is_escaped_and_computed_without_overflow)
{
    ot_search_doc_meta m = meta();
    strcpy(m.prev_status, "A\"B");
    m.prev_us = INT64_MIN / 2;
    m.end_us = INT64_MAX; /* a difference past int64: undefined behaviour when subtracted as signed */
    ot_buf b = OT_BUF_INIT;
    cr_assert_eq(ot_search_doc_event(&b, &m, ot_str_c("{\"a\":1}")), 0);
    ot_buf_append(&b, "", 1);
    cr_expect(strstr(b.data, "\"prevStatus\":\"A\\\"B\""), "%s", b.data);
    cr_expect(strstr(b.data, "\"stintSeconds\":13835058055282."), "%s", b.data);
    ot_buf_free(&b);
}

/* A text too large for the stack tokens that fails to parse left the heap
 * array of the second try behind (seen by LeakSanitizer under unit-asan). */
Test(search_doc, a_large_text_that_is_not_json_leaks_nothing)
{
    ot_search_doc_meta m = meta();
    char big[600];
    memset(big, '[', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ot_buf b = OT_BUF_INIT;
    cr_expect_eq(ot_search_doc_order(&b, &m, ot_str_c(big)), OT_ERR);
    ot_buf_free(&b);
}

/* Found by tests/fuzz/fuzz_search_doc.c: the reason was cut by bytes from
 * the escaped text, so a cut could split a UTF-8 sequence (invalid text for
 * the log and for search_parked) or an escape ("\u00" left behind). */
Test(search_bulk, the_reason_is_unescaped_and_cut_between_characters)
{
    static const char body[] = "{\"items\":[{\"index\":{\"status\":400,\"error\":{\"type\":\"t\",\"reason\":\"ab\xc3\xa9\"}}},"
                               "{\"index\":{\"status\":400,\"error\":{\"type\":\"t\",\"reason\":\"\\\"q\\\" \\u00e9\"}}}]}";
    ot_search_bulk a;
    cr_assert_eq(ot_search_bulk_parse(&a, ot_str_c(body)), 2);
    ot_search_verdict v;
    int64_t st;
    char why[7];
    cr_assert_eq(ot_search_bulk_next(&a, &v, &st, why, sizeof why), 1);
    cr_expect_str_eq(why, "t: ab"); /* 6 bytes fit, but the sixth would be half of the e-acute */
    char all[64];
    cr_assert_eq(ot_search_bulk_next(&a, &v, &st, all, sizeof all), 1);
    cr_expect_str_eq(all, "t: \"q\" \xc3\xa9");
    ot_search_bulk_free(&a);
}

Test(search_bulk, request_lines_are_an_action_and_a_document_or_nothing)
{
    ot_search_doc_meta m = meta();
    ot_buf b = OT_BUF_INIT;
    ot_buf_append(&b, "x", 1);
    cr_assert_eq(ot_search_bulk_event(&b, "p-events", "e1", &m, ot_str_c("{\"a\":1}")), 0);
    cr_assert_eq(ot_search_bulk_order(&b, "p-orders", &m, ot_str_c(EV)), 0);
    ot_buf_append(&b, "", 1);
    cr_expect(strncmp(b.data, "x{\"create\":{\"_index\":\"p-events\",\"_id\":\"e1\"}}\n{\"a\":1,\"tsUs\":", 59) == 0, "%s",
              b.data);
    cr_expect(strstr(b.data, "}\n{\"index\":{\"_index\":\"p-orders\",\"_id\":\"o1\",\"version\":2,\"version_type\":\"external\"}}\n"
                             "{\"id\":\"o1\","),
              "%s", b.data);
    cr_expect_eq(b.data[b.len - 2], '\n');
    size_t len = b.len;
    cr_expect_eq(ot_search_bulk_order(&b, "p-orders", &m, ot_str_c("[1]")), OT_ERR);
    cr_expect_eq(b.len, len); /* nothing of the refused document is left */
    ot_buf_free(&b);
}
