#include "ot/codec/uuid.h"

#include "ot/core/utf8.h"

static bool dash_at(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

bool ot_uuid_valid(ot_str s)
{
    if (s.len != 36)
        return false;
    const unsigned char *p = (const unsigned char *)s.base;
    if (p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-')
        return false;
    /* Every path parameter and token subject passes here: OR the digit
     * values (a non-hex byte is negative) instead of a branch per byte. */
    static const uint8_t run[5][2] = { { 0, 8 }, { 9, 13 }, { 14, 18 }, { 19, 23 }, { 24, 36 } };
    int acc = 0;
    for (size_t g = 0; g < 5; g++)
        for (size_t i = run[g][0]; i < run[g][1]; i++)
            acc |= ot_hex_val(p[i]);
    return acc >= 0;
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
