/*
 * Engine.IO packets as text (gateway/proto/eio_packet.c) without a session:
 * the types a client may send, the pong, the upgrade probe, the open packet
 * and the splitting of polling bodies at the record separator 0x1e.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/eio_packet.h"

#define S(lit) lit, sizeof(lit) - 1 /* a literal and its length, NULs and separators included */

/* The packets of body, each written as "[text]" into out. Returns how many. */
static int split(const char *body, size_t len, char *out, size_t outlen)
{
    struct pg_eio_split it;
    const char *p;
    size_t n, used = 0;
    int count = 0;
    out[0] = '\0';
    pg_eio_split_init(&it, body, len);
    while (pg_eio_split_next(&it, &p, &n)) {
        count++;
        used += (size_t)snprintf(out + used, outlen - used, "[%.*s]", (int)n, p);
        if (used >= outlen)
            break;
    }
    CHECK_EQ(pg_eio_split_next(&it, &p, &n), 0, "an exhausted body stays exhausted");
    return count;
}

static void splits(const char *body, size_t len, int want_count, const char *want)
{
    char got[512];
    int count = split(body, len, got, sizeof got);
    CHECK(count == want_count && !strcmp(got, want), "body of %zu bytes: expected %d %s, got %d %s", len, want_count,
          want, count, got);
}

static void test_split(void)
{
    splits(S("4hello"), 1, "[4hello]");
    splits(S("4a\x1e" "4b"), 2, "[4a][4b]");
    splits(S("4a\x1e" "2\x1e" "3\x1e" "6"), 4, "[4a][2][3][6]");
    /* empty pieces are packets too (and malformed ones: the session refuses them) */
    splits(S(""), 1, "[]");
    splits(S("\x1e"), 2, "[][]");
    splits(S("4a\x1e"), 2, "[4a][]");
    splits(S("\x1e" "4a"), 2, "[][4a]");
    splits(S("4a\x1e\x1e" "4b"), 3, "[4a][][4b]");
    /* only 0x1e separates: other control bytes and UTF-8 stay inside a packet */
    splits(S("4a\x1f" "b\x1d" "c"), 1, "[4a\x1f" "b\x1d" "c]");
    splits(S("4\xc3\xa9t\xc3\xa9\x1e" "4\xe2\x82\xac"), 2, "[4\xc3\xa9t\xc3\xa9][4\xe2\x82\xac]");
    /* a NUL does not end the body */
    struct pg_eio_split it;
    const char *p;
    size_t n;
    pg_eio_split_init(&it, S("4a\0b\x1e" "4c"));
    CHECK(pg_eio_split_next(&it, &p, &n) && n == 4 && !memcmp(p, "4a\0b", 4), "NUL inside a packet");
    CHECK(pg_eio_split_next(&it, &p, &n) && n == 2 && !memcmp(p, "4c", 2), "then the next");
    /* no body at all */
    pg_eio_split_init(&it, NULL, 0);
    CHECK(pg_eio_split_next(&it, &p, &n) && n == 0, "no body: one empty packet");
    CHECK_EQ(pg_eio_split_next(&it, &p, &n), 0, "and no more");
    /* the packets are the body's bytes, not copies */
    const char body[] = "4x\x1e" "4y";
    pg_eio_split_init(&it, body, strlen(body));
    pg_eio_split_next(&it, &p, &n);
    CHECK(p == body, "borrowed");
    pg_eio_split_next(&it, &p, &n);
    CHECK(p == body + 3, "borrowed, after the separator");
    /* a large body of many packets */
    size_t big_len = 3 * 1000;
    char *big = malloc(big_len);
    for (size_t i = 0; big && i < 1000; i++)
        memcpy(big + 3 * i, "6\x1e" "4", 3);
    if (big) {
        int count = 0;
        pg_eio_split_init(&it, big, big_len - 1); /* "6", then "46" 999 times, each after a separator, then "" */
        while (pg_eio_split_next(&it, &p, &n))
            count++;
        CHECK_EQ(count, 1001, "1000 separators: 1001 packets");
    }
    free(big);
}

