/* `ordertrack statements`: prints the SQL statements the worker's pool
 * prepares, one JSON object per line ({"name","params","readonly","sql"}),
 * so a DBA (or a test) can EXPLAIN exactly what the server runs. */
#ifndef OT_STMTCLI_H
#define OT_STMTCLI_H

int ot_stmt_cli_main(int argc, char **argv);

#endif
