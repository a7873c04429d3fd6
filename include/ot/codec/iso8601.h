/* ISO-8601 / RFC 3339 timestamps <-> integer microseconds since the Unix
 * epoch (UTC). Pure: no locale, no time zone database, no libc time calls. */
#ifndef OT_ISO8601_H
#define OT_ISO8601_H

#include "ot/core/common.h"

/* Accepts "YYYY-MM-DD" (midnight UTC) and "YYYY-MM-DDTHH:MM[:SS[.f]]" followed
 * by "Z" or "+HH:MM"/"-HH:MM" (1..6 fraction digits, 't'/'z' too), years
 * 0001..9999, real calendar days (leap years), hours 00..23, no leap second.
 * Returns 0 and sets *us, or OT_ERR. */
int ot_iso8601_parse(ot_str s, int64_t *us);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (the API's format: milliseconds, truncated) into
 * out (>= 25 bytes); returns its length, 0 outside years 0001..9999. */
size_t ot_iso8601_format(int64_t us, char *out);

#endif
