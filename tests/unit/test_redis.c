/* Unit tests for src/redis.c against the real Redis (OT_TEST_REDIS_URL,
 * default redis://127.0.0.1:6379), driven by a real ot_loop.
 *
 * Only client connections are killed (CLIENT KILL ID, found by the name each
 * link sets with CLIENT SETNAME); the server itself is never touched. Channel
 * and client names carry the test process id so parallel runs do not mix. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ot/event/loop.h"
#include "ot/adapters/redis.h"

static const char *test_url(void)
{
    const char *u = getenv("OT_TEST_REDIS_URL");
    return u && *u ? u : "redis://127.0.0.1:6379";
}

typedef struct {
    uint64_t got;
    uint64_t next; /* sequence number expected next */
    bool in_order;
    int ups, downs;
    char transitions[32]; /* 'U' / 'D' in the order state_cb reported them */
    char channel[128];
    size_t channel_len;
    char last[256];
    size_t last_len;
    ot_redis *self; /* set to free the instance from inside msg_cb */
} sink;

static void sink_init(sink *s)
{
    memset(s, 0, sizeof(*s));
    s->in_order = true;
}

static void on_msg(void *data, ot_str channel, ot_str message)
{
    sink *s = data;
    size_t n = channel.len < sizeof(s->channel) ? channel.len : sizeof(s->channel) - 1;
    memcpy(s->channel, channel.base, n);
    s->channel_len = channel.len;
    n = message.len < sizeof(s->last) ? message.len : sizeof(s->last);
    memcpy(s->last, message.base, n);
    s->last_len = message.len;
    /* "seq:N" payloads are checked for order; others are just recorded */
    if (message.len > 4 && message.len < 32 && memcmp(message.base, "seq:", 4) == 0) {
        char tmp[32];
        memcpy(tmp, message.base + 4, message.len - 4);
        tmp[message.len - 4] = '\0';
        uint64_t v = strtoull(tmp, NULL, 10);
        if (v != s->next)
            s->in_order = false;
        s->next = v + 1;
    }
    s->got++;
    if (s->self) {
        ot_redis_free(s->self);
        s->self = NULL;
    }
}

static void on_state(void *data, bool up)
{
    sink *s = data;
    size_t n = strlen(s->transitions);
    if (n + 1 < sizeof(s->transitions))
        s->transitions[n] = up ? 'U' : 'D';
    if (up)
        s->ups++;
    else
        s->downs++;
}

typedef bool pred_fn(void *arg);

/* Runs the loop until pred(arg) holds or cap_ms of wall time pass. */
static bool run_until(ot_loop *loop, pred_fn *pred, void *arg, uint64_t cap_ms)
{
    uint64_t end = ot_now_us() + cap_ms * 1000u;
    while (!(pred && pred(arg))) {
        if (ot_now_us() >= end)
            return false;
        ot_loop_run_once(loop, 20);
    }
    return true;
}

static void run_for(ot_loop *loop, uint64_t ms) { run_until(loop, NULL, NULL, ms); }

typedef struct {
    ot_redis *pub;
    sink *a, *b;
    uint64_t want;
    int ups;
} cond;

static bool ready(void *arg)
{
    cond *c = arg;
    return (!c->pub || ot_redis_pub_up(c->pub)) && (!c->a || c->a->ups >= c->ups) && (!c->b || c->b->ups >= c->ups);
}
static bool received_all(void *arg)
{
    cond *c = arg;
    return (!c->a || c->a->got >= c->want) && (!c->b || c->b->got >= c->want);
}
static bool pub_down(void *arg) { return !ot_redis_pub_up(arg); }
static bool pub_up(void *arg) { return ot_redis_pub_up(arg); }
static bool drained(void *arg)
{
    ot_redis_stats st;
    ot_redis_get_stats(arg, &st);
    return st.outstanding == 0;
}

static ot_redis_config test_cfg(void)
{
    ot_redis_config c;
    ot_redis_config_default(&c);
    c.url = test_url();
    c.backoff_min_ms = 50;
    c.backoff_max_ms = 400;
    return c;
}

