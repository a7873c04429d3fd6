/* `ordertrack relay retry`: see relaycli.h. */
#include "ot/cmd/relaycli.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/adapters/kafka.h"
#include "ot/app/relay.h"
#include "ot/codec/uuid.h"
#include "ot/core/buf.h"
#include "ot/core/config.h"
#include "ot/core/log.h"

/* Rows parked while a round ran are taken by the next one. */
#define OT_RETRY_ROUNDS 5
/* After the last round: the relay re-reads relay_parked every second; an
 * event it parked just before that (the order still parked in its memory)
 * shows up within this. */
#define OT_RETRY_SETTLE_MS 2500

static const char *const Q_PARKED =
    "SELECT p.seq, ot_event_json(e)::text FROM relay_parked p JOIN order_events e ON e.seq = p.seq "
    "WHERE p.order_id = $1::uuid ORDER BY p.seq";
static const char *const Q_DELETE = "DELETE FROM relay_parked WHERE seq = ANY($1::bigint[])";

typedef struct {
    ot_loop *loop;
    int due, failed;
    char why[256];
    bool freed;
    ot_timer deadline;
} retry_run;

static void on_report(void *data, const ot_kafka_report *r)
{
    retry_run *run = data;
    run->due--;
    if (r->err) {
        run->failed++;
        snprintf(run->why, sizeof run->why, "%s", r->errstr ? r->errstr : "delivery failed");
    }
    if (run->due <= 0)
        ot_loop_stop(run->loop);
}

static void on_fatal(void *data, const char *why)
{
    retry_run *run = data;
    run->failed++;
    snprintf(run->why, sizeof run->why, "%s", why);
    ot_loop_stop(run->loop);
}

static void on_deadline(ot_loop *loop, ot_timer *t)
{
    retry_run *run = t->data;
    snprintf(run->why, sizeof run->why, "no delivery report in time");
    run->failed++;
    ot_loop_stop(loop);
}

static void on_freed(ot_loop *loop, void *data)
{
    ((retry_run *)data)->freed = true;
    ot_loop_stop(loop);
}

static void nothing(void *data) {}

static void usage(FILE *out)
{
    fputs("usage: ordertrack relay retry ORDER_ID [serve options]\n"
          "\n"
          "Publishes the events of a parked order (relay_parked) to Kafka as the relay does\n"
          "(order.events and the type topic, same key, headers and seal), then removes them\n"
          "from relay_parked so the relay lets the order flow again within a second. Fix what\n"
          "Kafka refused first (e.g. pass a larger --kafka-max-message-bytes here and to the\n"
          "servers). Needs --kafka-brokers (or KAFKA_BROKERS), the database and JWT_SECRET as\n"
          "the servers have them. Prints {\"orderId\",\"republished\",\"parked\"}.\n",
          out);
}

/* One round: publish every parked row of the order; remove them once all
 * reports came back fine. Returns rows published, or -1 (reason printed). */
static int round_once(PGconn *db, ot_loop *loop, ot_kafka *k, ot_relay_out *out, retry_run *run, const char *oid,
                      uint32_t timeout_ms)
{
    const char *vals[1] = { oid };
    PGresult *res = PQexecParams(db, Q_PARKED, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "ordertrack: %s", PQerrorMessage(db));
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    ot_buf seqs = OT_BUF_INIT;
    int rc = ot_buf_append_str(&seqs, "{");
    run->due = 0;
    run->failed = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        ot_event ev;
        ot_str json = ot_str_make(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
        if (ot_event_parse(json, &ev) < 0) {
            fprintf(stderr, "ordertrack: seq %s: unparsable event\n", PQgetvalue(res, i, 0));
            rc = -1;
            break;
        }
        int rc1, rc2;
        run->due += ot_relay_out_produce(out, k, &ev, NULL, &rc1, &rc2);
        if (rc1 != OT_OK || rc2 != OT_OK) {
            fprintf(stderr, "ordertrack: seq %s (%zu bytes) refused by the producer%s\n", PQgetvalue(res, i, 0),
                    json.len, rc1 == OT_KAFKA_EREFUSED || rc2 == OT_KAFKA_EREFUSED ? " (too large?)" : "");
            rc = -1;
        }
        rc |= ot_buf_printf(&seqs, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
    }
    PQclear(res);
    if (run->due > 0) {
        ot_timer_start(loop, &run->deadline, timeout_ms + 5000);
        ot_loop_run(loop); /* until every report is back (or the deadline) */
        ot_timer_stop(loop, &run->deadline);
    }
    if (rc == 0 && (run->failed || run->due > 0)) {
        fprintf(stderr, "ordertrack: not published: %s\n", run->why);
        rc = -1;
    }
    if (rc == 0 && n > 0) {
        rc = ot_buf_append(&seqs, "}", 2); /* with its NUL: a C string for libpq */
        const char *dv[1] = { (const char *)seqs.data };
        res = rc == 0 ? PQexecParams(db, Q_DELETE, 1, NULL, dv, NULL, NULL, 0) : NULL;
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "ordertrack: published, but not removed from relay_parked: %s", PQerrorMessage(db));
            rc = -1;
        }
        PQclear(res);
    }
    ot_buf_free(&seqs);
    return rc == 0 ? n : -1;
}

