/*
 * The Pusher Channels protocol at /app/{key}: its struct pg_proto. Frames
 * and channel names are proto/pusher_wire.h's, presence proto/presence.h's.
 */
#ifndef PG_PROTO_PUSHER_H
#define PG_PROTO_PUSHER_H

#include "core/session.h"

struct pg_gw;

extern const struct pg_proto pg_pusher_proto;

/* From the loop's tick (server.c): pings sessions silent for pusher_activity_timeout_s, closes unanswered ones. */
void pg_pusher_tick(struct pg_gw *gw);

#endif
