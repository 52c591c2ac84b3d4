/*
 * libFuzzer harness for Pusher protocol 7: frames as pg_pusher_proto.receive
 * gets them from a WebSocket of /app/{key}, on a session of the in-memory
 * gateway (fuzz_gw.h; socket_id FUZZ_SOCKET_ID, so seeds can carry valid
 * channel auth and signin signatures; the broker is down, so subscribes end in
 * pusher:subscription_error). Input: the first byte picks the app (bit 0:
 * "locked"), the rest is up to MAX_FRAMES frames separated by 0x1f.
 *
 * Invariants: every frame the gateway queues is a JSON object with a string
 * "event"; a name pg_pusher_channel_valid() accepts is a valid pushgate
 * channel (pg_channel_check), so it can never fail later at the broker.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_gw.h"

#define MAX_FRAMES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_channel(const char *frame, size_t len)
{
    json_t *o = json_loadb(frame, len, 0, NULL), *d = json_object_get(o, "data");
    json_t *parsed = json_is_string(d) ? json_loads(json_string_value(d), 0, NULL) : NULL;
    const char *ch = json_string_value(json_object_get(parsed ? parsed : d, "channel"));
    if (ch && pg_pusher_channel_valid(ch))
        FUZZ_CHECK(pg_channel_check(ch, strlen(ch), 200, 0) == 0);
    json_decref(parsed);
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_frames(data, size, &pg_pusher_proto, MAX_FRAMES, check_channel, "event");
    return 0;
}
