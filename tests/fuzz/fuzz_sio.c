/*
 * libFuzzer harness for Engine.IO 4 / socket.io 5 at /socket.io/: what the
 * two transports deliver to a session of the in-memory gateway (fuzz_gw.h):
 * polling POST bodies (packets separated by \x1e) and WebSocket messages,
 * through pg_sio_receive(), which runs the gateway's own packet code
 * (proto/eio.c, proto/eio_ws.c, proto/sio.c).
 *
 * Input: the first byte picks how the session opened (0: polling handshake,
 * 1: direct WebSocket, 2: polling with a WebSocket upgrade probe attached);
 * the rest is up to MAX_MESSAGES messages separated by 0x1f, each starting
 * with 'p' (a polling POST body) or anything else (a WebSocket message; lws
 * lets only UTF-8 through, so others are skipped). A
 * registration of connection "conn1" for user "u1" in app demo exists, so
 * ["register","u1","conn1"] gets as far as the (unavailable) broker.
 *
 * Invariants, on everything the gateway queues: a text frame (UTF-8) holding
 * one Engine.IO packet ("0".."6"), never the polling separator \x1e inside a
 * packet; a socket.io EVENT is [name, ...] with a string name.
 */
#include <stdint.h>
#include <string.h>

#include "dispatch.h"
#include "fuzz_gw.h"

#define MAX_MESSAGES 8

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char reg[] = "{\"user\":\"u1\",\"exp\":4102444800000}";
    struct pg_gw *gw = fuzz_gw();
    (void)argc, (void)argv;
    /* as the broker delivers a PUT /api/u1/register?connectionId=conn1 made on any node */
    pg_dispatch_message(gw, "pg/_ctl/demo/reg/conn1", reg, strlen(reg), NULL, 0);
    FUZZ_CHECK(pg_push_regs_user(gw, "demo", "conn1") != NULL);
    return 0;
}

/* One queued packet as the client would parse it. */
static void check_packet(const char *p, size_t n)
{
    FUZZ_CHECK(n > 0 && p[0] >= '0' && p[0] <= '6');
    FUZZ_CHECK(pg_utf8_valid(p, n));
    if (p[0] != '4' || n < 2 || p[1] != '2')
        return;
    p += 2, n -= 2; /* a socket.io EVENT: [/nsp,][ack id][name, ...] */
    if (n && p[0] == '/') {
        const char *comma = memchr(p, ',', n);
        FUZZ_CHECK(comma != NULL);
        n -= (size_t)(comma + 1 - p);
        p = comma + 1;
    }
    while (n && p[0] >= '0' && p[0] <= '9')
        p++, n--;
    json_t *a = json_loadb(p, n, 0, NULL);
    FUZZ_CHECK(json_is_array(a) && json_is_string(json_array_get(a, 0)));
    json_decref(a);
}

static void check_output(struct pg_session *s, int polling)
{
    for (size_t i = 0; i < s->q.count; i++) {
        struct pg_msg *m = s->q.ring[(s->q.head + i) % s->q.cap];
        const char *p = (const char *)pg_msg_data(m);
        check_packet(p, m->len);
        if (polling)
            FUZZ_CHECK(!memchr(p, '\x1e', m->len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pg_gw *gw = fuzz_gw();
    struct lws *wsi = fuzz_gw_wsi();
    if (size < 1 || size > 65536)
        return 0;
    int mode = data[0] % 3, ws_open = mode != 0;
    struct pg_session *s = pg_sio_open_session(gw, wsi, mode);
    FUZZ_CHECK(s != NULL);

    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    for (int i = 0; i < MAX_MESSAGES && p < end; i++) {
        const char *sep = memchr(p, 0x1f, (size_t)(end - p));
        size_t n = (size_t)((sep ? sep : end) - p);
        int polling = n && p[0] == 'p';
        /* lws refuses text frames that are not UTF-8 (LWS_SERVER_OPTION_VALIDATE_UTF8): polling bodies only */
        if (n && (polling || (ws_open && pg_utf8_valid(p + 1, n - 1)))) {
            int rc = pg_sio_receive(s, p + 1, n - 1, polling);
            if (rc != 0 && !polling) { /* the ws_receive op closes the WebSocket; lws then reports it */
                struct pg_ws w = {.proto = &pg_sio_proto, .s = s};
                pg_sio_proto.ws_closed(&w, wsi);
                ws_open = 0;
            }
        }
        check_output(s, mode == 0); /* a polling response joins packets with \x1e */
        if (!sep)
            break;
        p = sep + 1;
    }
    fuzz_gw_service(); /* timers due now: a killed session is destroyed by its own */
    pg_sio_shutdown(gw);
    return 0;
}
