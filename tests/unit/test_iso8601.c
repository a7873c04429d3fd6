/* codec/iso8601: the date grammar of the /search parameters, byte by byte,
 * against values computed independently (date -u +%s). */
#include <criterion/criterion.h>

#include "ot/codec/iso8601.h"

static int64_t parse(const char *s, int *rc)
{
    int64_t us = -1;
    *rc = ot_iso8601_parse(ot_str_c(s), &us);
    return us;
}

static void ok(const char *s, int64_t want)
{
    int rc;
    int64_t got = parse(s, &rc);
    cr_assert_eq(rc, 0, "\"%s\" refused", s);
    cr_expect_eq(got, want, "\"%s\": %lld, want %lld", s, (long long)got, (long long)want);
}

static void bad(const char *s)
{
    int rc;
    parse(s, &rc);
    cr_expect_eq(rc, OT_ERR, "\"%s\" accepted", s);
}

Test(iso8601, accepts_the_documented_forms)
{
    ok("1970-01-01", 0);
    ok("1970-01-01T00:00Z", 0);
    ok("2026-12-02T11:45:45Z", 1796211945LL * 1000000);
    ok("2026-12-02T11:45:45.5Z", 1796211945LL * 1000000 + 500000);
    ok("2026-12-02T11:45:45.123456Z", 1796211945LL * 1000000 + 123456);
    ok("2026-12-02t11:45:45z", 1796211945LL * 1000000);
    ok("2026-12-02T12:45:45+01:00", 1796211945LL * 1000000);
    ok("2026-12-02T06:15:45-05:30", 1796211945LL * 1000000);
    ok("2024-02-29", 1709164800LL * 1000000);  /* leap day */
    ok("2000-02-29", 951782400LL * 1000000);   /* divisible by 400: leap */
    ok("1969-12-31T23:59:59Z", -1000000);
    ok("0001-01-01", -62135596800LL * 1000000);
    ok("9999-12-31T23:59:59.999999Z", 253402300799LL * 1000000 + 999999);
}

Test(iso8601, refuses_everything_else)
{
    const char *v[] = { "", "2026", "2026-1-02", "2026-13-01", "2026-00-10", "2026-02-29", "1900-02-29",
                        "2026-04-31", "0000-01-01", "2026-12-02T", "2026-12-02T11:45", "2026-12-02T24:00Z",
                        "2026-12-02T11:60Z", "2026-12-02T11:45:60Z", "2026-12-02T11:45:45.Z",
                        "2026-12-02T11:45:45.1234567Z", "2026-12-02T11:45:45+0100", "2026-12-02T11:45:45 01:00",
                        "2026-12-02T11:45:45+24:00", "2026-12-02 11:45:45Z", "2026-12-02T11:45:45Zjunk",
                        "+2026-12-02", "2026-12-02x", "-001-01-01", "2026-12-0a" };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        bad(v[i]);
}

Test(iso8601, a_nul_inside_the_length_is_refused)
{
    int64_t us;
    cr_expect_eq(ot_iso8601_parse(ot_str_make("2026-12-02\0Z", 12), &us), OT_ERR);
}

Test(iso8601, formats_to_milliseconds_and_round_trips)
{
    char b[32];
    cr_assert_eq(ot_iso8601_format(1796211945LL * 1000000 + 123999, b), 24);
    cr_expect_str_eq(b, "2026-12-02T11:45:45.123Z");
    cr_assert_eq(ot_iso8601_format(-1, b), 24);
    cr_expect_str_eq(b, "1969-12-31T23:59:59.999Z");
    cr_expect_eq(ot_iso8601_format(253402300800LL * 1000000, b), 0);
    int64_t us;
    for (int64_t t = -62135596800LL; t < 253402300799LL; t += 7777777) {
        cr_assert_eq(ot_iso8601_format(t * 1000000, b), 24);
        cr_assert_eq(ot_iso8601_parse(ot_str_c(b), &us), 0, "%s", b);
        cr_assert_eq(us, t * 1000000, "%s", b);
    }
}
