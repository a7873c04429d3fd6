/* `ordertrack user add`: create or update a user from the command line (demo
 * accounts, the first admin). A CLI command, so it uses blocking libpq. */
#ifndef OT_USERCLI_H
#define OT_USERCLI_H

#include "ot/codec/user_fields.h"
#include "ot/core/common.h"

/* argv[0] is "user"; `user add --email E --name N --password P [--admin]
 * [--database-url URL]`, or `--password-stdin` to read the password from the
 * first line of stdin (keeps it out of `ps`). An existing email (compared
 * case-insensitively) has its name, role and password replaced, so running it
 * twice is harmless. Prints {"id","email","name","role"} on stdout.
 * Returns the process exit code: 0, or 1 (error printed to stderr). */
int ot_user_cli_main(int argc, char **argv);

/* Input is checked with ot_user_check_email/name/password
 * (ot/codec/user_fields.h), the rules POST /auth/register applies. */

#endif
