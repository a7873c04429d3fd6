#include <criterion/criterion.h>
#include <stdio.h>

#include "ot/codec/event_view.h"
#include "ot/codec/user_fields.h"

static const char *email(const char *s) { return ot_user_check_email(ot_str_c(s)); }
static const char *name(const char *s, size_t n) { return ot_user_check_name(ot_str_make(s, n)); }

Test(user_fields, emails_accepted)
{
    const char *ok[] = { "a@b.c", "First.Last+tag@Example.co.uk", "o'brien@x-y.example", "x@xn--bcher-kva.example",
                         "!#$%&'*+-/=?^_`{|}~@a.b", "a@1.2" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert_null(email(ok[i]), "%s: %s", ok[i], email(ok[i]));
}

Test(user_fields, emails_refused)
{
    char longlabel[80], longlocal[80], toolong[300];
    snprintf(longlabel, sizeof longlabel, "a@%s.c", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    memset(longlocal, 'a', 65);
    snprintf(longlocal + 65, sizeof longlocal - 65, "@b.c");
    memset(toolong, 'a', 250);
    snprintf(toolong + 250, sizeof toolong - 250, "@b.cd");
    const char *bad[] = { "", "a", "a@", "@b.c", "a@b", "ops@localhost", "a@b.", "a@.b", "a@b..c", "a@-b.c",
                          "a@b-.c", "a@b_c.d", "a@b@c.d", "a b@c.d", ".a@b.c", "a.@b.c", "a..b@c.d", "a\"b@c.d",
                          "a(b)@c.d", "a@b.c\n", "\xc3\xa9@b.c", longlabel, longlocal, toolong };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not_null(email(bad[i]), "accepted: %s", bad[i]);
}

Test(user_fields, names)
{
    cr_assert_null(name("Ann", 3));
    cr_assert_null(name("Zo\xc3\xab \xe6\x9d\x8e", 8));
    cr_assert_not_null(name("", 0));
    cr_assert_not_null(name("\0", 1));
    cr_assert_not_null(name("a\0b", 3));
    cr_assert_not_null(name("a\tb", 3));
    cr_assert_not_null(name("\x1b[31m", 5));
    cr_assert_not_null(name("a\x7f", 2));
    cr_assert_not_null(name("\xc2\x85x", 3));         /* NEL, C1 */
    cr_assert_not_null(name("\xe2\x80\xae" "abc", 6)); /* RIGHT-TO-LEFT OVERRIDE */
    cr_assert_not_null(name("\xe2\x80\xa8", 3));       /* LINE SEPARATOR */
    cr_assert_not_null(name("   ", 3));
    cr_assert_not_null(name("\xff", 1));
    char big[202];
    memset(big, 'n', sizeof big);
    cr_assert_null(name(big, 200));
    cr_assert_not_null(name(big, 201));
}

Test(event_view, customer_copy_drops_actor_and_keeps_the_rest_verbatim)
{
    ot_buf out = OT_BUF_INIT;
    const char *ev = "{\"seq\" : 5, \"userId\" : \"u\", \"actor\" : \"adm\", \"payload\" : {\"actor\": 1, \"items\": []}}";
    cr_assert_eq(ot_event_view_customer(ot_str_c(ev), &out), 0);
    cr_assert_eq(out.len, strlen("{\"seq\":5,\"userId\":\"u\",\"payload\":{\"actor\": 1, \"items\": []}}"));
    cr_assert_eq(memcmp(out.data, "{\"seq\":5,\"userId\":\"u\",\"payload\":{\"actor\": 1, \"items\": []}}", out.len), 0,
                 "%.*s", (int)out.len, out.data);
    out.len = 0;
    cr_assert_eq(ot_event_view_customer(OT_STR("{\"actor\":null}"), &out), 0);
    cr_assert_eq(out.len, 2);
    out.len = 0;
    cr_assert_eq(ot_event_view_customer(OT_STR("{\"actor\":null,\"a\":[1,2]}"), &out), 0);
    cr_assert_eq(memcmp(out.data, "{\"a\":[1,2]}", out.len), 0);
    out.len = 0;
    cr_assert_eq(ot_event_view_customer(OT_STR("[1]"), &out), OT_ERR);
    cr_assert_eq(ot_event_view_customer(OT_STR("{\"a\":"), &out), OT_ERR);
    cr_assert_eq(out.len, 0);
    ot_buf_free(&out);
}

Test(event_view, large_events_beyond_the_stack_tokens)
{
    ot_buf in = OT_BUF_INIT, out = OT_BUF_INIT;
    ot_buf_append(&in, "{\"actor\":\"x\",\"items\":[", 22);
    for (int i = 0; i < 3000; i++)
        ot_buf_append(&in, i ? ",1" : "1", i ? 2 : 1);
    ot_buf_append(&in, "]}", 2);
    cr_assert_eq(ot_event_view_customer(ot_buf_str(&in), &out), 0);
    cr_assert_eq(out.len, in.len - strlen("\"actor\":\"x\","));
    ot_buf_free(&in);
    ot_buf_free(&out);
}
