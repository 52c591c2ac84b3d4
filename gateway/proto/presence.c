/*
 * Presence across nodes. Each node publishes its own members of a presence
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
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "gateway.h"

struct pg_pchan {
    char *name;
    json_t *remote;  /* {node: {user_id: info}} as published by other nodes */
    json_t *members; /* the union last reported to subscribers */
    UT_hash_handle hh;
};

static struct pg_pchan *pchan_get(struct pg_app *app, const char *name, int create)
{
    struct pg_pchan *p;
    HASH_FIND_STR(app->pchans, name, p);
    if (p || !create)
        return p;
    p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name))) {
        free(p);
        return NULL;
    }
    p->remote = json_object();
    p->members = json_object();
    HASH_ADD_KEYPTR(hh, app->pchans, p->name, strlen(p->name), p);
    return p;
}

static void pchan_free(struct pg_app *app, struct pg_pchan *p)
{
    HASH_DEL(app->pchans, p);
    json_decref(p->remote);
    json_decref(p->members);
    free(p->name);
    free(p);
}

static json_t *local_users(struct pg_app *app, const char *name)
{
    json_t *o = json_object();
    struct pg_channel *ch;
    struct pg_presence_user *u, *tmp;
    HASH_FIND_STR(app->channels, name, ch);
    if (ch)
        HASH_ITER(hh, ch->users, u, tmp) {
            json_object_set(o, u->id, u->info ? u->info : json_null());
        }
    return o;
}

