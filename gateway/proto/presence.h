/*
 * Pusher presence channels, cluster-wide.
 */
#ifndef PG_PROTO_PRESENCE_H
#define PG_PROTO_PRESENCE_H

#include <stddef.h>
#include <jansson.h>

struct pg_gw;
struct pg_app;
struct pg_session;

struct pg_pchan;
void pg_presence_local_changed(struct pg_gw *gw, struct pg_app *app, const char *channel, struct pg_session *except);
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
json_t *pg_presence_members(struct pg_gw *gw, struct pg_app *app, const char *channel); /* new reference */
void pg_presence_clear_own(struct pg_gw *gw);
void pg_presence_free(struct pg_app *app);

#endif
