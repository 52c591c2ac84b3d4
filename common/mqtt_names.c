/*
 * Names that travel in MQTT topics and strings, for everything that builds a topic or a property: the gateway, the
 * broker plugin and the topic module (topic.c).
 *
 * Channel names are MQTT topic levels below {topic_root}/{app}/c/, so they
 * must be valid UTF-8 (MQTT 3.1.1 §1.5.3, WebSocket text frames) and may only
 * carry wildcards where MQTT itself would accept them. Whatever becomes a
 * topic or an MQTT string property must also pass the broker's own check
 * (libmosquitto's mosquitto_validate_utf8(), applied by mosquitto_publish()
 * and mosquitto_subscribe() before anything is sent): refused here first, a
 * name is a clear 400 instead of a failed publish or a subscribe that never
 * gets its SUBACK.
 */
#include <stdint.h>
#include <string.h>

#include "pg_common.h"

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

/*
 * What MQTT (3.1.1 §1.5.3, 5.0 §1.5.4) lets a receiver refuse and libmosquitto
 * does refuse: NUL, the C0 and C1 controls (U+0001..U+001F, U+007F..U+009F)
 * and the Unicode noncharacters (U+FDD0..U+FDEF and the last two code points
 * of every plane, U+xFFFE and U+xFFFF). Also its 65,535-byte string length.
 */
int pg_mqtt_utf8_valid(const void *buf, size_t len)
{
    const unsigned char *s = buf;

    if (len > PG_MQTT_STRING_MAX || !pg_utf8_valid(buf, len))
        return 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n;

        /* well-formed, so the lead byte alone says how long the sequence is */
        if (s[i] < 0x80)
            cp = s[i], n = 1;
        else if (s[i] < 0xe0)
            cp = s[i] & 0x1fu, n = 2;
        else if (s[i] < 0xf0)
            cp = s[i] & 0x0fu, n = 3;
        else
            cp = s[i] & 0x07u, n = 4;
        for (size_t k = 1; k < n; k++)
            cp = cp << 6 | (s[i + k] & 0x3fu);
        if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f))
            return 0;
        if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe)
            return 0;
        i += n;
    }
    return 1;
}

int pg_topic_level_valid(const char *s, size_t len)
{
    return s && len && !memchr(s, '/', len) && !memchr(s, '+', len) && !memchr(s, '#', len) &&
           pg_mqtt_utf8_valid(s, len);
}

int pg_channel_check(const char *name, size_t len, size_t max_bytes, int allow_wildcards)
{
    size_t level_start = 0;

    if (!name || len == 0 || len > max_bytes)
        return PG_EINVAL;
    if (!pg_mqtt_utf8_valid(name, len)) /* NUL included */
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
