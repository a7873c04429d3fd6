#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ot/core/metrics.h"

static const char *const routes[] = { "GET /orders/:id", "weird\"ro\\ute\nname" };

/* Renders into a NUL-terminated heap string the test owns. */
static char *render(void)
{
    ot_buf b = OT_BUF_INIT;
    cr_assert_eq(ot_metrics_render(&b), 0);
    char *s = malloc(b.len + 1);
    memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    ot_buf_free(&b);
    return s;
}

/* Value of the sample whose "name{labels}" text is exactly `series`; -1 when absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        if (!eol)
            break;
        p = eol + 1;
    }
    return -1;
}

/* ---- a small validator for text exposition format 0.0.4 ---- */

#define MAXFAM 128 /* families in one exposition; raise with the table */
typedef struct {
    char name[128];
    char type[16];
    bool help, typed, closed;
} family;

static family fams[MAXFAM];
static int nfams;

static family *fam(const char *name, size_t n)
{
    for (int i = 0; i < nfams; i++)
        if (strlen(fams[i].name) == n && memcmp(fams[i].name, name, n) == 0)
            return &fams[i];
    cr_assert_lt(nfams, MAXFAM);
    family *f = &fams[nfams++];
    memset(f, 0, sizeof *f);
    memcpy(f->name, name, n);
    return f;
}

static size_t metric_name(const char *p)
{
    size_t i = 0;
    if (!(isalpha((unsigned char)p[0]) || p[0] == '_' || p[0] == ':'))
        return 0;
    while (isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == ':')
        i++;
    return i;
}

/* Checks one sample line; returns the family it belongs to. */
static family *check_sample(const char *line, size_t len)
{
    size_t n = metric_name(line);
    cr_assert_gt(n, 0, "bad metric name: %.*s", (int)len, line);
    size_t i = n;
    if (line[i] == '{') {
        i++;
        for (;;) {
            size_t ln = metric_name(line + i);
            cr_assert_gt(ln, 0, "bad label name: %.*s", (int)len, line);
            i += ln;
            cr_assert_eq(line[i], '=', "%.*s", (int)len, line);
            cr_assert_eq(line[i + 1], '"', "%.*s", (int)len, line);
            i += 2;
            while (line[i] != '"') {
                cr_assert(i < len, "unterminated label value: %.*s", (int)len, line);
                if (line[i] == '\\') {
                    cr_assert(line[i + 1] == '\\' || line[i + 1] == '"' || line[i + 1] == 'n',
                              "bad escape: %.*s", (int)len, line);
                    i++;
                }
                i++;
            }
            i++;
            if (line[i] == ',') {
                i++;
                continue;
            }
            cr_assert_eq(line[i], '}', "%.*s", (int)len, line);
            i++;
            break;
        }
    }
    cr_assert_eq(line[i], ' ', "%.*s", (int)len, line);
    char *end;
    strtod(line + i + 1, &end);
    cr_assert(end > line + i + 1 && end == line + len, "bad value: %.*s", (int)len, line);

    family *f = NULL;
    static const char *const sfx[] = { "_bucket", "_sum", "_count" };
    for (size_t s = 0; s < 3 && !f; s++) {
        size_t sl = strlen(sfx[s]);
        if (n > sl && memcmp(line + n - sl, sfx[s], sl) == 0) {
            family *h = fam(line, n - sl);
            if (h->typed && strcmp(h->type, "histogram") == 0)
                f = h;
        }
    }
    return f ? f : fam(line, n);
}

static void validate(const char *text)
{
    nfams = 0;
    family *cur = NULL;
    const char *p = text;
    cr_assert(*p, "empty exposition");
    while (*p) {
        const char *eol = strchr(p, '\n');
        cr_assert_not_null(eol, "last line lacks its newline");
        size_t len = (size_t)(eol - p);
        cr_assert_gt(len, 0, "empty line");
        family *f;
        if (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0) {
            size_t n = metric_name(p + 7);
            cr_assert_gt(n, 0);
            cr_assert_eq(p[7 + n], ' ');
            f = fam(p + 7, n);
            if (p[2] == 'H') {
                cr_assert(!f->help, "HELP twice for %s", f->name);
                f->help = true;
            } else {
                cr_assert(!f->typed, "TYPE twice for %s", f->name);
                f->typed = true;
                snprintf(f->type, sizeof f->type, "%.*s", (int)(len - 8 - n), p + 8 + n);
                cr_assert(!strcmp(f->type, "counter") || !strcmp(f->type, "gauge") ||
                              !strcmp(f->type, "histogram"),
                          "type %s", f->type);
            }
        } else {
            cr_assert_neq(p[0], '#');
            f = check_sample(p, len);
            cr_assert(f->typed, "sample before TYPE: %.*s", (int)len, p);
        }
        /* A family's lines must form one group. */
        if (f != cur) {
            cr_assert(!f->closed, "family %s split in two groups", f->name);
            if (cur)
                cur->closed = true;
            cur = f;
        }
        p = eol + 1;
    }
}

