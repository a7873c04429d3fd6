/* One table describes every option once: its flag, its environment variable,
 * its type and its help line, so --help, env and flags can never drift. */
#include "ot/core/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

typedef enum { T_STR, T_SIZE, T_U32, T_INT, T_DOUBLE, T_LISTEN } opt_type;

typedef struct {
    const char *flag;
    const char *env;
    opt_type type;
    size_t off;
    const char *help;
} opt_def;

#define O(f) offsetof(ot_config, f)
static const opt_def opts[] = {
    { "--listen", "ORDERTRACK_LISTEN", T_LISTEN, 0, "HOST:PORT to listen on (default 127.0.0.1:8080)" },
    { "--workers", "ORDERTRACK_WORKERS", T_INT, O(workers), "worker processes (default: number of cores)" },
    { "--backlog", "ORDERTRACK_BACKLOG", T_INT, O(backlog), "listen(2) backlog (default 4096)" },
    { "--database-url", "DATABASE_URL", T_STR, O(database_url), "libpq URI or conninfo of PostgreSQL" },
    { "--redis-url", "REDIS_URL", T_STR, O(redis_url), "redis://host:port to fan events out across processes/hosts" },
    { "--jwt-secret", "JWT_SECRET", T_STR, O(jwt_secret), "HS256 secret for tokens (required)" },
    { "--tls-cert", "ORDERTRACK_TLS_CERT", T_STR, O(tls_cert), "PEM certificate chain: serve HTTPS/WSS" },
    { "--tls-key", "ORDERTRACK_TLS_KEY", T_STR, O(tls_key), "PEM private key for --tls-cert" },
    { "--web-dir", "ORDERTRACK_WEB_DIR", T_STR, O(web_dir), "folder with dashboards and docs (default ./web)" },
    { "--log-level", "ORDERTRACK_LOG_LEVEL", T_STR, O(log_level), "debug|info|warn|error (default info)" },
    { "--max-uri-bytes", "ORDERTRACK_MAX_URI_BYTES", T_SIZE, O(max_uri_bytes), "request-target limit, 414 beyond (default 4096)" },
    { "--max-header-bytes", "ORDERTRACK_MAX_HEADER_BYTES", T_SIZE, O(max_header_bytes), "request head limit, 431 beyond (default 8192)" },
    { "--max-headers", "ORDERTRACK_MAX_HEADERS", T_SIZE, O(max_headers), "header field count limit, 431 beyond (default 64)" },
    { "--max-body-bytes", "ORDERTRACK_MAX_BODY_BYTES", T_SIZE, O(max_body_bytes), "request body limit, 413 beyond (default 1048576)" },
    { "--header-timeout-ms", "ORDERTRACK_HEADER_TIMEOUT_MS", T_U32, O(header_timeout_ms), "time allowed to send a whole request once begun (default 10000)" },
    { "--idle-timeout-ms", "ORDERTRACK_IDLE_TIMEOUT_MS", T_U32, O(idle_timeout_ms), "keep-alive idle timeout (default 60000)" },
    { "--write-timeout-ms", "ORDERTRACK_WRITE_TIMEOUT_MS", T_U32, O(write_timeout_ms), "time a response may stay unflushed (default 30000)" },
    { "--shutdown-timeout-ms", "ORDERTRACK_SHUTDOWN_TIMEOUT_MS", T_U32, O(shutdown_timeout_ms), "graceful drain bound on SIGTERM (default 10000)" },
    { "--max-conns", "ORDERTRACK_MAX_CONNS", T_INT, O(max_conns), "connections per worker; 503 beyond (default: from RLIMIT_NOFILE)" },
    { "--pg-pool", "ORDERTRACK_PG_POOL", T_INT, O(pg_pool), "PostgreSQL connections per worker (default 4)" },
    { "--rate-ip", "ORDERTRACK_RATE_IP", T_DOUBLE, O(rate_ip), "requests/s per client IP per worker, 0 = off (default 100)" },
    { "--rate-ip-burst", "ORDERTRACK_RATE_IP_BURST", T_DOUBLE, O(rate_ip_burst), "burst per client IP (default 200)" },
    { "--rate-user", "ORDERTRACK_RATE_USER", T_DOUBLE, O(rate_user), "requests/s per user per worker, 0 = off (default 50)" },
    { "--rate-user-burst", "ORDERTRACK_RATE_USER_BURST", T_DOUBLE, O(rate_user_burst), "burst per user (default 200)" },
    { "--auth-rate-ip", "ORDERTRACK_AUTH_RATE_IP", T_DOUBLE, O(auth_rate_ip), "/auth/* requests/s per client IP (IPv6: per /64) per worker, checked before the password hash; 0 = off (default 1)" },
    { "--auth-rate-ip-burst", "ORDERTRACK_AUTH_RATE_IP_BURST", T_DOUBLE, O(auth_rate_ip_burst), "/auth/* burst per client IP (default 10)" },
    { "--kdf-max-queue", "ORDERTRACK_KDF_MAX_QUEUE", T_U32, O(kdf_max_queue), "password hashes queued or running per worker, 503 beyond (default 64, min 1)" },
    { "--kdf-max-per-ip", "ORDERTRACK_KDF_MAX_PER_IP", T_U32, O(kdf_max_per_ip), "password hashes in flight per client IP per worker, 429 beyond (default 1, min 1)" },
    { "--jwt-ttl-s", "ORDERTRACK_JWT_TTL_S", T_U32, O(jwt_ttl_s), "lifetime of issued tokens (default 3600)" },
    { "--auth-cache-users", "ORDERTRACK_AUTH_CACHE_USERS", T_SIZE, O(auth_cache_users), "users whose token state a worker caches, LRU beyond (default 65536, min 1)" },
    { "--ws-max-message", "ORDERTRACK_WS_MAX_MESSAGE", T_SIZE, O(ws_max_message), "largest WebSocket message accepted, 1009 beyond (default 65536)" },
    { "--ws-max-queue", "ORDERTRACK_WS_MAX_QUEUE", T_SIZE, O(ws_max_queue), "outgoing bytes queued per WebSocket before the client is dropped (default 1048576)" },
    { "--ws-ping-ms", "ORDERTRACK_WS_PING_MS", T_U32, O(ws_ping_ms), "WebSocket keep-alive ping interval (default 20000)" },
    { "--ws-pong-timeout-ms", "ORDERTRACK_WS_PONG_TIMEOUT_MS", T_U32, O(ws_pong_timeout_ms), "dead-peer timeout after a ping (default 10000)" },
};
#undef O

