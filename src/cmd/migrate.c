/* `ordertrack migrate`: schema migrations from sql/NNN_*.sql.
 *
 * Blocking libpq on purpose: this is a one-shot CLI command, never the server
 * loop. Each file runs in its own transaction together with its
 * schema_migrations row, so a failed file leaves no trace and the next run
 * retries it; a session advisory lock makes concurrent runs apply each file
 * exactly once (the second waits, then finds the work done). */
#include "ot/cmd/migrate.h"
#include "ot/core/config.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ot/core/buf.h"
#include "ot/core/common.h"
#include "ot/core/log.h"

/* A migration file bigger than this is a mistake (a data dump), not a schema. */
#define OT_MIGRATE_MAX_FILE (16u * 1024 * 1024)

static void migrate_usage(FILE *out)
{
    fputs("usage: ordertrack migrate [--database-url URL] [--sql-dir DIR]\n"
          "\n"
          "Applies the sql/NNN_*.sql files not yet recorded in schema_migrations,\n"
          "in file-name order, each in its own transaction.\n"
          "\n"
          "  --database-url URL  libpq URI or conninfo (default: $DATABASE_URL)\n"
          "  --sql-dir DIR       migrations directory (default: ./sql, else\n"
          "                      <exe dir>/../share/ordertrack/sql, else <exe dir>/../sql)\n",
          out);
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int ot_migrate_find_sql_dir(char *out, size_t cap)
{
    if (is_dir("sql")) {
        if (snprintf(out, cap, "sql") >= (int)cap)
            return -1;
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    static const char *const rel[] = { "/../share/ordertrack/sql", "/../sql" };
    for (size_t i = 0; i < OT_ARRAY_LEN(rel); i++) {
        if (snprintf(out, cap, "%s%s", exe, rel[i]) >= (int)cap)
            continue;
        if (is_dir(out))
            return 0;
    }
    return -1;
}

/* NNN_name.sql: at least one leading digit, then '_', ending in ".sql".
 * Anything else in the directory (README, editor backups) is ignored. */
static int migration_filter(const struct dirent *d)
{
    const char *s = d->d_name;
    size_t n = strlen(s), i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i > 0 && i < n && s[i] == '_' && n > i + 5 && strcmp(s + n - 4, ".sql") == 0;
}

static int read_file(const char *path, ot_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return OT_ERR;
    char chunk[8192];
    size_t got;
    int rc = OT_OK;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len + got > OT_MIGRATE_MAX_FILE || ot_buf_append(out, chunk, got) != 0) {
            rc = OT_ERR;
            errno = EFBIG;
            break;
        }
    }
    if (ferror(f))
        rc = OT_ERR;
    fclose(f);
    /* Simple-query text must be NUL-terminated for libpq. */
    if (rc == OT_OK && ot_buf_append(out, "", 1) != 0)
        rc = OT_ERR;
    return rc;
}

/* libpq's own messages end in a newline (and may span lines); a log line must not. */
static const char *conn_error(PGconn *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", c ? PQerrorMessage(c) : "out of memory");
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
    return buf;
}

/* Logs the server's error with its SQLSTATE and where it happened. */
static void log_pg_error(const char *what, const PGresult *r, PGconn *c)
{
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *ctx = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
    const char *pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
    char ebuf[512];
    if (!msg)
        msg = conn_error(c, ebuf, sizeof ebuf);
    ot_logf(OT_LOG_ERROR, "migrate: %s: %s%s%s%s%s%s%s%s%s%s", what, msg,
            state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "",
            detail ? "; detail: " : "", detail ? detail : "", pos ? "; at character " : "",
            pos ? pos : "", ctx ? "; context: " : "", ctx ? ctx : "");
}

/* Runs a command that returns no rows; 0 or OT_ERR (logged). */
static int exec_ok(PGconn *c, const char *what, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? OT_OK : OT_ERR;
    if (rc != OT_OK)
        log_pg_error(what, r, c);
    PQclear(r);
    return rc;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 1 applied, 0 already recorded (by a run that held the lock before us), OT_ERR. */
static int apply_one(PGconn *c, const char *dir, const char *file)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
        ot_logf(OT_LOG_ERROR, "migrate: path too long: %s/%s", dir, file);
        return OT_ERR;
    }
    /* The version is the file name without ".sql": renaming a file after it
     * was applied would re-apply it, which the rule "never rename" prevents. */
    size_t vlen = strlen(file) - 4;
    char version[256];
    if (vlen >= sizeof version) {
        ot_logf(OT_LOG_ERROR, "migrate: file name too long: %s", file);
        return OT_ERR;
    }
    memcpy(version, file, vlen);
    version[vlen] = '\0';

    const char *params[1] = { version };
    PGresult *r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL,
                               params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_pg_error("reading schema_migrations", r, c);
        PQclear(r);
        return OT_ERR;
    }
    int done = PQntuples(r) > 0;
    PQclear(r);
    if (done)
        return 0;

    ot_buf sql = OT_BUF_INIT;
    if (read_file(path, &sql) != OT_OK) {
        ot_logf(OT_LOG_ERROR, "migrate: cannot read %s: %s", path, strerror(errno));
        ot_buf_free(&sql);
        return OT_ERR;
    }
    double t0 = now_ms();
    if (exec_ok(c, "BEGIN", "BEGIN") != OT_OK) {
        ot_buf_free(&sql);
        return OT_ERR;
    }
    int rc = exec_ok(c, file, sql.data);
    ot_buf_free(&sql);
    if (rc == OT_OK) {
        r = PQexecParams(c, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, NULL,
                         params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            log_pg_error("recording migration", r, c);
            rc = OT_ERR;
        }
        PQclear(r);
    }
    if (rc == OT_OK)
        rc = exec_ok(c, "COMMIT", "COMMIT");
    if (rc != OT_OK) {
        /* Best effort: the connection is closed right after anyway. */
        PQclear(PQexec(c, "ROLLBACK"));
        ot_logf(OT_LOG_ERROR, "migrate: %s failed, rolled back", file);
        return OT_ERR;
    }
    ot_logf(OT_LOG_INFO, "migration applied: %s (%.1f ms)", file, now_ms() - t0);
    return 1;
}

