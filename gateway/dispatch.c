/*
 * Incoming broker messages, sorted once: the topic is parsed here, once, and
 * its parts go to the one module that owns that kind of message, through the
 * table `handlers` below. No module re-parses a topic it is handed, and no
 * module is offered a message that is not its own.
 *
 *  kind        topic                               handler
 *  node        {root}/_node/{node}                 cluster.c: a peer's snapshot, or this node's own
 *  reg         {root}/_ctl/{app}/reg/{conn}        push_api.c: a push registration
 *  terminate   {root}/_ctl/{app}/terminate/{user}  pusher.c: close the user's sessions here
 *  app state   {root}/_ctl/apps/{slug}             apps.c: a store app replicated by another gateway
 *  revoke      {root}/_ctl/{app}/revoke            apps.c: another gateway's revocation
 *  device      {root}/{app}/d/{client}             devices.c: an MQTT device online or gone
 *  presence    {root}/{app}/p/{node}/{channel}     presence.c: a node's members of a presence channel
 *  broadcast   {root}/{app}/b                      apps.c: an app-wide broadcast
 *  channel     {root}/{app}/c/{channel}            channels.c: fan-out to the channel's sessions
 *  user        {root}/{app}/u/{user}               channels.c: fan-out to the per-user channel
 *  other       anything else                       seq.c: the broker's $SYS dropped counter; the rest is dropped
 *
 * The first level after the root decides: `_node` and `_ctl` are reserved
 * app ids, so no app's topics collide with them. Where a topic matches no
 * row (a level missing, an empty app or node) it is "other", as the broker
 * only delivers what the gateway subscribed.
 *
 * This file also wires the cluster's events to the modules above it
 * (presence members, push registrations' per-user counts in the snapshot),
 * so the cluster never includes them.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/apps.h"
#include "cluster/cluster.h"
#include "cluster/devices.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/seq.h"
#include "dispatch.h"
#include "http/push_api.h"
#include "log.h"
#include "proto/presence.h"
#include "proto/pusher.h"

#define NODE_ID_MAX 64 /* a node id as presence topics carry it (longer ones are cut, as node ids are shorter) */

enum kind { K_OTHER, K_NODE, K_REG, K_TERMINATE, K_APP_STATE, K_REVOKE, K_DEVICE, K_PRESENCE, K_BROADCAST, K_CHANNEL,
            K_USER, K_COUNT };

/* A parsed topic: pointers into it (app and node are not terminated; name runs to the topic's end). */
struct parts {
    enum kind kind;
    const char *app; /* reg, terminate, revoke, device, presence, broadcast, channel, user */
    size_t app_len;
    const char *node; /* node: the whole rest; presence: the node level */
    size_t node_len;
    const char *name; /* reg: conn, terminate: user, app state: slug, device: client, presence/channel: channel,
                         user: user */
};