void ot_config_defaults(ot_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
    c->listen_port = 8080;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = n > 0 ? (int)n : 1;
    c->backlog = 4096;
    c->web_dir = "web";
    c->log_level = "info";
    c->max_uri_bytes = 4096;
    c->max_header_bytes = 8192;
    c->max_headers = 64;
    c->max_body_bytes = 1 << 20;
    c->header_timeout_ms = 10000;
    c->idle_timeout_ms = 60000;
    c->write_timeout_ms = 30000;
    c->shutdown_timeout_ms = 10000;
    c->pg_pool = 4;
    /* Abuse limits are on by default (issue 10): room for a busy dashboard,
     * not for a flood. */
    c->rate_ip = 100;
    c->rate_ip_burst = 200;
    c->rate_user = 50;
    c->rate_user_burst = 200;
    /* One password check at a time per address: a client can hold at most
     * one of the pool's threads, so logins from elsewhere still find one. */
    c->auth_rate_ip = 1;
    c->auth_rate_ip_burst = 10;
    c->kdf_max_queue = 64;
    c->kdf_max_per_ip = 1;
    c->jwt_ttl_s = 3600;
    c->auth_cache_users = 65536;
    c->ws_max_message = 65536;
    c->ws_max_queue = 1 << 20;
    c->ws_ping_ms = 20000;
    c->ws_pong_timeout_ms = 10000;
}

int ot_parse_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return OT_ERR;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') { /* [::1]:8080 */
        s++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostcap)
        return OT_ERR;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || p < 0 || p > 65535 || end == colon + 1)
        return OT_ERR;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = (int)p;
    return 0;
}

static int apply(ot_config *c, const opt_def *o, const char *v)
{
    char *base = (char *)c, *end;
    errno = 0;
    switch (o->type) {
    case T_STR:
        *(const char **)(base + o->off) = v;
        return 0;
    case T_LISTEN:
        return ot_parse_hostport(v, c->listen_host, sizeof(c->listen_host), &c->listen_port);
    case T_SIZE: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || end == v || v[0] == '-')
            return OT_ERR;
        *(size_t *)(base + o->off) = (size_t)x;
        return 0;
    }
    case T_U32: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || end == v || v[0] == '-' || x > UINT32_MAX)
            return OT_ERR;
        *(uint32_t *)(base + o->off) = (uint32_t)x;
        return 0;
    }
    case T_INT: {
        long x = strtol(v, &end, 10);
        if (errno || *end || end == v || x < 0 || x > 1000000)
            return OT_ERR;
        *(int *)(base + o->off) = (int)x;
        return 0;
    }
    case T_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || *end || end == v || x < 0)
            return OT_ERR;
        *(double *)(base + o->off) = x;
        return 0;
    }
    }
    return OT_ERR;
}

int ot_config_from_env(ot_config *c)
{
    for (size_t i = 0; i < OT_ARRAY_LEN(opts); i++) {
        const char *v = getenv(opts[i].env);
        if (v && *v && apply(c, &opts[i], v) < 0) {
            fprintf(stderr, "ordertrack: invalid value for %s: %s\n", opts[i].env, v);
            return OT_ERR;
        }
    }
    return 0;
}

int ot_config_from_args(ot_config *c, int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        const char *eq = strchr(a, '=');
        size_t alen = eq ? (size_t)(eq - a) : strlen(a);
        const opt_def *o = NULL;
        for (size_t k = 0; k < OT_ARRAY_LEN(opts); k++)
            if (strlen(opts[k].flag) == alen && strncmp(opts[k].flag, a, alen) == 0)
                o = &opts[k];
        if (!o) {
            fprintf(stderr, "ordertrack: unknown option %s (see --help)\n", a);
            return OT_ERR;
        }
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "ordertrack: %s needs a value\n", o->flag);
            return OT_ERR;
        }
        if (apply(c, o, val) < 0) {
            fprintf(stderr, "ordertrack: invalid value for %s: %s\n", o->flag, val);
            return OT_ERR;
        }
    }
    return 0;
}

void ot_config_usage(FILE *out)
{
    fprintf(out, "usage: ordertrack serve [options]\n\nOptions (flag, environment variable, meaning); flags override the environment:\n");
    for (size_t i = 0; i < OT_ARRAY_LEN(opts); i++)
        fprintf(out, "  %-22s %-32s %s\n", opts[i].flag, opts[i].env, opts[i].help);
}
