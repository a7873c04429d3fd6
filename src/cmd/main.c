/* ordertrack: command dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/app/indexer.h"
#include "ot/core/config.h"
#include "ot/core/log.h"
#include "ot/codec/pwhash.h"
#include "ot/cmd/master.h"
#include "ot/cmd/migrate.h"
#include "ot/cmd/searchcli.h"
#include "ot/cmd/stmtcli.h"
#include "ot/cmd/relaycli.h"
#include "ot/cmd/usercli.h"

static void usage(FILE *out)
{
    fprintf(out, "ordertrack — real-time order tracking server\n\n"
                 "usage:\n"
                 "  ordertrack serve [options]      run the server (see `ordertrack serve --help`)\n"
                 "  ordertrack migrate [--database-url URL] [--sql-dir DIR]\n"
                 "                                  apply sql/NNN_*.sql migrations once each\n"
                 "  ordertrack user add --email E --name N --password P [--admin] [--database-url URL]\n"
                 "                                  create or update a user\n"
                 "  ordertrack search reindex [--database-url URL] [--elasticsearch-url URL] [--es-index-prefix P]\n"
                 "                                  rebuild the orders index from PostgreSQL, no downtime\n"
                 "  ordertrack search parked [--order ID | --seq N] [--database-url URL]\n"
                 "                                  list the documents Elasticsearch refused for good\n"
                 "  ordertrack search retry (--order ID | --seq N) [reindex's options]\n"
                 "                                  index them again from PostgreSQL, unpark the accepted\n"
                 "  ordertrack relay retry ORDER_ID [serve options]\n"
                 "                                  publish a parked order's events to Kafka, unpark it\n"
                 "  ordertrack statements           print the SQL the server prepares (JSON lines)\n"
                 "  ordertrack --help | --version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ordertrack 0.1.0\n");
        return 0;
    }
    if (!strcmp(argv[1], "migrate"))
        return ot_migrate_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "user"))
        return ot_user_cli_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "search"))
        return ot_search_cli_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "relay"))
        return ot_relay_cli_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "statements"))
        return ot_stmt_cli_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "serve") != 0) {
        fprintf(stderr, "ordertrack: unknown command %s\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            ot_config_usage(stdout);
            return 0;
        }
    }
    static ot_config cfg;
    ot_config_defaults(&cfg);
    if (ot_config_from_env(&cfg) < 0 || ot_config_from_args(&cfg, argc, argv, 2) < 0)
        return 2;
    ot_log_level lvl;
    if (ot_log_parse_level(cfg.log_level, &lvl) < 0) {
        fprintf(stderr, "ordertrack: bad log level %s\n", cfg.log_level);
        return 2;
    }
    ot_log_set_level(lvl);
    ot_log_set_worker(-1);
    if (ot_config_load_secrets(&cfg) < 0)
        return 2;
    ot_pwhash_set_cost(cfg.scrypt_log2n);
    if (cfg.elasticsearch_url && !ot_es_prefix_valid(cfg.es_index_prefix)) {
        fprintf(stderr, "ordertrack: --es-index-prefix: lowercase letters, digits, '-' and '_', 1..%d bytes, "
                        "not starting with '-' or '_'\n", OT_ES_PREFIX_MAX - 1);
        return 2;
    }
    if ((cfg.tls_cert == NULL) != (cfg.tls_key == NULL)) {
        fprintf(stderr, "ordertrack: --tls-cert and --tls-key go together\n");
        return 2;
    }
    return ot_master_main(&cfg);
}