static int starts(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* {root}/_ctl/...: control messages between gateways (and from the broker plugin). */
static void parse_ctl(const char *rest, struct parts *p)
{
    const char *app = rest, *slash = strchr(app, '/');
    p->app = app;
    p->app_len = slash ? (size_t)(slash - app) : 0;
    if (slash && starts(slash, "/reg/")) {
        p->kind = K_REG;
        p->name = slash + 5;
    } else if (slash && starts(slash, "/terminate/")) {
        p->kind = K_TERMINATE;
        p->name = slash + 11;
    } else if (starts(app, "apps/") && !strchr(app + 5, '/')) {
        p->kind = K_APP_STATE;
        p->name = app + 5;
    } else if (slash && !strcmp(slash, "/revoke")) {
        p->kind = K_REVOKE;
    }
}

/* {root}/{app}/{kind}/...: an app's messages. */
static void parse_app(const char *rest, struct parts *p)
{
    const char *slash = strchr(rest, '/');
    if (!slash)
        return;
    p->app = rest;
    p->app_len = (size_t)(slash - rest);
    if (starts(slash, "/d/") && p->app_len) {
        p->kind = K_DEVICE;
        p->name = slash + 3;
    } else if (starts(slash, "/p/")) {
        const char *node = slash + 3, *ch = strchr(node, '/');
        if (ch && ch[1]) {
            p->kind = K_PRESENCE;
            p->node = node;
            p->node_len = (size_t)(ch - node);
            p->name = ch + 1;
        }
    } else if (!strcmp(slash, "/b")) {
        p->kind = K_BROADCAST;
    } else if (starts(slash, "/c/") || starts(slash, "/u/")) {
        p->kind = slash[1] == 'c' ? K_CHANNEL : K_USER;
        p->name = slash + 3;
    }
}

static void parse(const char *root, const char *topic, struct parts *p)
{
    size_t rl = strlen(root);
    memset(p, 0, sizeof *p);
    if (strncmp(topic, root, rl) != 0 || topic[rl] != '/')
        return;
    const char *rest = topic + rl + 1;
    if (starts(rest, "_node/")) {
        p->kind = K_NODE;
        p->node = rest + 6;
        p->node_len = strlen(p->node);
    } else if (starts(rest, "_ctl/")) {
        parse_ctl(rest + 5, p);
    } else {
        parse_app(rest, p);
    }
}

/* ---- handlers ------------------------------------------------------------------------ */

struct inbound {
    const char *topic;
    struct parts p;
    const void *payload;
    size_t len;
    const struct pg_bridge_prop *props;
    size_t nprops;
};

static void on_other(struct pg_gw *gw, const struct inbound *m)
{
    pg_seq_on_message(gw, m->topic, m->payload, m->len);
}

static void on_node(struct pg_gw *gw, const struct inbound *m)
{
    pg_cluster_on_node(gw, m->p.node, m->payload, m->len);
}

static void on_reg(struct pg_gw *gw, const struct inbound *m)
{
    pg_push_on_reg(gw, m->p.app, m->p.app_len, m->p.name, m->payload, m->len);
}

static void on_terminate(struct pg_gw *gw, const struct inbound *m)
{
    struct pg_app *app = pg_app_find(gw, m->p.app, m->p.app_len);
    if (app && *m->p.name) {
        pg_log(PG_LOG_INFO, "cluster", "terminating connections app=%s user=%s", app->creds->id, m->p.name);
        pg_pusher_terminate_user(gw, app, m->p.name);
    }
}

static void on_app_state(struct pg_gw *gw, const struct inbound *m)
{
    pg_apps_on_state(gw, m->p.name, m->payload, m->len);
}

static void on_revoke(struct pg_gw *gw, const struct inbound *m)
{
    char *app = strndup(m->p.app, m->p.app_len);
    if (app)
        pg_apps_on_revoke(gw, app, m->payload, m->len);
    free(app);
}

static void on_device(struct pg_gw *gw, const struct inbound *m)
{
    pg_devices_on_record(gw, m->p.app, m->p.app_len, m->p.name, m->topic, m->payload, m->len);
}

static void on_presence(struct pg_gw *gw, const struct inbound *m)
{
    struct pg_app *app = pg_app_find(gw, m->p.app, m->p.app_len);
    char id[NODE_ID_MAX];
    snprintf(id, sizeof id, "%.*s", (int)m->p.node_len, m->p.node);
    int own = !strcmp(id, gw->node_id);
    if (own && app)
        pg_presence_own_message(gw, app, m->p.name, m->payload, m->len);
    else if (own && m->len) /* ours, of an app we no longer have: nobody else would ever clear it */
        pg_bridge_publish(gw->bridge, m->topic, NULL, 0, NULL, 1, NULL, NULL);
    else if (app)
        pg_presence_on_message(gw, app, id, m->p.name, m->payload, m->len);
}

static void on_broadcast(struct pg_gw *gw, const struct inbound *m)
{
    struct pg_app *a = pg_app_find(gw, m->p.app, m->p.app_len);
    if (a && a->creds->active)
        pg_apps_broadcast(gw, a, m->payload, m->len, m->props, m->nprops);
}

static void on_channel(struct pg_gw *gw, const struct inbound *m)
{
    pg_channels_deliver(gw, m->topic, m->payload, m->len, m->props, m->nprops);
}

/* The one place that says who handles what. */
static void (*const handlers[K_COUNT])(struct pg_gw *gw, const struct inbound *m) = {
    [K_OTHER] = on_other,         [K_NODE] = on_node,         [K_REG] = on_reg,
    [K_TERMINATE] = on_terminate, [K_APP_STATE] = on_app_state, [K_REVOKE] = on_revoke,
    [K_DEVICE] = on_device,       [K_PRESENCE] = on_presence, [K_BROADCAST] = on_broadcast,
    [K_CHANNEL] = on_channel,     [K_USER] = on_channel,
};

void pg_dispatch_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len,
                         const struct pg_bridge_prop *props, size_t nprops)
{
    struct inbound m = {.topic = topic, .payload = payload, .len = len, .props = props, .nprops = nprops};
    parse(gw->cfg->topic_root, topic, &m.p);
    handlers[m.p.kind](gw, &m);
}

/* ---- the cluster's events ---------------------------------------------------------------- */

/* A node's presence members come and go with it; this node's own are republished or cleared with its snapshot. */
static const struct pg_cluster_listener presence_listener = {
    .nodes_changed = pg_presence_nodes_changed,
    .connected = pg_presence_republish_own,
    .stopping = pg_presence_clear_own,
};

/* Live sessions per user, for push recipients counted over the cluster (push_api.c). */
static const struct pg_cluster_listener push_listener = {
    .snapshot_key = "users",
    .snapshot = pg_push_local_users,
};

int pg_dispatch_init(struct pg_gw *gw)
{
    int rc = pg_cluster_listen(gw, &presence_listener);
    if (rc == 0)
        rc = pg_cluster_listen(gw, &push_listener);
    if (rc != 0)
        return rc;
    /* every node closes its own sessions of a user the app terminates (POST .../terminate_connections) */
    char *terminate = pg_topic(gw, "_ctl", "+", "terminate/+");
    rc = terminate ? pg_bridge_subscribe(gw->bridge, terminate) : PG_ENOMEM;
    free(terminate);
    return rc;
}