static json_t *compute_union(struct pg_gw *gw, struct pg_app *app, struct pg_pchan *p)
{
    json_t *u = local_users(app, p->name);
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

static void tell_local(struct pg_app *app, const char *channel, struct pg_session *except, const char *event,
                       json_t *data)
{
    struct pg_channel *ch;
    struct pg_member *m;
    HASH_FIND_STR(app->channels, channel, ch);
    if (ch)
        DL_FOREACH(ch->members, m) {
            if (m->s != except && m->live && m->s->proto == &pg_pusher_proto)
                pg_pusher_send_event(m->s, event, channel, json_incref(data));
        }
    json_decref(data);
}

/* Recompute p's members and report what changed; except: a session that must not hear of it. */
static void reconcile(struct pg_gw *gw, struct pg_app *app, struct pg_pchan *p, struct pg_session *except)
{
    json_t *now = compute_union(gw, app, p);
    const char *uid;
    json_t *info;
    int leader = pg_cluster_is_leader(gw);
    json_object_foreach(now, uid, info) {
        if (json_object_get(p->members, uid))
            continue;
        tell_local(app, p->name, except, "pusher_internal:member_added",
                   json_pack("{s:s, s:O}", "user_id", uid, "user_info", info));
        if (leader)
            pg_webhook_emit(gw, app, json_pack("{s:s, s:s, s:s}", "name", "member_added", "channel", p->name,
                                               "user_id", uid));
    }
    json_object_foreach(p->members, uid, info) {
        if (json_object_get(now, uid))
            continue;
        tell_local(app, p->name, except, "pusher_internal:member_removed", json_pack("{s:s}", "user_id", uid));
        if (leader)
            pg_webhook_emit(gw, app, json_pack("{s:s, s:s, s:s}", "name", "member_removed", "channel", p->name,
                                               "user_id", uid));
    }
    json_decref(p->members);
    p->members = now;
    if (!json_object_size(p->members) && !json_object_size(p->remote))
        pchan_free(app, p);
}

/* Publish this node's members of channel, retained (nodes that start later learn them; empty clears it). */
static void publish_own(struct pg_gw *gw, struct pg_app *app, const char *channel)
{
    json_t *mine = local_users(app, channel);
    char kind[80];
    snprintf(kind, sizeof kind, "p/%s", gw->node_id);
    char *topic = pg_topic(gw, app->creds->id, kind, channel);
    char *body = json_object_size(mine) ? json_dumps(mine, JSON_COMPACT) : NULL;
    if (topic)
        pg_bridge_publish(gw->bridge, topic, body, body ? strlen(body) : 0, NULL, 1, NULL, NULL);
    free(topic);
    free(body);
    json_decref(mine);
}

void pg_presence_local_changed(struct pg_gw *gw, struct pg_app *app, const char *channel, struct pg_session *except)
{
    struct pg_pchan *p = pchan_get(app, channel, 1);
    publish_own(gw, app, channel);
    if (p)
        reconcile(gw, app, p, except);
}

void pg_presence_own_message(struct pg_gw *gw, struct pg_app *app, const char *channel, const void *payload, size_t len)
{
    struct pg_channel *ch;
    json_t *stored = len ? json_loadb(payload, len, 0, NULL) : NULL;
    int says_members = json_is_object(stored) && json_object_size(stored) > 0;
    json_decref(stored);
    HASH_FIND_STR(app->channels, channel, ch);
    int holds = ch && ch->nusers > 0;
    if (says_members != holds) {
        pg_log(PG_LOG_DEBUG, "presence", "own members of app=%s channel=%s %s: republished", app->creds->id, channel,
               holds ? "cleared elsewhere" : "left over");
        publish_own(gw, app, channel);
    }
}

void pg_presence_republish_own(struct pg_gw *gw)
{
    struct pg_app *a, *atmp;
    HASH_ITER(hh, gw->apps, a, atmp) {
        struct pg_channel *ch, *ctmp;
        HASH_ITER(hh, a->channels, ch, ctmp) {
            if (ch->nusers)
                publish_own(gw, a, ch->name);
        }
    }
}

void pg_presence_on_message(struct pg_gw *gw, struct pg_app *app, const char *node, const char *channel,
                            const void *payload, size_t len)
{
    json_t *users = len ? json_loadb(payload, len, 0, NULL) : NULL;
    struct pg_pchan *p = pchan_get(app, channel, users != NULL);
    if (!p) {
        json_decref(users);
        return;
    }
    if (json_is_object(users) && json_object_size(users))
        json_object_set(p->remote, node, users);
    else
        json_object_del(p->remote, node);
    json_decref(users);
    reconcile(gw, app, p, NULL);
}

void pg_presence_nodes_changed(struct pg_gw *gw, const char *gone, int clear)
{
    struct pg_app *a, *atmp;
    HASH_ITER(hh, gw->apps, a, atmp) {
        struct pg_pchan *p, *ptmp;
        HASH_ITER(hh, a->pchans, p, ptmp) {
            if (clear && gone && json_object_get(p->remote, gone) && pg_cluster_is_leader(gw)) {
                /* a dead node cannot clear its retained members: the leader does */
                char kind[80];
                snprintf(kind, sizeof kind, "p/%s", gone);
                char *topic = pg_topic(gw, a->creds->id, kind, p->name);
                if (topic)
                    pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
                free(topic);
            }
            if (gone)
                json_object_del(p->remote, gone);
            reconcile(gw, a, p, NULL);
        }
    }
}

json_t *pg_presence_members(struct pg_gw *gw, struct pg_app *app, const char *channel)
{
    struct pg_pchan *p = pchan_get(app, channel, 0);
    return p ? compute_union(gw, app, p) : local_users(app, channel);
}

void pg_presence_clear_own(struct pg_gw *gw)
{
    struct pg_app *a, *atmp;
    HASH_ITER(hh, gw->apps, a, atmp) {
        struct pg_channel *ch, *ctmp;
        HASH_ITER(hh, a->channels, ch, ctmp) {
            if (!ch->nusers)
                continue;
            char kind[80];
            snprintf(kind, sizeof kind, "p/%s", gw->node_id);
            char *topic = pg_topic(gw, a->creds->id, kind, ch->name);
            if (topic)
                pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
            free(topic);
        }
    }
}

void pg_presence_free(struct pg_app *app)
{
    struct pg_pchan *p, *tmp;
    HASH_ITER(hh, app->pchans, p, tmp) {
        pchan_free(app, p);
    }
}
