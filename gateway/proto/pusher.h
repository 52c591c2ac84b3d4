/*
 * The Pusher Channels protocol at /app/{key}: its struct pg_proto, and the
 * pieces presence (proto/presence.c) and the HTTP API share with it.
 */
#ifndef PG_PROTO_PUSHER_H
#define PG_PROTO_PUSHER_H

#include <jansson.h>

#include "core/session.h"

struct pg_member;

extern const struct pg_proto pg_pusher_proto;

/* {"event", "channel"?, "data": <data as a JSON string>}; data stolen */
void pg_pusher_send_event(struct pg_session *s, const char *event, const char *channel, json_t *data);
/* Pusher channel name rules (also used by the HTTP API). */
int pg_pusher_channel_valid(const char *name);
/* The member_left op: a session's membership goes away (presence bookkeeping). */
void pg_pusher_member_left(struct pg_member *m);

#endif
