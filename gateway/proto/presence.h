/*
 * Pusher presence channels, cluster-wide (proto/presence.c): who is in a
 * presence channel on this node and on the others, member_added /
 * member_removed to this node's subscribers, the leader's webhooks.
 *
 * State: gw->pchans (presence channels by app and name), owned here.
 * Callers: proto/pusher.c (join, leave), the cluster through the listener
 * dispatch.c registers (node changes, connect, stop), dispatch.c (the
 * {root}/{app}/p/{node}/{channel} messages), the Pusher HTTP API (members).
 */
#ifndef PG_PROTO_PRESENCE_H
#define PG_PROTO_PRESENCE_H

#include <stddef.h>
#include <jansson.h>

struct pg_gw;
struct pg_app;
struct pg_session;

/* One session's membership of a presence channel; owned by this module until pg_presence_leave(). */
struct pg_presence_member;
/*
 * s (subscribed to channel, live) is user_id there, with info (stolen, may be NULL). A user new on this node is
 * published and reported to the channel's other sessions. NULL when out of memory (s then counts for nobody).
 */
struct pg_presence_member *pg_presence_join(struct pg_session *s, const char *channel, const char *user_id,
                                            json_t *info);
/* The membership goes (frees pm); its session is still whole. */
void pg_presence_leave(struct pg_presence_member *pm);
/* The user a membership is (borrowed, lives as long as pm). */
const char *pg_presence_user(const struct pg_presence_member *pm);

void pg_presence_on_message(struct pg_gw *gw, struct pg_app *app, const char *node, const char *channel,
                            const void *payload, size_t len);
/* A node came up (gone NULL) or is gone (dead, or an earlier incarnation of a restarted node): drop its members.
   clear: the leader also empties its retained presence topics (a dead node cannot; a restarted one does itself). */
void pg_presence_nodes_changed(struct pg_gw *gw, const char *gone, int clear);
/* A message on one of this node's own presence topics: what the broker holds for it, or the echo of a publish. */
void pg_presence_own_message(struct pg_gw *gw, struct pg_app *app, const char *channel, const void *payload,
                             size_t len);
/* (Re)connected: publish this node's members of every presence channel it holds. */
void pg_presence_republish_own(struct pg_gw *gw);
/* {user_id: user_info} of the channel across live nodes (new reference). */
json_t *pg_presence_members(struct pg_gw *gw, struct pg_app *app, const char *channel);
/* Stopping: empty this node's retained members of every channel. */
void pg_presence_clear_own(struct pg_gw *gw);
/* At exit, after every session is released and before the apps go. */
void pg_presence_free(struct pg_gw *gw);

#endif