/* ---- tests ---- */

Test(metrics, render_is_valid_exposition_with_escaped_labels)
{
    cr_assert_eq(ot_metrics_init(2, routes, 2), 0);
    ot_metrics_worker(0);
    ot_metrics_http(0, 200, 120, 512);
    ot_metrics_http(1, 404, 80, 10);
    ot_metrics_http(7, 418, 3000000, 1); /* unknown route and code */
    ot_metrics_set(OT_G_PG_QUEUE, -3);
    ot_metrics_push_latency(40);
    char *t = render();
    validate(t);
    cr_assert(strstr(t, "route=\"weird\\\"ro\\\\ute\\nname\""), "%s", t);
    cr_assert_eq(sample(t, "ordertrack_http_requests_total{worker=\"0\",route=\"GET /orders/:id\","
                           "code=\"200\"}"), 1);
    cr_assert_eq(sample(t, "ordertrack_http_requests_total{worker=\"0\",route=\"unmatched\","
                           "code=\"other\"}"), 1);
    cr_assert_eq(sample(t, "ordertrack_pg_queue_length{worker=\"0\"}"), -3);
    cr_assert_eq(sample(t, "ordertrack_http_response_bytes_total{worker=\"0\","
                           "route=\"GET /orders/:id\"}"), 512);
    free(t);
}

Test(metrics, help_and_type_appear_once_per_family_even_with_many_series)
{
    cr_assert_eq(ot_metrics_init(3, routes, 2), 0);
    for (int w = 0; w < 3; w++) {
        ot_metrics_worker(w);
        ot_metrics_http(0, 200, 10, 1);
        ot_metrics_http(1, 503, 10, 1);
    }
    char *t = render();
    validate(t); /* asserts HELP/TYPE uniqueness and grouping */
    int n = 0;
    for (const char *p = t; (p = strstr(p, "# TYPE ordertrack_http_requests_total ")); p++)
        n++;
    cr_assert_eq(n, 1);
    free(t);
}

Test(metrics, histogram_buckets_are_cumulative_and_count_matches)
{
    cr_assert_eq(ot_metrics_init(1, routes, 1), 0);
    ot_metrics_worker(0);
    uint64_t lat[] = { 50, 300, 300, 2000, 3000000, 100 }; /* 100us sits exactly on le=0.0001 */
    for (size_t i = 0; i < OT_ARRAY_LEN(lat); i++)
        ot_metrics_http(0, 201, lat[i], 0);
    char *t = render();
    validate(t);
#define B(le) sample(t, "ordertrack_http_request_duration_seconds_bucket{worker=\"0\"," \
                        "route=\"GET /orders/:id\",le=\"" le "\"}")
    cr_assert_eq(B("0.0001"), 2);
    cr_assert_eq(B("0.00025"), 2);
    cr_assert_eq(B("0.0005"), 4);
    cr_assert_eq(B("0.0025"), 5);
    cr_assert_eq(B("2.5"), 5);
    cr_assert_eq(B("+Inf"), 6);
#undef B
    cr_assert_eq(sample(t, "ordertrack_http_request_duration_seconds_count{worker=\"0\","
                           "route=\"GET /orders/:id\"}"), 6);
    double sum = sample(t, "ordertrack_http_request_duration_seconds_sum{worker=\"0\","
                           "route=\"GET /orders/:id\"}");
    cr_assert_float_eq(sum, 3.00275, 1e-9);

    /* Every bucket series, route or push, is non-decreasing in le order. */
    double prev = -1;
    for (const char *p = t; (p = strstr(p, "_bucket{")); p++) {
        const char *le = strstr(p, "le=\"");
        double v = strtod(strchr(p, '}') + 2, NULL);
        if (strncmp(le, "le=\"0.0001\"", 11) == 0 || strncmp(le, "le=\"0.00005\"", 12) == 0)
            prev = -1; /* first bucket of a series */
        cr_assert_geq(v, prev);
        prev = v;
    }
    free(t);
}

