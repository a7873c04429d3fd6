/* One table describes every option once: its flag, its environment variable,
 * its type and its help line, so --help, env and flags can never drift. */
#include "ot/core/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* T_SECRET: a value that must not stay visible in /proc/PID/cmdline. */
typedef enum { T_STR, T_SIZE, T_U32, T_INT, T_DOUBLE, T_LISTEN, T_SECRET } opt_type;

typedef struct {
    const char *flag;
    const char *env;
    opt_type type;
    size_t off;
    const char *help;
    /* Inclusive range of a numeric option, refused outside it (T_SIZE, T_U32,
     * T_INT, T_DOUBLE; doubles hold every bound exactly). */
    double min, max;
} opt_def;

#define KiB 1024.0
#define MiB (1024.0 * 1024.0)
#define GiB (1024.0 * 1024.0 * 1024.0)
#define HOUR_MS 3600000.0
#define O(f) offsetof(ot_config, f)
static const opt_def opts[] = {
    { "--listen", "ORDERTRACK_LISTEN", T_LISTEN, 0, "HOST:PORT to listen on (default 127.0.0.1:8080)", 0, 0 },
    { "--workers", "ORDERTRACK_WORKERS", T_INT, O(workers), "worker processes (default: number of cores)", 1, 1024 },
    { "--backlog", "ORDERTRACK_BACKLOG", T_INT, O(backlog), "listen(2) backlog (default 4096)", 1, 65535 },
    { "--database-url", "DATABASE_URL", T_STR, O(database_url), "libpq URI or conninfo of PostgreSQL", 0, 0 },
    { "--redis-url", "REDIS_URL", T_STR, O(redis_url), "redis://host:port to fan events out across processes/hosts", 0, 0 },
    { "--kafka-brokers", "KAFKA_BROKERS", T_STR, O(kafka_brokers), "host:port[,host:port...] of Kafka: publish every committed event (outbox relay)", 0, 0 },
    { "--kafka-topic-prefix", "ORDERTRACK_KAFKA_TOPIC_PREFIX", T_STR, O(kafka_topic_prefix), "prefix of the Kafka topic names (default none: order.events, order.created, ...)", 0, 0 },
    { "--jwt-secret", "JWT_SECRET", T_SECRET, O(jwt_secret), "HS256 secret for tokens, >= 32 bytes (required; prefer JWT_SECRET_FILE)", 0, 0 },
    { "--jwt-secret-file", "JWT_SECRET_FILE", T_STR, O(jwt_secret_file), "file holding the JWT secret (or systemd credential jwt_secret)", 0, 0 },
    { "--jwt-secret-previous", "JWT_SECRET_PREVIOUS", T_SECRET, O(jwt_secret_previous), "rotation: old secret still accepted for verification", 0, 0 },
    { "--jwt-secret-previous-file", "JWT_SECRET_PREVIOUS_FILE", T_STR, O(jwt_secret_previous_file), "file holding the previous JWT secret (or credential jwt_secret_previous)", 0, 0 },
    { "--jwt-previous-overlap-s", "ORDERTRACK_JWT_PREVIOUS_OVERLAP_S", T_U32, O(jwt_previous_overlap_s), "seconds after start the previous secret is accepted (default: --jwt-ttl-s)", 0, 31536000 },
    { "--database-url-file", "DATABASE_URL_FILE", T_STR, O(database_url_file), "file holding DATABASE_URL (or systemd credential database_url)", 0, 0 },
    { "--tls-cert", "ORDERTRACK_TLS_CERT", T_STR, O(tls_cert), "PEM certificate chain: serve HTTPS/WSS", 0, 0 },
    { "--tls-key", "ORDERTRACK_TLS_KEY", T_STR, O(tls_key), "PEM private key for --tls-cert", 0, 0 },
    { "--web-dir", "ORDERTRACK_WEB_DIR", T_STR, O(web_dir), "folder with dashboards and docs (default ./web)", 0, 0 },
    { "--log-level", "ORDERTRACK_LOG_LEVEL", T_STR, O(log_level), "debug|info|warn|error (default info)", 0, 0 },
    { "--max-uri-bytes", "ORDERTRACK_MAX_URI_BYTES", T_SIZE, O(max_uri_bytes), "request-target limit, 414 beyond (default 4096)", 16, MiB },
    { "--max-header-bytes", "ORDERTRACK_MAX_HEADER_BYTES", T_SIZE, O(max_header_bytes), "request head limit, 431 beyond (default 8192)", 256, MiB },
    /* 127: the header array per connection has 128 slots (http.c). */
    { "--max-headers", "ORDERTRACK_MAX_HEADERS", T_SIZE, O(max_headers), "header field count limit, 431 beyond (default 64)", 1, 127 },
    { "--max-body-bytes", "ORDERTRACK_MAX_BODY_BYTES", T_SIZE, O(max_body_bytes), "request body limit, 413 beyond (default 1048576)", 0, GiB },
    { "--header-timeout-ms", "ORDERTRACK_HEADER_TIMEOUT_MS", T_U32, O(header_timeout_ms), "time allowed to send a whole request once begun (default 10000)", 10, HOUR_MS },
    { "--idle-timeout-ms", "ORDERTRACK_IDLE_TIMEOUT_MS", T_U32, O(idle_timeout_ms), "keep-alive idle timeout (default 60000)", 10, 24 * HOUR_MS },
    { "--write-timeout-ms", "ORDERTRACK_WRITE_TIMEOUT_MS", T_U32, O(write_timeout_ms), "queued output must drain within this once a write blocks; progress does not extend it (default 30000)", 10, HOUR_MS },
    { "--shutdown-timeout-ms", "ORDERTRACK_SHUTDOWN_TIMEOUT_MS", T_U32, O(shutdown_timeout_ms), "graceful drain bound on SIGTERM (default 10000)", 1, HOUR_MS },
    { "--max-conns", "ORDERTRACK_MAX_CONNS", T_INT, O(max_conns), "connections per worker; 503 beyond; 0 = from RLIMIT_NOFILE (default 0)", 0, 1000000 },
    { "--max-conns-per-ip", "ORDERTRACK_MAX_CONNS_PER_IP", T_U32, O(max_conns_per_ip), "open HTTP connections per client address per worker, 429 beyond; 0 = off (default 256)", 0, 1000000 },
    { "--http-output-high-water", "ORDERTRACK_HTTP_OUTPUT_HIGH_WATER", T_SIZE, O(http_output_high_water), "queued response bytes per connection above which pipelined requests are not read (default 65536)", KiB, GiB },
    { "--max-output-bytes", "ORDERTRACK_MAX_OUTPUT_BYTES", T_SIZE, O(max_output_bytes), "queued response bytes per connection; a response past it closes the connection (default 8388608)", 64 * KiB, 4 * GiB },
    { "--pg-pool", "ORDERTRACK_PG_POOL", T_INT, O(pg_pool), "PostgreSQL connections per worker (default 4)", 1, 256 },
    { "--rate-ip", "ORDERTRACK_RATE_IP", T_DOUBLE, O(rate_ip), "requests/s per client IP per worker, 0 = off (default 100)", 0, 1e6 },
    { "--rate-ip-burst", "ORDERTRACK_RATE_IP_BURST", T_DOUBLE, O(rate_ip_burst), "burst per client IP (default 200)", 1, 1e6 },
    { "--rate-user", "ORDERTRACK_RATE_USER", T_DOUBLE, O(rate_user), "requests/s per user per worker, 0 = off (default 50)", 0, 1e6 },
    { "--rate-user-burst", "ORDERTRACK_RATE_USER_BURST", T_DOUBLE, O(rate_user_burst), "burst per user (default 200)", 1, 1e6 },
    { "--scrypt-log2n", "ORDERTRACK_SCRYPT_LOG2N", T_INT, O(scrypt_log2n), "log2 of scrypt N for new password hashes (default 16; older hashes are upgraded at login)", 16, 18 },
    { "--password-min-length", "ORDERTRACK_PASSWORD_MIN_LENGTH", T_SIZE, O(password_min_length), "shortest password accepted at registration (default 8)", 8, 1024 },
    { "--auth-rate-ip", "ORDERTRACK_AUTH_RATE_IP", T_DOUBLE, O(auth_rate_ip), "/auth/* requests/s per client IP (IPv6: per /64) per worker, checked before the password hash; 0 = off (default 1)", 0, 1e6 },
    { "--auth-rate-ip-burst", "ORDERTRACK_AUTH_RATE_IP_BURST", T_DOUBLE, O(auth_rate_ip_burst), "/auth/* burst per client IP (default 10)", 1, 1e6 },
    { "--kdf-max-queue", "ORDERTRACK_KDF_MAX_QUEUE", T_U32, O(kdf_max_queue), "password hashes queued or running per worker, 503 beyond (default 64)", 1, 1024 },
    { "--kdf-max-per-ip", "ORDERTRACK_KDF_MAX_PER_IP", T_U32, O(kdf_max_per_ip), "password hashes in flight per client IP per worker, 429 beyond (default 1)", 1, 1024 },
    { "--auth-cache-users", "ORDERTRACK_AUTH_CACHE_USERS", T_SIZE, O(auth_cache_users), "users whose token state a worker caches, LRU beyond (default 65536)", 1, 16777216 },
    { "--jwt-cache-entries", "ORDERTRACK_JWT_CACHE_ENTRIES", T_SIZE, O(jwt_cache_entries), "verified tokens a worker remembers, so a keep-alive client skips HMAC; 0 = off (default 4096)", 0, 1048576 },
    { "--jwt-ttl-s", "ORDERTRACK_JWT_TTL_S", T_U32, O(jwt_ttl_s), "lifetime of issued tokens (default 3600)", 1, 31536000 },
    /* 64 MiB: WebSocket lengths are 32-bit inside, and a message is buffered whole. */
    { "--ws-max-message", "ORDERTRACK_WS_MAX_MESSAGE", T_SIZE, O(ws_max_message), "largest WebSocket message accepted, 1009 beyond (default 65536)", 125, 64 * MiB },
    { "--ws-max-queue", "ORDERTRACK_WS_MAX_QUEUE", T_SIZE, O(ws_max_queue), "bytes queued per WebSocket (every frame counts), 1008 beyond; input paused above half (default 1048576)", KiB, GiB },
    { "--ws-ping-ms", "ORDERTRACK_WS_PING_MS", T_U32, O(ws_ping_ms), "WebSocket keep-alive ping interval (default 20000)", 10, HOUR_MS },
    { "--ws-pong-timeout-ms", "ORDERTRACK_WS_PONG_TIMEOUT_MS", T_U32, O(ws_pong_timeout_ms), "dead-peer timeout after a ping (default 10000)", 10, HOUR_MS },
    { "--ws-max-per-user", "ORDERTRACK_WS_MAX_PER_USER", T_U32, O(ws_max_per_user), "open WebSockets per user per worker, 429 beyond, 0 = no cap (default 32)", 0, 1000000 },
    { "--ws-max-per-ip", "ORDERTRACK_WS_MAX_PER_IP", T_U32, O(ws_max_per_ip), "open WebSockets per client IP per worker, 429 beyond, 0 = no cap (default 256)", 0, 1000000 },
    { "--ws-rate", "ORDERTRACK_WS_RATE", T_DOUBLE, O(ws_rate), "subscribe/unsubscribe/auth/resume actions/s per WebSocket, 0 = off (default 20)", 0, 1e6 },
    { "--ws-rate-burst", "ORDERTRACK_WS_RATE_BURST", T_DOUBLE, O(ws_rate_burst), "burst of WebSocket actions; as many refused in a row close 1008 (default 80: a full set of 64 subscriptions at once)", 1, 1e6 },
    { "--kafka-partitions", "ORDERTRACK_KAFKA_PARTITIONS", T_INT, O(kafka_partitions), "partitions of each topic the relay creates (default 6)", 1, 10000 },
    { "--kafka-replication", "ORDERTRACK_KAFKA_REPLICATION", T_INT, O(kafka_replication), "replication factor of each topic the relay creates (default 1)", 1, 32 },
    { "--kafka-retention-ms", "ORDERTRACK_KAFKA_RETENTION_MS", T_SIZE, O(kafka_retention_ms), "retention.ms of each topic the relay creates (default 604800000: 7 days)", 60000, 315360000000ull },
    { "--kafka-message-timeout-ms", "ORDERTRACK_KAFKA_MESSAGE_TIMEOUT_MS", T_U32, O(kafka_message_timeout_ms), "a message not acknowledged by Kafka within this is reported failed and the relay republishes from its cursor (default 300000)", 1000, HOUR_MS },
    { "--kafka-max-inflight", "ORDERTRACK_KAFKA_MAX_INFLIGHT", T_U32, O(kafka_max_inflight), "events the relay has handed to librdkafka without a delivery report; beyond it waits (default 50000)", 1, 1000000 },
    { "--kafka-max-message-bytes", "ORDERTRACK_KAFKA_MAX_MESSAGE_BYTES", T_U32, O(kafka_max_message_bytes), "largest message the producer sends (librdkafka message.max.bytes); a larger event parks its order (default 1000000)", 1000, 1000000000 },
    { "--kafka-max-parked", "ORDERTRACK_KAFKA_MAX_PARKED", T_U32, O(kafka_max_parked), "orders the relay may park (events it cannot publish); beyond, it stops at the next one and retries it (default 1000)", 1, 1000000 },
    { "--kafka-search-gap-ms", "ORDERTRACK_KAFKA_SEARCH_GAP_MS", T_U32, O(kafka_search_gap_ms), "how long Kafka gets to bring a seq the search indexer misses (partitions arrive apart) before it is read from PostgreSQL; the wait doubles up to 5x while the gap lasts (default 100)", 1, 60000 },
    { "--kafka-search-pending", "ORDERTRACK_KAFKA_SEARCH_PENDING", T_U32, O(kafka_search_pending), "events the search indexer holds behind a missing seq; beyond, the highest are dropped and read from PostgreSQL once it fills (default 16384)", 16, 1048576 },
    { "--kafka-search-stall-seconds", "ORDERTRACK_KAFKA_SEARCH_STALL_SECONDS", T_U32, O(kafka_search_stall_s), "seconds the search indexer's Kafka input may make no progress while later events are committed before it reads them from PostgreSQL (3x that while its consumer has no partitions; default 3)", 1, 3600 },
    { "--kafka-consumer-queue-kb", "ORDERTRACK_KAFKA_CONSUMER_QUEUE_KB", T_U32, O(kafka_consumer_queue_kb), "KB each Kafka consumer (push feed, search indexer) prefetches per partition (librdkafka queued.max.messages.kbytes; default 4096)", 64, 2097151 },
    { "--sink-buffer-events", "ORDERTRACK_SINK_BUFFER_EVENTS", T_SIZE, O(sink_buffer_events), "events held in memory for one slow event sink (Kafka relay, search indexer) before it falls back to replaying from PostgreSQL (default 4096)", 1, 1048576 },
    { "--sink-buffer-bytes", "ORDERTRACK_SINK_BUFFER_BYTES", T_SIZE, O(sink_buffer_bytes), "event bytes held in memory for one slow event sink before it falls back to replaying (default 8388608)", 64 * KiB, GiB },
    { "--sink-page-events", "ORDERTRACK_SINK_PAGE_EVENTS", T_SIZE, O(sink_page_events), "events per query when an event sink (Kafka relay, search indexer) replays order_events; the next page is read while one is delivered, so two pages may be in memory (default 2000)", 1, 20000 },
    { "--search-sla-seconds", "ORDERTRACK_SEARCH_SLA_SECONDS", T_U32, O(search_sla_s), "seconds an order may stay in a non-terminal status before /search/analytics lists it as delayed (default 3600)", 1, 31536000 },
    { "--search-sla-created-seconds", "ORDERTRACK_SEARCH_SLA_CREATED_SECONDS", T_U32, O(search_sla_status_s[0]), "SLA for CREATED; 0 = --search-sla-seconds (default 0)", 0, 31536000 },
    { "--search-sla-accepted-seconds", "ORDERTRACK_SEARCH_SLA_ACCEPTED_SECONDS", T_U32, O(search_sla_status_s[1]), "SLA for ACCEPTED; 0 = --search-sla-seconds (default 0)", 0, 31536000 },
    { "--search-sla-prepared-seconds", "ORDERTRACK_SEARCH_SLA_PREPARED_SECONDS", T_U32, O(search_sla_status_s[2]), "SLA for PREPARED; 0 = --search-sla-seconds (default 0)", 0, 31536000 },
    { "--search-sla-shipped-seconds", "ORDERTRACK_SEARCH_SLA_SHIPPED_SECONDS", T_U32, O(search_sla_status_s[3]), "SLA for SHIPPED; 0 = --search-sla-seconds (default 0)", 0, 31536000 },
    { "--search-max-buckets", "ORDERTRACK_SEARCH_MAX_BUCKETS", T_U32, O(search_max_buckets), "trend buckets per /search/analytics answer, 400 beyond (default 1000)", 1, 100000 },
    { "--search-delayed-max", "ORDERTRACK_SEARCH_DELAYED_MAX", T_U32, O(search_delayed_max), "delayed orders listed per /search/analytics answer, oldest first (default 100)", 1, 10000 },
    { "--elasticsearch-url", "ELASTICSEARCH_URL", T_STR, O(elasticsearch_url), "http://host:port of Elasticsearch: index every committed event into it (search indexer)", 0, 0 },
    { "--es-index-prefix", "ORDERTRACK_ES_INDEX_PREFIX", T_STR, O(es_index_prefix), "prefix of the index, alias and template names: lowercase letters, digits, '-', '_' (default ordertrack)", 0, 0 },
    { "--es-bulk-max-events", "ORDERTRACK_ES_BULK_MAX_EVENTS", T_U32, O(es_bulk_max_events), "events per _bulk request at most (default 1000)", 1, 100000 },
    { "--es-bulk-max-bytes", "ORDERTRACK_ES_BULK_MAX_BYTES", T_SIZE, O(es_bulk_max_bytes), "bytes of event JSON per _bulk request before it is sent (one event always goes; default 5242880)", 4 * KiB, 100 * MiB },
    { "--es-bulk-flush-ms", "ORDERTRACK_ES_BULK_FLUSH_MS", T_U32, O(es_bulk_flush_ms), "a _bulk request not full is sent this long after its first event (default 200)", 1, 60000 },
    { "--es-timeout-ms", "ORDERTRACK_ES_TIMEOUT_MS", T_U32, O(es_timeout_ms), "per attempt of an Elasticsearch request, whole transfer (default 10000)", 100, 600000 },
    { "--es-reindex-check-ms", "ORDERTRACK_ES_REINDEX_CHECK_MS", T_U32, O(es_reindex_check_ms), "how often the indexer looks for a reindex's new index (default 1000)", 100, 600000 },
    { "--es-rollover-max-age-seconds", "ORDERTRACK_ES_ROLLOVER_MAX_AGE_SECONDS", T_U32, O(es_rollover_max_age_s), "roll the events write alias over to a new index once the current one is this old; 0 = never (default 0; use ILM where the cluster has it)", 0, 315360000 },
    { "--es-rollover-max-docs", "ORDERTRACK_ES_ROLLOVER_MAX_DOCS", T_U32, O(es_rollover_max_docs), "... or once it holds this many documents as Elasticsearch counts them (an event with n nested items is 1 + n); 0 = no limit (default 0)", 0, 2000000000 },
    { "--es-rollover-max-primary-mb", "ORDERTRACK_ES_ROLLOVER_MAX_PRIMARY_MB", T_U32, O(es_rollover_max_primary_mb), "... or once its primary shard is this many MB; 0 = no limit (default 0)", 0, 10000000 },
    { "--es-events-retention-seconds", "ORDERTRACK_ES_EVENTS_RETENTION_SECONDS", T_U32, O(es_events_retention_s), "delete events indices (not the write index) created longer ago than this; 0 = keep all (default 0; PostgreSQL keeps every event)", 0, 315360000 },
    { "--es-lifecycle-check-ms", "ORDERTRACK_ES_LIFECYCLE_CHECK_MS", T_U32, O(es_lifecycle_check_ms), "how often rollover conditions and retention are checked (default 60000)", 100, 86400000 },
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
    c->max_conns_per_ip = 256;
    c->http_output_high_water = 64 * 1024;
    c->max_output_bytes = 8u << 20;
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
    c->scrypt_log2n = 16;
    c->password_min_length = 8;
    c->auth_cache_users = 65536;
    c->jwt_cache_entries = 4096;
    c->ws_max_message = 65536;
    c->ws_max_queue = 1 << 20;
    c->ws_ping_ms = 20000;
    c->ws_pong_timeout_ms = 10000;
    c->ws_max_per_user = 32;
    c->ws_max_per_ip = 256;
    c->ws_rate = 20;
    c->ws_rate_burst = 80;
    c->kafka_partitions = 6;
    c->kafka_replication = 1;
    c->kafka_retention_ms = 604800000;
    c->kafka_message_timeout_ms = 300000;
    c->kafka_max_inflight = 50000;
    c->kafka_max_message_bytes = 1000000;
    c->kafka_max_parked = 1000;
    c->kafka_search_gap_ms = 100;
    c->kafka_search_pending = 16384;
    c->kafka_search_stall_s = 3;
    c->kafka_consumer_queue_kb = 4096;
    c->sink_buffer_events = 4096;
    c->sink_buffer_bytes = 8u << 20;
    c->sink_page_events = 2000;
    c->search_sla_s = 3600;
    c->search_max_buckets = 1000;
    c->search_delayed_max = 100;
    c->es_index_prefix = "ordertrack";
    c->es_bulk_max_events = 1000;
    c->es_bulk_max_bytes = 5u << 20;
    c->es_bulk_flush_ms = 200;
    c->es_timeout_ms = 10000;
    c->es_reindex_check_ms = 1000;
    c->es_lifecycle_check_ms = 60000;
}

