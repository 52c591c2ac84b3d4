/*
 * Incoming broker messages, sorted once: the topic is parsed here, once, and
 * its parts go to the one module that owns that kind of message, through the
 * table `handlers` below. No module re-parses a topic it is handed, and no
 * module is offered a message that is not its own.
 *
 *  kind        topic                                 handler
 *  node        {root}/_node/{node}                   cluster.c: a peer's snapshot, or this node's own
 *  load        {root}/_node/{node}/load              load.c: a node's load and marks
 *  reg         {root}/_ctl/{app}/reg/{conn}          push_regs.c: a push registration
 *  terminate   {root}/_ctl/{app}/terminate/{user}    registry.c: close the user's sessions here
 *  app record  {root}/_ctl/apps/{slug}               apps.c: a store app replicated by another gateway
 *  revoke      {root}/_ctl/{app}/revoke              apps.c: another gateway's revocation
 *  device      {root}/{app}/d/{client}               devices.c: an MQTT device online or gone
 *  presence    {root}/{app}/p/{node}/{channel}       presence.c: a node's members of a presence channel
 *  broadcast   {root}/{app}/b                        fanout.c: an app-wide broadcast to the app's sessions
 *  channel     {root}/{app}/c/{channel}              fanout.c: to the channel's sessions
 *  user        {root}/{app}/u/{user}                 fanout.c: to the per-user channel's sessions
 *  dropped     $SYS/broker/publish/messages/dropped  seq.c: the broker's count of dropped messages
 *
 * The topic scheme is common/pg_topic.h's (pg_topic_parse); a topic it does
 * not read as a pushgate topic (kind none) is dropped, as the broker only
 * delivers what the gateway subscribed.
 *
 * This file also wires the cluster's events to the modules above it
 * (presence members, push registrations' per-user counts in the snapshot),
 * so the cluster never includes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/apps.h"
#include "cluster/cluster.h"
#include "cluster/devices.h"
#include "cluster/load.h"
#include "cluster/push_regs.h"
#include "core/app.h"
#include "core/fanout.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/registry.h"
#include "core/seq.h"
#include "dispatch.h"
#include "log.h"
#include "pg_topic.h"
#include "proto/presence.h"

#define NODE_ID_MAX 64 /* a node id as presence topics carry it (longer ones are cut, as node ids are shorter) */

/* ---- handlers ------------------------------------------------------------------------ */

struct inbound {
    const char *topic;
    struct pg_topic_ref p; /* parts point into topic; name (and node of a node topic) end it, so are terminated */
    const void *payload;
    size_t len;
    const struct pg_bridge_prop *props;
    size_t nprops;
};

static void on_dropped(struct pg_gw *gw, const struct inbound *m)
{
    pg_seq_on_dropped(gw, m->payload, m->len);
}

static void on_node(struct pg_gw *gw, const struct inbound *m)
{
    pg_cluster_on_node(gw, m->p.node.s, m->payload, m->len);
}

static void on_load(struct pg_gw *gw, const struct inbound *m)
{
    char id[NODE_ID_MAX];
    snprintf(id, sizeof id, "%.*s", (int)m->p.node.len, m->p.node.s);
    pg_load_on_message(gw, id, m->payload, m->len);
}

static void on_reg(struct pg_gw *gw, const struct inbound *m)
{
    pg_push_regs_on_message(gw, m->p.app.s, m->p.app.len, m->p.name.s, m->payload, m->len);
}

static void on_terminate(struct pg_gw *gw, const struct inbound *m)
{
    struct pg_app *app = pg_app_find(gw, m->p.app.s, m->p.app.len);
    if (app) {
        pg_log(PG_LOG_INFO, "cluster", "terminating connections app=%s user=%s", app->creds->id, m->p.name.s);
        pg_sessions_terminate_user(gw, app, m->p.name.s);
    }
}

static void on_app_record(struct pg_gw *gw, const struct inbound *m)
{
    pg_apps_on_state(gw, m->p.app.s, m->payload, m->len); /* the slug: the last level */
}

static void on_revoke(struct pg_gw *gw, const struct inbound *m)
{
    char *app = strndup(m->p.app.s, m->p.app.len);
    if (app)
        pg_apps_on_revoke(gw, app, m->payload, m->len);
    free(app);
}

static void on_device(struct pg_gw *gw, const struct inbound *m)
{
    pg_devices_on_record(gw, m->p.app.s, m->p.app.len, m->p.name.s, m->topic, m->payload, m->len);
}