/* Kills the client named `name` through a separate blocking connection.
 * Returns how many were killed. */
static int kill_client(const char *name)
{
    ot_redis_addr a;
    cr_assert_eq(ot_redis_parse_url(test_url(), &a), OT_OK);
    redisContext *c = a.is_unix ? redisConnectUnix(a.host) : redisConnect(a.host, a.port);
    cr_assert(c && !c->err, "blocking connect to redis failed");
    if (a.password[0]) {
        redisReply *ar = a.user[0] ? redisCommand(c, "AUTH %s %s", a.user, a.password)
                                   : redisCommand(c, "AUTH %s", a.password);
        freeReplyObject(ar);
    }
    redisReply *rep = redisCommand(c, "CLIENT LIST");
    cr_assert(rep && rep->type == REDIS_REPLY_STRING);
    char needle[160];
    snprintf(needle, sizeof(needle), " name=%s ", name);
    int killed = 0;
    for (char *line = rep->str; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        long long id;
        if (strstr(line, needle) && sscanf(line, "id=%lld", &id) == 1) {
            redisReply *k = redisCommand(c, "CLIENT KILL ID %lld", id);
            if (k && k->type == REDIS_REPLY_INTEGER)
                killed += (int)k->integer;
            freeReplyObject(k);
        }
        line = nl ? nl + 1 : NULL;
    }
    freeReplyObject(rep);
    redisFree(c);
    return killed;
}

/* ---- URL parsing ---- */

Test(redis_url, parses_scheme_host_port_and_db)
{
    ot_redis_addr a;
    cr_assert_eq(ot_redis_parse_url("redis://10.0.0.5:6380/3", &a), OT_OK);
    cr_assert_str_eq(a.host, "10.0.0.5");
    cr_assert_eq(a.port, 6380);
    cr_assert_eq(a.db, 3);
    cr_assert_not(a.is_unix);
    cr_assert_eq(ot_redis_parse_url("cache.local", &a), OT_OK);
    cr_assert_str_eq(a.host, "cache.local");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(a.db, -1);
    cr_assert_eq(ot_redis_parse_url("h:7000", &a), OT_OK);
    cr_assert_eq(a.port, 7000);
    cr_assert_eq(ot_redis_parse_url("redis://[::1]:6390/0", &a), OT_OK);
    cr_assert_str_eq(a.host, "::1");
    cr_assert_eq(a.port, 6390);
    cr_assert_eq(a.db, 0);
}

Test(redis_url, parses_credentials_with_percent_encoding)
{
    ot_redis_addr a;
    cr_assert_eq(ot_redis_parse_url("redis://:p%40ss@h:1/2", &a), OT_OK);
    cr_assert_str_eq(a.user, "");
    cr_assert_str_eq(a.password, "p@ss");
    cr_assert_str_eq(a.host, "h");
    cr_assert_eq(ot_redis_parse_url("redis://bob:pw@h", &a), OT_OK);
    cr_assert_str_eq(a.user, "bob");
    cr_assert_str_eq(a.password, "pw");
}

Test(redis_url, parses_unix_socket_paths)
{
    ot_redis_addr a;
    cr_assert_eq(ot_redis_parse_url("unix:///run/redis.sock", &a), OT_OK);
    cr_assert(a.is_unix);
    cr_assert_str_eq(a.host, "/run/redis.sock");
    cr_assert_eq(ot_redis_parse_url("unix:/tmp/r.sock?db=4", &a), OT_OK);
    cr_assert_str_eq(a.host, "/tmp/r.sock");
    cr_assert_eq(a.db, 4);
}

