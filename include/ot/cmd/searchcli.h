/* `ordertrack search reindex`: a new orders index built from PostgreSQL
 * without downtime (issue #14). While it runs the server's indexer keeps
 * writing live events, to the current index and to the new one:
 *
 *  1. create <p>-orders-r<ms> under the alias <p>-orders-next, which the
 *     indexer looks for every second (app/indexer.c: it then writes each
 *     order document to that concrete index too);
 *  2. record the position: max(seq) once the indexer has surely noticed,
 *     and wait until its cursor passes it: every later event reaches the
 *     new index through the indexer;
 *  3. copy every order from one REPEATABLE READ snapshot, version_type
 *     external with the row's version: the copy and the live writes
 *     converge whatever their order (the higher version wins, 409s are fine);
 *  4. one atomic _aliases call: <p>-orders moves to the new index,
 *     <p>-orders-next goes; then the old index is deleted (--keep-old: not).
 * The events index is not rebuilt (its documents never change).
 *
 * `ordertrack search parked` lists search_parked (sql/009) as JSON lines;
 * `ordertrack search retry` sends the parked documents of an order or a seq
 * again, built as the indexer builds them (ot_indexer_meta, the indexer's
 * lookup, ot_search_bulk_event/order) and read back with ot_search_bulk, and
 * deletes the rows of those Elasticsearch accepted (2xx, or 409: already
 * there or a newer state).
 * A CLI command: blocking libpq and libcurl easy. */
#ifndef OT_SEARCHCLI_H
#define OT_SEARCHCLI_H

/* argv[0] is "search". Returns the exit code: 0, 1 (error printed), 2 (usage). */
int ot_search_cli_main(int argc, char **argv);

#endif
