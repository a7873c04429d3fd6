#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ot/codec/lifecycle.h"

static int next(const char *st, ot_role role, const char **out) { return ot_lifecycle_next(ot_str_c(st), role, out); }

Test(lifecycle, admin_moves_follow_the_sql_lifecycle)
{
    const char *n[OT_LIFECYCLE_MAX_NEXT];
    cr_assert_eq(next("CREATED", OT_ROLE_ADMIN, n), 2);
    cr_assert_str_eq(n[0], "ACCEPTED");
    cr_assert_str_eq(n[1], "CANCELED");
    cr_assert_eq(next("ACCEPTED", OT_ROLE_ADMIN, n), 2);
    cr_assert_str_eq(n[0], "PREPARED");
    cr_assert_eq(next("PREPARED", OT_ROLE_ADMIN, n), 2);
    cr_assert_str_eq(n[0], "SHIPPED");
    cr_assert_str_eq(n[1], "CANCELED");
    cr_assert_eq(next("SHIPPED", OT_ROLE_ADMIN, n), 1, "no cancel once shipped");
    cr_assert_str_eq(n[0], "DELIVERED");
    cr_assert_eq(next("DELIVERED", OT_ROLE_ADMIN, n), 0);
    cr_assert_eq(next("CANCELED", OT_ROLE_ADMIN, n), 0);
    cr_assert_eq(next("created", OT_ROLE_ADMIN, n), 0, "statuses are exact");
    cr_assert_eq(next("", OT_ROLE_ADMIN, n), 0);
}

Test(lifecycle, customers_and_anonymous_move_nothing)
{
    const char *n[OT_LIFECYCLE_MAX_NEXT];
    const char *all[] = { "CREATED", "ACCEPTED", "PREPARED", "SHIPPED", "DELIVERED", "CANCELED" };
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(next(all[i], OT_ROLE_CUSTOMER, n), 0, "%s", all[i]);
        cr_assert_eq(next(all[i], OT_ROLE_NONE, n), 0, "%s", all[i]);
    }
}

/* The text written into b (freed), or NULL when rc says it failed. */
static char *result(int rc, ot_buf *b)
{
    static char out[4096];
    if (rc == 0)
        snprintf(out, sizeof out, "%.*s", (int)b->len, b->data);
    ot_buf_free(b);
    return rc == 0 ? out : NULL;
}

static char *annotate(const char *json, ot_role role)
{
    ot_buf b = OT_BUF_INIT;
    return result(ot_lifecycle_annotate(ot_str_c(json), role, &b), &b);
}

Test(lifecycle, annotate_appends_the_member)
{
    cr_assert_str_eq(annotate("{\"id\":\"x\",\"status\":\"CREATED\",\"version\":1}", OT_ROLE_ADMIN),
                     "{\"id\":\"x\",\"status\":\"CREATED\",\"version\":1,\"nextStatuses\":[\"ACCEPTED\",\"CANCELED\"]}");
    cr_assert_str_eq(annotate("{\"status\":\"SHIPPED\"}", OT_ROLE_ADMIN),
                     "{\"status\":\"SHIPPED\",\"nextStatuses\":[\"DELIVERED\"]}");
    cr_assert_str_eq(annotate("{\"status\":\"CREATED\"}", OT_ROLE_CUSTOMER), "{\"status\":\"CREATED\",\"nextStatuses\":[]}");
    /* Whitespace around the object and nested "status" keys do not confuse it. */
    cr_assert_str_eq(annotate(" {\"payload\":{\"status\":\"SHIPPED\"},\"status\":\"DELIVERED\"} ", OT_ROLE_ADMIN),
                     "{\"payload\":{\"status\":\"SHIPPED\"},\"status\":\"DELIVERED\",\"nextStatuses\":[]}");
}