Test(redis_url, rejects_malformed_urls)
{
    ot_redis_addr a;
    const char *bad[] = { "redis://h:0",     "redis://h:65536", "redis://h:12x",     "redis://h/x",
                          "redis://:6379",   "rediss://h",      "http://h",          "redis://[::1",
                          "redis://h/99999", "unix:",           "unix:relative",     "redis://:%4@h",
                          "redis://:%00@h",  "redis://h:",      "redis://h:1/2?x=1" };
    for (size_t i = 0; i < OT_ARRAY_LEN(bad); i++)
        cr_assert_eq(ot_redis_parse_url(bad[i], &a), OT_ERR, "accepted %s", bad[i]);
    char longhost[400];
    memset(longhost, 'a', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    cr_assert_eq(ot_redis_parse_url(longhost, &a), OT_ERR);
}

Test(redis, new_rejects_bad_config)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.url = "redis://h:notaport";
    cr_assert_null(ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL));
    c = test_cfg();
    c.client_name = "has space";
    cr_assert_null(ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL));
    const char *empty[] = { "" };
    c = test_cfg();
    cr_assert_null(ot_redis_new(loop, &c, empty, 1, NULL, NULL, NULL));
    ot_loop_free(loop);
}

/* ---- against the real server ---- */

Test(redis, state_cb_reports_true_once_subscribed)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.ping_interval_ms = 100; /* several heartbeats within the test */
    char ch[64];
    snprintf(ch, sizeof(ch), "ot-test-%d-state", (int)getpid());
    const char *chans[] = { ch };
    sink s;
    sink_init(&s);
    ot_redis *r = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    cr_assert_not_null(r);
    cr_assert_not(ot_redis_sub_up(r), "subscribed before any round trip");
    cond k = { .a = &s, .ups = 1 };
    cr_assert(run_until(loop, ready, &k, 5000), "no state_cb(true): %s", ot_redis_last_error(r));
    cr_assert_str_eq(s.transitions, "U");
    cr_assert(ot_redis_sub_up(r));
    /* stays up across several heartbeats: each re-SUBSCRIBE must be answered */
    run_for(loop, 700);
    ot_redis_stats st;
    ot_redis_get_stats(r, &st);
    cr_assert_eq(st.link_drops, 0);
    cr_assert_str_eq(s.transitions, "U");
    ot_redis_free(r);
    ot_loop_free(loop);
}

Test(redis, ten_thousand_publishes_arrive_in_order_on_channel_and_pattern)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    char ch[64], pat[64];
    snprintf(ch, sizeof(ch), "ot-test-%d-order.x", (int)getpid());
    snprintf(pat, sizeof(pat), "ot-test-%d-order.*", (int)getpid());
    const char *chans[] = { ch }, *pats[] = { pat };
    sink sa, sb;
    sink_init(&sa);
    sink_init(&sb);
    ot_redis *pub = ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL);
    ot_redis *ra = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &sa);
    ot_redis *rb = ot_redis_new(loop, &c, pats, 1, on_msg, on_state, &sb);
    cr_assert(pub && ra && rb);
    cond k = { .pub = pub, .a = &sa, .b = &sb, .ups = 1, .want = 10000 };
    cr_assert(run_until(loop, ready, &k, 5000), "links not up: %s", ot_redis_last_error(pub));

    for (int i = 0; i < 10000; i++) {
        char m[32];
        int n = snprintf(m, sizeof(m), "seq:%d", i);
        cr_assert_eq(ot_redis_publish(pub, ot_str_c(ch), ot_str_make(m, (size_t)n)), OT_OK, "publish %d", i);
    }
    cr_assert(run_until(loop, received_all, &k, 20000), "got %llu / %llu", (unsigned long long)sa.got,
              (unsigned long long)sb.got);
    cr_assert(run_until(loop, drained, pub, 5000));
    cr_assert_eq(sa.got, 10000);
    cr_assert_eq(sb.got, 10000);
    cr_assert(sa.in_order && sb.in_order, "out of order");
    cr_assert_eq(sa.next, 10000);
    cr_assert_eq(sb.next, 10000);
    cr_assert_eq(sb.channel_len, strlen(ch), "pmessage must report the real channel");
    cr_assert_eq(memcmp(sb.channel, ch, strlen(ch)), 0);

    ot_redis_stats st;
    ot_redis_get_stats(pub, &st);
    cr_assert_eq(st.published, 10000);
    cr_assert_eq(st.publish_errors, 0);
    ot_redis_get_stats(ra, &st);
    cr_assert_eq(st.received, 10000);
    cr_assert_str_eq(sa.transitions, "U");
    ot_redis_free(pub);
    ot_redis_free(ra);
    ot_redis_free(rb);
    ot_loop_free(loop);
}