int ot_hostport_split(ot_str s, ot_str *host, ot_str *port)
{
    const char *p = s.base, *end = s.base + s.len;
    *port = OT_STR_NULL;
    if (s.len && *p == '[') { /* IPv6 literal, RFC 3986 §3.2.2 */
        const char *rb = memchr(p, ']', s.len);
        if (!rb)
            return OT_ERR;
        *host = ot_str_make(p + 1, (size_t)(rb - p - 1));
        if (rb + 1 == end)
            return OT_OK;
        if (rb[1] != ':')
            return OT_ERR;
        *port = ot_str_make(rb + 2, (size_t)(end - rb - 2));
        return OT_OK;
    }
    const char *colon = memchr(p, ':', s.len);
    *host = ot_str_make(p, (size_t)((colon ? colon : end) - p));
    if (!colon)
        return OT_OK;
    /* A second colon outside brackets is an unbracketed IPv6 address, which
     * cannot be told apart from its port. */
    if (memchr(colon + 1, ':', (size_t)(end - colon - 1)))
        return OT_ERR;
    *port = ot_str_make(colon + 1, (size_t)(end - colon - 1));
    return OT_OK;
}

int ot_port_parse(ot_str s, int *port)
{
    uint64_t v = 0;
    if (s.len == 0 || s.len > 5)
        return OT_ERR;
    for (size_t i = 0; i < s.len; i++) {
        if (s.base[i] < '0' || s.base[i] > '9')
            return OT_ERR;
        v = v * 10 + (uint64_t)(s.base[i] - '0');
    }
    if (v > 65535)
        return OT_ERR;
    *port = (int)v;
    return OT_OK;
}

