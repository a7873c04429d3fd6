/* `ordertrack relay retry <orderId>`: publish a parked order's events (the
 * rows of relay_parked, sql/008) the way the relay does, then remove them, so
 * the relay lets the order flow again (it re-reads relay_parked every second
 * while an order is parked). Run it after fixing what made Kafka refuse them
 * (e.g. with a larger --kafka-max-message-bytes). A CLI command: blocking
 * libpq, and a loop of its own only to wait for librdkafka's reports. */
#ifndef OT_RELAYCLI_H
#define OT_RELAYCLI_H

/* argv[0] is "relay"; `relay retry ORDER_ID [serve options: --kafka-brokers,
 * --kafka-topic-prefix, --kafka-max-message-bytes, --database-url, ...]` with
 * JWT_SECRET as the server has it (the seal). Prints
 * {"orderId","republished","parked"} on stdout; exit 0, 1 (nothing parked
 * or a failure; the rows are kept), 2 (usage). */
int ot_relay_cli_main(int argc, char **argv);

#endif