static int count_parked(PGconn *db, const char *oid)
{
    const char *vals[1] = { oid };
    PGresult *res = PQexecParams(db, "SELECT count(*) FROM relay_parked WHERE order_id = $1::uuid", 1, NULL, vals,
                                 NULL, NULL, 0);
    int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

static void wait_ms(ot_loop *loop, ot_timer *t, uint32_t ms)
{
    ot_timer_start(loop, t, ms);
    ot_loop_run(loop);
}

static void on_settled(ot_loop *loop, ot_timer *t) { ot_loop_stop(loop); }

static int retry(ot_config *cfg, const char *oid)
{
    PGconn *db = PQconnectdb(cfg->database_url);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "ordertrack: database: %s", PQerrorMessage(db));
        PQfinish(db);
        return 1;
    }
    ot_loop *loop = ot_loop_new(64);
    if (!loop) {
        PQfinish(db);
        return 1;
    }
    ot_loop_set_pool_size(loop, 1); /* FIFO: the destroy's completion comes before the marker's */
    retry_run run = { .loop = loop };
    ot_timer_init(&run.deadline, on_deadline, &run);
    ot_kafka_config kc;
    ot_kafka_config_default(&kc);
    kc.brokers = cfg->kafka_brokers;
    kc.message_timeout_ms = cfg->kafka_message_timeout_ms;
    kc.max_message_bytes = cfg->kafka_max_message_bytes;
    kc.client_id = "ordertrack-relay-retry";
    static const ot_kafka_ops ops = { .delivered = on_report, .fatal = on_fatal };
    char err[512];
    ot_kafka *k = ot_kafka_new(loop, &kc, &ops, &run, err, sizeof err);
    if (!k) {
        fprintf(stderr, "ordertrack: Kafka producer: %s\n", err);
        ot_loop_free(loop);
        PQfinish(db);
        return 1;
    }
    ot_relay_out out;
    ot_relay_out_init(&out, cfg);
    int total = 0, rc = 0;
    ot_timer settle;
    ot_timer_init(&settle, on_settled, NULL);
    for (int round = 0; round < OT_RETRY_ROUNDS; round++) {
        int n = round_once(db, loop, k, &out, &run, oid, kc.message_timeout_ms);
        if (n < 0) {
            rc = 1;
            break;
        }
        if (n == 0 && round == 0) {
            fprintf(stderr, "ordertrack: order %s has nothing parked\n", oid);
            rc = 1;
            break;
        }
        total += n;
        if (n == 0) {
            /* Nothing left: let the relay re-read relay_parked, then look again. */
            wait_ms(loop, &settle, OT_RETRY_SETTLE_MS);
            if (count_parked(db, oid) == 0)
                break;
        }
    }
    int left = count_parked(db, oid);
    if (rc == 0)
        printf("{\"orderId\":\"%s\",\"republished\":%d,\"parked\":%d}\n", oid, total, left);
    ot_relay_out_free(&out);
    ot_kafka_free(k);
    if (ot_loop_queue_work(loop, nothing, on_freed, &run) == OT_OK)
        while (!run.freed)
            ot_loop_run(loop);
    ot_loop_free(loop);
    PQfinish(db);
    return rc == 0 && left == 0 ? 0 : 1;
}

int ot_relay_cli_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "retry") != 0 || argc < 3) {
        usage(stderr);
        return 2;
    }
    const char *oid = argv[2];
    if (!ot_uuid_valid(ot_str_c(oid))) {
        fprintf(stderr, "ordertrack: %s is not an order id (a UUID)\n", oid);
        return 2;
    }
    static ot_config cfg;
    ot_config_defaults(&cfg);
    if (ot_config_from_env(&cfg) < 0 || ot_config_from_args(&cfg, argc, argv, 3) < 0 ||
        ot_config_load_secrets(&cfg) < 0)
        return 2;
    if (!cfg.kafka_brokers || !cfg.database_url) {
        fprintf(stderr, "ordertrack: relay retry needs --kafka-brokers and --database-url (or their variables)\n");
        return 2;
    }
    ot_log_set_level(OT_LOG_WARN);
    return retry(&cfg, oid);
}
