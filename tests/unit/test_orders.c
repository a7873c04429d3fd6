/* The pure parts of the order API: the items validator, status names and the
 * UUID check that keeps malformed ids away from the database. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "ot/api/auth.h"
#include "ot/api/orders.h"
#include "ot/codec/json.h"

static char err[200];
static ot_buf out = OT_BUF_INIT;

static int validate_n(const char *js, size_t len, ot_str *uid)
{
    ot_buf_reset(&out);
    err[0] = 0;
    return ot_orders_validate_items(js, len, &out, err, sizeof(err), uid);
}
static int validate(const char *js) { return validate_n(js, strlen(js), NULL); }

/* The normalised output, NUL-terminated for comparison. */
static const char *normalised(void)
{
    static char s[8192];
    snprintf(s, sizeof(s), "%.*s", (int)ot_buf_rlen(&out), ot_buf_rptr(&out));
    return s;
}

static void refused(const char *js, const char *field)
{
    cr_assert_eq(validate(js), OT_ERR, "accepted: %s", js);
    cr_assert(strstr(err, field) != NULL, "error for %s is \"%s\", expected it to name %s", js, err, field);
}

/* {"items":[{"productId":"p0","qty":1},...]} with n entries. */
static char *items_json(int n, const char *extra)
{
    ot_buf b = OT_BUF_INIT;
    ot_buf_printf(&b, "{\"items\":[");
    for (int i = 0; i < n; i++)
        ot_buf_printf(&b, "%s{\"productId\":\"p%d\",\"qty\":1}", i ? "," : "", i);
    ot_buf_printf(&b, "]%s}", extra ? extra : "");
    char *s = strndup(ot_buf_rptr(&b), ot_buf_rlen(&b));
    ot_buf_free(&b);
    return s;
}

Test(orders_validate, normalises_items_dropping_whitespace_and_key_order)
{
    cr_assert_eq(validate(" { \"items\" : [ { \"qty\" : 3 , \"productId\" : \"a\\u0062c\" } ] } "), 0, "%s", err);
    cr_assert_str_eq(normalised(), "[{\"productId\":\"abc\",\"qty\":3}]");
}

Test(orders_validate, accepts_the_boundaries)
{
    char js[256];
    snprintf(js, sizeof(js), "{\"items\":[{\"productId\":\"%064d\",\"qty\":10000},{\"productId\":\"x\",\"qty\":1}]}", 7);
    cr_assert_eq(validate(js), 0, "%s", err);
    char *hundred = items_json(100, NULL);
    cr_assert_eq(validate(hundred), 0, "%s", err);
    free(hundred);
}

Test(orders_validate, refuses_bad_items_naming_the_field)
{
    refused("{}", "items");
    refused("{\"items\":null}", "items");
    refused("{\"items\":[]}", "items");
    refused("{\"items\":{}}", "items");
    refused("{\"items\":\"x\"}", "items");
    refused("{\"items\":[1]}", "items[0]");
    refused("{\"items\":[{\"qty\":1}]}", "items[0].productId");
    refused("{\"items\":[{\"productId\":\"\",\"qty\":1}]}", "items[0].productId");
    refused("{\"items\":[{\"productId\":5,\"qty\":1}]}", "items[0].productId");
    refused("{\"items\":[{\"productId\":\"a\\u0000b\",\"qty\":1}]}", "items[0].productId");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":0}]}", "items[0].qty");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":-1}]}", "items[0].qty");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":10001}]}", "items[0].qty");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":1.5}]}", "items[0].qty");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":1e2}]}", "items[0].qty");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":\"2\"}]}", "items[0].qty");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":99999999999999999999999}]}", "items[0].qty");
    refused("{\"items\":[{\"productId\":\"a\"}]}", "items[0].qty");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":1},{\"productId\":\"b\",\"qty\":true}]}", "items[1].qty");
}

