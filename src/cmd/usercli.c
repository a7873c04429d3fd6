/* `ordertrack user add`: blocking libpq, one upsert, JSON on stdout. */
#include "ot/cmd/usercli.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/codec/pwhash.h"
#include "ot/core/config.h"

static void user_usage(FILE *out)
{
    fputs("usage: ordertrack user add --email E --name N (--password P | --password-stdin)\n"
          "                           [--admin] [--database-url URL]\n"
          "       ordertrack user list [--database-url URL]\n"
          "       ordertrack user disable|enable|promote|demote [--email] E [--database-url URL]\n"
          "       ordertrack user passwd [--email] E (--password P | --password-stdin) [--database-url URL]\n"
          "\n"
          "list prints one JSON object per user (oldest first); disable/enable set\n"
          "whether the account may log in; promote/demote set role ADMIN/CUSTOMER;\n"
          "passwd sets a new password. Each prints the changed user as JSON and\n"
          "exits 1 when no user has that email. The database URL may also come from\n"
          "DATABASE_URL_FILE or the systemd credential database_url.\n"
          "\n"
          "Creates a user, or updates the name, role and password of the user with\n"
          "that email (compared case-insensitively). Prints the user as JSON.\n"
          "\n"
          "  --email E           local@domain.tld, at most 254 bytes (the API's rule)\n"
          "  --name N            1..200 bytes of UTF-8, no control characters\n"
          "  --password P        8..1024 bytes, not the email, not a common password\n"
          "                      (visible in `ps`; prefer --password-stdin)\n"
          "  --password-stdin    read the password from the first line of stdin\n"
          "  --admin             role ADMIN (default CUSTOMER)\n"
          "  --database-url URL  libpq URI or conninfo (default: $DATABASE_URL)\n",
          out);
}

/* First line of stdin without its line ending; the buffer holds one byte more
 * than the limit so an over-long password is reported, not silently cut. */
static int read_password_stdin(char *buf, size_t cap, size_t *len)
{
    if (!fgets(buf, (int)cap, stdin))
        return OT_ERR;
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *len = n;
    return OT_OK;
}

/* Static: a URL read from a file lives as long as the process. */
static const char *g_url;

static const char *db_url_default(void)
{
    g_url = getenv("DATABASE_URL");
    if (ot_secret_resolve(&g_url, getenv("DATABASE_URL_FILE"), "DATABASE_URL", "database_url") < 0)
        return NULL;
    return g_url;
}

static PGconn *connect_db(const char *cmd, const char *url)
{
    if (!url || !*url) {
        fprintf(stderr, "ordertrack user %s: no database: set DATABASE_URL or pass --database-url\n", cmd);
        return NULL;
    }
    const char *keys[] = { "application_name", "connect_timeout", "dbname", NULL };
    const char *vals[] = { "ordertrack-user", "10", url, NULL };
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "ordertrack user %s: cannot connect: %s", cmd, c ? PQerrorMessage(c) : "out of memory\n");
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void report_sql_error(const char *cmd, PGconn *c, PGresult *r)
{
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (msg)
        fprintf(stderr, "ordertrack user %s: %s (SQLSTATE %s)\n", cmd, msg, state ? state : "?");
    else
        fprintf(stderr, "ordertrack user %s: %s", cmd, PQerrorMessage(c));
    if (state && (!strcmp(state, "42P01") || !strcmp(state, "42703")))
        fprintf(stderr, "hint: run `ordertrack migrate` first\n");
}

#define USER_JSON \
    " json_build_object('id', id, 'email', email, 'name', name, 'role', role, 'active', active)::text"

