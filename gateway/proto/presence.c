/*
 * Pusher presence channels: this node's members, and the cluster's.
 *
 * Here (Pusher sessions, proto/pusher.c): a session that subscribed to a
 * presence channel as a user joins it (pg_presence_join) and leaves it when
 * its membership goes (the member_left op). A user with several sessions in
 * the channel is one member. All of it lives in this file's table of presence
 * channels (gw->pchans, by app and channel name); the channel index knows
 * nothing of users.
 *
 * Across nodes. Each node publishes its own members of a presence
 * channel, retained, on {root}/{app}/p/{node}/{channel} ({"user_id": user_info}
 * or empty when it has none) and reads everyone else's. A channel's members
 * are the union over live nodes, so a user with tabs on two nodes is one
 * member. member_added / member_removed go to this node's subscribers
 * whenever the union changes; the cluster leader also sends the webhooks.
 *
 * A node's members leave with it (cluster.c decides when a node is gone: its
 * MQTT will, a missed liveness deadline, or a new incarnation under the same
 * node id). What the broker retains under a node's own topics must match what
 * it holds, whatever an earlier incarnation of it or a peer left there:
 *  - on every (re)connect it republishes its members of each channel it holds;
 *  - the broker hands it back its own retained topics (it subscribes to every
 *    node's), and it answers any of them that says "members" where it holds
 *    none, or "none" where it holds some, with what it holds. Emptiness is the
 *    test, not equality: the echo of one of its own earlier publishes may
 *    differ from the current members, but a later publish is already on its
 *    way and the broker keeps the order, so only a flip of emptiness can be a
 *    leftover (an earlier incarnation's members, or a peer's clear).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "cluster/cluster.h"
#include "cluster/webhooks.h"
#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/session.h"
#include "log.h"
#include "pg_topic.h"
#include "proto/presence.h"
#include "proto/pusher_wire.h"
#include "pushgate_bridge.h"

/* A user with one or more sessions of this node in the channel. */
struct presence_user {
    char *id;
    json_t *info;
    int conns;
    UT_hash_handle hh;
};

/* One session's membership (the opaque struct pg_presence_member). */
struct pg_presence_member {
    struct pg_pchan *p;
    struct presence_user *u;
    struct pg_session *s;
    struct pg_presence_member *prev, *next; /* p->local (utlist DL) */
};

/*
 * A presence channel of an app, known here while someone holds it: local
 * members, or another node's. Invariant: the union (members) includes every
 * local user, so a channel with local members is never freed.
 */
struct pg_pchan {
    char *key; /* "{app id}\n{channel}": the hash key */
    struct pg_app *app;
    const char *name;                 /* within key */
    struct presence_user *users;      /* this node's, by id */
    size_t nusers;
    struct pg_presence_member *local; /* this node's sessions in it, told of member_added/removed */
    json_t *remote;  /* {node: {user_id: info}} as published by other nodes */
    json_t *members; /* the union last reported to subscribers */
    UT_hash_handle hh;
};

static struct pg_pchan *pchan_get(struct pg_gw *gw, struct pg_app *app, const char *name, int create)
{
    char stack[256];
    size_t al = strlen(app->id), nl = strlen(name);
    char *key = al + nl + 2 <= sizeof stack ? stack : malloc(al + nl + 2);
    struct pg_pchan *p = NULL;
    if (!key)
        return NULL;
    memcpy(key, app->id, al);
    key[al] = '\n';
    memcpy(key + al + 1, name, nl + 1);
    HASH_FIND_STR(gw->pchans, key, p);
    if (p || !create)
        goto out;
    if (!(p = calloc(1, sizeof *p)) || !(p->key = strdup(key))) {
        free(p);
        p = NULL;
        goto out;
    }
    p->app = app;
    p->name = p->key + al + 1;
    p->remote = json_object();
    p->members = json_object();
    HASH_ADD_KEYPTR(hh, gw->pchans, p->key, strlen(p->key), p);
out:
    if (key != stack)
        free(key);
    return p;
}

static void pchan_free(struct pg_gw *gw, struct pg_pchan *p)
{
    HASH_DEL(gw->pchans, p);
    json_decref(p->remote);
    json_decref(p->members);
    free(p->key);
    free(p);
}

