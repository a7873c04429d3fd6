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
    const char *database_url_file;
    const char *jwt_secret;    /* required by serve; >= OT_JWT_SECRET_MIN bytes */
    const char *jwt_secret_file;
    /* Rotation: tokens signed with the previous secret still verify for
     * jwt_previous_overlap_s after start (0 = jwt_ttl_s); new ones use jwt_secret. */
    const char *jwt_secret_previous, *jwt_secret_previous_file;
    uint32_t jwt_previous_overlap_s;
    int64_t jwt_previous_until_s; /* derived: previous secret verifies while now < this */
    int scrypt_log2n;             /* cost of new password hashes */
    size_t password_min_length;
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
    uint32_t max_conns_per_ip; /* open HTTP connections per client address per worker; 429 beyond, 0 = off */
    size_t http_output_high_water; /* queued response bytes above which pipelined requests wait */
    size_t max_output_bytes;   /* queued response bytes per connection; a response past it closes */
    int pg_pool;               /* libpq connections per worker */
    double rate_ip, rate_ip_burst;     /* requests/s per client IP (0 = off) */
    double rate_user, rate_user_burst; /* requests/s per user */
    double auth_rate_ip, auth_rate_ip_burst; /* /auth/... per client IP, before the KDF (0 = off) */
    uint32_t kdf_max_queue;    /* password hashes queued or running per worker (503 beyond) */
    uint32_t kdf_max_per_ip;   /* ... of which one client IP may have (429 beyond) */
    uint32_t jwt_ttl_s;
    size_t auth_cache_users;   /* per-worker user cache behind token revocation (LRU) */
    size_t jwt_cache_entries;  /* verified-token cache slots per worker (0: off) */

    /* WebSocket gateway */
    size_t ws_max_message;     /* 1009 beyond */
    size_t ws_max_queue;       /* outgoing bytes queued per client before it is dropped (1008) */
    uint32_t ws_ping_ms;       /* server keep-alive ping interval */
    uint32_t ws_pong_timeout_ms;
    uint32_t ws_max_per_user;  /* open WebSockets per user per worker; 429 beyond; 0 = no cap */
    uint32_t ws_max_per_ip;    /* open WebSockets per client IP per worker; 429 beyond; 0 = no cap */
    double ws_rate, ws_rate_burst; /* subscribe/unsubscribe/auth/resume per socket per second (0 = off) */

    /* Kafka (the outbox relay); NULL brokers: no Kafka at all */
    const char *kafka_brokers, *kafka_topic_prefix;
    int kafka_partitions, kafka_replication;
    size_t kafka_retention_ms;
    uint32_t kafka_message_timeout_ms, kafka_max_inflight, kafka_max_message_bytes, kafka_max_parked;
    /* The search indexer's Kafka input (app/search_feed.c). */
    uint32_t kafka_search_gap_ms;     /* Kafka's time to bring a missing seq before PostgreSQL is read */
    uint32_t kafka_search_pending;    /* events held behind a gap; the rest are read from PostgreSQL */
    uint32_t kafka_search_stall_s;    /* seconds without progress, later events known: read PostgreSQL */
    uint32_t kafka_consumer_queue_kb; /* librdkafka's prefetch per partition, each consumer */

    /* Event sinks (app/sink.h): what a full sink may hold before replaying */
    size_t sink_buffer_events, sink_buffer_bytes;
    size_t sink_page_events; /* rows per replay query of order_events */
    /* The search endpoints (api/search.c) */
    uint32_t search_sla_s;       /* an order in a non-terminal status longer than this is "delayed" */
    uint32_t search_sla_status_s[4]; /* CREATED, ACCEPTED, PREPARED, SHIPPED; 0 = search_sla_s */
    uint32_t search_max_buckets; /* trend buckets one analytics answer may hold; 400 beyond */
    uint32_t search_delayed_max; /* delayed orders listed per analytics answer (oldest first) */
    /* Elasticsearch (app/indexer.c); NULL url: search stays on PostgreSQL */
    const char *elasticsearch_url, *es_index_prefix;
    uint32_t es_bulk_max_events, es_bulk_flush_ms, es_timeout_ms;
    uint32_t es_reindex_check_ms; /* the indexer's look for <p>-orders-next */
    /* The events indices' lifecycle (app/search_lifecycle.h); 0 = none. */
    uint32_t es_rollover_max_age_s, es_rollover_max_docs, es_rollover_max_primary_mb, es_events_retention_s;
    uint32_t es_lifecycle_check_ms;
    size_t es_bulk_max_bytes;
} ot_config;

void ot_config_defaults(ot_config *c);
/* Applies ORDERTRACK_* / DATABASE_URL / REDIS_URL / JWT_SECRET. */
int ot_config_from_env(ot_config *c);
/* Parses serve's flags from argv[first..argc); prints the error and returns OT_ERR on bad input. */
int ot_config_from_args(ot_config *c, int argc, char **argv, int first);
/* --help: every option with its environment variable, meaning and range. */
void ot_config_usage(FILE *out);

#define OT_JWT_SECRET_MIN 32 /* bytes: HS256's key should be at least its 256-bit output (RFC 7518 §3.2) */
#define OT_SECRET_MAX 4096
/* After env and flags: fills jwt_secret, jwt_secret_previous and database_url
 * from their *_FILE or from $CREDENTIALS_DIRECTORY (systemd LoadCredential=
 * jwt_secret / jwt_secret_previous / database_url) when not given directly, and
 * checks the secrets' length. Prints the reason and returns OT_ERR on failure. */
int ot_config_load_secrets(ot_config *c);
/* *value as given, else read from `file`, else from the credential; both value
 * and file set is an error. Secrets are never printed. */
int ot_secret_resolve(const char **value, const char *file, const char *env, const char *credential);
/* Whole file, one trailing newline removed; NULL (reason printed) on error. */
char *ot_secret_read_file(const char *path, const char *what);
/* Whether `value` is acceptable for `flag` (0 or OT_ERR), without printing. */
int ot_config_check(const char *flag, const char *value);
/* The strict number grammar of every numeric option: DIGIT+ (integers) and
 * DIGIT+ ["." DIGIT+] (rates); no whitespace, sign, exponent, nan or inf;
 * OT_ERR above max (so overflow is never silent). */
int ot_config_parse_uint(const char *v, uint64_t max, uint64_t *out);
int ot_config_parse_rate(const char *v, double max, double *out);
/* host[:port] and [v6]:port, the one host:port grammar (--listen, REDIS_URL).
 * host is what stands before the port, brackets removed (may be empty);
 * port is OT_STR_NULL when there is no ':' part, else its text (may be
 * empty). OT_ERR: no ']' for a '[', junk after ']', or a second ':' outside
 * brackets. */
int ot_hostport_split(ot_str s, ot_str *host, ot_str *port);
/* DIGIT{1,5} up to 65535 (0 included: callers refuse it where it is wrong). */
int ot_port_parse(ot_str s, int *port);
/* "host:port" into host[0..hostcap) and *port: port required, 0..65535. */
int ot_parse_hostport(const char *s, char *host, size_t hostcap, int *port);

#endif
