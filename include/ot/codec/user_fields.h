/* The rules for a user's name, email and password: one definition for the
 * HTTP API (POST /auth/register) and the user CLI, so an account one accepts
 * the other accepts too. Pure. */
#ifndef OT_USER_FIELDS_H
#define OT_USER_FIELDS_H

#include "ot/core/common.h"

#define OT_USER_EMAIL_MAX 254     /* RFC 5321 §4.5.3.1.3 path limit minus "<>" */
#define OT_USER_EMAIL_LOCAL_MAX 64 /* RFC 5321 §4.5.3.1.1 */
#define OT_USER_NAME_MAX 200
#define OT_USER_PASSWORD_MIN 8
#define OT_USER_PASSWORD_MAX 1024 /* bounds the hashing work one request can ask for */

/* Each returns NULL when the value is acceptable, else a short reason
 * ("must contain exactly one '@'") to follow the field's name.
 *
 * Email: local@domain, where local is an RFC 5322 dot-atom of 1..64 ASCII
 * bytes (letters, digits, !#$%&'*+-/=?^_`{|}~ and single inner dots), and the
 * domain a fully qualified host name: at least two dot-separated labels of
 * 1..63 letters, digits and inner hyphens (IDNs in their xn-- form). So
 * "a@b." and "ops@localhost" are refused, everywhere. */
const char *ot_user_check_email(ot_str email);
/* Name: 1..200 bytes of UTF-8 with something besides spaces, and no control
 * characters: C0, DEL, C1 (U+0080..U+009F), line/paragraph separators
 * (U+2028/9) or bidirectional overrides (U+202A..U+202E, U+2066..U+2069),
 * which would let a name rewrite a dashboard line. */
const char *ot_user_check_name(ot_str name);
/* Password: 8..1024 bytes, no NUL. */
const char *ot_user_check_password(ot_str password);

#endif