static json_t *local_users(const struct pg_pchan *p)
{
    json_t *o = json_object();
    struct presence_user *u, *tmp;
    if (p)
        HASH_ITER(hh, p->users, u, tmp) {
            json_object_set(o, u->id, u->info ? u->info : json_null());
        }
    return o;
}

static json_t *compute_union(struct pg_gw *gw, struct pg_pchan *p)
{
    json_t *u = local_users(p);
    const char *node, *uid;
    json_t *users, *info;
    json_object_foreach(p->remote, node, users) {
        if (!pg_cluster_node_alive(gw, node))
            continue;
        json_object_foreach(users, uid, info) {
            if (!json_object_get(u, uid))
                json_object_set(u, uid, info);
        }
    }
    return u;
}

static void tell_local(struct pg_pchan *p, struct pg_session *except, const char *event, json_t *data)
{
    struct pg_presence_member *pm;
    DL_FOREACH(p->local, pm) {
        if (pm->s != except)
            pg_pusher_send_event(pm->s, event, p->name, json_incref(data));
    }
    json_decref(data);
}

/* Recompute p's members and report what changed; except: a session that must not hear of it. p may be freed. */
static void reconcile(struct pg_gw *gw, struct pg_pchan *p, struct pg_session *except)
{
    json_t *now = compute_union(gw, p);
    const char *uid;
    json_t *info;
    int leader = pg_cluster_is_leader(gw);
    json_object_foreach(now, uid, info) {
        if (json_object_get(p->members, uid))
            continue;
        tell_local(p, except, "pusher_internal:member_added",
                   json_pack("{s:s, s:O}", "user_id", uid, "user_info", info));
        if (leader)
            pg_webhook_emit(gw, p->app, json_pack("{s:s, s:s, s:s}", "name", "member_added", "channel", p->name,
                                                  "user_id", uid));
    }
    json_object_foreach(p->members, uid, info) {
        if (json_object_get(now, uid))
            continue;
        tell_local(p, except, "pusher_internal:member_removed", json_pack("{s:s}", "user_id", uid));
        if (leader)
            pg_webhook_emit(gw, p->app, json_pack("{s:s, s:s, s:s}", "name", "member_removed", "channel", p->name,
                                                  "user_id", uid));
    }
    json_decref(p->members);
    p->members = now;
    if (!json_object_size(p->members) && !json_object_size(p->remote))
        pchan_free(gw, p);
}

/* {root}/{app}/p/{node}/{channel}: node's members of p (common/pg_topic.h); caller frees; NULL: no memory. */
static char *presence_topic(struct pg_gw *gw, const struct pg_pchan *p, const char *node)
{
    return pg_topic_new(gw->cfg->topic_root, PG_TOPIC_PRESENCE, p->app->creds->id, node, p->name);
}

/* Publish this node's members of p, retained (nodes that start later learn them; empty clears it). */
static void publish_own(struct pg_gw *gw, const struct pg_pchan *p)
{
    json_t *mine = local_users(p);
    char *topic = presence_topic(gw, p, gw->node_id);
    char *body = json_object_size(mine) ? json_dumps(mine, JSON_COMPACT) : NULL;
    if (topic)
        pg_bridge_publish(gw->bridge, topic, body, body ? strlen(body) : 0, NULL, 1, NULL, NULL);
    free(topic);
    free(body);
    json_decref(mine);
}

/* This node's users of p changed: publish them and report the difference (not to except). */
static void local_changed(struct pg_gw *gw, struct pg_pchan *p, struct pg_session *except)
{
    publish_own(gw, p);
    reconcile(gw, p, except);
}

struct pg_presence_member *pg_presence_join(struct pg_session *s, const char *channel, const char *user_id,
                                            json_t *info)
{
    struct pg_gw *gw = s->gw;
    struct pg_pchan *p = pchan_get(gw, s->app, channel, 1);
    struct pg_presence_member *pm = p ? calloc(1, sizeof *pm) : NULL;
    struct presence_user *u = NULL;
    if (!pm)
        goto fail;
    HASH_FIND_STR(p->users, user_id, u);
    if (u) {
        u->conns++;
        json_decref(info);
    } else {
        if (!(u = calloc(1, sizeof *u)) || !(u->id = strdup(user_id))) {
            free(u);
            goto fail;
        }
        u->info = info;
        u->conns = 1;
        HASH_ADD_KEYPTR(hh, p->users, u->id, strlen(u->id), u);
        p->nusers++;
    }
    pm->p = p;
    pm->u = u;
    pm->s = s;
    DL_APPEND(p->local, pm);
    if (u->conns == 1)
        local_changed(gw, p, s);
    return pm;
fail:
    free(pm);
    json_decref(info);
    if (p && !p->nusers && !json_object_size(p->members) && !json_object_size(p->remote))
        pchan_free(gw, p);
    return NULL;
}