int ot_parse_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    ot_str h, p;
    /* --listen needs a port; 0 (any free port) is allowed. */
    if (ot_hostport_split(ot_str_c(s), &h, &p) < 0 || !p.base || ot_port_parse(p, port) < 0)
        return OT_ERR;
    if (h.len == 0 || h.len >= hostcap)
        return OT_ERR;
    memcpy(host, h.base, h.len);
    host[h.len] = 0;
    return 0;
}

/* Strict numbers: DIGIT+ for integers, DIGIT+ ["." DIGIT+] for rates. No
 * whitespace, sign, exponent, hex, "nan" or "inf" (strtod/strtoull accept
 * all of these, and " -1" became SIZE_MAX), then the option's range. */
int ot_config_parse_uint(const char *v, uint64_t max, uint64_t *out)
{
    uint64_t x = 0;
    if (!v || !*v)
        return OT_ERR;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return OT_ERR;
        unsigned d = (unsigned)(*p - '0');
        if (d > max || x > (max - d) / 10)
            return OT_ERR; /* past max, overflow included (d > max: max - d would wrap) */
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

int ot_config_parse_rate(const char *v, double max, double *out)
{
    const char *p = v;
    size_t int_digits = 0, frac_digits = 0;
    if (!v)
        return OT_ERR;
    for (; *p >= '0' && *p <= '9'; p++)
        int_digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            frac_digits++;
    if (*p || int_digits == 0 || (p[-1] == '.') || int_digits > 15 || frac_digits > 15)
        return OT_ERR;
    double x = strtod(v, NULL); /* the grammar above leaves strtod nothing to guess */
    if (!(x <= max))
        return OT_ERR;
    *out = x;
    return 0;
}

static int apply(ot_config *c, const opt_def *o, const char *v)
{
    char *base = (char *)c;
    uint64_t u;
    double d;
    switch (o->type) {
    case T_STR:
        *(const char **)(base + o->off) = v;
        return 0;
    case T_SECRET: {
        char *copy = strdup(v);
        if (!copy)
            return OT_ERR;
        *(const char **)(base + o->off) = copy;
        return 0;
    }
    case T_LISTEN:
        return ot_parse_hostport(v, c->listen_host, sizeof(c->listen_host), &c->listen_port);
    case T_SIZE:
    case T_U32:
    case T_INT:
        if (ot_config_parse_uint(v, (uint64_t)o->max, &u) < 0 || (double)u < o->min)
            return OT_ERR;
        if (o->type == T_SIZE)
            *(size_t *)(base + o->off) = (size_t)u;
        else if (o->type == T_U32)
            *(uint32_t *)(base + o->off) = (uint32_t)u;
        else
            *(int *)(base + o->off) = (int)u;
        return 0;
    case T_DOUBLE:
        if (ot_config_parse_rate(v, o->max, &d) < 0 || d < o->min)
            return OT_ERR;
        *(double *)(base + o->off) = d;
        return 0;
    }
    return OT_ERR;
}

/* "an integer in 16..1048576", so the error says what would be accepted. */
static void describe(const opt_def *o, char *out, size_t cap)
{
    switch (o->type) {
    case T_SIZE:
    case T_U32:
    case T_INT:
        snprintf(out, cap, "an integer in %.0f..%.0f", o->min, o->max);
        break;
    case T_DOUBLE:
        snprintf(out, cap, "a decimal number in %.15g..%.15g", o->min, o->max);
        break;
    case T_LISTEN:
        snprintf(out, cap, "HOST:PORT with a port in 0..65535");
        break;
    default:
        snprintf(out, cap, "a string");
    }
}

static void refuse(const char *name, const opt_def *o, const char *v)
{
    char want[96];
    describe(o, want, sizeof(want));
    fprintf(stderr, "ordertrack: invalid value for %s: \"%s\" (expected %s)\n", name, v, want);
}

int ot_config_check(const char *flag, const char *value)
{
    ot_config scratch;
    ot_config_defaults(&scratch);
    for (size_t k = 0; k < OT_ARRAY_LEN(opts); k++)
        if (strcmp(opts[k].flag, flag) == 0)
            return apply(&scratch, &opts[k], value);
    return OT_ERR;
}

int ot_config_from_env(ot_config *c)
{
    for (size_t i = 0; i < OT_ARRAY_LEN(opts); i++) {
        const char *v = getenv(opts[i].env);
        if (v && *v && apply(c, &opts[i], v) < 0) {
            refuse(opts[i].env, &opts[i], opts[i].type == T_SECRET ? "(hidden)" : v);
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
            refuse(o->flag, o, o->type == T_SECRET ? "(hidden)" : val);
            return OT_ERR;
        }
        if (o->type == T_SECRET) {
            /* Anyone on the host can read argv; wipe our copy of it, and say
             * so, since the exec'ing shell's history and `ps` already saw it. */
            fprintf(stderr, "ordertrack: warning: %s on the command line is visible to other local users; "
                            "use %s_FILE or a systemd credential\n", o->flag, o->env);
            explicit_bzero((char *)val, strlen(val));
        }
    }
    return 0;
}

void ot_config_usage(FILE *out)
{
    fprintf(out, "usage: ordertrack serve [options]\n\nOptions (flag, environment variable, meaning); flags override the environment:\n");
    for (size_t i = 0; i < OT_ARRAY_LEN(opts); i++) {
        const opt_def *o = &opts[i];
        fprintf(out, "  %-26s %-36s %s", o->flag, o->env, o->help);
        if (o->type == T_SIZE || o->type == T_U32 || o->type == T_INT)
            fprintf(out, " [range %.0f..%.0f]", o->min, o->max);
        else if (o->type == T_DOUBLE)
            fprintf(out, " [range %.15g..%.15g]", o->min, o->max);
        fputc('\n', out);
    }
}

/* ---- secrets: value, *_FILE, or $CREDENTIALS_DIRECTORY/<credential> ---- */

char *ot_secret_read_file(const char *path, const char *what)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "ordertrack: cannot open %s file %s: %s\n", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & S_IROTH))
        fprintf(stderr, "ordertrack: warning: %s file %s is world-readable; chmod 0600 it\n", what, path);
    char *buf = malloc(OT_SECRET_MAX + 2);
    size_t n = 0;
    ssize_t k;
    while (buf && n < OT_SECRET_MAX + 1 && (k = read(fd, buf + n, OT_SECRET_MAX + 1 - n)) != 0) {
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            fprintf(stderr, "ordertrack: reading %s file %s: %s\n", what, path, strerror(errno));
            explicit_bzero(buf, OT_SECRET_MAX + 2);
            free(buf);
            close(fd);
            return NULL;
        }
        n += (size_t)k;
    }
    close(fd);
    if (!buf)
        return NULL;
    if (n > OT_SECRET_MAX) {
        fprintf(stderr, "ordertrack: %s file %s is longer than %d bytes\n", what, path, OT_SECRET_MAX);
        explicit_bzero(buf, OT_SECRET_MAX + 2);
        free(buf);
        return NULL;
    }
    /* `echo secret > file` adds a newline that is not part of the secret. */
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (n == 0 || memchr(buf, '\0', n)) {
        fprintf(stderr, "ordertrack: %s file %s is empty or contains a NUL byte\n", what, path);
        free(buf);
        return NULL;
    }
    return buf;
}

