#include "ot/codec/uuid.h"

static int hexdig(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool dash_at(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

bool ot_uuid_valid(ot_str s)
{
    if (s.len != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        if (dash_at(i) ? s.base[i] != '-' : hexdig(s.base[i]) < 0)
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
        out[k++] = (uint8_t)(hexdig(s.base[i]) << 4 | hexdig(s.base[i + 1]));
    }
    return 0;
}

void ot_uuid_to_text(const uint8_t id[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t k = 0; k < 16; k++) {
        if (k == 4 || k == 6 || k == 8 || k == 10)
            out[o++] = '-';
        out[o++] = hex[id[k] >> 4];
        out[o++] = hex[id[k] & 15];
    }
    out[36] = '\0';
}
