/* REDIS_URL parsing: pure, no hiredis. redis://[[user]:password@]host[:port][/db],
 * host[:port], unix:/path[?db=N]. */
#include "ot/adapters/redis_url.h"

#include "ot/codec/http_parser.h"
#include "ot/core/config.h"

static int parse_uint(const char *p, size_t n, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 10)
        return OT_ERR;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return OT_ERR;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > max)
        return OT_ERR;
    *out = v;
    return OT_OK;
}

/* Userinfo may be percent-encoded (RFC 3986 §3.2.1); the project's URL
 * decoder refuses %00, which hiredis's %s argument would cut at. */
static int copy_pct(char *dst, size_t cap, const char *p, size_t n)
{
    size_t o = 0;
    if (cap == 0 || ot_url_decode_path(ot_str_make(p, n), dst, cap - 1, &o) < 0)
        return OT_ERR;
    dst[o] = '\0';
    return OT_OK;
}

static int copy_plain(char *dst, size_t cap, const char *p, size_t n)
{
    if (n + 1 > cap)
        return OT_ERR;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return OT_OK;
}

int ot_redis_parse_url(const char *url, ot_redis_addr *a)
{
    memset(a, 0, sizeof(*a));
    a->port = 6379;
    a->db = -1;
    if (!url || !*url)
        return copy_plain(a->host, sizeof(a->host), "127.0.0.1", 9);
    size_t n = strlen(url); /* configuration, not network input */
    const char *p = url, *end = url + n;
    unsigned long v;

    if (n >= 5 && memcmp(p, "unix:", 5) == 0) {
        p += 5;
        if (end - p >= 3 && memcmp(p, "///", 3) == 0)
            p += 2; /* unix:///path (empty authority) and unix:/path alike */
        const char *q = memchr(p, '?', (size_t)(end - p));
        const char *pend = q ? q : end;
        if (pend == p || *p != '/' || copy_plain(a->host, sizeof(a->host), p, (size_t)(pend - p)) < 0)
            return OT_ERR;
        a->is_unix = true;
        a->port = 0;
        if (q) {
            if (end - q < 5 || memcmp(q, "?db=", 4) != 0 || parse_uint(q + 4, (size_t)(end - q - 4), 65535, &v) < 0)
                return OT_ERR;
            a->db = (int)v;
        }
        return OT_OK;
    }
    if (n >= 8 && memcmp(p, "redis://", 8) == 0)
        p += 8;
    else if (memchr(p, ':', n) && strstr(p, "://"))
        return OT_ERR; /* another scheme (rediss:// needs TLS, which hiredis 0.14 lacks) */

    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash ? slash : end;
    const char *at = NULL;
    for (const char *s = p; s < auth_end; s++)
        if (*s == '@')
            at = s;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (copy_pct(a->user, sizeof(a->user), p, (size_t)(colon - p)) < 0 ||
                copy_pct(a->password, sizeof(a->password), colon + 1, (size_t)(at - colon - 1)) < 0)
                return OT_ERR;
        } else if (copy_pct(a->password, sizeof(a->password), p, (size_t)(at - p)) < 0) {
            return OT_ERR; /* redis://password@host, as redis-cli reads it */
        }
        p = at + 1;
    }

    ot_str host, port;
    int pn;
    if (ot_hostport_split(ot_str_make(p, (size_t)(auth_end - p)), &host, &port) < 0 ||
        copy_plain(a->host, sizeof(a->host), host.base, host.len) < 0 || !a->host[0])
        return OT_ERR;
    for (const char *s = a->host; *s; s++)
        if (*s == '?' || *s == '#' || *s == ' ' || *s == '@')
            return OT_ERR;
    if (port.base) {
        if (ot_port_parse(port, &pn) < 0 || pn == 0)
            return OT_ERR;
        a->port = pn;
    }
    if (slash && slash + 1 < end) {
        if (parse_uint(slash + 1, (size_t)(end - slash - 1), 65535, &v) < 0)
            return OT_ERR;
        a->db = (int)v;
    }
    return OT_OK;
}

