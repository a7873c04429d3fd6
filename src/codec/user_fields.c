#include "ot/codec/user_fields.h"

#include "ot/codec/json.h"

static bool is_alnum(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* RFC 5322 §3.2.3 atext. */
static bool is_atext(unsigned char ch) { return is_alnum(ch) || (ch && strchr("!#$%&'*+-/=?^_`{|}~", ch)); }

static const char *check_local(const char *p, size_t n)
{
    if (n == 0)
        return "needs text before the '@'";
    if (n > OT_USER_EMAIL_LOCAL_MAX)
        return "has more than 64 bytes before the '@'";
    if (p[0] == '.' || p[n - 1] == '.')
        return "may not start or end with a dot before the '@'";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '.' ? p[i + 1] == '.' : !is_atext(ch))
            return ch == '.' ? "has two dots in a row" : "has a character not allowed in an address";
    }
    return NULL;
}

static const char *check_domain(const char *p, size_t n)
{
    if (n == 0)
        return "needs a domain after the '@'";
    size_t labels = 0;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && p[j] != '.')
            j++;
        size_t len = j - i;
        if (len == 0)
            return "has an empty domain label";
        if (len > 63)
            return "has a domain label longer than 63 bytes";
        if (p[i] == '-' || p[j - 1] == '-')
            return "has a domain label starting or ending with '-'";
        for (size_t k = i; k < j; k++)
            if (!is_alnum((unsigned char)p[k]) && p[k] != '-')
                return "has a character not allowed in a domain";
        labels++;
        i = j + 1;
    }
    if (labels < 2)
        return "needs a fully qualified domain (like example.com)";
    return NULL;
}

const char *ot_user_check_email(ot_str e)
{
    if (e.len == 0)
        return "is empty";
    if (e.len > OT_USER_EMAIL_MAX)
        return "is longer than 254 bytes";
    const char *at = NULL;
    for (size_t i = 0; i < e.len; i++) {
        unsigned char ch = (unsigned char)e.base[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return "contains spaces, control or non-ASCII characters";
        if (ch == '@') {
            if (at)
                return "must contain exactly one '@'";
            at = e.base + i;
        }
    }
    if (!at)
        return "must contain exactly one '@'";
    const char *why = check_local(e.base, (size_t)(at - e.base));
    return why ? why : check_domain(at + 1, (size_t)(e.base + e.len - at - 1));
}

/* Decodes one UTF-8 sequence (validated by ot_utf8_seq_len). */
static uint32_t code_point(const unsigned char *p, size_t k)
{
    if (k == 1)
        return p[0];
    uint32_t cp = p[0] & (0x7f >> k);
    for (size_t i = 1; i < k; i++)
        cp = cp << 6 | (p[i] & 0x3f);
    return cp;
}

static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

const char *ot_user_check_name(ot_str n)
{
    if (n.len == 0)
        return "is empty";
    if (n.len > OT_USER_NAME_MAX)
        return "is longer than 200 bytes";
    bool visible = false;
    const unsigned char *p = (const unsigned char *)n.base;
    for (size_t i = 0, k; i < n.len; i += k) {
        if (!(k = ot_utf8_seq_len(p + i, n.len - i)))
            return "is not valid UTF-8";
        uint32_t cp = code_point(p + i, k);
        if (is_control(cp))
            return "contains control characters";
        visible |= cp != ' ';
    }
    return visible ? NULL : "has nothing but spaces";
}

const char *ot_user_check_password(ot_str p)
{
    if (p.len < OT_USER_PASSWORD_MIN)
        return "is shorter than 8 bytes";
    if (p.len > OT_USER_PASSWORD_MAX)
        return "is longer than 1024 bytes";
    if (memchr(p.base, '\0', p.len))
        return "contains a NUL byte";
    return NULL;
}
