/* common/mqtt_names.c: UTF-8 validity, topic levels and channel-name rules; auth/protected_channels.c. */
#include <string.h>

#include "check.h"
#include "pushgate_auth.h"

#define UTF8_OK(lit) CHECK(pg_utf8_valid(lit, sizeof(lit) - 1) == 1, "expected valid UTF-8: %s", #lit)
#define UTF8_BAD(lit) CHECK(pg_utf8_valid(lit, sizeof(lit) - 1) == 0, "expected invalid UTF-8: %s", #lit)

static void test_utf8(void)
{
    UTF8_OK("");
    UTF8_OK("plain ascii");
    UTF8_OK("\x7f");
    UTF8_OK("\xc2\x80");         /* U+0080, smallest 2-byte */
    UTF8_OK("\xdf\xbf");         /* U+07FF */
    UTF8_OK("\xe0\xa0\x80");     /* U+0800, smallest 3-byte */
    UTF8_OK("\xed\x9f\xbf");     /* U+D7FF, just below the surrogates */
    UTF8_OK("\xee\x80\x80");     /* U+E000, just above */
    UTF8_OK("\xef\xbf\xbf");     /* U+FFFF */
    UTF8_OK("\xf0\x90\x80\x80"); /* U+10000, smallest 4-byte */
    UTF8_OK("\xf4\x8f\xbf\xbf"); /* U+10FFFF, the last code point */
    UTF8_OK("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

    UTF8_BAD("\x80"); /* lone continuation */
    UTF8_BAD("\xbf");
    UTF8_BAD("\xc0\x80");         /* overlong NUL */
    UTF8_BAD("\xc1\xbf");         /* overlong 2-byte */
    UTF8_BAD("\xe0\x80\x80");     /* overlong 3-byte */
    UTF8_BAD("\xe0\x9f\xbf");     /* overlong U+07FF */
    UTF8_BAD("\xf0\x80\x80\x80"); /* overlong 4-byte */
    UTF8_BAD("\xf0\x8f\xbf\xbf"); /* overlong U+FFFF */
    UTF8_BAD("\xed\xa0\x80");     /* U+D800 high surrogate */
    UTF8_BAD("\xed\xbf\xbf");     /* U+DFFF low surrogate */
    UTF8_BAD("\xf4\x90\x80\x80"); /* U+110000 */
    UTF8_BAD("\xf5\x80\x80\x80");
    UTF8_BAD("\xff");
    UTF8_BAD("\xfe");
    UTF8_BAD("\xc3");         /* truncated 2-byte */
    UTF8_BAD("\xe2\x82");     /* truncated 3-byte */
    UTF8_BAD("\xf0\x9f\x98"); /* truncated 4-byte */
    UTF8_BAD("\xc3\x28");     /* bad continuation */
    UTF8_BAD("\xe2\x28\xa1");
    UTF8_BAD("ok\xf0\x9f\x98\x80\x80"); /* trailing stray continuation */

    /* The length bounds the scan: a valid prefix of an invalid buffer is valid. */
    CHECK(pg_utf8_valid("ab\xff", 2) == 1, "length must bound the scan");
    /* NUL is a valid code point; channel names refuse it separately. */
    CHECK(pg_utf8_valid("a\0b", 3) == 1, "NUL is valid UTF-8");
}

#define CH(lit, max, wild, want)                                                                                       \
    CHECK_EQ(pg_channel_check(lit, sizeof(lit) - 1, max, wild), want, "pg_channel_check(" #lit ", wild=" #wild ")")

static void test_channel(void)
{
    CH("room", 64, 0, 0);
    CH("a/b/c", 64, 0, 0);
    CH("caf\xc3\xa9", 64, 0, 0);
    CH("", 64, 0, PG_EINVAL);
    CH("a\0b", 64, 0, PG_EINVAL);
    CH("bad\xff", 64, 0, PG_EINVAL);
    CH("\xed\xa0\x80", 64, 0, PG_EINVAL);

    /* Length bound is in bytes. */
    CH("12345678", 8, 0, 0);
    CH("123456789", 8, 0, PG_EINVAL);
    CH("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3", 8, 0, PG_EINVAL);

    /* Without wildcards, '+' and '#' are refused anywhere. */
    CH("+", 64, 0, PG_EINVAL);
    CH("#", 64, 0, PG_EINVAL);
    CH("a/+/b", 64, 0, PG_EINVAL);
    CH("a/#", 64, 0, PG_EINVAL);
    CH("c++", 64, 0, PG_EINVAL);
    CH("room#1", 64, 0, PG_EINVAL);

    /* With wildcards: whole levels only, '#' only last. */
    CH("+", 64, 1, 0);
    CH("#", 64, 1, 0);
    CH("a/+", 64, 1, 0);
    CH("+/b", 64, 1, 0);
    CH("a/+/b", 64, 1, 0);
    CH("+/+", 64, 1, 0);
    CH("a/#", 64, 1, 0);
    CH("+/#", 64, 1, 0);
    CH("a/b+", 64, 1, PG_EINVAL);
    CH("a+/b", 64, 1, PG_EINVAL);
    CH("++", 64, 1, PG_EINVAL);
    CH("a/#/b", 64, 1, PG_EINVAL);
    CH("#/b", 64, 1, PG_EINVAL);
    CH("a/b#", 64, 1, PG_EINVAL);
    CH("##", 64, 1, PG_EINVAL);
    CH("a/#/", 64, 1, PG_EINVAL);
    CH("+#", 64, 1, PG_EINVAL);

    /* Empty levels are legal MQTT levels. */
    CH("a//b", 64, 0, 0);
    CH("/a", 64, 0, 0);
    CH("a//#", 64, 1, 0);
}

#define MQ_OK(lit) CHECK(pg_mqtt_utf8_valid(lit, sizeof(lit) - 1) == 1, "expected an MQTT string: %s", #lit)
#define MQ_BAD(lit) CHECK(pg_mqtt_utf8_valid(lit, sizeof(lit) - 1) == 0, "expected no MQTT string: %s", #lit)

/* What libmosquitto's mosquitto_validate_utf8() refuses, mosquitto_publish()/subscribe() refuse too. */
static void test_mqtt_utf8(void)
{
    MQ_OK("");
    MQ_OK("room 1 ~!");
    MQ_OK("\xc2\xa0");          /* U+00A0, just above the C1 controls */
    MQ_OK("\xef\xb7\x8f");      /* U+FDCF, just below the noncharacter block */
    MQ_OK("\xef\xb7\xb0");      /* U+FDF0, just above */
    MQ_OK("\xef\xbf\xbd");      /* U+FFFD, the replacement character */
    MQ_OK("\xf0\x9f\xbf\xbd"); /* U+1FFFD */
    MQ_OK("\xf4\x8f\xbf\xbd"); /* U+10FFFD */
    MQ_OK("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

    MQ_BAD("a\0b");            /* NUL */
    MQ_BAD("\x01");            /* C0 controls */
    MQ_BAD("tab\there");
    MQ_BAD("line\n");
    MQ_BAD("\x1f");
    MQ_BAD("\x7f");            /* DEL */
    MQ_BAD("\xc2\x80");        /* U+0080, C1 controls */
    MQ_BAD("\xc2\x9f");        /* U+009F */
    MQ_BAD("\xef\xb7\x90");    /* U+FDD0, the first noncharacter of the block */
    MQ_BAD("\xef\xb7\xaf");    /* U+FDEF, the last */
    MQ_BAD("\xef\xbf\xbe");    /* U+FFFE */
    MQ_BAD("\xef\xbf\xbf");    /* U+FFFF */
    MQ_BAD("\xf0\x9f\xbf\xbe"); /* U+1FFFE */
    MQ_BAD("\xf0\x9f\xbf\xbf"); /* U+1FFFF */
    MQ_BAD("\xf3\xbf\xbf\xbf"); /* U+FFFFF */
    MQ_BAD("\xf4\x8f\xbf\xbe"); /* U+10FFFE */
    MQ_BAD("\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    MQ_BAD("ok\xef\xbf\xbf");  /* anywhere in the string */
    MQ_BAD("\xed\xa0\x80");    /* and everything pg_utf8_valid refuses */
    MQ_BAD("\xff");

    static char big[PG_MQTT_STRING_MAX + 1];
    memset(big, 'a', sizeof big);
    CHECK(pg_mqtt_utf8_valid(big, PG_MQTT_STRING_MAX) == 1, "65,535 bytes fit an MQTT string");
    CHECK(pg_mqtt_utf8_valid(big, sizeof big) == 0, "65,536 bytes do not");

#define LV(lit, want) CHECK_EQ(pg_topic_level_valid(lit, sizeof(lit) - 1), want, "pg_topic_level_valid(" #lit ")")
    LV("user-42", 1);
    LV("caf\xc3\xa9", 1);
    LV("", 0);
    LV("a/b", 0);
    LV("a+", 0);
    LV("#", 0);
    LV("a\x01", 0);
    LV("\xef\xbf\xbe", 0);
#undef LV
    CHECK_EQ(pg_topic_level_valid(NULL, 0), 0, "NULL is no level");

    /* channel names carry the same rule */
    CH("\xef\xbf\xbe", 64, 0, PG_EINVAL);
    CH("\xef\xbf\xbf", 64, 0, PG_EINVAL);
    CH("room\xef\xb7\x90", 64, 0, PG_EINVAL);
    CH("\xf0\x9f\xbf\xbf", 64, 0, PG_EINVAL);
    CH("a\x01b", 64, 0, PG_EINVAL);
    CH("a\nb", 64, 0, PG_EINVAL);
    CH("a\x7f", 64, 0, PG_EINVAL);
    CH("\xc2\x85", 64, 0, PG_EINVAL);
    CH("a/\xef\xbf\xbf/#", 64, 1, PG_EINVAL);
    CH("\xef\xbf\xbd", 64, 0, 0);
}

static void test_protected(void)
{
#define PROT(lit, want) CHECK_EQ(pg_channel_protected(lit, sizeof(lit) - 1), want, "pg_channel_protected(" #lit ")")
    PROT("private-a", 1);
    PROT("private-encrypted-a", 1);
    PROT("presence-room", 1);
    PROT("private-", 1);
    PROT("privat", 0);
    PROT("public", 0);
    PROT("Private-a", 0);
    PROT("a/private-b", 0);
    PROT("#", 0);
#undef PROT
    CHECK_EQ(pg_channel_protected("private-x", 7), 0, "length must bound the prefix check");
}

int main(void)
{
    test_utf8();
    test_channel();
    test_mqtt_utf8();
    test_protected();
    return check_report("test_channel");
}
