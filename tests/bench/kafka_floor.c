/* kafka_floor: the broker's floor for the push path, behind
 * scripts/bench-kafka.sh (docs/BENCHMARKS.md "Kafka relay"). Not a test.
 *
 * One process, one thread: a producer configured like the relay's
 * (src/adapters/kafka.c ot_kafka_new: idempotent, so acks=all, linger.ms 5,
 * murmur2_random, librdkafka's defaults otherwise) and a consumer configured
 * like each worker's feed (ot_kafka_consumer_new: a group of its own,
 * subscribe, fetch.wait.max.ms 100, offsets stored by hand and committed every
 * second, statistics every second, defaults otherwise), both woken through a
 * pipe by librdkafka's queue io events as on the server's loop. Messages go
 * out open-loop at --rate, each like a relayed event: keyed by one of --keys
 * order ids, --bytes of value, three headers, and (--twin, the default) a
 * second copy to a second topic as the relay writes order.events and the type
 * topic. The value starts with the message's index and its send time
 * (CLOCK_MONOTONIC, one clock in one process); latency = produce call ->
 * message handed out by rd_kafka_consumer_poll. The first --warmup seconds are
 * not counted; a counted message that never arrives fails the run (exit 1).
 *
 *   kafka_floor --brokers H:P --topic T [--partitions 6] [--rate 1000]
 *     [--count 10000] [--warmup 1] [--linger-ms 5] [--fetch-wait-ms 100]
 *     [--keys 2750] [--bytes 420] [--twin 1] [--idempotent 1] [--timeout 60]
 * prints one line: floor n=... p50_us=... p99_us=... p999_us=... max_us=... lost=...
 * The topics (T and T.twin) are created with --partitions by the admin API. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    const char *brokers, *topic;
    int partitions, rate, count, keys, bytes, twin, timeout_s;
    double warmup;
    int linger_ms, fetch_wait_ms, idempotent;
} O = { .partitions = 6, .rate = 1000, .count = 10000, .keys = 2750, .bytes = 420, .twin = 1, .timeout_s = 60,
        .warmup = 1, .linger_ms = 5, .fetch_wait_ms = 100, .idempotent = 1 };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fail(const char *what, const char *why)
{
    fprintf(stderr, "kafka_floor: %s: %s\n", what, why);
    exit(2);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        fail(k, err);
}

static int delivered, dr_errors;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err)
        dr_errors++;
    else
        delivered++;
}

/* The feed parses these for its up/down state; here only their cost counts. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk, (void)json, (void)len, (void)opaque;
    return 0;
}

static bool assigned;

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        assigned = parts->cnt > 0;
    } else {
        rd_kafka_assign(rk, NULL);
        assigned = false;
    }
}

static rd_kafka_t *producer(void)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char linger[16];
    snprintf(linger, sizeof linger, "%d", O.linger_ms);
    set(c, "bootstrap.servers", O.brokers);
    set(c, "client.id", "kafka_floor");
    /* --idempotent 0 is for finding where the time goes (idempotence caps
     * the requests in flight per broker connection at 5): acks=all still. */
    set(c, "enable.idempotence", O.idempotent ? "true" : "false");
    set(c, "acks", "all");
    set(c, "partitioner", "murmur2_random");
    set(c, "message.timeout.ms", "300000");
    set(c, "linger.ms", linger);
    set(c, "queue.buffering.max.messages", "100000");
    set(c, "message.max.bytes", "1000000");
    rd_kafka_conf_set_dr_msg_cb(c, on_dr);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk)
        fail("producer", err);
    return rk;
}

static rd_kafka_t *consumer(const char *group)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char wait[16];
    snprintf(wait, sizeof wait, "%d", O.fetch_wait_ms);
    set(c, "bootstrap.servers", O.brokers);
    set(c, "client.id", "kafka_floor-consumer");
    set(c, "group.id", group);
    set(c, "enable.auto.offset.store", "false");
    set(c, "enable.auto.commit", "true");
    set(c, "auto.commit.interval.ms", "1000");
    /* The feed says latest (a new process needs no history); on topics made
     * for this run earliest loses nothing produced before the assignment, and
     * the warm-up is not counted anyway. */
    set(c, "auto.offset.reset", "earliest");
    set(c, "fetch.wait.max.ms", wait);
    set(c, "statistics.interval.ms", "1000");
    rd_kafka_conf_set_stats_cb(c, on_stats);
    rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk)
        fail("consumer", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, O.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        fail("subscribe", rd_kafka_err2str(e));
    return rk;
}