Test(redis, payload_with_nul_bytes_arrives_intact)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    char ch[64];
    snprintf(ch, sizeof(ch), "ot-test-%d-bin", (int)getpid());
    const char *chans[] = { ch };
    sink s;
    sink_init(&s);
    ot_redis *pub = ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL);
    ot_redis *sub = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    cond k = { .pub = pub, .a = &s, .ups = 1, .want = 1 };
    cr_assert(run_until(loop, ready, &k, 5000));
    static const char payload[] = { 'a', '\0', 'b', '\0', '\r', '\n', (char)0xff, '\0' };
    cr_assert_eq(ot_redis_publish(pub, ot_str_c(ch), ot_str_make(payload, sizeof(payload))), OT_OK);
    cr_assert(run_until(loop, received_all, &k, 5000));
    cr_assert_eq(s.last_len, sizeof(payload));
    cr_assert_eq(memcmp(s.last, payload, sizeof(payload)), 0);
    /* an empty message is a message too */
    k.want = 2;
    cr_assert_eq(ot_redis_publish(pub, ot_str_c(ch), ot_str_make(NULL, 0)), OT_OK);
    cr_assert(run_until(loop, received_all, &k, 5000));
    cr_assert_eq(s.last_len, 0);
    ot_redis_free(pub);
    ot_redis_free(sub);
    ot_loop_free(loop);
}

Test(redis, nothing_listening_stays_down_and_backs_off)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.url = "redis://127.0.0.1:1";
    c.backoff_min_ms = 20;
    c.backoff_max_ms = 160;
    const char *chans[] = { "ot-test-never" };
    sink s;
    sink_init(&s);
    ot_redis *r = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    cr_assert_not_null(r);
    run_for(loop, 1500);
    cr_assert_not(ot_redis_pub_up(r));
    cr_assert_not(ot_redis_sub_up(r));
    cr_assert_eq(s.ups + s.downs, 0, "state_cb called for a link that never came up");
    cr_assert_eq(ot_redis_publish(r, OT_STR("x"), OT_STR("y")), OT_ERR);
    ot_redis_stats st;
    ot_redis_get_stats(r, &st);
    cr_assert_eq(st.publish_errors, 1);
    /* Fixed 20 ms retries would make ~75 attempts per link in 1.5 s; doubling
     * to 160 ms (with jitter) makes about a dozen. */
    cr_assert(st.reconnects >= 6 && st.reconnects <= 50, "reconnects = %llu", (unsigned long long)st.reconnects);
    cr_assert_neq(ot_redis_last_error(r)[0], '\0');
    ot_redis_free(r);
    ot_loop_free(loop);
}

static int listen_local(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, backlog) == 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    return fd;
}

Test(redis, server_that_never_answers_is_dropped_after_one_ping_interval)
{
    /* The kernel completes the handshake into the backlog, nobody reads: the
     * link looks connected, but no PONG and no SUBSCRIBE confirmation come. */
    int port;
    int lfd = listen_local(64, &port);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.url = url;
    c.ping_interval_ms = 150;
    c.backoff_min_ms = 20;
    c.backoff_max_ms = 40;
    const char *chans[] = { "ot-test-void" };
    sink s;
    sink_init(&s);
    ot_redis *r = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    cr_assert(run_until(loop, pub_up, r, 2000));
    cr_assert_eq(ot_redis_publish(r, OT_STR("c"), OT_STR("into the void")), OT_OK);
    run_for(loop, 1000);
    ot_redis_stats st;
    ot_redis_get_stats(r, &st);
    cr_assert_geq(st.link_drops, 4, "link_drops = %llu", (unsigned long long)st.link_drops);
    cr_assert_eq(s.ups, 0);
    cr_assert_eq(st.published, 0);
    cr_assert_geq(st.publish_errors, 1, "the unanswered publish must count as lost once the link drops");
    ot_redis_free(r);
    ot_loop_free(loop);
    close(lfd);
}

