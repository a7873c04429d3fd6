/* `ordertrack migrate`: applies sql/NNN_*.sql files not yet recorded in
 * schema_migrations, in file-name order, each in its own transaction together
 * with its record. A CLI command, so it uses blocking libpq. */
#ifndef OT_MIGRATE_H
#define OT_MIGRATE_H

#include <stddef.h>

/* Session advisory lock held while migrating, so concurrent `migrate` runs
 * (several hosts starting at once) apply each file exactly once. Other
 * modules taking advisory locks must pick different keys. */
#define OT_MIGRATE_LOCK_KEY 4242001001LL

/* argv[0] is "migrate"; flags: [--database-url URL] [--sql-dir DIR] [--help].
 * Returns the process exit code: 0 on success (also when nothing was pending),
 * 1 on any error (already printed to stderr). */
int ot_migrate_main(int argc, char **argv);

/* The directory migrations are read from when --sql-dir is not given:
 * ./sql, else <exe dir>/../share/ordertrack/sql, else <exe dir>/../sql.
 * Writes into out (NUL-terminated); 0 when found, -1 otherwise. */
int ot_migrate_find_sql_dir(char *out, size_t cap);

#endif
