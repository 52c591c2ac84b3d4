/*
 * The Pusher Channels protocol at /app/{key}: its struct pg_proto. Frames
 * and channel names are proto/pusher_wire.h's, presence proto/presence.h's.
 */
#ifndef PG_PROTO_PUSHER_H
#define PG_PROTO_PUSHER_H

#include "core/session.h"

extern const struct pg_proto pg_pusher_proto;

#endif
