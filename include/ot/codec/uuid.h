/* UUID text (RFC 9562 §4: 8-4-4-4-12 hex digits, either case). Pure. */
#ifndef OT_UUID_H
#define OT_UUID_H

#include "ot/core/common.h"

/* Canonical text form, so bad ids are a 400 (or a refused token) before any query. */
bool ot_uuid_valid(ot_str s);
/* Text -> 16 bytes; OT_ERR unless ot_uuid_valid(s). */
int ot_uuid_to_bytes(ot_str s, uint8_t out[16]);
/* 16 bytes -> 36 lower-case characters and a NUL (how PostgreSQL prints uuid). */
void ot_uuid_to_text(const uint8_t id[16], char out[37]);

#endif
