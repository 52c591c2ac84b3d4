/*
 * The channel index: which local sessions hold which channel or wildcard
 * filter of which app, and the broker subscriptions behind them (the fan-out
 * of a broker message to them is core/fanout.c's).
 *
 * The index reaches the broker only through gw->channel_broker (struct
 * pg_channel_broker below), never the bridge itself, so it can be built and
 * tested without one.
 */
#ifndef PG_CORE_CHANNELS_H
#define PG_CORE_CHANNELS_H

#include <uthash.h>

#include "pushgate_bridge.h"

struct pg_session;
struct pg_app;
struct pg_gw;
struct pg_seq;

/*
 * The broker as the channel index needs it, with the bridge's contracts
 * (bridge/pushgate_bridge.h): subscriptions are refcounted by topic filter.
 * The first member of a channel subscribes its topic, every join asks whether
 * it is live (granted by a SUBACK) and the last member leaving unsubscribes
 * it. gateway/server.c sets gw->channel_broker to the bridge's before any
 * session opens; tests/unit/test_fanout.c to a fake that grants, refuses or
 * defers SUBACKs. Every entry is required.
 */
struct pg_channel_broker {
    int (*connected)(struct pg_gw *gw); /* 1 while the broker session is up (pg_bridge_connected) */
    int (*subscribe)(struct pg_gw *gw, const char *topic); /* 0, or < 0: not subscribed (pg_bridge_subscribe) */
    /* 0 live, 1 cb(ud, result) follows, < 0 error, as pg_bridge_subscribe_wait */
    int (*subscribe_wait)(struct pg_gw *gw, const char *topic, pg_bridge_ack_cb cb, void *ud);
    /* Drops one reference; waiters of the last one get PG_EBUSY (pg_bridge_unsubscribe) */
    int (*unsubscribe)(struct pg_gw *gw, const char *topic);
};

struct pg_member { /* one subscription of one session; in the session's hash and the channel's list */
    struct pg_channel *ch;
    struct pg_session *s;
    void *proto_data;   /* its session's protocol's (Pusher: the presence membership); released by member_left */
    int live;           /* the broker granted the channel's subscription for this member */
    struct pg_member *prev, *next; /* channel's members (utlist DL) */
    UT_hash_handle hh;              /* session's subscriptions, keyed by ch->name */
};

struct pg_channel { /* a channel name or a wildcard filter with local subscribers */
    char *name;  /* in the channel's own block, after the struct */
    char *topic; /* {root}/{app}/c/{name}, the broker subscription; in the same block */
    int wildcard;
    struct pg_app *app;
    struct pg_member *members;
    size_t nmembers;
    struct pg_seq *seqs; /* last seq seen per origin (filters: per origin and channel); seq.c */
    UT_hash_handle hh;
};

/*
 * Subscribe s to name (exact or wildcard filter). 0: live at the broker now.
 * 1: the broker's SUBACK is pending; cb(ud, result) follows as for
 * pg_bridge_subscribe_wait (on failure the caller leaves the channel).
 * PG_ELIMIT over max_subscriptions, PG_EBUSY broker unavailable (nothing joined).
 */
int pg_channel_join(struct pg_session *s, const char *name, pg_bridge_ack_cb cb, void *ud);
void pg_channel_leave(struct pg_session *s, const char *name);
void pg_channel_leave_all(struct pg_session *s);
/*
 * Pusher's per-user channel "#server-to-user-{user}": in the index under that name, on the broker as the user's
 * topic {root}/{app}/u/{user} (PG_TOPIC_USER). pg_channel_of_user and pg_channel_topic are the mapping both ways.
 */
#define PG_USER_CHANNEL_PREFIX "#server-to-user-"
/* 1 when some level of name is "+" or "#" (an MQTT filter). */
int pg_channel_is_filter(const char *name);
/* The channel name of user's per-user messages, "#server-to-user-{user}"; new string (caller frees), NULL: OOM. */
char *pg_channel_of_user(const char *user);
/*
 * The MQTT topic of a channel name or filter: {root}/{app}/c/{name}, or {root}/{app}/u/{user} for a user channel
 * (common/pg_topic.h builds both). New string, caller frees; NULL when out of memory or when name is no topic tail
 * (empty, or a user channel without a user).
 */
char *pg_channel_topic(struct pg_gw *gw, const char *app, const char *name);

#endif
