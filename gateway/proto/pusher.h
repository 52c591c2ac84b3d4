/*
 * The Pusher Channels protocol at /app/{key}.
 */
#ifndef PG_PROTO_PUSHER_H
#define PG_PROTO_PUSHER_H

#include <stddef.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "core/msg.h"
#include "pushgate_bridge.h"

struct pg_gw;
struct pg_app;
struct pg_session;
struct pg_member;

/* Close every local session of app signed in as user_id (terminate_connections). */
void pg_pusher_terminate_user(struct pg_gw *gw, struct pg_app *app, const char *user_id);
/* The session's app now requires auth: close it (4200, reconnect) if it holds a public channel without credential. */
void pg_pusher_require_auth(struct pg_session *s);
/* {"event", "channel"?, "data": <data as a JSON string>}; data stolen */
void pg_pusher_send_event(struct pg_session *s, const char *event, const char *channel, json_t *data);
int pg_pusher_open(struct pg_session *s, struct lws *wsi);
void pg_pusher_receive(struct pg_session *s, const char *frame, size_t len);
void pg_pusher_encode(const char *channel, const void *payload, size_t len, const struct pg_bridge_prop *props,
                      size_t nprops, struct pg_msg **out);
/* Pusher channel name rules (also used by the HTTP API). */
int pg_pusher_channel_valid(const char *name);
/* Called by the channel index when a session's membership goes away (presence bookkeeping). */
void pg_pusher_member_left(struct pg_member *m);

#endif
