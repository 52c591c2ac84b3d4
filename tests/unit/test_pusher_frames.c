/*
 * Pusher frames (gateway/proto/pusher_wire.c) without a session: a client's
 * frame decoded into event, channel and data (an object, or the object a
 * JSON string encodes), the frames refused as malformed, what a client event
 * publishes, the channel name rule, and the frames the encode op builds from
 * a message (UTF-8 as it is, other bytes as {"binary"}, app-wide broadcasts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/msg.h"
#include "core/session.h"
#include "pg_common.h"
#include "proto/pusher_wire.h"

#define S(lit) lit, sizeof(lit) - 1

static char *compact(const json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/*
 * text decodes to event, channel (NULL: none), data as sent and fields as pusher: events read them (compact JSON,
 * NULL: absent).
 */
static void decodes(const char *text, size_t len, const char *event, const char *channel, const char *data,
                    const char *fields)
{
    struct pg_pusher_frame f;
    int rc = pg_pusher_frame_parse(text, len, &f);
    CHECK(rc == 0, "%.*s: expected a frame, got %d", (int)len, text, rc);
    if (rc != 0)
        return;
    char *d = compact(f.data), *x = compact(f.fields);
    CHECK(!strcmp(f.event, event), "%.*s: event %s", (int)len, text, f.event);
    CHECK(channel ? f.channel && !strcmp(f.channel, channel) : !f.channel, "%.*s: channel %s", (int)len, text,
          f.channel ? f.channel : "(none)");
    CHECK(data ? d && !strcmp(d, data) : !d, "%.*s: data %s, expected %s", (int)len, text, d ? d : "(none)",
          data ? data : "(none)");
    CHECK(fields ? x && !strcmp(x, fields) : !x, "%.*s: fields %s, expected %s", (int)len, text, x ? x : "(none)",
          fields ? fields : "(none)");
    CHECK((f.decoded != NULL) == (f.fields != f.data), "%.*s: decoded exactly when fields are not data", (int)len,
          text);
    free(d);
    free(x);
    pg_pusher_frame_clear(&f);
    CHECK(!f.root && !f.decoded && !f.event, "cleared");
}

static void refused(const char *text, size_t len, const char *why)
{
    struct pg_pusher_frame f;
    int rc = pg_pusher_frame_parse(text, len, &f);
    CHECK(rc == PG_EINVAL, "%s: expected PG_EINVAL, got %d", why, rc);
    CHECK(!f.root && !f.event && !f.decoded, "%s: nothing held after a refusal", why);
}

static void test_decode(void)
{
    decodes(S("{\"event\":\"pusher:ping\",\"data\":{}}"), "pusher:ping", NULL, "{}", "{}");
    decodes(S("{\"event\":\"pusher:ping\"}"), "pusher:ping", NULL, NULL, NULL);
    decodes(S("{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"room\",\"auth\":\"k:s\"}}"), "pusher:subscribe",
            NULL, "{\"channel\":\"room\",\"auth\":\"k:s\"}", "{\"channel\":\"room\",\"auth\":\"k:s\"}");
    /* data JSON-encoded in a string (some clients): pusher: events read the object it holds */
    decodes(S("{\"event\":\"pusher:subscribe\",\"data\":\"{\\\"channel\\\":\\\"room\\\"}\"}"), "pusher:subscribe", NULL,
            "\"{\\\"channel\\\":\\\"room\\\"}\"", "{\"channel\":\"room\"}");
    decodes(S("{\"event\":\"x\",\"data\":\"[1,2]\"}"), "x", NULL, "\"[1,2]\"", "[1,2]");
    /* a string that holds no object or array stays the string */
    decodes(S("{\"event\":\"x\",\"data\":\"hello\"}"), "x", NULL, "\"hello\"", "\"hello\"");
    decodes(S("{\"event\":\"x\",\"data\":\"42\"}"), "x", NULL, "\"42\"", "\"42\"");
    decodes(S("{\"event\":\"x\",\"data\":\"\\\"quoted\\\"\"}"), "x", NULL, "\"\\\"quoted\\\"\"", "\"\\\"quoted\\\"\"");
    decodes(S("{\"event\":\"x\",\"data\":\"{broken\"}"), "x", NULL, "\"{broken\"", "\"{broken\"");
    decodes(S("{\"event\":\"x\",\"data\":\"\"}"), "x", NULL, "\"\"", "\"\"");
    decodes(S("{\"event\":\"x\",\"data\":null}"), "x", NULL, "null", "null");
    decodes(S("{\"event\":\"x\",\"data\":7}"), "x", NULL, "7", "7");
    /* client events: the frame's channel, data as sent */
    decodes(S("{\"event\":\"client-typing\",\"channel\":\"private-a\",\"data\":{\"who\":\"me\"}}"), "client-typing",
            "private-a", "{\"who\":\"me\"}", "{\"who\":\"me\"}");
    decodes(S("{\"event\":\"client-x\",\"channel\":42,\"data\":1}"), "client-x", NULL, "1", "1");
    /* UTF-8 passes through; JSON's own whitespace and escapes */
    decodes(S(" { \"event\" : \"client-\xc3\xa9\" , \"channel\":\"private-\\u00e9\" } "), "client-\xc3\xa9",
            "private-\xc3\xa9", NULL, NULL);
    decodes(S("{\"event\":\"\"}"), "", NULL, NULL, NULL); /* an empty event name: "unsupported event" */
    /* the last of two "event" members wins (as jansson reads objects) */
    decodes(S("{\"event\":\"a\",\"event\":\"b\"}"), "b", NULL, NULL, NULL);
}