Test(redis, connect_that_hangs_times_out)
{
    /* A full accept queue makes Linux drop SYNs, so connect(2) hangs. */
    int port;
    int lfd = listen_local(0, &port);
    int filler[2];
    for (int i = 0; i < 2; i++) {
        filler[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        connect(filler[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    usleep(50000);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.url = url;
    c.connect_timeout_ms = 100;
    c.backoff_min_ms = 20;
    c.backoff_max_ms = 40;
    ot_redis *r = ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL);
    run_for(loop, 1000);
    ot_redis_stats st;
    ot_redis_get_stats(r, &st);
    cr_assert_not(ot_redis_pub_up(r));
    cr_assert_geq(st.link_drops, 4, "link_drops = %llu (%s)", (unsigned long long)st.link_drops,
                  ot_redis_last_error(r));
    cr_assert(strstr(ot_redis_last_error(r), "connect timeout"), "%s", ot_redis_last_error(r));
    ot_redis_free(r);
    ot_loop_free(loop);
    close(filler[0]);
    close(filler[1]);
    close(lfd);
}

Test(redis, killed_subscriber_resubscribes_and_receives_again)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    char ch[64], name[64], subname[80];
    snprintf(ch, sizeof(ch), "ot-test-%d-ksub", (int)getpid());
    snprintf(name, sizeof(name), "ot-test-%d-ksub", (int)getpid());
    snprintf(subname, sizeof(subname), "%s-sub", name);
    const char *chans[] = { ch };
    sink s;
    sink_init(&s);
    ot_redis *pub = ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL);
    c.client_name = name;
    ot_redis *sub = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    cond k = { .pub = pub, .a = &s, .ups = 1, .want = 1 };
    cr_assert(run_until(loop, ready, &k, 5000));
    cr_assert_eq(ot_redis_publish(pub, ot_str_c(ch), OT_STR("before")), OT_OK);
    cr_assert(run_until(loop, received_all, &k, 5000));

    cr_assert_eq(kill_client(subname), 1);
    k.ups = 2;
    cr_assert(run_until(loop, ready, &k, 5000), "not re-subscribed: %s", ot_redis_last_error(sub));
    cr_assert_str_eq(s.transitions, "UDU");
    ot_redis_stats st;
    ot_redis_get_stats(sub, &st);
    cr_assert_geq(st.reconnects, 1);

    k.want = 2;
    cr_assert_eq(ot_redis_publish(pub, ot_str_c(ch), OT_STR("after")), OT_OK);
    cr_assert(run_until(loop, received_all, &k, 5000));
    cr_assert_eq(s.last_len, 5);
    cr_assert_eq(memcmp(s.last, "after", 5), 0);
    ot_redis_free(pub);
    ot_redis_free(sub);
    ot_loop_free(loop);
}

Test(redis, killed_publisher_refuses_then_recovers)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.backoff_min_ms = 300; /* long enough to observe the down window */
    char ch[64], name[64], pubname[80];
    snprintf(ch, sizeof(ch), "ot-test-%d-kpub", (int)getpid());
    snprintf(name, sizeof(name), "ot-test-%d-kpub", (int)getpid());
    snprintf(pubname, sizeof(pubname), "%s-pub", name);
    const char *chans[] = { ch };
    sink s;
    sink_init(&s);
    ot_redis *sub = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    c.client_name = name;
    ot_redis *pub = ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL);
    cond k = { .pub = pub, .a = &s, .ups = 1, .want = 1 };
    cr_assert(run_until(loop, ready, &k, 5000));
    run_for(loop, 50); /* let CLIENT SETNAME land */

    cr_assert_eq(kill_client(pubname), 1);
    cr_assert(run_until(loop, pub_down, pub, 3000), "publisher never noticed the kill");
    cr_assert_eq(ot_redis_publish(pub, ot_str_c(ch), OT_STR("lost")), OT_ERR);
    cr_assert(run_until(loop, pub_up, pub, 5000), "publisher did not reconnect: %s", ot_redis_last_error(pub));
    cr_assert_eq(ot_redis_publish(pub, ot_str_c(ch), OT_STR("again")), OT_OK);
    cr_assert(run_until(loop, received_all, &k, 5000));
    cr_assert_eq(s.got, 1, "the refused publish must not arrive");
    cr_assert_eq(memcmp(s.last, "again", 5), 0);
    cr_assert_str_eq(s.transitions, "U", "the subscriber link is independent");
    ot_redis_stats st;
    ot_redis_get_stats(pub, &st);
    cr_assert_eq(st.publish_errors, 1);
    cr_assert_geq(st.reconnects, 1);
    ot_redis_free(pub);
    ot_redis_free(sub);
    ot_loop_free(loop);
}