/* Records us[] with rec, then checks the cumulative count at each le (and
 * +Inf and _count, which are n) of family `name`. */
static void check_histogram(void (*rec)(uint64_t), const uint64_t *us, int n, const char *name,
                            const char *const *les, const double *cum, int nles)
{
    cr_assert_eq(ot_metrics_init(1, NULL, 0), 0);
    ot_metrics_worker(0);
    for (int i = 0; i < n; i++)
        rec(us[i]);
    char *t = render();
    validate(t);
    char key[160];
    for (int i = 0; i < nles; i++) {
        snprintf(key, sizeof key, "%s_bucket{worker=\"0\",le=\"%s\"}", name, les[i]);
        cr_assert_eq(sample(t, key), cum[i], "%s", key);
    }
    snprintf(key, sizeof key, "%s_bucket{worker=\"0\",le=\"+Inf\"}", name);
    cr_assert_eq(sample(t, key), n);
    snprintf(key, sizeof key, "%s_count{worker=\"0\"}", name);
    cr_assert_eq(sample(t, key), n);
    free(t);
}

Test(metrics, push_latency_histogram_counts_per_bucket)
{
    static const uint64_t us[] = { 10, 60, 2000000 };
    static const char *const les[] = { "0.00005", "0.0001", "1" };
    static const double cum[] = { 1, 2, 2 };
    check_histogram(ot_metrics_push_latency, us, 3, "ordertrack_ws_push_latency_seconds", les, cum, 3);
}

Test(metrics, index_latency_histogram_counts_per_bucket)
{
    static const uint64_t us[] = { 4000, 300000, 60000000 };
    static const char *const les[] = { "0.005", "0.25", "0.5", "30" };
    static const double cum[] = { 1, 1, 2, 2 };
    check_histogram(ot_metrics_index_latency, us, 3, "ordertrack_search_index_latency_seconds", les, cum, 4);
}

Test(metrics, relay_publish_latency_histogram_spans_milliseconds_to_minutes)
{
    /* live: under the 1 ms resolution; linger + a broker round trip; a
     * backlog two minutes old; past the last bound */
    static const uint64_t us[] = { 800, 7000, 120000000, 400000000 };
    static const char *const les[] = { "0.001", "0.01", "60", "300" };
    static const double cum[] = { 1, 2, 2, 3 };
    check_histogram(ot_metrics_relay_latency, us, 4, "ordertrack_relay_publish_latency_seconds", les, cum, 4);
    char *t = render();
    cr_assert(strstr(t, "ordertrack_relay_publish_latency_seconds_sum{worker=\"0\"} 520.007800\n"));
    free(t);
}

Test(metrics, two_worker_slots_are_rendered_separately)
{
    cr_assert_eq(ot_metrics_init(2, routes, 1), 0);
    ot_metrics_worker(0);
    ot_metrics_inc(OT_C_CONNS_ACCEPTED, 3);
    ot_metrics_worker(1);
    ot_metrics_inc(OT_C_CONNS_ACCEPTED, 5);
    ot_metrics_set(OT_G_CONNS_OPEN, 2);
    char *t = render();
    validate(t);
    cr_assert_eq(sample(t, "ordertrack_connections_accepted_total{worker=\"0\"}"), 3);
    cr_assert_eq(sample(t, "ordertrack_connections_accepted_total{worker=\"1\"}"), 5);
    cr_assert_eq(sample(t, "ordertrack_connections_open{worker=\"0\"}"), 0);
    cr_assert_eq(sample(t, "ordertrack_connections_open{worker=\"1\"}"), 2);
    free(t);
}