static void test_malformed(void)
{
    refused(S(""), "empty");
    refused(S(" "), "blank");
    refused(S("{"), "truncated");
    refused(S("{}"), "no event");
    refused(S("{\"data\":{}}"), "data without event");
    refused(S("{\"event\":42}"), "event not a string");
    refused(S("{\"event\":null}"), "event null");
    refused(S("{\"event\":[\"x\"]}"), "event an array");
    refused(S("[{\"event\":\"x\"}]"), "an array of frames");
    refused(S("\"pusher:ping\""), "a bare string");
    refused(S("42"), "a number");
    refused(S("{\"event\":\"x\"} {\"event\":\"y\"}"), "two frames in one message");
    refused(S("{\"event\":\"x\"}garbage"), "bytes after the frame");
    refused(S("{'event':'x'}"), "single quotes");
    refused(S("{\"event\":\"x\xff\"}"), "not UTF-8");
    refused(S("{\"event\":\"\xc3\"}"), "a truncated UTF-8 sequence");
    refused(S("{\"event\":\"\xed\xa0\x80\"}"), "a UTF-8 surrogate");
    refused(S("{\"event\":\"\xc0\xaf\"}"), "an overlong UTF-8 sequence");
    refused(S("{\"event\":\"a\\u0000b\"}"), "a NUL escape");
    refused(S("{\"event\":\"a\0b\"}"), "a raw NUL");
    refused(S("{\"event\":\"a\nb\"}"), "a raw control character");
    refused(S("{\"event\":\"x\",\"data\":{\"a\":1}"), "unbalanced");
}

static void test_large(void)
{
    /* no size rule here (max_frame_bytes is the transport's): a large frame decodes as any other */
    size_t n = 1 << 20;
    char *big = malloc(n + 64);
    if (!big)
        return;
    int head = snprintf(big, 64, "{\"event\":\"client-big\",\"channel\":\"private-a\",\"data\":\"");
    memset(big + head, 'x', n);
    memcpy(big + head + n, "\"}", 3);
    struct pg_pusher_frame f;
    CHECK_EQ(pg_pusher_frame_parse(big, (size_t)head + n + 2, &f), 0, "a 1 MiB frame");
    CHECK(json_string_length(f.data) == n, "its data whole");
    char *payload = pg_pusher_client_data(f.data);
    CHECK(payload && strlen(payload) == n, "published as it is");
    free(payload);
    pg_pusher_frame_clear(&f);
    /* deep nesting: jansson's own depth limit refuses it */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 32);
    if (deep) {
        int h = snprintf(deep, 32, "{\"event\":\"x\",\"data\":");
        memset(deep + h, '[', depth);
        memset(deep + h + depth, ']', depth);
        memcpy(deep + h + 2 * depth, "}", 2);
        CHECK_EQ(pg_pusher_frame_parse(deep, (size_t)h + 2 * depth + 1, &f), PG_EINVAL, "nesting too deep");
    }
    free(deep);
    free(big);
}

static void client_data_is(const char *frame_text, size_t len, const char *want)
{
    struct pg_pusher_frame f;
    if (pg_pusher_frame_parse(frame_text, len, &f) != 0) {
        CHECK(0, "%.*s: not a frame", (int)len, frame_text);
        return;
    }
    char *p = pg_pusher_client_data(f.data);
    CHECK(p && !strcmp(p, want), "%.*s: publishes %s, expected %s", (int)len, frame_text, p ? p : "NULL", want);
    free(p);
    pg_pusher_frame_clear(&f);
}

static void test_client_data(void)
{
    client_data_is(S("{\"event\":\"client-a\",\"data\":{\"b\":[1,2]}}"), "{\"b\":[1,2]}");
    client_data_is(S("{\"event\":\"client-a\",\"data\" : { \"b\" : 1 }}"), "{\"b\":1}"); /* compact */
    client_data_is(S("{\"event\":\"client-a\",\"data\":\"{\\\"b\\\":1}\"}"), "{\"b\":1}"); /* a string as it is */
    client_data_is(S("{\"event\":\"client-a\",\"data\":\"plain \xc3\xa9\"}"), "plain \xc3\xa9");
    client_data_is(S("{\"event\":\"client-a\",\"data\":\"\"}"), "");
    client_data_is(S("{\"event\":\"client-a\",\"data\":12.5}"), "12.5");
    client_data_is(S("{\"event\":\"client-a\",\"data\":true}"), "true");
    client_data_is(S("{\"event\":\"client-a\",\"data\":null}"), "null");
    client_data_is(S("{\"event\":\"client-a\"}"), "null");
    client_data_is(S("{\"event\":\"client-a\",\"data\":\"\xe2\x82\xac\\u20ac\"}"), "\xe2\x82\xac\xe2\x82\xac");
}

