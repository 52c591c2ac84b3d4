/*
 * libFuzzer harness for the native protocol: frames as pg_native_receive()
 * gets them from a WebSocket of /v1/{app}, on a session of the in-memory
 * gateway (fuzz_gw.h; the broker is down, so subscribes and publishes end in
 * their 503 answers). Input: the first byte picks the app (bit 0: "locked",
 * which requires auth), the rest is up to MAX_FRAMES frames separated by
 * 0x1f (never raw inside JSON text), fed in order to one session, so an
 * authenticate can precede a subscribe.
 *
 * Invariants: every frame the gateway queues is a JSON object with a string
 * "type"; a room the gateway accepts for publishing is also a valid
 * subscription (pg_channel_check is monotonic in allow_wildcards).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_gw.h"

#define MAX_FRAMES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_room(const char *frame, size_t len)
{
    json_t *o = json_loadb(frame, len, 0, NULL);
    const char *room = json_string_value(json_object_get(o, "room"));
    if (room && pg_channel_check(room, strlen(room), 200, 0) == 0)
        FUZZ_CHECK(pg_channel_check(room, strlen(room), 200, 1) == 0);
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pg_gw *gw = fuzz_gw();
    struct pg_session s;
    if (size < 1 || size > 65536)
        return 0;
    const char *app_id = data[0] & 1 ? "locked" : "demo";
    memset(&s, 0, sizeof s);
    fuzz_session_open(&s, pg_app_lookup(gw, app_id, strlen(app_id)), PG_PROTO_NATIVE);
    snprintf(s.client_id, sizeof s.client_id, "%s", FUZZ_CLIENT_ID);

    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    for (int i = 0; i < MAX_FRAMES && p <= end && !s.close_code; i++) {
        const char *sep = memchr(p, 0x1f, (size_t)(end - p));
        size_t n = (size_t)((sep ? sep : end) - p);
        check_room(p, n);
        pg_native_receive(&s, p, n);
        fuzz_session_check_output(&s, "type");
        if (!sep)
            break;
        p = sep + 1;
    }
    fuzz_session_close(&s);
    return 0;
}
