/* HTTP client on the loop: libcurl's multi interface driven by the adapter kit
 * (curl's docs/examples/ephiperfifo.c is the model). CURLMOPT_SOCKETFUNCTION
 * keeps one ot_watch per socket curl wants watched, CURLMOPT_TIMERFUNCTION arms
 * one loop timer (0 ms runs in the next pass, after I/O is polled), and every
 * readiness or expiry calls curl_multi_socket_action. Connections stay in the
 * multi handle's cache, so consecutive requests to one host reuse one
 * keep-alive connection.
 *
 * Each request has its own total timeout; a 429, a 5xx or a transport failure
 * (refused, reset, timed out) is retried after an ot_backoff delay, up to
 * max_retries times. So every request sent through here must be idempotent
 * (Elasticsearch writes are: document ids and external versions). A socket
 * the loop cannot watch (past its max_fds, epoll_ctl failing) fails only its
 * own attempt, as a transport failure; every request calls back exactly once.
 * Callbacks may send further requests, any number at once. */
#ifndef OT_CURL_H
#define OT_CURL_H

#include "ot/event/loop.h"

typedef struct ot_curl ot_curl;
typedef struct ot_curl_req ot_curl_req;

typedef struct {
    uint32_t timeout_ms;          /* per attempt, whole transfer (default 10000) */
    uint32_t connect_timeout_ms;  /* default 2000 */
    uint32_t max_retries;         /* retries after the first attempt (default 3) */
    uint32_t backoff_min_ms, backoff_max_ms; /* between attempts (default 100 / 5000) */
    size_t max_response_bytes;    /* a longer answer fails the request (default 64 MiB) */
    long max_host_conns;          /* connections per host (default 8) */
} ot_curl_config;

typedef struct {
    long status;        /* HTTP status of the last attempt; 0 if none arrived */
    int curl_code;      /* CURLcode of the last attempt (0 = a response arrived) */
    const char *error;  /* human-readable reason when curl_code != 0 */
    const char *body;   /* response body, NUL after body_len (valid during the callback only) */
    size_t body_len;
    uint32_t attempts;  /* 1 + retries made */
} ot_curl_result;

/* Called once per request, from the loop, after the last attempt. */
typedef void ot_curl_cb(void *data, const ot_curl_result *res);

typedef struct {
    uint64_t requests, retries, failures; /* failures: transport errors after all retries */
    long connects;                         /* connections opened (CURLINFO_NUM_CONNECTS summed) */
    size_t in_flight;
} ot_curl_stats;

void ot_curl_config_default(ot_curl_config *c);
/* NULL on failure (logged). Calls curl_global_init once per process. */
ot_curl *ot_curl_new(ot_loop *loop, const ot_curl_config *cfg);
/* Cancels every request without calling its callback. */
void ot_curl_free(ot_curl *c);
/* method: "GET", "POST", "PUT", "DELETE", "HEAD"; body copied (may be NULL).
 * content_type may be NULL. Returns NULL (and calls nothing) if it cannot
 * start. */
ot_curl_req *ot_curl_send(ot_curl *c, const char *method, const char *url, const char *content_type,
                          const void *body, size_t body_len, ot_curl_cb *cb, void *data);
/* The callback will not be called. */
void ot_curl_cancel(ot_curl_req *r);
void ot_curl_get_stats(const ot_curl *c, ot_curl_stats *st);

#endif
