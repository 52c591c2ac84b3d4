/*
 * The native JSON protocol at /v1/{app}.
 */
#ifndef PG_PROTO_NATIVE_H
#define PG_PROTO_NATIVE_H

#include <stddef.h>
#include <libwebsockets.h>

#include "core/msg.h"
#include "pushgate_bridge.h"

struct pg_gw;
struct pg_session;

int pg_native_open(struct pg_session *s, struct lws *wsi);
/* {"type":"error","error":{"code","message"}}: an error that answers no request. */
void pg_native_error(struct pg_session *s, int code, const char *message);
void pg_native_receive(struct pg_session *s, const char *frame, size_t len);
/*
 * Backpressure on a native client's requests: its socket is not read while
 * max_queue_messages replies are due (queued, or waiting for the broker),
 * and read again once half have gone out. Called after each request read
 * and each frame written.
 */
void pg_native_flow(struct pg_session *s);
void pg_native_encode(struct pg_gw *gw, const char *channel, const void *payload, size_t len,
                      const struct pg_bridge_prop *props, size_t nprops, struct pg_msg **out);

#endif
