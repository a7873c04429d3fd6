/* libFuzzer target for the config parser (src/core/config.c).
 *
 * Input: NUL-separated arguments. Each is checked three ways:
 *  - ot_config_parse_uint / ot_config_parse_rate against reference
 *    implementations written here differently (decimal-string comparison, no
 *    strtoull/strtod), for a max taken from the input;
 *  - "--flag=value" for a flag picked by the first byte goes through
 *    ot_config_check and ot_config_from_args, which must agree, and when
 *    accepted the stored value is inside the flag's documented range;
 *  - ot_parse_hostport never writes past the host buffer.
 * Beyond that: no crash, no sanitizer report, no refusal without a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "ot/core/config.h"

#include "fuzz_check.h"

/* Reference: DIGIT+ and value <= max, by comparing digit strings. */
static bool ref_uint(const char *v, uint64_t max, uint64_t *val)
{
    size_t n = strlen(v);
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    while (n > 1 && *v == '0')
        v++, n--;
    char m[32];
    int mn = snprintf(m, sizeof(m), "%llu", (unsigned long long)max);
    if (n > (size_t)mn || (n == (size_t)mn && memcmp(v, m, n) > 0))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = x * 10 + (uint64_t)(v[i] - '0');
    *val = x;
    return true;
}

static bool ref_rate_syntax(const char *v)
{
    size_t i = 0, a = 0, b = 0;
    while (v[i] >= '0' && v[i] <= '9')
        i++, a++;
    if (v[i] == '.') {
        i++;
        while (v[i] >= '0' && v[i] <= '9')
            i++, b++;
        if (b == 0)
            return false;
    }
    return v[i] == 0 && a > 0 && a <= 15 && b <= 15;
}

typedef struct {
    const char *flag;
    char kind; /* 'u' integer, 'r' rate, 's' string, 'l' listen */
    double min, max;
} flag_range;

/* The documented ranges (README, --help); a drift in config.c fails here. */
static const flag_range flags[] = {
    { "--workers", 'u', 1, 1024 },
    { "--max-body-bytes", 'u', 0, 1073741824.0 },
    { "--header-timeout-ms", 'u', 10, 3600000 },
    { "--max-headers", 'u', 1, 127 },
    { "--ws-max-message", 'u', 125, 67108864 },
    { "--max-conns-per-ip", 'u', 0, 1000000 },
    { "--max-output-bytes", 'u', 65536, 4294967296.0 },
    { "--rate-ip", 'r', 0, 1e6 },
    { "--rate-user-burst", 'r', 1, 1e6 },
    { "--jwt-ttl-s", 'u', 1, 31536000 },
    { "--log-level", 's', 0, 0 },
    { "--listen", 'l', 0, 0 },
};

/* Refusals print a line each: fd 2 points at /dev/null around the calls
 * that print, so libFuzzer's and ASan's own output stays readable. Set
 * FUZZ_CONFIG_VERBOSE=1 to see the messages (e.g. replaying a crash). */
static int devnull = -1, saved_err = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!getenv("FUZZ_CONFIG_VERBOSE")) {
        devnull = open("/dev/null", O_WRONLY);
        saved_err = dup(2);
    }
    return 0;
}

static void quiet(bool on)
{
    if (devnull >= 0)
        dup2(on ? devnull : saved_err, 2);
}

static void one(const char *arg, unsigned sel)
{
    /* 1. the number grammars against the references */
    uint64_t maxes[] = { 0, 9, 10, 127, 1000000, 4294967295u, 4294967296u, UINT64_MAX };
    uint64_t max = maxes[sel % (sizeof(maxes) / sizeof(maxes[0]))], got = 0, want = 0;
    bool ok = ot_config_parse_uint(arg, max, &got) == 0;
    CHECK(ok == ref_uint(arg, max, &want));
    if (ok)
        CHECK(got == want);
    double d = -1;
    bool rok = ot_config_parse_rate(arg, 1e6, &d) == 0;
    if (rok)
        CHECK(ref_rate_syntax(arg) && d >= 0 && d <= 1e6);
    else if (ref_rate_syntax(arg))
        CHECK(strtod(arg, NULL) > 1e6);

    /* 2. a flag: ot_config_check and ot_config_from_args agree, in range */
    const flag_range *f = &flags[(sel >> 3) % (sizeof(flags) / sizeof(flags[0]))];
    char kv[600];
    snprintf(kv, sizeof(kv), "%s=%s", f->flag, arg);
    ot_config c;
    ot_config_defaults(&c);
    char *argv[] = { "ordertrack", kv, NULL };
    quiet(true);
    int rc = ot_config_from_args(&c, 2, argv, 1);
    quiet(false);
    CHECK((rc == 0) == (ot_config_check(f->flag, arg) == 0));
    if (rc == 0 && f->kind == 'u') {
        CHECK(ref_uint(arg, (uint64_t)f->max, &want) && (double)want >= f->min);
    } else if (rc == 0 && f->kind == 'r') {
        CHECK(ref_rate_syntax(arg));
    } else if (f->kind == 'u' && ref_uint(arg, (uint64_t)f->max, &want) && (double)want >= f->min) {
        CHECK(!"an in-range integer was refused");
    }
    if (rc == 0 && strcmp(f->flag, "--max-conns-per-ip") == 0)
        CHECK(c.max_conns_per_ip == want);
    if (rc == 0 && strcmp(f->flag, "--ws-max-message") == 0)
        CHECK(c.ws_max_message == want);

    /* 3. host:port */
    char host[16];
    int port = -1;
    memset(host, 'Z', sizeof(host));
    if (ot_parse_hostport(arg, host, sizeof(host) - 4, &port) == 0) {
        CHECK(port >= 0 && port <= 65535);
        CHECK(memchr(host, 0, sizeof(host) - 4) != NULL);
    }
    CHECK(host[sizeof(host) - 1] == 'Z');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    unsigned sel = data[0];
    char *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    for (char *p = buf; p < buf + size - 1;) {
        size_t n = strlen(p);
        if (n < 512)
            one(p, sel++);
        p += n + 1;
    }
    if (size == 1)
        one("", sel);
    free(buf);
    return 0;
}
