/*
 * libFuzzer harness for the native protocol: frames as pg_native_proto.receive
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
    fuzz_frames(data, size, &pg_native_proto, MAX_FRAMES, check_room, "type");
    return 0;
}
