#include "ot/codec/uuid.h"

#include "ot/core/utf8.h"

static bool dash_at(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

bool ot_uuid_valid(ot_str s)
{
    if (s.len != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        if (dash_at(i) ? s.base[i] != '-' : ot_hex_val((unsigned char)s.base[i]) < 0)
            return false;
    }
    return true;
}

int ot_uuid_to_bytes(ot_str s, uint8_t out[16])
{
    if (!ot_uuid_valid(s))
        return OT_ERR;
    size_t k = 0;
    for (size_t i = 0; i < 36; i += 2) {
        if (dash_at(i))
            i++;
        out[k++] = (uint8_t)(ot_hex_val((unsigned char)s.base[i]) << 4 | ot_hex_val((unsigned char)s.base[i + 1]));
    }
    return 0;
}

void ot_uuid_to_text(const uint8_t id[16], char out[37])
{
    size_t o = 0;
    for (size_t k = 0; k < 16; k++) {
        if (k == 4 || k == 6 || k == 8 || k == 10)
            out[o++] = '-';
        out[o++] = ot_hex_lower[id[k] >> 4];
        out[o++] = ot_hex_lower[id[k] & 15];
    }
    out[36] = '\0';
}