/* One UPDATE by email; prints the changed row. */
static int user_update(const char *cmd, const char *url, const char *sql, int nparams, const char *const *params)
{
    PGconn *c = connect_db(cmd, url);
    if (!c)
        return 1;
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    int rc = 1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        report_sql_error(cmd, c, r);
    } else if (PQntuples(r) != 1) {
        fprintf(stderr, "ordertrack user %s: no user with email %s\n", cmd, params[0]);
    } else {
        printf("%s\n", PQgetvalue(r, 0, 0));
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

static int user_list(int argc, char **argv)
{
    const char *url = db_url_default();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--database-url") && i + 1 < argc) {
            url = argv[++i];
        } else {
            fprintf(stderr, "ordertrack user list: unknown or incomplete option '%s'\n", argv[i]);
            return 1;
        }
    }
    PGconn *c = connect_db("list", url);
    if (!c)
        return 1;
    PGresult *r = PQexec(c, "SELECT" USER_JSON " FROM users ORDER BY created_at, id");
    int rc = 1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        report_sql_error("list", c, r);
    } else {
        for (int i = 0; i < PQntuples(r); i++)
            printf("%s\n", PQgetvalue(r, i, 0));
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

/* disable|enable|promote|demote|passwd: an email (positional or --email),
 * --database-url, and for passwd a password. */
static int user_change(const char *cmd, int argc, char **argv)
{
    const char *url = db_url_default(), *email = NULL, *password = NULL;
    bool pw_stdin = false, is_passwd = !strcmp(cmd, "passwd");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--database-url") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(a, "--email") && i + 1 < argc)
            email = argv[++i];
        else if (is_passwd && !strcmp(a, "--password") && i + 1 < argc)
            password = argv[++i];
        else if (is_passwd && !strcmp(a, "--password-stdin"))
            pw_stdin = true;
        else if (a[0] != '-' && !email)
            email = a;
        else {
            fprintf(stderr, "ordertrack user %s: unknown or incomplete option '%s'\n", cmd, a);
            user_usage(stderr);
            return 1;
        }
    }
    const char *why;
    if (!email) {
        fprintf(stderr, "ordertrack user %s: an email is required\n", cmd);
        return 1;
    }
    if ((why = ot_user_check_email(ot_str_c(email)))) {
        fprintf(stderr, "ordertrack user %s: email %s\n", cmd, why);
        return 1;
    }
    if (!is_passwd) {
        const char *sql = !strcmp(cmd, "disable") ? "UPDATE users SET active = false"
                          : !strcmp(cmd, "enable") ? "UPDATE users SET active = true"
                          : !strcmp(cmd, "promote") ? "UPDATE users SET role = 'ADMIN'"
                                                    : "UPDATE users SET role = 'CUSTOMER'";
        char q[512];
        snprintf(q, sizeof q, "%s WHERE lower(email) = lower($1) RETURNING" USER_JSON, sql);
        const char *params[1] = { email };
        return user_update(cmd, url, q, 1, params);
    }
    static char pwbuf[OT_USER_PASSWORD_MAX + 2];
    size_t pwlen = 0;
    if (pw_stdin == (password != NULL)) {
        fprintf(stderr, "ordertrack user passwd: give exactly one of --password and --password-stdin\n");
        return 1;
    }
    if (pw_stdin) {
        if (read_password_stdin(pwbuf, sizeof pwbuf, &pwlen) != OT_OK) {
            fprintf(stderr, "ordertrack user passwd: no password on stdin\n");
            return 1;
        }
        password = pwbuf;
    } else {
        pwlen = strlen(password);
    }
    if ((why = ot_password_check(password, pwlen, email, OT_USER_PASSWORD_MIN))) {
        fprintf(stderr, "ordertrack user passwd: password %s\n", why);
        return 1;
    }
    char hash[OT_PWHASH_MAX];
    int hrc = ot_pwhash_hash(password, pwlen, hash);
    explicit_bzero(pwbuf, sizeof pwbuf);
    if (hrc != 0) {
        fprintf(stderr, "ordertrack user passwd: hashing the password failed\n");
        return 1;
    }
    const char *params[2] = { email, hash };
    int rc = user_update(cmd, url,
                         "UPDATE users SET password_hash = $2 WHERE lower(email) = lower($1) RETURNING" USER_JSON, 2,
                         params);
    explicit_bzero(hash, sizeof hash);
    return rc;
}