Test(orders_validate, product_id_limit_is_64_bytes_after_unescaping)
{
    char js[512];
    snprintf(js, sizeof(js), "{\"items\":[{\"productId\":\"%065d\",\"qty\":1}]}", 1);
    refused(js, "items[0].productId");
    /* 64 escaped characters are 64 bytes, although the raw text is longer. */
    char pid[64 * 6 + 1] = "";
    for (int i = 0; i < 64; i++)
        strcat(pid, "\\u0041");
    snprintf(js, sizeof(js), "{\"items\":[{\"productId\":\"%s\",\"qty\":1}]}", pid);
    cr_assert_eq(validate(js), 0, "%s", err);
    /* Two-byte UTF-8 characters: 33 of them are 66 bytes. */
    char utf[33 * 2 + 1] = "";
    for (int i = 0; i < 33; i++)
        strcat(utf, "\xc3\xa9");
    snprintf(js, sizeof(js), "{\"items\":[{\"productId\":\"%s\",\"qty\":1}]}", utf);
    refused(js, "items[0].productId");
}

Test(orders_validate, refuses_101_items)
{
    char *js = items_json(101, NULL);
    refused(js, "items");
    free(js);
    /* Far beyond the token budget: still a clean refusal. */
    js = items_json(1000, NULL);
    cr_assert_eq(validate(js), OT_ERR);
    free(js);
}

Test(orders_validate, refuses_unknown_fields_at_both_levels)
{
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":1}],\"note\":\"x\"}", "note");
    refused("{\"items\":[{\"productId\":\"a\",\"qty\":1,\"price\":2}]}", "price");
    refused("{\"Items\":[{\"productId\":\"a\",\"qty\":1}]}", "Items");
}

Test(orders_validate, refuses_malformed_json_and_non_objects)
{
    const char *bad[] = { "", "{", "[]", "null", "\"items\"", "{\"items\":[{\"productId\":\"a\",\"qty\":1},]}",
                          "{\"items\":[{\"productId\":\"a\",\"qty\":1}]} x", "{'items':[]}",
                          "{\"items\":[],\"items\":[{\"productId\":\"a\",\"qty\":1}]}" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(validate(bad[i]), OT_ERR, "accepted: %s", bad[i]);
}

Test(orders_validate, reads_only_the_given_length)
{
    /* The body is not NUL-terminated: bytes past len must not count. */
    const char *js = "{\"items\":[{\"productId\":\"a\",\"qty\":1}]}GARBAGE";
    cr_assert_eq(validate_n(js, strlen(js) - 7, NULL), 0, "%s", err);
    cr_assert_eq(validate_n(js, strlen(js) - 8, NULL), OT_ERR);
}

Test(orders_validate, user_id_is_returned_only_when_a_uuid)
{
    ot_str uid;
    const char *js = "{\"userId\":\"123e4567-e89b-12d3-a456-426614174000\",\"items\":[{\"productId\":\"a\",\"qty\":1}]}";
    cr_assert_eq(validate_n(js, strlen(js), &uid), 0, "%s", err);
    cr_assert_eq(uid.len, 36);
    cr_assert(!memcmp(uid.base, "123e4567-e89b-12d3-a456-426614174000", 36));

    js = "{\"items\":[{\"productId\":\"a\",\"qty\":1}]}";
    cr_assert_eq(validate_n(js, strlen(js), &uid), 0);
    cr_assert_eq(uid.len, 0);

    const char *bad[] = { "{\"userId\":\"nope\",\"items\":[{\"productId\":\"a\",\"qty\":1}]}",
                          "{\"userId\":5,\"items\":[{\"productId\":\"a\",\"qty\":1}]}",
                          "{\"userId\":null,\"items\":[{\"productId\":\"a\",\"qty\":1}]}" };
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(validate_n(bad[i], strlen(bad[i]), &uid), OT_ERR, "accepted: %s", bad[i]);
        cr_assert(strstr(err, "userId") != NULL, "%s", err);
    }
}

