/*
 * Channel names are MQTT topic levels below {topic_root}/{app}/c/, so they
 * must be valid UTF-8 (MQTT 3.1.1 §1.5.3, WebSocket text frames) and may only
 * carry wildcards where MQTT itself would accept them.
 */
#include <string.h>

#include "pushgate_auth.h"

/*
 * Well-formed UTF-8 per RFC 3629 / Unicode Table 3-7: the second byte's range
 * depends on the lead byte, which is what excludes overlong forms, UTF-16
 * surrogates (U+D800..U+DFFF) and code points above U+10FFFF.
 */
int pg_utf8_valid(const void *buf, size_t len)
{
    const unsigned char *s = buf;
    size_t i = 0;

    if (!s && len)
        return 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xbf;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0; /* below: overlong */
            else if (c == 0xed)
                hi = 0x9f; /* above: surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90; /* below: overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above: > U+10FFFF */
        } else {
            return 0; /* continuation byte as lead, C0/C1 overlongs, F5..FF */
        }
        if (len - i <= need)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        }
        i += need + 1;
    }
    return 1;
}

int pg_channel_check(const char *name, size_t len, size_t max_bytes, int allow_wildcards)
{
    size_t level_start = 0;

    if (!name || len == 0 || len > max_bytes)
        return PG_EINVAL;
    if (memchr(name, '\0', len) || !pg_utf8_valid(name, len))
        return PG_EINVAL;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '/')
            continue;
        /* name[level_start..i) is one level */
        size_t level_len = i - level_start;
        const char *level = name + level_start;
        int has_plus = memchr(level, '+', level_len) != NULL;
        int has_hash = memchr(level, '#', level_len) != NULL;

        if (has_plus || has_hash) {
            if (!allow_wildcards || level_len != 1)
                return PG_EINVAL;
            if (has_hash && i != len)
                return PG_EINVAL;
        }
        level_start = i + 1;
    }
    return 0;
}

int pg_channel_protected(const char *name, size_t len)
{
    static const char *const prefixes[] = {"private-", "presence-"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (name && len >= n && !memcmp(name, prefixes[i], n))
            return 1;
    }
    return 0;
}
