/* `ordertrack user add`: blocking libpq, one upsert, JSON on stdout. */
#include "ot/cmd/usercli.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ot/codec/pwhash.h"

static void user_usage(FILE *out)
{
    fputs("usage: ordertrack user add --email E --name N (--password P | --password-stdin)\n"
          "                           [--admin] [--database-url URL]\n"
          "\n"
          "Creates a user, or updates the name, role and password of the user with\n"
          "that email (compared case-insensitively). Prints the user as JSON.\n"
          "\n"
          "  --email E           local@domain.tld, at most 254 bytes (the API's rule)\n"
          "  --name N            1..200 bytes of UTF-8, no control characters\n"
          "  --password P        8..1024 bytes (visible in `ps`; prefer --password-stdin)\n"
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

static int user_add(int argc, char **argv)
{
    const char *url = getenv("DATABASE_URL");
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
    if ((why = ot_user_check_password(ot_str_make(password, pwlen)))) {
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
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        user_usage(stdout);
        return 0;
    }
    fprintf(stderr, "ordertrack user: unknown subcommand%s%s\n", argc >= 2 ? " " : "",
            argc >= 2 ? argv[1] : "");
    user_usage(stderr);
    return 1;
}
