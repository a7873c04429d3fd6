/* Base64 / base64url, RFC 4648. See include/ot/base64.h. */
#include "ot/codec/base64.h"

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t ot_b64_encode(const uint8_t *in, size_t n, char *out, bool url)
{
    const char *a = url ? URL : STD;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    size_t rest = n - i;
    if (rest) {
        uint32_t v = (uint32_t)in[i] << 16 | (rest == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        if (rest == 2)
            out[o++] = a[(v >> 6) & 63];
        if (!url) {
            if (rest == 1)
                out[o++] = '=';
            out[o++] = '=';
        }
    }
    return o;
}

static int dec(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

int ot_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen, bool url)
{
    const unsigned char *s = (const unsigned char *)in;
    if (!url) {
        /* Standard form is always whole quads; strip at most two '='. */
        if (n % 4)
            return OT_ERR;
        if (n && s[n - 1] == '=')
            n -= (n >= 2 && s[n - 2] == '=') ? 2 : 1;
    }
    size_t rest = n % 4;
    if (rest == 1) /* one character carries 6 bits: never a whole byte */
        return OT_ERR;
    size_t need = n / 4 * 3 + (rest ? rest - 1 : 0);
    if (need > cap)
        return OT_ERR;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = dec(s[i], url), b = dec(s[i + 1], url), c = dec(s[i + 2], url), d = dec(s[i + 3], url);
        if ((a | b | c | d) < 0)
            return OT_ERR;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (rest) {
        int a = dec(s[i], url), b = dec(s[i + 1], url), c = rest == 3 ? dec(s[i + 2], url) : 0;
        if ((a | b | c) < 0)
            return OT_ERR;
        /* Bits below the last whole byte must be zero (canonical form). */
        if (rest == 2 ? (b & 15) : (c & 3))
            return OT_ERR;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (uint8_t)(v >> 16);
        if (rest == 3)
            out[o++] = (uint8_t)(v >> 8);
    }
    *outlen = o;
    return 0;
}