static void on_presence(struct pg_gw *gw, const struct inbound *m)
{
    struct pg_app *app = pg_app_find(gw, m->p.app.s, m->p.app.len);
    char id[NODE_ID_MAX];
    snprintf(id, sizeof id, "%.*s", (int)m->p.node.len, m->p.node.s);
    int own = !strcmp(id, gw->node_id);
    if (own && app)
        pg_presence_own_message(gw, app, m->p.name.s, m->payload, m->len);
    else if (own && m->len) /* ours, of an app we no longer have: nobody else would ever clear it */
        pg_bridge_publish(gw->bridge, m->topic, NULL, 0, NULL, 1, NULL, NULL);
    else if (app)
        pg_presence_on_message(gw, app, id, m->p.name.s, m->payload, m->len);
}

static void on_fanout(struct pg_gw *gw, const struct inbound *m)
{
    pg_fanout_topic(gw, &m->p, m->payload, m->len, m->props, m->nprops);
}

/* The one place that says who handles what; a kind without a handler (none) is dropped. */
static void (*const handlers[PG_TOPIC_KINDS])(struct pg_gw *gw, const struct inbound *m) = {
    [PG_TOPIC_NODE] = on_node,           [PG_TOPIC_REG] = on_reg,
    [PG_TOPIC_TERMINATE] = on_terminate, [PG_TOPIC_APP_RECORD] = on_app_record,
    [PG_TOPIC_REVOKE] = on_revoke,       [PG_TOPIC_DEVICE] = on_device,
    [PG_TOPIC_PRESENCE] = on_presence,   [PG_TOPIC_BROADCAST] = on_fanout,
    [PG_TOPIC_CHANNEL] = on_fanout,      [PG_TOPIC_USER] = on_fanout,
    [PG_TOPIC_DROPPED] = on_dropped,    [PG_TOPIC_LOAD] = on_load,
};

void pg_dispatch_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len,
                         const struct pg_bridge_prop *props, size_t nprops)
{
    struct inbound m = {.topic = topic, .payload = payload, .len = len, .props = props, .nprops = nprops};
    enum pg_topic_kind kind = pg_topic_parse(gw->cfg->topic_root, topic, &m.p);
    if (kind == PG_TOPIC_CHANNEL || kind == PG_TOPIC_USER || kind == PG_TOPIC_BROADCAST) {
        pg_load_inbound(gw); /* marks follow traffic (cluster/load.c) */
        const char *origin = gw->cfg->local_first ? pg_prop_get(props, nprops, "origin", NULL) : NULL;
        if (origin && !strcmp(origin, gw->origin)) {
            /* this process's own publish: its subscribers here had it when it was made (core/publish.c). Channel
               subscriptions carry No Local then (server.c), so only a filter without it (a broadcast) gets here */
            gw->own_copies++;
            return;
        }
    }
    if (handlers[kind])
        handlers[kind](gw, &m);
}

/* ---- the cluster's events ---------------------------------------------------------------- */

/* A node's presence members come and go with it; this node's own are republished or cleared with its snapshot. */
static const struct pg_cluster_listener presence_listener = {
    .nodes_changed = pg_presence_nodes_changed,
    .connected = pg_presence_republish_own,
    .stopping = pg_presence_clear_own,
};

/* Live sessions per user, for push recipients counted over the cluster (cluster/push_regs.c). */
static const struct pg_cluster_listener push_listener = {
    .snapshot_key = PG_PUSH_REGS_SNAPSHOT_KEY,
    .snapshot = pg_push_regs_local_users,
};

int pg_dispatch_init(struct pg_gw *gw)
{
    int rc = pg_cluster_listen(gw, &presence_listener);
    if (rc == 0)
        rc = pg_cluster_listen(gw, &push_listener);
    if (rc == 0)
        rc = pg_load_init(gw); /* bounded lag: listens to the cluster, subscribes to every node's load topic */
    if (rc != 0)
        return rc;
    /* every node closes its own sessions of a user the app terminates (POST .../terminate_connections) */
    char filter[PG_TOPIC_FILTER_MAX];
    rc = pg_topic_filter(filter, sizeof filter, gw->cfg->topic_root, PG_TOPIC_TERMINATE);
    return rc < 0 ? rc : pg_bridge_subscribe(gw->bridge, filter);
}