/* Server WARNINGs (after client_min_messages) become log lines too, so stderr
 * stays one JSON object per line. */
static void on_notice(void *arg, const PGresult *r)
{
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    ot_logf(OT_LOG_WARN, "migrate: %s %s: %s", (const char *)arg, sev ? sev : "NOTICE",
            msg ? msg : "");
}

static int run(PGconn *c, const char *dir)
{
    PQsetNoticeReceiver(c, on_notice, "server");
    /* NOTICEs such as "relation already exists, skipping" are noise here. */
    if (exec_ok(c, "setup", "SET client_min_messages = warning") != OT_OK)
        return OT_ERR;
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_lock(%lld)", (long long)OT_MIGRATE_LOCK_KEY);
    if (exec_ok(c, "taking the migration lock", lock) != OT_OK)
        return OT_ERR;
    /* Created under the lock: two concurrent CREATE TABLE IF NOT EXISTS can
     * still collide on the catalog's unique index. */
    if (exec_ok(c, "creating schema_migrations",
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())") != OT_OK)
        return OT_ERR;

    struct dirent **names = NULL;
    int n = scandir(dir, &names, migration_filter, alphasort);
    if (n < 0) {
        ot_logf(OT_LOG_ERROR, "migrate: cannot list %s: %s", dir, strerror(errno));
        return OT_ERR;
    }
    int applied = 0, rc = OT_OK;
    for (int i = 0; i < n; i++) {
        if (rc == OT_OK) {
            int a = apply_one(c, dir, names[i]->d_name);
            if (a < 0)
                rc = OT_ERR;
            else
                applied += a;
        }
        free(names[i]);
    }
    free(names);
    if (rc == OT_OK && n == 0) {
        ot_logf(OT_LOG_ERROR, "migrate: no NNN_*.sql files in %s", dir);
        rc = OT_ERR;
    }
    if (rc == OT_OK)
        ot_logf(OT_LOG_INFO, "migrate: done, %d applied, %d total", applied, n);
    /* The advisory lock is session-scoped: PQfinish releases it. */
    return rc;
}

int ot_migrate_main(int argc, char **argv)
{
    /* Static: a URL read from a file lives as long as the process. */
    static const char *url;
    url = getenv("DATABASE_URL");
    if (ot_secret_resolve(&url, getenv("DATABASE_URL_FILE"), "DATABASE_URL", "database_url") < 0)
        return 1;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            migrate_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--database-url") && i + 1 < argc) {
            url = argv[++i];
        } else if (!strncmp(a, "--database-url=", 15)) {
            url = a + 15;
        } else if (!strcmp(a, "--sql-dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strncmp(a, "--sql-dir=", 10)) {
            dir = a + 10;
        } else {
            fprintf(stderr, "ordertrack migrate: unknown or incomplete option '%s'\n", a);
            migrate_usage(stderr);
            return 1;
        }
    }
    if (!url || !*url) {
        fprintf(stderr, "ordertrack migrate: no database: set DATABASE_URL or pass --database-url\n");
        return 1;
    }
    char found[PATH_MAX];
    if (!dir) {
        if (ot_migrate_find_sql_dir(found, sizeof found) != 0) {
            fprintf(stderr, "ordertrack migrate: no sql directory found (./sql or next to the "
                            "binary); pass --sql-dir\n");
            return 1;
        }
        dir = found;
    } else if (!is_dir(dir)) {
        fprintf(stderr, "ordertrack migrate: --sql-dir %s is not a directory\n", dir);
        return 1;
    }

    /* Defaults first, then the URL: with expand_dbname its settings win. */
    const char *keys[] = { "application_name", "connect_timeout", "dbname", NULL };
    const char *vals[] = { "ordertrack-migrate", "10", url, NULL };
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        char ebuf[512];
        ot_logf(OT_LOG_ERROR, "migrate: cannot connect: %s", conn_error(c, ebuf, sizeof ebuf));
        PQfinish(c);
        return 1;
    }
    int rc = run(c, dir);
    PQfinish(c);
    return rc == OT_OK ? 0 : 1;
}