static void test_types(void)
{
    CHECK_EQ(pg_eio_client_type(S("1")), PG_EIO_CLOSE, "close");
    CHECK_EQ(pg_eio_client_type(S("2")), PG_EIO_PING, "ping");
    CHECK_EQ(pg_eio_client_type(S("2probe")), PG_EIO_PING, "ping with data");
    CHECK_EQ(pg_eio_client_type(S("3")), PG_EIO_PONG, "pong");
    CHECK_EQ(pg_eio_client_type(S("4")), PG_EIO_MESSAGE, "empty message");
    CHECK_EQ(pg_eio_client_type(S("40/demo,")), PG_EIO_MESSAGE, "message");
    CHECK_EQ(pg_eio_client_type(S("6")), PG_EIO_NOOP, "noop");
    CHECK_EQ(pg_eio_client_type(S("")), -1, "empty packet");
    CHECK_EQ(pg_eio_client_type(S("0")), -1, "open: servers only");
    CHECK_EQ(pg_eio_client_type(S("0{}")), -1, "open with data");
    CHECK_EQ(pg_eio_client_type(S("5")), -1, "upgrade outside a probe");
    CHECK_EQ(pg_eio_client_type(S("7")), -1, "no type 7");
    CHECK_EQ(pg_eio_client_type(S("bAQID")), -1, "base64 binary");
    CHECK_EQ(pg_eio_client_type(S("\x1e")), -1, "a separator");
    CHECK_EQ(pg_eio_client_type(S("\0" "4")), -1, "NUL first");
    CHECK_EQ(pg_eio_client_type(S("\xff")), -1, "not UTF-8");
    CHECK_EQ(pg_eio_client_type(S(" 4")), -1, "leading space");
}

static void pong_is(const char *ping, size_t n, const char *want)
{
    char out[PG_EIO_PING_MAX + 1];
    memset(out, 0, sizeof out);
    int rc = pg_eio_pong(ping, n, out);
    CHECK(rc == 0 && !memcmp(out, want, n), "ping %.*s: expected pong %s, got %d %.*s", (int)n, ping, want, rc, (int)n,
          out);
}

static void test_pong(void)
{
    char out[PG_EIO_PING_MAX];
    pong_is(S("2"), "3");
    pong_is(S("2probe"), "3probe");
    pong_is(S("2\xc3\xa9"), "3\xc3\xa9");
    pong_is(S("2234567890123456"), "3234567890123456"); /* PG_EIO_PING_MAX bytes */
    CHECK_EQ(pg_eio_pong(S("22345678901234567"), out), -1, "over PG_EIO_PING_MAX");
    CHECK_EQ(pg_eio_pong(S("2\xff"), out), -1, "not UTF-8");
    CHECK_EQ(pg_eio_pong(S("2\xc3"), out), -1, "a truncated sequence");
    CHECK_EQ(pg_eio_pong(S("2\xed\xa0\x80"), out), -1, "a surrogate");
    CHECK_EQ(pg_eio_pong(S("2\xc0\xaf"), out), -1, "an overlong");
    CHECK_EQ(pg_eio_pong(S(""), out), -1, "empty");
}

static void test_probe(void)
{
    CHECK_EQ(pg_eio_probe_type(S("2probe")), PG_EIO_PING, "the probe");
    CHECK_EQ(pg_eio_probe_type(S("5")), PG_EIO_UPGRADE, "the upgrade");
    CHECK_EQ(pg_eio_probe_type(S("2")), -1, "a plain ping");
    CHECK_EQ(pg_eio_probe_type(S("2probe ")), -1, "trailing bytes");
    CHECK_EQ(pg_eio_probe_type(S("2Probe")), -1, "case");
    CHECK_EQ(pg_eio_probe_type(S("3probe")), -1, "the server's answer");
    CHECK_EQ(pg_eio_probe_type(S("5x")), -1, "upgrade with data");
    CHECK_EQ(pg_eio_probe_type(S("")), -1, "empty");
    CHECK_EQ(pg_eio_probe_type(S("40")), -1, "a message before the upgrade");
}

static void test_open(void)
{
    char *p = pg_eio_open_text("abcdefghijklmnopqrst", 25000, 20000, 1000000, 1);
    CHECK(p && !strcmp(p, "0{\"sid\":\"abcdefghijklmnopqrst\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
                          "\"pingTimeout\":20000,\"maxPayload\":1000000}"),
          "polling handshake: %s", p ? p : "NULL");
    free(p);
    p = pg_eio_open_text("sid", 1, 2, 3, 0);
    CHECK(p && !strcmp(p, "0{\"sid\":\"sid\",\"upgrades\":[],\"pingInterval\":1,\"pingTimeout\":2,\"maxPayload\":3}"),
          "direct WebSocket: no upgrades: %s", p ? p : "NULL");
    free(p);
    p = pg_eio_open_text("s", 0, 0, 4294967296LL, 0);
    CHECK(p && strstr(p, "\"maxPayload\":4294967296}"), "64-bit limits: %s", p ? p : "NULL");
    free(p);
}

int main(void)
{
    test_split();
    test_types();
    test_pong();
    test_probe();
    test_open();
    return check_report("test_eio");
}