int ot_secret_resolve(const char **value, const char *file, const char *env, const char *credential)
{
    if (*value && (*value)[0] && file && *file) {
        fprintf(stderr, "ordertrack: both %s and %s_FILE are set; give only one\n", env, env);
        return OT_ERR;
    }
    if (*value && (*value)[0])
        return 0;
    *value = NULL;
    char path[4096];
    const char *creds = getenv("CREDENTIALS_DIRECTORY");
    if ((!file || !*file) && creds && *creds) {
        /* systemd LoadCredential=<credential>:/path puts it here (0400, private mount). */
        snprintf(path, sizeof path, "%s/%s", creds, credential);
        if (access(path, F_OK) != 0)
            return 0;
        file = path;
    }
    if (!file || !*file)
        return 0;
    char *v = ot_secret_read_file(file, env);
    if (!v)
        return OT_ERR;
    *value = v;
    return 0;
}

int ot_config_load_secrets(ot_config *c)
{
    if (ot_secret_resolve(&c->jwt_secret, c->jwt_secret_file, "JWT_SECRET", "jwt_secret") < 0 ||
        ot_secret_resolve(&c->jwt_secret_previous, c->jwt_secret_previous_file, "JWT_SECRET_PREVIOUS",
                          "jwt_secret_previous") < 0 ||
        ot_secret_resolve(&c->database_url, c->database_url_file, "DATABASE_URL", "database_url") < 0)
        return OT_ERR;
    if (!c->jwt_secret || strlen(c->jwt_secret) < OT_JWT_SECRET_MIN) {
        fprintf(stderr, "ordertrack: a JWT secret of at least %d bytes is required (JWT_SECRET_FILE, JWT_SECRET, "
                        "credential jwt_secret); generate one with `openssl rand -hex 32`\n", OT_JWT_SECRET_MIN);
        return OT_ERR;
    }
    if (c->jwt_secret_previous && strlen(c->jwt_secret_previous) < OT_JWT_SECRET_MIN) {
        fprintf(stderr, "ordertrack: the previous JWT secret must also be at least %d bytes\n", OT_JWT_SECRET_MIN);
        return OT_ERR;
    }
    if (c->jwt_secret_previous && !strcmp(c->jwt_secret_previous, c->jwt_secret))
        c->jwt_secret_previous = NULL; /* nothing to rotate from */
    uint32_t overlap = c->jwt_previous_overlap_s ? c->jwt_previous_overlap_s : c->jwt_ttl_s;
    c->jwt_previous_until_s = c->jwt_secret_previous ? (int64_t)time(NULL) + overlap : 0;
    if (c->scrypt_log2n < 16 || c->scrypt_log2n > 18) {
        fprintf(stderr, "ordertrack: --scrypt-log2n must be 16..18 (current guidance is the floor)\n");
        return OT_ERR;
    }
    if (c->password_min_length < 8 || c->password_min_length > 1024) {
        fprintf(stderr, "ordertrack: --password-min-length must be 8..1024\n");
        return OT_ERR;
    }
    return 0;
}