void pg_presence_leave(struct pg_presence_member *pm)
{
    struct pg_pchan *p = pm->p;
    struct presence_user *u = pm->u;
    struct pg_session *s = pm->s;
    DL_DELETE(p->local, pm);
    free(pm);
    if (--u->conns > 0)
        return;
    HASH_DEL(p->users, u);
    p->nusers--;
    free(u->id);
    json_decref(u->info);
    free(u);
    local_changed(s->gw, p, s);
}

const char *pg_presence_user(const struct pg_presence_member *pm)
{
    return pm->u->id;
}

void pg_presence_own_message(struct pg_gw *gw, struct pg_app *app, const char *channel, const void *payload, size_t len)
{
    json_t *stored = len ? json_loadb(payload, len, 0, NULL) : NULL;
    int says_members = json_is_object(stored) && json_object_size(stored) > 0;
    json_decref(stored);
    struct pg_pchan *p = pchan_get(gw, app, channel, 0);
    int holds = p && p->nusers > 0;
    if (says_members != holds) {
        pg_log(PG_LOG_DEBUG, "presence", "own members of app=%s channel=%s %s: republished", app->creds->id, channel,
               holds ? "cleared elsewhere" : "left over");
        struct pg_pchan none = {.app = app, .name = channel};
        publish_own(gw, p ? p : &none);
    }
}

void pg_presence_republish_own(struct pg_gw *gw)
{
    struct pg_pchan *p, *tmp;
    HASH_ITER(hh, gw->pchans, p, tmp) {
        if (p->nusers)
            publish_own(gw, p);
    }
}

void pg_presence_on_message(struct pg_gw *gw, struct pg_app *app, const char *node, const char *channel,
                            const void *payload, size_t len)
{
    json_t *users = len ? json_loadb(payload, len, 0, NULL) : NULL;
    struct pg_pchan *p = pchan_get(gw, app, channel, users != NULL);
    if (!p) {
        json_decref(users);
        return;
    }
    if (json_is_object(users) && json_object_size(users))
        json_object_set(p->remote, node, users);
    else
        json_object_del(p->remote, node);
    json_decref(users);
    reconcile(gw, p, NULL);
}

void pg_presence_nodes_changed(struct pg_gw *gw, const char *gone, int clear)
{
    struct pg_pchan *p, *tmp;
    HASH_ITER(hh, gw->pchans, p, tmp) {
        if (clear && gone && json_object_get(p->remote, gone) && pg_cluster_is_leader(gw)) {
            /* a dead node cannot clear its retained members: the leader does */
            char *topic = presence_topic(gw, p, gone);
            if (topic)
                pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
            free(topic);
        }
        if (gone)
            json_object_del(p->remote, gone);
        reconcile(gw, p, NULL);
    }
}

json_t *pg_presence_members(struct pg_gw *gw, struct pg_app *app, const char *channel)
{
    struct pg_pchan *p = pchan_get(gw, app, channel, 0);
    return p ? compute_union(gw, p) : json_object();
}

void pg_presence_clear_own(struct pg_gw *gw)
{
    struct pg_pchan *p, *tmp;
    HASH_ITER(hh, gw->pchans, p, tmp) {
        if (!p->nusers)
            continue;
        char *topic = presence_topic(gw, p, gw->node_id);
        if (topic)
            pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
        free(topic);
    }
}

void pg_presence_free(struct pg_gw *gw)
{
    struct pg_pchan *p, *tmp;
    HASH_ITER(hh, gw->pchans, p, tmp) {
        struct presence_user *u, *utmp;
        HASH_ITER(hh, p->users, u, utmp) {
            HASH_DEL(p->users, u);
            free(u->id);
            json_decref(u->info);
            free(u);
        }
        pchan_free(gw, p);
    }
}