static void create_topics(rd_kafka_t *rk, char (*names)[256], int n)
{
    rd_kafka_NewTopic_t *t[2];
    char err[512];
    for (int i = 0; i < n; i++)
        if (!(t[i] = rd_kafka_NewTopic_new(names[i], O.partitions, 1, err, sizeof err)))
            fail("topic", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, t, (size_t)n, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev)
        fail("create topics", "no answer in 30 s");
    if (rd_kafka_event_error(ev))
        fail("create topics", rd_kafka_event_error_string(ev));
    size_t nr = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nr);
    for (size_t i = 0; i < nr; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            fail(rd_kafka_topic_result_name(res[i]), rd_kafka_err2str(e));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < n; i++)
        rd_kafka_NewTopic_destroy(t[i]);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void usage(void)
{
    fprintf(stderr, "usage: kafka_floor --brokers H:P --topic T [--partitions 6] [--rate 1000] [--count 10000]\n"
                    "  [--warmup 1] [--linger-ms 5] [--fetch-wait-ms 100] [--keys 2750] [--bytes 420] [--twin 1]\n"
                    "  [--idempotent 1] [--timeout 60]\n");
    exit(2);
}

static int num(const char *s, int lo, int hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < lo || v > hi)
        usage();
    return (int)v;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--brokers"))
            O.brokers = v;
        else if (!strcmp(a, "--topic"))
            O.topic = v;
        else if (!strcmp(a, "--partitions"))
            O.partitions = num(v, 1, 10000);
        else if (!strcmp(a, "--rate"))
            O.rate = num(v, 1, 1000000);
        else if (!strcmp(a, "--count"))
            O.count = num(v, 1, 100000000);
        else if (!strcmp(a, "--warmup"))
            O.warmup = num(v, 0, 3600);
        else if (!strcmp(a, "--linger-ms"))
            O.linger_ms = num(v, 0, 900000);
        else if (!strcmp(a, "--fetch-wait-ms"))
            O.fetch_wait_ms = num(v, 0, 300000);
        else if (!strcmp(a, "--keys"))
            O.keys = num(v, 1, 10000000);
        else if (!strcmp(a, "--bytes"))
            O.bytes = num(v, 64, 1000000);
        else if (!strcmp(a, "--twin"))
            O.twin = num(v, 0, 1);
        else if (!strcmp(a, "--idempotent"))
            O.idempotent = num(v, 0, 1);
        else if (!strcmp(a, "--timeout"))
            O.timeout_s = num(v, 1, 86400);
        else
            usage();
    }
    if (!O.brokers || !O.topic || strlen(O.topic) > 200)
        usage();

    char topics[2][256], group[300];
    snprintf(topics[0], sizeof topics[0], "%s", O.topic);
    snprintf(topics[1], sizeof topics[1], "%s.twin", O.topic);
    snprintf(group, sizeof group, "%s-floor-%d", O.topic, (int)getpid());
    rd_kafka_t *p = producer();
    create_topics(p, topics, 1 + O.twin);
    rd_kafka_t *c = consumer(group);

    /* Both queues signal one pipe, as both handles do on the server's loop. */
    int pp[2];
    if (pipe2(pp, O_NONBLOCK | O_CLOEXEC) < 0)
        fail("pipe", strerror(errno));
    rd_kafka_queue_t *pq = rd_kafka_queue_get_main(p), *cq = rd_kafka_queue_get_consumer(c);
    rd_kafka_queue_io_event_enable(pq, pp[1], "1", 1);
    rd_kafka_queue_io_event_enable(cq, pp[1], "1", 1);

    int warm = (int)(O.rate * O.warmup), total = warm + O.count;
    int64_t *sent = calloc((size_t)total, sizeof(int64_t)), *got = calloc((size_t)total, sizeof(int64_t));
    char(*key)[37] = calloc((size_t)O.keys, sizeof(*key));
    char *val = malloc((size_t)O.bytes);
    if (!sent || !got || !key || !val)
        fail("calloc", strerror(errno));
    srand((unsigned)getpid());
    for (int i = 0; i < O.keys; i++)
        snprintf(key[i], sizeof key[i], "%08x-%04x-4%03x-8%03x-%012x", rand(), rand() & 0xffff, rand() & 0xfff,
                 rand() & 0xfff, rand());
    memset(val, 'x', (size_t)O.bytes);
    static const char mac[] = "3f9a0c1e5b7d2468ace013579bdf2468ace013579bdf2468ace013579bdf2468";

    int64_t deadline = now_ns() + (int64_t)O.timeout_s * 1000000000;
    int next = 0, received = 0, late = 0;
    int64_t period = 1000000000LL / O.rate, t0 = 0, last_sent = 0;
    for (;;) {
        int64_t now = now_ns();
        if (now >= deadline)
            break;
        if (!t0 && assigned)
            t0 = now + 100000000; /* the fetchers get their offsets first */
        while (t0 && next < total && now >= t0 + (int64_t)next * period) {
            if (now - (t0 + (int64_t)next * period) > 1000000)
                late++; /* more than 1 ms behind its schedule: this loop was starved */
            int n = snprintf(val, (size_t)O.bytes, "%d %" PRId64 " ", next, now);
            val[n] = 'x';
            const char *k = key[rand() % O.keys];
            char eid[37];
            snprintf(eid, sizeof eid, "%036d", next);
            rd_kafka_headers_t *h[2];
            for (int t = 0; t <= O.twin; t++) {
                h[t] = rd_kafka_headers_new(3);
                rd_kafka_header_add(h[t], "eventId", -1, eid, 36);
                rd_kafka_header_add(h[t], "type", -1, "order.status_changed", -1);
                rd_kafka_header_add(h[t], "ot-mac", -1, mac, 64);
                rd_kafka_resp_err_t e = rd_kafka_producev(
                    p, RD_KAFKA_V_TOPIC(topics[t]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_KEY((void *)k, 36), RD_KAFKA_V_VALUE(val, (size_t)O.bytes), RD_KAFKA_V_HEADERS(h[t]),
                    RD_KAFKA_V_END);
                if (e)
                    fail("produce", rd_kafka_err2str(e));
            }
            sent[next++] = now;
            last_sent = now;
            now = now_ns();
        }
        if (next == total && (received == total || now > last_sent + 5000000000LL))
            break;
        int64_t until = next < total && t0 ? t0 + (int64_t)next * period : now + 50000000;
        int ms = (int)((until - now + 999999) / 1000000);
        if (!assigned && ms > 10)
            ms = 10; /* the assignment comes through the consumer poll, not the pipe */
        struct pollfd pfd = { .fd = pp[0], .events = POLLIN };
        poll(&pfd, 1, ms < 0 ? 0 : ms);
        char drain[256];
        while (read(pp[0], drain, sizeof drain) > 0)
            ;
        rd_kafka_poll(p, 0);
        rd_kafka_message_t *m;
        while ((m = rd_kafka_consumer_poll(c, 0))) {
            int64_t t = now_ns();
            if (!m->err && m->len > 0) {
                int idx = atoi(m->payload);
                if (idx >= 0 && idx < next && !got[idx]) {
                    got[idx] = t;
                    received++;
                }
            }
            if (!m->err) { /* stored by hand, as the feed does once it is delivered */
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
                    m->offset + 1;
                rd_kafka_offsets_store(c, l);
                rd_kafka_topic_partition_list_destroy(l);
            }
            rd_kafka_message_destroy(m);
        }
    }

    int64_t *lat = malloc(sizeof(int64_t) * (size_t)(O.count ? O.count : 1));
    if (!lat)
        fail("malloc", strerror(errno));
    int nl = 0, lost = 0;
    for (int i = warm; i < total; i++) {
        if (got[i])
            lat[nl++] = got[i] - sent[i];
        else
            lost++;
    }
    rd_kafka_flush(p, 5000);
    rd_kafka_poll(p, 0);
    if (nl == 0) {
        fprintf(stderr, "kafka_floor: nothing consumed (sent %d, assigned %d)\n", next, assigned);
        return 1;
    }
    qsort(lat, (size_t)nl, sizeof(*lat), cmp_i64);
#define PCT(q) (lat[(size_t)((double)(nl - 1) * (q))] / 1000.0)
    double secs = next > warm + 1 ? (double)(sent[next - 1] - sent[warm]) / 1e9 : 0;
    printf("floor rate=%d achieved=%.0f n=%d p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f lost=%d late=%d "
           "delivered=%d dr_errors=%d linger_ms=%d fetch_wait_ms=%d partitions=%d twin=%d idempotent=%d\n",
           O.rate, secs > 0 ? (next - 1 - warm) / secs : 0, nl, PCT(0.50), PCT(0.99), PCT(0.999),
           lat[nl - 1] / 1000.0, lost, late, delivered, dr_errors, O.linger_ms, O.fetch_wait_ms, O.partitions,
           O.twin, O.idempotent);
#undef PCT
    rd_kafka_queue_io_event_enable(pq, -1, NULL, 0);
    rd_kafka_queue_io_event_enable(cq, -1, NULL, 0);
    rd_kafka_queue_destroy(pq);
    rd_kafka_queue_destroy(cq);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    return lost || dr_errors ? 1 : 0;
}
