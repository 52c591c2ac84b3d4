/*
 * Pusher Channels protocol 7 on the wire: frames the server sends and the
 * channel name rule. Stateless; below both the protocol (proto/pusher.c) and
 * presence (proto/presence.c), and used by the HTTP API for channel names.
 *
 * Frames: {"event","channel"?,"data"} with data a JSON string, except
 * pusher:error whose data is an object {"message","code"} (as Pusher sends it).
 */
#ifndef PG_PROTO_PUSHER_WIRE_H
#define PG_PROTO_PUSHER_WIRE_H

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
/* Pusher channel name rules: 1..164 bytes of [A-Za-z0-9-_=@,.;]. */
int pg_pusher_channel_valid(const char *name);

#endif
