/*
 * The fan-out: a broker message to every local session that should get it,
 * channel messages and app-wide (#general) broadcasts alike, through the
 * protocol interface only (s->proto->encode, slot, may_read_app, gap).
 *
 * Cost: a message is encoded at most once per protocol slot and the same
 * frame is queued on every recipient of that slot; nothing is allocated or
 * copied per recipient. Each session gets a message once, however many of its
 * subscriptions match (gw->fanout_seq, s->delivered_seq).
 *
 * Callers: the broker message dispatch (dispatch.c), for channel messages and broadcasts, and with local_first
 * the publish path (core/publish.c), for this process's own publishes.
 */
#ifndef PG_CORE_FANOUT_H
#define PG_CORE_FANOUT_H

#include <stddef.h>

#include "pg_topic.h"
#include "pushgate_bridge.h"

struct pg_gw;
struct pg_app;

/*
 * The message of topic t (pg_topic_parse: a channel, per-user or app-wide message of t->app) to its local readers
 * through one of the two below; a message of an unknown app, or of another kind, goes nowhere.
 */
void pg_fanout_topic(struct pg_gw *gw, const struct pg_topic_ref *t, const void *payload, size_t len,
                     const struct pg_bridge_prop *props, size_t nprops);
/*
 * Bridge message for {root}/{app}/c/{name} (user 0) or {root}/{app}/u/{name} (user 1, the per-user channel
 * PG_USER_CHANNEL_PREFIX{name}): to the channel's local readers.
 */
void pg_fanout_channel(struct pg_gw *gw, struct pg_app *app, const char *name, int user, const void *payload,
                       size_t len, const struct pg_bridge_prop *props, size_t nprops);
/* An app-wide broadcast ({root}/{app}/b) of an active app: to every session of it that may read app-wide events. */
void pg_fanout_broadcast(struct pg_gw *gw, struct pg_app *app, const void *payload, size_t len,
                         const struct pg_bridge_prop *props, size_t nprops);

#endif