static void test_channel_names(void)
{
    char name[200];
    CHECK(pg_pusher_channel_valid("room"), "room");
    CHECK(pg_pusher_channel_valid("private-a"), "private-a");
    CHECK(pg_pusher_channel_valid("presence-chat.1"), "presence-chat.1");
    CHECK(pg_pusher_channel_valid("a-_=@,.;Z9"), "every allowed punctuation");
    CHECK(!pg_pusher_channel_valid(""), "empty");
    CHECK(!pg_pusher_channel_valid("a b"), "space");
    CHECK(!pg_pusher_channel_valid("a/b"), "slash");
    CHECK(!pg_pusher_channel_valid("a+"), "plus");
    CHECK(!pg_pusher_channel_valid("#"), "hash");
    CHECK(!pg_pusher_channel_valid("#server-to-user-1"), "the per-user channel is no client's name");
    CHECK(!pg_pusher_channel_valid("caf\xc3\xa9"), "non-ASCII");
    CHECK(!pg_pusher_channel_valid("a:b"), "colon");
    memset(name, 'a', 164);
    name[164] = '\0';
    CHECK(pg_pusher_channel_valid(name), "164 bytes");
    name[164] = 'a';
    name[165] = '\0';
    CHECK(!pg_pusher_channel_valid(name), "165 bytes");
}

/* The frame the encode op builds for a message on channel (NULL: an app-wide broadcast). */
static void encodes(const char *channel, const char *payload, size_t len, const struct pg_bridge_prop *props,
                    size_t nprops, const char *want)
{
    struct pg_session s;
    memset(&s, 0, sizeof s);
    struct pg_event ev = {.channel = channel, .payload = payload, .len = len, .props = props, .nprops = nprops};
    struct pg_msg *m = pg_pusher_encode(&s, &ev);
    const char *got = m ? (const char *)pg_msg_data(m) : "NULL";
    CHECK(m && m->len == strlen(want) && !strcmp(got, want), "expected %s, got %s", want, got);
    CHECK(!m || m->refs == 1, "a new frame");
    pg_msg_unref(m);
}

static void test_encode(void)
{
    struct pg_bridge_prop ev[] = {{"event", "update"}};
    struct pg_bridge_prop user[] = {{"event", "client-typing"}, {"socket_id", "1.2"}, {"user_id", "u7"}};
    encodes("room", S("hello"), NULL, 0, "{\"event\":\"message\",\"channel\":\"room\",\"data\":\"hello\"}");
    encodes("room", S("{\"a\":1}"), ev, 1, "{\"event\":\"update\",\"channel\":\"room\",\"data\":\"{\\\"a\\\":1}\"}");
    encodes("private-a", S("{}"), user, 3,
            "{\"event\":\"client-typing\",\"channel\":\"private-a\",\"data\":\"{}\",\"user_id\":\"u7\"}");
    encodes("room", S("caf\xc3\xa9"), NULL, 0, "{\"event\":\"message\",\"channel\":\"room\",\"data\":\"caf\xc3\xa9\"}");
    encodes("room", S(""), NULL, 0, "{\"event\":\"message\",\"channel\":\"room\",\"data\":\"\"}");
    /* bytes that are not UTF-8 travel as {"binary": base64}, JSON-encoded in data */
    encodes("room", S("\xff\x00\x01"), NULL, 0,
            "{\"event\":\"message\",\"channel\":\"room\",\"data\":\"{\\\"binary\\\":\\\"/wAB\\\"}\"}");
    encodes("room", S("a\0b"), NULL, 0, "{\"event\":\"message\",\"channel\":\"room\",\"data\":\"a\\u0000b\"}");
    /* app-wide broadcasts: no channel, data the payload as compact JSON text */
    encodes(NULL, S("{ \"a\" : 1 }"), ev, 1, "{\"event\":\"update\",\"data\":\"{\\\"a\\\":1}\"}");
    encodes(NULL, S("hi"), NULL, 0, "{\"event\":\"message\",\"data\":\"\\\"hi\\\"\"}");
    encodes(NULL, S("\xff"), NULL, 0, "{\"event\":\"message\",\"data\":\"{\\\"binary\\\":\\\"/w==\\\"}\"}");
}

int main(void)
{
    test_decode();
    test_malformed();
    test_large();
    test_client_data();
    test_channel_names();
    test_encode();
    return check_report("test_pusher_frames");
}
