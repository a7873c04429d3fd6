/* The config parser: strict numbers, every numeric option's range, and the
 * flag named in every refusal (issue 10, finding 8). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ot/core/config.h"

Test(config_number, integers_are_digits_only)
{
    uint64_t x;
    cr_assert_eq(ot_config_parse_uint("0", 10, &x), 0);
    cr_assert_eq(x, 0);
    cr_assert_eq(ot_config_parse_uint("1048576", UINT64_MAX, &x), 0);
    cr_assert_eq(x, 1048576);
    const char *bad[] = { "", " 1", "1 ", " -1", "-1", "+1", "0x10", "1e3", "1.0", "nan", "inf", "1_000", "١", "\t5" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(ot_config_parse_uint(bad[i], UINT64_MAX, &x), OT_ERR, "accepted \"%s\"", bad[i]);
    cr_assert_eq(ot_config_parse_uint(NULL, 10, &x), OT_ERR);
}

Test(config_number, integers_past_max_or_overflowing_are_refused)
{
    uint64_t x;
    cr_assert_eq(ot_config_parse_uint("10", 10, &x), 0);
    cr_assert_eq(ot_config_parse_uint("11", 10, &x), OT_ERR);
    cr_assert_eq(ot_config_parse_uint("18446744073709551615", UINT64_MAX, &x), 0);
    cr_assert_eq(x, UINT64_MAX);
    cr_assert_eq(ot_config_parse_uint("18446744073709551616", UINT64_MAX, &x), OT_ERR);
    cr_assert_eq(ot_config_parse_uint("99999999999999999999999999", UINT64_MAX, &x), OT_ERR);
    cr_assert_eq(ot_config_parse_uint("4294967296", UINT32_MAX, &x), OT_ERR);
    /* Found by fuzz_config: a digit above a small max wrapped max - d. */
    cr_assert_eq(ot_config_parse_uint("7", 0, &x), OT_ERR);
    cr_assert_eq(ot_config_parse_uint("184467", 0, &x), OT_ERR);
    cr_assert_eq(ot_config_parse_uint("0", 0, &x), 0);
    cr_assert_eq(ot_config_parse_uint("007", 7, &x), 0);
    cr_assert_eq(x, 7);
    cr_assert_eq(ot_config_parse_uint("8", 7, &x), OT_ERR);
}

Test(config_number, rates_are_plain_decimals)
{
    double d;
    cr_assert_eq(ot_config_parse_rate("0.5", 10, &d), 0);
    cr_assert_float_eq(d, 0.5, 1e-12);
    cr_assert_eq(ot_config_parse_rate("12", 100, &d), 0);
    cr_assert_float_eq(d, 12.0, 1e-12);
    const char *bad[] = { "", "nan", "NaN", "inf", "-inf", "infinity", " 1", "1 ", "-1", "+1", ".5", "5.", "1e3",
                          "0x1p3", "1..2", "1.2.3", "1,5", "9999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(ot_config_parse_rate(bad[i], 1e18, &d), OT_ERR, "accepted \"%s\"", bad[i]);
    cr_assert_eq(ot_config_parse_rate("10.5", 10, &d), OT_ERR);
}

/* Runs ot_config_from_args on one flag, capturing stderr. */
static int parse_one(const char *arg, char *err, size_t cap, ot_config *c)
{
    ot_config_defaults(c);
    char *argv[] = { "ordertrack", "serve", (char *)arg, NULL };
    fflush(stderr);
    int saved = dup(2);
    char path[] = "/tmp/ot_cfg_XXXXXX";
    int fd = mkstemp(path);
    dup2(fd, 2);
    int rc = ot_config_from_args(c, 3, argv, 2);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, err, cap - 1, 0);
    err[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return rc;
}