Test(redis, publish_beyond_max_outstanding_is_refused)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.max_outstanding = 5;
    ot_redis *pub = ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL);
    cr_assert(run_until(loop, pub_up, pub, 5000));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ot_redis_publish(pub, OT_STR("ot-test-cap"), OT_STR("m")), OT_OK);
    cr_assert_eq(ot_redis_publish(pub, OT_STR("ot-test-cap"), OT_STR("m")), OT_ERR);
    cr_assert(run_until(loop, drained, pub, 5000));
    cr_assert_eq(ot_redis_publish(pub, OT_STR("ot-test-cap"), OT_STR("m")), OT_OK, "room again after replies");
    cr_assert(run_until(loop, drained, pub, 5000));
    ot_redis_stats st;
    ot_redis_get_stats(pub, &st);
    cr_assert_eq(st.published, 6);
    cr_assert_eq(st.publish_errors, 1);
    ot_redis_free(pub);
    ot_loop_free(loop);
}

Test(redis, free_from_inside_msg_cb_is_deferred_safely)
{
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    char ch[64];
    snprintf(ch, sizeof(ch), "ot-test-%d-selffree", (int)getpid());
    const char *chans[] = { ch };
    sink s;
    sink_init(&s);
    ot_redis *pub = ot_redis_new(loop, &c, NULL, 0, NULL, NULL, NULL);
    ot_redis *sub = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    cond k = { .pub = pub, .a = &s, .ups = 1, .want = 1 };
    cr_assert(run_until(loop, ready, &k, 5000));
    s.self = sub;
    /* several messages in one read: callbacks after the free must be suppressed */
    for (int i = 0; i < 50; i++)
        cr_assert_eq(ot_redis_publish(pub, ot_str_c(ch), OT_STR("x")), OT_OK);
    cr_assert(run_until(loop, received_all, &k, 5000));
    run_for(loop, 200);
    cr_assert_eq(s.got, 1);
    cr_assert_eq(s.downs, 0, "no state_cb after free");
    ot_redis_free(pub);
    ot_loop_free(loop);
}

/* ---- AUTH / ACL from REDIS_URL, against a private redis-server started
 * here with --requirepass and an ACL user ---- */

static int auth_port;

static void auth_server_start(void)
{
    int p;
    int fd = listen_local(1, &p);
    close(fd);
    auth_port = p;
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "redis-server --daemonize yes --bind 127.0.0.1 --port %d --save '' --appendonly no "
             "--requirepass s3cret --logfile /dev/null",
             p);
    cr_assert_eq(system(cmd), 0);
    redisContext *c = NULL;
    for (int i = 0; i < 100; i++) {
        c = redisConnect("127.0.0.1", p);
        if (c && !c->err)
            break;
        if (c)
            redisFree(c);
        c = NULL;
        usleep(20000);
    }
    cr_assert_not_null(c, "private redis-server did not start");
    redisReply *rep = redisCommand(c, "AUTH s3cret");
    cr_assert(rep && rep->type == REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    rep = redisCommand(c, "ACL SETUSER alice on >alicepw ~* &* +@all");
    cr_assert(rep && rep->type == REDIS_REPLY_STATUS, "ACL SETUSER failed");
    freeReplyObject(rep);
    redisFree(c);
}

