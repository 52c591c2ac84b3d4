/*
 * Pusher Channels protocol 7 on the wire: frames the server sends and the
 * channel name rule. Stateless; below both the protocol (proto/pusher.c) and
 * presence (proto/presence.c), and used by the HTTP API for channel names.
 *
 * Frames the server sends: {"event","channel"?,"data"} with data a JSON
 * string, except pusher:error whose data is an object {"message","code"} (as
 * Pusher sends it). Frames a client sends: one JSON object per WebSocket text
 * message (lws checked its UTF-8, core/ws.c its size against max_frame_bytes)
 * with a string "event", "data" as an object (pusher-js) or as that object
 * JSON-encoded in a string (some other clients), and for client events a
 * "channel". tests/unit/test_pusher_frames.c tests what here is pure.
 */
#ifndef PG_PROTO_PUSHER_WIRE_H
#define PG_PROTO_PUSHER_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct pg_session;
struct pg_event;
struct pg_msg;

/* {"event", "channel"?, "data": <data as a JSON string>}; data stolen (NULL: "{}"). */
void pg_pusher_send_event(struct pg_session *s, const char *event, const char *channel, json_t *data);
/* pusher:error {"message","code"}. */
void pg_pusher_send_error(struct pg_session *s, int code, const char *message);
/* The encode op: a channel message or an app-wide broadcast as Pusher clients receive it (refs = 1; NULL). */
struct pg_msg *pg_pusher_encode(const struct pg_session *s, const struct pg_event *ev);
/* A client's frame, decoded (pg_pusher_frame_parse). */
struct pg_pusher_frame {
    json_t *root;        /* owned: the whole frame, a JSON object */
    const char *event;   /* its "event" (borrowed from root) */
    const char *channel; /* its "channel" when a string (client events), else NULL; borrowed */
    json_t *data;        /* its "data" as sent (borrowed from root), NULL when absent: what a client event publishes */
    /* What pusher: events read: the object or array a string data encodes, otherwise data (borrowed or decoded). */
    json_t *fields;
    json_t *decoded; /* owned: the JSON a string data encodes, or NULL */
};
/*
 * Decode one frame a client sent: 0, or PG_EINVAL when it is not one JSON
 * object or array (bad UTF-8, a \u0000 escape and trailing bytes included)
 * or has no string "event". Release a decoded frame with
 * pg_pusher_frame_clear (f is zeroed on failure too).
 */
int pg_pusher_frame_parse(const char *text, size_t len, struct pg_pusher_frame *f);
void pg_pusher_frame_clear(struct pg_pusher_frame *f);
/* What a client event publishes: a string data as it is, anything else as compact JSON ("null" when absent). */
char *pg_pusher_client_data(const json_t *data); /* new string, NULL when out of memory */
/* Pusher channel name rules: 1..164 bytes of [A-Za-z0-9-_=@,.;]. */
int pg_pusher_channel_valid(const char *name);

#endif