Test(metrics, forked_worker_writes_are_visible_to_other_processes)
{
    cr_assert_eq(ot_metrics_init(2, routes, 1), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        ot_metrics_worker(1);
        ot_metrics_inc(OT_C_EVENTS_RECEIVED, 42);
        ot_metrics_http(0, 429, 1000, 7);
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    ot_metrics_worker(0);
    char *t = render();
    validate(t);
    cr_assert_eq(sample(t, "ordertrack_events_received_total{worker=\"1\"}"), 42);
    cr_assert_eq(sample(t, "ordertrack_http_requests_total{worker=\"1\",route=\"GET /orders/:id\","
                           "code=\"429\"}"), 1);
    cr_assert_eq(sample(t, "ordertrack_events_received_total{worker=\"0\"}"), 0);
    free(t);
}

Test(metrics, restarted_worker_keeps_counters_and_resets_gauges)
{
    cr_assert_eq(ot_metrics_init(1, routes, 1), 0);
    ot_metrics_worker(0);
    ot_metrics_inc(OT_C_PG_ERRORS, 2);
    ot_metrics_add(OT_G_WS_CONNS_OPEN, 4);
    ot_metrics_add(OT_G_WS_CONNS_OPEN, -1);
    char *t = render();
    cr_assert_eq(sample(t, "ordertrack_ws_connections_open{worker=\"0\"}"), 3);
    free(t);
    ot_metrics_worker(0); /* the replacement process takes the same slot */
    t = render();
    cr_assert_eq(sample(t, "ordertrack_pg_errors_total{worker=\"0\"}"), 2);
    cr_assert_eq(sample(t, "ordertrack_ws_connections_open{worker=\"0\"}"), 0);
    cr_assert_eq(sample(t, "ordertrack_worker_starts_total{worker=\"0\"}"), 2);
    free(t);
}

Test(metrics, kafka_consumer_lag_per_group_and_partition_and_reset_on_restart)
{
    cr_assert_eq(ot_metrics_init(2, routes, 1), 0);
    ot_metrics_worker(1);
    ot_metrics_kafka_lag(OT_LAG_WS, 0, 5); /* no group yet: not rendered */
    char *t = render();
    cr_assert_null(strstr(t, "ordertrack_kafka_consumer_lag{"));
    free(t);
    ot_metrics_kafka_group(OT_LAG_WS, "p.ordertrack-ws-\"host\"-42");
    ot_metrics_kafka_lag(OT_LAG_WS, 2, 17);
    ot_metrics_kafka_lag(OT_LAG_WS, 3, -1);  /* unknown: left out */
    ot_metrics_kafka_lag(OT_LAG_WS, OT_METRICS_MAX_LAG_PARTITIONS, 9); /* beyond the table: ignored */
    ot_metrics_kafka_lag(OT_METRICS_LAG_GROUPS, 1, 9); /* no such slot: ignored */
    ot_metrics_kafka_group(OT_LAG_SEARCH, "p.ordertrack-search");
    ot_metrics_kafka_lag(OT_LAG_SEARCH, 2, 4);
    t = render();
    validate(t);
    cr_assert_eq(sample(t, "ordertrack_kafka_consumer_lag{worker=\"1\",group=\"p.ordertrack-ws-\\\"host\\\"-42\","
                           "partition=\"0\"}"), 5);
    cr_assert_eq(sample(t, "ordertrack_kafka_consumer_lag{worker=\"1\",group=\"p.ordertrack-ws-\\\"host\\\"-42\","
                           "partition=\"2\"}"), 17);
    /* The search group of the same worker is a series of its own. */
    cr_assert_eq(sample(t, "ordertrack_kafka_consumer_lag{worker=\"1\",group=\"p.ordertrack-search\",partition=\"2\"}"),
                 4);
    cr_assert_null(strstr(t, "partition=\"3\""));
    cr_assert_null(strstr(t, "partition=\"1\""));
    free(t);
    ot_metrics_worker(1); /* a new process: a new group, no stale lag */
    t = render();
    cr_assert_null(strstr(t, "ordertrack_kafka_consumer_lag{"));
    free(t);
}

Test(metrics, recording_without_a_slot_is_a_no_op)
{
    cr_assert_eq(ot_metrics_init(1, routes, 1), 0);
    ot_metrics_worker(5); /* out of range: behaves like the master */
    ot_metrics_inc(OT_C_RATE_LIMITED, 9);
    ot_metrics_http(0, 200, 1, 1);
    char *t = render();
    cr_assert_eq(sample(t, "ordertrack_rate_limited_total{worker=\"0\"}"), 0);
    cr_assert_null(strstr(t, "ordertrack_http_requests_total{"));
    free(t);
}

Test(metrics, init_rejects_out_of_range_sizes)
{
    cr_assert_eq(ot_metrics_init(0, routes, 1), OT_ERR);
    cr_assert_eq(ot_metrics_init(OT_METRICS_MAX_WORKERS + 1, routes, 1), OT_ERR);
    cr_assert_eq(ot_metrics_init(1, routes, OT_METRICS_MAX_ROUTES + 1), OT_ERR);
    cr_assert_eq(ot_metrics_init(1, NULL, 2), OT_ERR);
}
