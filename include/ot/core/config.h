/* Runtime configuration: defaults, then environment, then command-line flags
 * (flags win). Every limit the server enforces lives here. */
#ifndef OT_CONFIG_H
#define OT_CONFIG_H

#include <stdio.h>

#include "ot/core/common.h"

typedef struct {
    char listen_host[256];
    int listen_port;
    int workers;
    int backlog;
    const char *database_url;  /* NULL: no database (order routes answer 503) */
    const char *redis_url;     /* NULL: events fan out through PostgreSQL only */
    const char *jwt_secret;    /* required by serve */
    const char *tls_cert, *tls_key;
    const char *web_dir;       /* static dashboards and docs */
    const char *log_level;

    size_t max_uri_bytes;      /* 414 beyond */
    size_t max_header_bytes;   /* 431 beyond: the whole request head */
    size_t max_headers;        /* 431 beyond */
    size_t max_body_bytes;     /* 413 beyond */
    uint32_t header_timeout_ms;  /* time to receive a whole request (head+body) once it started */
    uint32_t idle_timeout_ms;    /* keep-alive idle time before we close */
    uint32_t write_timeout_ms;   /* a response that cannot be flushed this long -> close */
    uint32_t shutdown_timeout_ms;/* graceful drain bound on SIGTERM */
    int max_conns;             /* per worker; 0 = derive from RLIMIT_NOFILE */
    int pg_pool;               /* libpq connections per worker */
    double rate_ip, rate_ip_burst;     /* requests/s per client IP (0 = off) */
    double rate_user, rate_user_burst; /* requests/s per user */
    double auth_rate_ip, auth_rate_ip_burst; /* /auth/... per client IP, before the KDF (0 = off) */
    uint32_t kdf_max_queue;    /* password hashes queued or running per worker (503 beyond) */
    uint32_t kdf_max_per_ip;   /* ... of which one client IP may have (429 beyond) */
    uint32_t jwt_ttl_s;
    size_t auth_cache_users;   /* per-worker user cache behind token revocation (LRU) */

    /* WebSocket gateway */
    size_t ws_max_message;     /* 1009 beyond */
    size_t ws_max_queue;       /* outgoing bytes queued per client before it is dropped (1008) */
    uint32_t ws_ping_ms;       /* server keep-alive ping interval */
    uint32_t ws_pong_timeout_ms;
} ot_config;

void ot_config_defaults(ot_config *c);
/* Applies ORDERTRACK_* / DATABASE_URL / REDIS_URL / JWT_SECRET. */
int ot_config_from_env(ot_config *c);
/* Parses serve's flags from argv[first..argc); prints the error and returns OT_ERR on bad input. */
int ot_config_from_args(ot_config *c, int argc, char **argv, int first);
void ot_config_usage(FILE *out);
int ot_parse_hostport(const char *s, char *host, size_t hostcap, int *port);

#endif
