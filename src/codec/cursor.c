#include "ot/codec/cursor.h"

#include <stdio.h>

#include "ot/codec/base64.h"
#include "ot/codec/uuid.h"

size_t ot_cursor_encode(const char *us, const char *id, char out[OT_CURSOR_MAX])
{
    char raw[64];
    int rl = snprintf(raw, sizeof raw, "%s|%s", us, id);
    /* 4/3 of raw plus the NUL must fit out. */
    if (rl < 0 || (size_t)rl >= sizeof raw || ((size_t)rl + 2) / 3 * 4 + 1 > OT_CURSOR_MAX)
        return 0;
    size_t n = ot_b64_encode((const uint8_t *)raw, (size_t)rl, out, true);
    out[n] = 0;
    return n;
}

int ot_cursor_decode(ot_str s, char us[20], char id[37])
{
    uint8_t raw[160];
    size_t rl = 0, nd = 0;
    if (ot_b64_decode(s.base, s.len, raw, sizeof raw, &rl, true) < 0)
        return OT_ERR;
    while (nd < rl && nd < 18 && raw[nd] >= '0' && raw[nd] <= '9')
        nd++;
    if (nd == 0 || rl != nd + 1 + 36 || raw[nd] != '|' || !ot_uuid_valid(ot_str_make((const char *)raw + nd + 1, 36)))
        return OT_ERR;
    memcpy(us, raw, nd);
    us[nd] = 0;
    memcpy(id, raw + nd + 1, 36);
    id[36] = 0;
    return 0;
}