Test(lifecycle, annotate_refuses_what_is_not_an_order)
{
    cr_assert_null(annotate("{}", OT_ROLE_ADMIN));
    cr_assert_null(annotate("[]", OT_ROLE_ADMIN));
    cr_assert_null(annotate("{\"status\":3}", OT_ROLE_ADMIN));
    cr_assert_null(annotate("{\"status\":\"CREATED\"", OT_ROLE_ADMIN));
    cr_assert_null(annotate("", OT_ROLE_ADMIN));
}

Test(lifecycle, annotate_keeps_out_on_failure)
{
    ot_buf b = OT_BUF_INIT;
    ot_buf_append_str(&b, "prefix");
    cr_assert_eq(ot_lifecycle_annotate(ot_str_c("nope"), OT_ROLE_ADMIN, &b), OT_ERR);
    cr_assert_eq(b.len, 6);
    ot_buf_free(&b);
}

/* More tokens than the stack array holds (events written around the API). */
Test(lifecycle, annotate_handles_a_big_event)
{
    ot_buf in = OT_BUF_INIT, out = OT_BUF_INIT;
    ot_buf_append_str(&in, "{\"payload\":{\"items\":[");
    for (int i = 0; i < 2000; i++)
        ot_buf_printf(&in, "%s{\"productId\":\"sku-%d\",\"qty\":1}", i ? "," : "", i);
    ot_buf_append_str(&in, "]},\"status\":\"PREPARED\"}");
    cr_assert_eq(ot_lifecycle_annotate(ot_buf_str(&in), OT_ROLE_ADMIN, &out), OT_OK);
    const char *tail = ",\"nextStatuses\":[\"SHIPPED\",\"CANCELED\"]}";
    cr_assert_eq(out.len, in.len - 1 + strlen(tail));
    cr_assert(memcmp(out.data + in.len - 1, tail, strlen(tail)) == 0);
    ot_buf_free(&in);
    ot_buf_free(&out);
}

static char *splice(const char *json, const char *status, ot_role role)
{
    ot_buf b = OT_BUF_INIT;
    return result(ot_lifecycle_splice(ot_str_c(json), ot_str_c(status), role, &b), &b);
}

/* The splice is what annotate does once it found the status. */
Test(lifecycle, splice_writes_what_annotate_writes)
{
    static const char *const orders[] = {
        "{\"id\":\"x\",\"status\":\"CREATED\",\"version\":1}",
        "{\"status\":\"SHIPPED\"}",
        " {\"payload\":{\"status\":\"SHIPPED\"},\"status\":\"DELIVERED\"}\n",
        "{\"status\":\"PREPARED\",\"items\":[{\"productId\":\"a\",\"qty\":2}]}",
    };
    static const char *const statuses[] = { "CREATED", "SHIPPED", "DELIVERED", "PREPARED" };
    static const ot_role roles[] = { OT_ROLE_ADMIN, OT_ROLE_CUSTOMER };
    for (size_t i = 0; i < OT_ARRAY_LEN(orders); i++)
        for (size_t k = 0; k < OT_ARRAY_LEN(roles); k++) {
            char want[512];
            snprintf(want, sizeof want, "%s", annotate(orders[i], roles[k]));
            cr_assert_str_eq(splice(orders[i], statuses[i], roles[k]), want, "%s", orders[i]);
        }
}

Test(lifecycle, splice_refuses_what_is_not_an_object_with_a_member)
{
    cr_assert_null(splice("", "CREATED", OT_ROLE_ADMIN));
    cr_assert_null(splice("{}", "CREATED", OT_ROLE_ADMIN));
    cr_assert_null(splice("[1,2]", "CREATED", OT_ROLE_ADMIN));
    cr_assert_null(splice("{\"status\":\"CREATED\"", "CREATED", OT_ROLE_ADMIN));
    ot_buf b = OT_BUF_INIT;
    ot_buf_append_str(&b, "prefix");
    cr_assert_eq(ot_lifecycle_splice(ot_str_c("nope"), ot_str_c("CREATED"), OT_ROLE_ADMIN, &b), OT_ERR);
    cr_assert_eq(b.len, 6);
    ot_buf_free(&b);
}