static int user_add(int argc, char **argv)
{
    const char *url = db_url_default();
    const char *email = NULL, *name = NULL, *password = NULL;
    bool admin = false, pw_stdin = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            user_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--admin")) {
            admin = true;
            continue;
        } else if (!strcmp(a, "--password-stdin")) {
            pw_stdin = true;
            continue;
        } else if (!strcmp(a, "--email")) {
            dst = &email;
        } else if (!strcmp(a, "--name")) {
            dst = &name;
        } else if (!strcmp(a, "--password")) {
            dst = &password;
        } else if (!strcmp(a, "--database-url")) {
            dst = &url;
        }
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "ordertrack user add: unknown or incomplete option '%s'\n", a);
            user_usage(stderr);
            return 1;
        }
        *dst = argv[++i];
    }

    static char pwbuf[OT_USER_PASSWORD_MAX + 2];
    size_t pwlen = 0;
    if (pw_stdin) {
        if (password) {
            fprintf(stderr, "ordertrack user add: --password and --password-stdin exclude each other\n");
            return 1;
        }
        if (read_password_stdin(pwbuf, sizeof pwbuf, &pwlen) != OT_OK) {
            fprintf(stderr, "ordertrack user add: no password on stdin\n");
            return 1;
        }
        password = pwbuf;
    } else if (password) {
        pwlen = strlen(password);
    }
    if (!email || !name || !password) {
        fprintf(stderr, "ordertrack user add: --email, --name and a password are required\n");
        user_usage(stderr);
        return 1;
    }
    const char *why;
    if ((why = ot_user_check_email(ot_str_c(email)))) {
        fprintf(stderr, "ordertrack user add: email %s\n", why);
        return 1;
    }
    if ((why = ot_user_check_name(ot_str_c(name)))) {
        fprintf(stderr, "ordertrack user add: name %s\n", why);
        return 1;
    }
    if ((why = ot_user_check_password(ot_str_make(password, pwlen))) ||
        (why = ot_password_check(password, pwlen, email, OT_USER_PASSWORD_MIN))) {
        fprintf(stderr, "ordertrack user add: password %s\n", why);
        return 1;
    }
    if (!url || !*url) {
        fprintf(stderr, "ordertrack user add: no database: set DATABASE_URL or pass --database-url\n");
        return 1;
    }

    char hash[OT_PWHASH_MAX];
    if (ot_pwhash_hash(password, pwlen, hash) != 0) {
        fprintf(stderr, "ordertrack user add: hashing the password failed\n");
        return 1;
    }
    if (pw_stdin)
        explicit_bzero(pwbuf, sizeof pwbuf);

    const char *keys[] = { "application_name", "connect_timeout", "dbname", NULL };
    const char *vals[] = { "ordertrack-user", "10", url, NULL };
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "ordertrack user add: cannot connect: %s", c ? PQerrorMessage(c) : "out of memory\n");
        PQfinish(c);
        return 1;
    }
    /* Upsert on the same expression as the unique index, so "Admin@x" and
     * "admin@x" are one account; the stored spelling of the email is kept.
     * xmax = 0 only on a freshly inserted row version: tells insert from update. */
    const char *params[4] = { name, email, admin ? "ADMIN" : "CUSTOMER", hash };
    PGresult *r = PQexecParams(
        c,
        "INSERT INTO users (name, email, role, password_hash) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT ((lower(email))) DO UPDATE"
        " SET name = EXCLUDED.name, role = EXCLUDED.role, password_hash = EXCLUDED.password_hash"
        " RETURNING (xmax = 0),"
        " json_build_object('id', id, 'email', email, 'name', name, 'role', role)::text",
        4, NULL, params, NULL, NULL, 0);
    explicit_bzero(hash, sizeof hash);
    int rc = 1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (msg)
            fprintf(stderr, "ordertrack user add: %s (SQLSTATE %s)\n", msg, state ? state : "?");
        else
            fprintf(stderr, "ordertrack user add: %s", PQerrorMessage(c));
        if (state && !strcmp(state, "42P01"))
            fprintf(stderr, "hint: run `ordertrack migrate` first\n");
    } else {
        bool inserted = PQgetvalue(r, 0, 0)[0] == 't';
        fprintf(stderr, "ordertrack user add: %s user %s\n", inserted ? "created" : "updated existing",
                email);
        printf("%s\n", PQgetvalue(r, 0, 1));
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int ot_user_cli_main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "add"))
        return user_add(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return user_list(argc - 1, argv + 1);
    static const char *const changes[] = { "disable", "enable", "promote", "demote", "passwd" };
    for (size_t i = 0; argc >= 2 && i < OT_ARRAY_LEN(changes); i++)
        if (!strcmp(argv[1], changes[i]))
            return user_change(changes[i], argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        user_usage(stdout);
        return 0;
    }
    fprintf(stderr, "ordertrack user: unknown subcommand%s%s\n", argc >= 2 ? " " : "",
            argc >= 2 ? argv[1] : "");
    user_usage(stderr);
    return 1;
}
