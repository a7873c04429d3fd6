/* `ordertrack user add`: create or update a user from the command line (demo
 * accounts, the first admin). A CLI command, so it uses blocking libpq. */
#ifndef OT_USERCLI_H
#define OT_USERCLI_H

#include "ot/core/common.h"

/* Input limits, checked before anything touches the database. */
#define OT_USER_EMAIL_MAX 254     /* RFC 5321 §4.5.3.1.3 path limit minus "<>" */
#define OT_USER_NAME_MAX 200
#define OT_USER_PASSWORD_MIN 8
#define OT_USER_PASSWORD_MAX 1024 /* bounds the hashing work one request can ask for */

/* argv[0] is "user"; `user add --email E --name N --password P [--admin]
 * [--database-url URL]`, or `--password-stdin` to read the password from the
 * first line of stdin (keeps it out of `ps`). An existing email (compared
 * case-insensitively) has its name, role and password replaced, so running it
 * twice is harmless. Prints {"id","email","name","role"} on stdout.
 * Returns the process exit code: 0, or 1 (error printed to stderr). */
int ot_user_cli_main(int argc, char **argv);

/* Validation shared with the HTTP handlers; each returns NULL when the value is
 * acceptable, else a short reason ("must contain exactly one '@'"). */
const char *ot_user_check_email(ot_str email);
const char *ot_user_check_name(ot_str name);
const char *ot_user_check_password(ot_str password);

#endif
