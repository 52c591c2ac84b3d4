/*
 * The native JSON protocol at /v1/{app} (README "Native protocol"): its
 * struct pg_proto. Everything else of it is private to proto/native.c.
 */
#ifndef PG_PROTO_NATIVE_H
#define PG_PROTO_NATIVE_H

#include "core/session.h"

struct pg_gw;

extern const struct pg_proto pg_native_proto;

/* From the loop's tick (server.c): closes with 4401 the sessions whose token expired (proto/native.c). */
void pg_native_tick(struct pg_gw *gw);

#endif
