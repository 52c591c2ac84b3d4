/*
 * Where a worker sends a new connection (gateway/listen.c), without a
 * socket: the request-line reader that finds an Engine.IO request's sid in
 * the bytes peeked so far, and the worker number a sid names
 * (gateway/proto/eio.c).
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "listen.h"
#include "pg_common.h"
#include "proto/eio.h"

/* pg_listen_request_sid on text: its result, and the sid found ("" when none). */
static void reads(const char *text, int want, const char *want_sid)
{
    const char *sid = NULL;
    size_t len = 0;
    int r = pg_listen_request_sid(text, strlen(text), &sid, &len);
    char got[64] = "";
    if (r == 1)
        snprintf(got, sizeof got, "%.*s", (int)len, sid);
    CHECK(r == want && !strcmp(got, want_sid), "\"%s\": expected %d \"%s\", got %d \"%s\"", text, want, want_sid, r,
          got);
}

static void test_request_sid(void)
{
    /* found: either path, any method, sid anywhere in the query, the line complete or the target's end seen */
    reads("GET /socket.io/?EIO=4&transport=polling&sid=AbC123&t=x HTTP/1.1\r\n", 1, "AbC123");
    reads("POST /socket.io?sid=AbC123 HTTP/1.1\r\nHost: h\r\n", 1, "AbC123");
    reads("GET /socket.io/?token=abc&EIO=4&transport=websocket&sid=Zz9 ", 1, "Zz9");
    reads("GET /socket.io/?EIO=4&sid=AbC123&", 1, "AbC123");
    reads("GET /socket.io/?sid=&EIO=4 HTTP/1.1\r\n", 1, "");
    /* not one: other paths, no query, no sid, names that only end or begin like it, not a request line */
    reads("GET /socket.iox/?sid=AbC HTTP/1.1\r\n", 0, "");
    reads("GET /v1/demo?sid=AbC HTTP/1.1\r\n", 0, "");
    reads("GET /socket.io/ HTTP/1.1\r\n", 0, "");
    reads("GET /socket.io/x?sid=AbC HTTP/1.1\r\n", 0, "");
    reads("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n", 0, "");
    reads("GET /socket.io/?xsid=AbC HTTP/1.1\r\n", 0, "");
    reads("get /socket.io/?sid=AbC HTTP/1.1\r\n", 0, "");
    reads("\r\nGET /socket.io/?sid=AbC HTTP/1.1\r\n", 0, "");
    reads("\x16\x03\x01\x02\x00\x01", 0, "");
    reads("GET  /socket.io/?sid=AbC HTTP/1.1\r\n", 0, "");
    /* cannot tell yet: every prefix of a request that may still carry a sid */
    const char *full = "GET /socket.io/?EIO=4&sid=AbC HTTP/1.1\r\n";
    size_t sid_end = strstr(full, " HTTP") - full;
    for (size_t n = 0; n < sid_end; n++) {
        const char *sid = NULL;
        size_t len = 0;
        CHECK_EQ(pg_listen_request_sid(full, n, &sid, &len), PG_EBUSY, "a prefix");
    }
    reads("GET /v1/", 0, ""); /* but a prefix that already differs is decided */
}

static void test_sid_worker(void)
{
    CHECK_EQ(pg_eio_sid_worker("AAxxxxxxxxxxxxxxxxxx", 20), 0, "AA");
    CHECK_EQ(pg_eio_sid_worker("ABxxxxxxxxxxxxxxxxxx", 20), 1, "AB");
    CHECK_EQ(pg_eio_sid_worker("Aa", 2), 26, "Aa");
    CHECK_EQ(pg_eio_sid_worker("A9", 2), 61, "A9");
    CHECK_EQ(pg_eio_sid_worker("BA", 2), 62, "BA");
    CHECK_EQ(pg_eio_sid_worker("99", 2), 62 * 62 - 1, "99");
    CHECK(pg_eio_sid_worker("EI", 2) < 3844 && 62 * 62 > PG_WORKERS_MAX, "every worker has a number");
    CHECK_EQ(pg_eio_sid_worker("A", 1), -1, "too short");
    CHECK_EQ(pg_eio_sid_worker("A-xxx", 5), -1, "not the sid alphabet");
    CHECK_EQ(pg_eio_sid_worker("A\0xx", 4), -1, "a NUL");
}

int main(void)
{
    test_request_sid();
    test_sid_worker();
    return check_report("test_listen");
}