static void auth_server_stop(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %d -a s3cret --no-auth-warning shutdown nosave >/dev/null 2>&1", auth_port);
    if (system(cmd) != 0) {
        /* already gone */
    }
}

static void auth_roundtrip(const char *userinfo)
{
    char url[128];
    snprintf(url, sizeof(url), "redis://%s@127.0.0.1:%d/0", userinfo, auth_port);
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.url = url;
    const char *chans[] = { "ot-auth" };
    sink s;
    sink_init(&s);
    ot_redis *r = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    cr_assert_not_null(r);
    cond cd = { .pub = r, .a = &s, .ups = 1 };
    cr_assert(run_until(loop, ready, &cd, 3000), "not up with %s: %s", userinfo, ot_redis_last_error(r));
    cr_assert_eq(ot_redis_publish(r, OT_STR("ot-auth"), OT_STR("hello")), OT_OK);
    cd.want = 1;
    cr_assert(run_until(loop, received_all, &cd, 3000));
    ot_redis_stats st;
    ot_redis_get_stats(r, &st);
    cr_assert_eq(st.published, 1);
    ot_redis_free(r);
    ot_loop_free(loop);
}

Test(redis_auth, password_and_acl_user_authenticate_before_publish_and_subscribe, .init = auth_server_start,
     .fini = auth_server_stop)
{
    auth_roundtrip(":s3cret");
    auth_roundtrip("alice:alicepw");
}

static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

Test(redis_auth, wrong_password_keeps_link_down_with_one_log_line, .init = auth_server_start, .fini = auth_server_stop)
{
    char url[128], logpath[] = "/tmp/ot-redis-auth-XXXXXX";
    snprintf(url, sizeof(url), "redis://alice:wrong@127.0.0.1:%d", auth_port);
    int lfd = mkstemp(logpath);
    cr_assert_geq(lfd, 0);
    int saved = dup(2);
    dup2(lfd, 2); /* the logger writes to stderr */
    ot_loop *loop = ot_loop_new(1024);
    ot_redis_config c = test_cfg();
    c.url = url;
    c.backoff_min_ms = 20;
    c.backoff_max_ms = 80;
    const char *chans[] = { "ot-auth" };
    sink s;
    sink_init(&s);
    ot_redis *r = ot_redis_new(loop, &c, chans, 1, on_msg, on_state, &s);
    bool ever_up = false;
    uint64_t end = ot_now_us() + 1500000;
    while (ot_now_us() < end) {
        ot_loop_run_once(loop, 10);
        ever_up |= ot_redis_pub_up(r) || ot_redis_sub_up(r);
    }
    ot_redis_stats st;
    ot_redis_get_stats(r, &st);
    cr_assert_not(ever_up, "a refused link never counts as up");
    cr_assert_eq(s.ups, 0);
    cr_assert_eq(ot_redis_publish(r, OT_STR("x"), OT_STR("y")), OT_ERR);
    cr_assert_geq(st.reconnects, 6, "it keeps retrying with backoff: %llu", (unsigned long long)st.reconnects);
    ot_redis_free(r);
    ot_loop_free(loop);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(lfd);
    cr_assert_eq(count_lines(logpath, "redis pub:"), 1, "one log line per outage for the pub link");
    cr_assert_eq(count_lines(logpath, "redis sub:"), 1, "one log line per outage for the sub link");
    unlink(logpath);
    /* The server is fine and still answers the right password. */
    auth_roundtrip(":s3cret");
}