Test(order_status, knows_exactly_the_six_statuses)
{
    const char *names[] = { "CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED", "CANCELED" };
    for (int i = 0; i < 6; i++)
        cr_assert_eq(ot_order_status_valid(ot_str_c(names[i])), i, "%s", names[i]);
    const char *bad[] = { "", "created", "CREATE", "CREATEDX", "CANCELLED", " ACCEPTED", "SHIPPED " };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(ot_order_status_valid(ot_str_c(bad[i])), OT_ERR, "accepted \"%s\"", bad[i]);
    /* Length travels with the bytes: a prefix of a longer buffer is judged alone. */
    cr_assert_eq(ot_order_status_valid(ot_str_make("SHIPPEDX", 7)), 3);
    cr_assert_eq(ot_order_status_valid(ot_str_make("SHIPPED", 6)), OT_ERR);
}

Test(uuid, accepts_8_4_4_4_12_hex_in_either_case)
{
    cr_assert(ot_uuid_valid(ot_str_c("123e4567-e89b-12d3-a456-426614174000")));
    cr_assert(ot_uuid_valid(ot_str_c("ABCDEF01-2345-6789-ABCD-EF0123456789")));
    cr_assert(ot_uuid_valid(ot_str_c("00000000-0000-0000-0000-000000000000")));
}

Test(uuid, refuses_everything_else)
{
    const char *bad[] = { "",
                          "123e4567e89b12d3a456426614174000",
                          "123e4567-e89b-12d3-a456-42661417400",
                          "123e4567-e89b-12d3-a456-4266141740000",
                          "123e4567-e89b-12d3-a456_426614174000",
                          "g23e4567-e89b-12d3-a456-426614174000",
                          "123e4567-e89b-12d3-a456-42661417400 ",
                          "{23e4567-e89b-12d3-a456-426614174000}",
                          "123e4567-e89b-12d3-a4564-26614174000",
                          "------------------------------------" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!ot_uuid_valid(ot_str_c(bad[i])), "accepted \"%s\"", bad[i]);
    /* A NUL inside the 36 bytes is not hex. (The literal this once used held
     * 35 bytes: fine while the check stopped at the first bad byte, an overread
     * once it looked at all 36, as ASan said.) */
    char nul[36];
    memcpy(nul, "123e4567-e89b-12d3-a456-426614174000", 36);
    nul[32] = '\0';
    cr_assert(!ot_uuid_valid(ot_str_make(nul, 36)));
    /* Only the given length counts. */
    cr_assert(ot_uuid_valid(ot_str_make("123e4567-e89b-12d3-a456-426614174000ZZZ", 36)));
}

Test(orders_validate, user_id_is_checked_even_when_the_caller_does_not_ask_for_it)
{
    /* Found by fuzz_order_validation: the verdict depended on user_id_out. */
    const char *js = "{\"userId\":\"not-a-uuid\",\"items\":[{\"productId\":\"a\",\"qty\":1}]}";
    ot_str uid;
    cr_assert_eq(validate_n(js, strlen(js), &uid), OT_ERR);
    cr_assert_eq(validate_n(js, strlen(js), NULL), OT_ERR);
    cr_assert(strstr(err, "userId") != NULL, "%s", err);
}

Test(orders_validate, error_messages_cut_short_stay_valid_utf8)
{
    /* {"a" + 150 x é + "":1}: the unknown-field message is longer than err. */
    char js[512];
    size_t n = 0;
    js[n++] = '{';
    js[n++] = '"';
    js[n++] = 'a';
    for (int i = 0; i < 150; i++) {
        js[n++] = (char)0xc3;
        js[n++] = (char)0xa9;
    }
    memcpy(js + n, "\":1}", 4);
    n += 4;
    cr_assert_eq(validate_n(js, n, NULL), OT_ERR);
    size_t len = strlen(err);
    cr_assert(len > 0 && len < sizeof(err));
    for (size_t i = 0, k; i < len; i += k)
        cr_assert_neq(k = ot_utf8_seq_len((const unsigned char *)err + i, len - i), 0, "cut inside a sequence at %zu", i);
}