Test(config_args, the_issue_examples_are_refused_naming_the_flag)
{
    const char *cases[][2] = {
        { "--max-body-bytes= -1", "--max-body-bytes" },
        { "--ws-max-message=5000000000", "--ws-max-message" },
        { "--rate-ip=nan", "--rate-ip" },
        { "--header-timeout-ms=0", "--header-timeout-ms" },
        { "--rate-user=inf", "--rate-user" },
        { "--max-headers=128", "--max-headers" },
        { "--workers=0", "--workers" },
        { "--max-conns=-5", "--max-conns" },
        { "--jwt-ttl-s=99999999999", "--jwt-ttl-s" },
        { "--max-conns-per-ip=1.5", "--max-conns-per-ip" },
        { "--rate-ip-burst=0", "--rate-ip-burst" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[512];
        ot_config c;
        cr_assert_eq(parse_one(cases[i][0], err, sizeof(err), &c), OT_ERR, "accepted %s", cases[i][0]);
        cr_assert(strstr(err, cases[i][1]), "%s: %s", cases[i][0], err);
        cr_assert(strstr(err, "expected"), "%s: %s", cases[i][0], err);
    }
}

Test(config_args, values_at_the_bounds_are_accepted)
{
    char err[512];
    ot_config c;
    cr_assert_eq(parse_one("--header-timeout-ms=10", err, sizeof(err), &c), 0, "%s", err);
    cr_assert_eq(c.header_timeout_ms, 10);
    cr_assert_eq(parse_one("--ws-max-message=67108864", err, sizeof(err), &c), 0, "%s", err);
    cr_assert_eq(c.ws_max_message, 67108864);
    cr_assert_eq(parse_one("--max-body-bytes=0", err, sizeof(err), &c), 0, "%s", err);
    cr_assert_eq(c.max_body_bytes, 0);
    cr_assert_eq(parse_one("--rate-ip=0.25", err, sizeof(err), &c), 0, "%s", err);
    cr_assert_float_eq(c.rate_ip, 0.25, 1e-12);
    cr_assert_eq(parse_one("--max-conns-per-ip=0", err, sizeof(err), &c), 0, "%s", err);
    cr_assert_eq(c.max_conns_per_ip, 0);
    cr_assert_eq(ot_config_check("--ws-max-message", "67108865"), OT_ERR);
    /* The search indexer's Kafka input (defaults, then both bounds). */
    cr_assert_eq(parse_one("--kafka-search-gap-ms=1", err, sizeof(err), &c), 0, "%s", err);
    cr_assert_eq(c.kafka_search_gap_ms, 1);
    cr_assert_eq(c.kafka_search_pending, 16384);
    cr_assert_eq(c.kafka_search_stall_s, 3);
    cr_assert_eq(c.kafka_consumer_queue_kb, 4096);
    cr_assert_eq(parse_one("--kafka-search-pending=1048576", err, sizeof(err), &c), 0, "%s", err);
    cr_assert_eq(c.kafka_search_pending, 1048576);
    cr_assert_eq(parse_one("--kafka-consumer-queue-kb=64", err, sizeof(err), &c), 0, "%s", err);
    cr_assert_eq(c.kafka_consumer_queue_kb, 64);
    cr_assert_eq(ot_config_check("--kafka-search-gap-ms", "0"), OT_ERR);
    cr_assert_eq(ot_config_check("--kafka-search-gap-ms", "60001"), OT_ERR);
    cr_assert_eq(ot_config_check("--kafka-search-pending", "15"), OT_ERR);
    cr_assert_eq(ot_config_check("--kafka-search-stall-seconds", "0"), OT_ERR);
    cr_assert_eq(ot_config_check("--kafka-search-stall-seconds", "3601"), OT_ERR);
    cr_assert_eq(ot_config_check("--kafka-consumer-queue-kb", "63"), OT_ERR);
}

Test(config_env, a_bad_environment_value_is_refused_naming_the_variable)
{
    ot_config c;
    ot_config_defaults(&c);
    setenv("ORDERTRACK_RATE_IP", "nan", 1);
    fflush(stderr);
    int saved = dup(2);
    char path[] = "/tmp/ot_cfg_XXXXXX";
    int fd = mkstemp(path);
    dup2(fd, 2);
    int rc = ot_config_from_env(&c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    unsetenv("ORDERTRACK_RATE_IP");
    char err[512];
    ssize_t n = pread(fd, err, sizeof(err) - 1, 0);
    err[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    cr_assert_eq(rc, OT_ERR);
    cr_assert(strstr(err, "ORDERTRACK_RATE_IP"), "%s", err);
}

Test(config_usage, help_states_a_range_for_every_numeric_option)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ot_config_usage(f);
    fclose(f);
    const char *numeric[] = { "--workers", "--max-body-bytes", "--header-timeout-ms", "--rate-ip ", "--ws-max-message",
                              "--max-conns-per-ip", "--http-output-high-water", "--max-output-bytes" };
    for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++) {
        const char *line = strstr(text, numeric[i]);
        cr_assert(line, "%s missing", numeric[i]);
        const char *eol = strchr(line, '\n');
        const char *rng = strstr(line, "[range ");
        cr_assert(rng && rng < eol, "%s has no range", numeric[i]);
    }
    free(text);
}

/* The one host:port grammar, shared by --listen and REDIS_URL. */
Test(hostport, split_forms)
{
    ot_str h, p;
    cr_assert_eq(ot_hostport_split(OT_STR("h:80"), &h, &p), 0);
    cr_expect(ot_str_eq_lit(h, "h") && ot_str_eq_lit(p, "80"));
    cr_assert_eq(ot_hostport_split(OT_STR("host"), &h, &p), 0);
    cr_expect(ot_str_eq_lit(h, "host") && p.base == NULL, "no port part");
    cr_assert_eq(ot_hostport_split(OT_STR("h:"), &h, &p), 0);
    cr_expect(p.base != NULL && p.len == 0, "empty port is not a missing port");
    cr_assert_eq(ot_hostport_split(OT_STR("[::1]:8080"), &h, &p), 0);
    cr_expect(ot_str_eq_lit(h, "::1") && ot_str_eq_lit(p, "8080"));
    cr_assert_eq(ot_hostport_split(OT_STR("[fe80::1]"), &h, &p), 0);
    cr_expect(ot_str_eq_lit(h, "fe80::1") && p.base == NULL);
    cr_expect_eq(ot_hostport_split(OT_STR("[::1"), &h, &p), OT_ERR);
    cr_expect_eq(ot_hostport_split(OT_STR("[::1]x:80"), &h, &p), OT_ERR);
    cr_expect_eq(ot_hostport_split(OT_STR("::1:80"), &h, &p), OT_ERR, "IPv6 must be bracketed");
}

Test(hostport, port_and_listen)
{
    int port = -1;
    cr_expect_eq(ot_port_parse(OT_STR("0"), &port), 0);
    cr_expect_eq(port, 0);
    cr_expect_eq(ot_port_parse(OT_STR("65535"), &port), 0);
    cr_expect_eq(port, 65535);
    const char *bad[] = { "", "65536", "99999", "000001", "+80", " 80", "8x", "-1" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++)
        cr_expect_eq(ot_port_parse(ot_str_c(bad[i]), &port), OT_ERR, "accepted port \"%s\"", bad[i]);
    char host[16];
    cr_assert_eq(ot_parse_hostport("127.0.0.1:8080", host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(port, 8080);
    cr_assert_eq(ot_parse_hostport("[::1]:0", host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(ot_parse_hostport("127.0.0.1", host, sizeof host, &port), OT_ERR, "port required");
    cr_expect_eq(ot_parse_hostport(":80", host, sizeof host, &port), OT_ERR, "host required");
    cr_expect_eq(ot_parse_hostport("[]:80", host, sizeof host, &port), OT_ERR);
    cr_expect_eq(ot_parse_hostport("a-very-long-host-name:80", host, sizeof host, &port), OT_ERR, "longer than the buffer");
}
