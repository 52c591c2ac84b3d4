/*
 * socket.io packets as text (gateway/proto/sio_packet.c) without a session:
 * a client's packet split into type, namespace, ack id and JSON data, the
 * packets refused as malformed, and the frames the server sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/sio_packet.h"

#define S(lit) lit, sizeof(lit) - 1

/* p decodes to type, namespace nsp, ack id ack ("" none) and data (compact JSON, "" none). */
static void decodes(const char *p, size_t n, char type, const char *nsp, const char *ack, const char *data)
{
    struct pg_sio_packet pkt;
    int rc = pg_sio_packet_parse(p, n, &pkt);
    CHECK(rc == 0, "%.*s: expected a packet, got %d", (int)n, p, rc);
    if (rc != 0)
        return;
    char *js = pkt.data ? json_dumps(pkt.data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    CHECK(pkt.type == type, "%.*s: type %c, expected %c", (int)n, p, pkt.type, type);
    CHECK(pkt.nsp_len == strlen(nsp) && !memcmp(pkt.nsp, nsp, pkt.nsp_len), "%.*s: namespace %.*s, expected %s",
          (int)n, p, (int)pkt.nsp_len, pkt.nsp, nsp);
    CHECK(pkt.ack_len == strlen(ack) && !memcmp(pkt.ack, ack, pkt.ack_len), "%.*s: ack %.*s, expected %s", (int)n, p,
          (int)pkt.ack_len, pkt.ack, ack);
    CHECK(!strcmp(js ? js : "", data), "%.*s: data %s, expected %s", (int)n, p, js ? js : "(none)", data);
    free(js);
    pg_sio_packet_clear(&pkt);
    CHECK(pkt.data == NULL, "cleared");
}

static void refused(const char *p, size_t n, const char *why)
{
    struct pg_sio_packet pkt;
    int rc = pg_sio_packet_parse(p, n, &pkt);
    CHECK(rc == -1, "%s (%.*s): expected -1, got %d", why, (int)n, p, rc);
    CHECK(pkt.data == NULL, "%s: nothing to release after a refusal", why);
}

static void test_valid(void)
{
    decodes(S("0"), '0', "/", "", "");
    decodes(S("0{\"token\":\"x\"}"), '0', "/", "", "{\"token\":\"x\"}");
    decodes(S("0/demo,"), '0', "/demo", "", "");
    decodes(S("0/demo,{\"a\":1}"), '0', "/demo", "", "{\"a\":1}");
    decodes(S("0/demo"), '0', "/demo", "", ""); /* a namespace without its comma, nothing after it */
    decodes(S("0/"), '0', "/", "", "");
    decodes(S("1"), '1', "/", "", "");
    decodes(S("1/demo,"), '1', "/demo", "", "");
    decodes(S("2[\"register\",\"u1\",\"c1\"]"), '2', "/", "", "[\"register\",\"u1\",\"c1\"]");
    decodes(S("2/demo,7[\"register\",42,\"c1\"]"), '2', "/demo", "7", "[\"register\",42,\"c1\"]");
    decodes(S("212[\"x\"]"), '2', "/", "12", "[\"x\"]");
    decodes(S("2123456789012345[\"x\"]"), '2', "/", "123456789012345", "[\"x\"]"); /* 15 digits */
    decodes(S("2[\"\xc3\xa9v\xc3\xa9nement\",{\"\xe2\x82\xac\":1}]"), '2', "/", "",
            "[\"\xc3\xa9v\xc3\xa9nement\",{\"\xe2\x82\xac\":1}]");
    decodes(S("2[\"disconnect\"]"), '2', "/", "", "[\"disconnect\"]");
    decodes(S("3/demo,5[]"), '3', "/demo", "5", "[]");
    decodes(S("35"), '3', "/", "5", "");
    decodes(S("4{\"message\":\"no\"}"), '4', "/", "", "{\"message\":\"no\"}");
    decodes(S("0 {} "), '0', "/", "", "{}"); /* JSON's own whitespace */
    decodes(S("0\"text\""), '0', "/", "", "\"text\""); /* any JSON value: CONNECT checks for an object itself */
    decodes(S("07"), '0', "/", "7", ""); /* digits after a CONNECT are an ack id too */
    decodes(S("0/d\xc3\xa9mo,"), '0', "/d\xc3\xa9mo", "", "");
    /* the namespace ends at the first comma: what follows is ack and data */
    decodes(S("2/a,1[\"b,c\"]"), '2', "/a", "1", "[\"b,c\"]");
    /* PG_SIO_NSP_MAX bytes of namespace */
    char nsp[PG_SIO_NSP_MAX + 8], pkt[PG_SIO_NSP_MAX + 16];
    memset(nsp, 'a', PG_SIO_NSP_MAX);
    nsp[0] = '/';
    nsp[PG_SIO_NSP_MAX] = '\0';
    int n = snprintf(pkt, sizeof pkt, "0%s,", nsp);
    decodes(pkt, (size_t)n, '0', nsp, "", "");
}

static void test_malformed(void)
{
    refused(S(""), "empty");
    refused(S("5"), "binary EVENT");
    refused(S("6/demo,"), "binary ACK");
    refused(S("7"), "no type 7");
    refused(S("a"), "not a digit");
    refused(S("/demo,"), "no type");
    refused(S("2"), "EVENT without data");
    refused(S("2{}"), "EVENT with an object");
    refused(S("2[]"), "EVENT without a name");
    refused(S("2[42]"), "EVENT named by a number");
    refused(S("2[null,\"x\"]"), "EVENT named null");
    refused(S("2\"register\""), "EVENT with a bare string");
    refused(S("0{"), "truncated JSON");
    refused(S("0{}x"), "bytes after the JSON");
    refused(S("0{}{}"), "two JSON values");
    refused(S("0{'a':1}"), "not JSON");
    refused(S("2[\"x\"\xff]"), "not UTF-8 in the data");
    refused(S("2[\"\xc3\"]"), "a truncated UTF-8 sequence in the data");
    refused(S("0{\"a\":\"\\u0000\"}"), "a NUL in a JSON string");
    refused(S("0{\"a\":\"\0\"}"), "a raw NUL in the data");
    refused(S("0/d\xff,"), "a namespace that is not UTF-8");
    refused(S("0/d\xed\xa0\x80,"), "a surrogate in the namespace");
    refused(S("21234567890123456[\"x\"]"), "an ack id of 16 digits");
    refused(S("2/demo,1234567890123456[\"x\"]"), "16 digits after a namespace");
    char nsp[PG_SIO_NSP_MAX + 8], pkt[PG_SIO_NSP_MAX + 16];
    memset(nsp, 'a', PG_SIO_NSP_MAX + 1);
    nsp[0] = '/';
    nsp[PG_SIO_NSP_MAX + 1] = '\0';
    int n = snprintf(pkt, sizeof pkt, "0%s,", nsp);
    refused(pkt, (size_t)n, "a namespace over PG_SIO_NSP_MAX");
    n = snprintf(pkt, sizeof pkt, "0%s", nsp);
    refused(pkt, (size_t)n, "a namespace over PG_SIO_NSP_MAX, without its comma");
}

static void frame_is(char type, const char *nsp, const char *json, const char *want)
{
    size_t len = 0;
    char *f = pg_sio_frame(type, nsp, json, &len);
    CHECK(f && len == strlen(want) && !strcmp(f, want), "frame: expected %s, got %s", want, f ? f : "NULL");
    free(f);
}

static void test_frames(void)
{
    frame_is('0', "/", "{\"sid\":\"x\"}", "40{\"sid\":\"x\"}");
    frame_is('0', "/demo", "{\"sid\":\"x\"}", "40/demo,{\"sid\":\"x\"}");
    frame_is('2', NULL, "[\"message\",1]", "42[\"message\",1]");
    frame_is('4', "/nope", "{\"message\":\"Invalid namespace\"}", "44/nope,{\"message\":\"Invalid namespace\"}");
    frame_is('1', "/demo", NULL, "41/demo,");
    frame_is('1', "/", NULL, "41");

    /* the ACK of a decoded packet's ack id, in the session's namespace */
    struct pg_sio_packet pkt;
    size_t len = 0;
    CHECK_EQ(pg_sio_packet_parse(S("2/demo,123456789012345[\"register\"]"), &pkt), 0, "event with an ack id");
    char *f = pg_sio_ack_frame("/demo", &pkt, &len);
    CHECK(f && !strcmp(f, "43/demo,123456789012345[]") && len == strlen(f), "ack: %s", f ? f : "NULL");
    free(f);
    pg_sio_packet_clear(&pkt);
    CHECK_EQ(pg_sio_packet_parse(S("27[\"x\"]"), &pkt), 0, "event with ack 7");
    f = pg_sio_ack_frame("/", &pkt, &len);
    CHECK(f && !strcmp(f, "437[]"), "ack in /: %s", f ? f : "NULL");
    free(f);
    CHECK(!strcmp(pg_sio_event_name(&pkt), "x"), "event name");
    pg_sio_packet_clear(&pkt);
}

int main(void)
{
    test_valid();
    test_malformed();
    test_frames();
    return check_report("test_sio_packets");
}
