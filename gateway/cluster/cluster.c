/*
 * What every gateway node must agree on travels through the broker as
 * retained messages, never through a node-local table alone:
 *
 *  {root}/_node/{id}              this node's liveness and snapshot
 *                                 {"node","version","started_ms","liveness_ms",
 *                                 "channels":{app:{channel:subscriptions}},
 *                                 "sessions":{app:sessions}} (older nodes omit "sessions", "liveness_ms"),
 *                                 plus what listeners contribute, e.g. "users":{app:{user:live sessions
 *                                 on its per-user channel}} (push_regs.c); the MQTT will empties it when
 *                                 the node dies
 *  {root}/_node/{id}/load         this node's load and marks (cluster/load.c)
 *  {root}/{app}/p/{id}/{channel}  this node's members of a presence channel (presence.c)
 *
 * Every node subscribes to the first two, so each holds the same view of the whole
 * cluster: occupied channels and their subscription counts are the sum over
 * live nodes, presence members the union. Cluster-level webhooks (occupied,
 * vacated, subscription_count, member_added/removed) are sent by one node,
 * the live node with the smallest id, so each is reported once.
 *
 * A node is gone for its peers, and its presence members with it, when
 *  - its snapshot is emptied (its will, or a peer that declared it dead);
 *  - a snapshot with another started_ms arrives: the node restarted under the
 *    same node_id, possibly before the broker noticed the old connection die,
 *    so no will came between. The earlier incarnation's members go at once
 *    (the new one clears what it left retained, presence.c), as if it had
 *    died: peers drop it before they take the new snapshot, so the leader
 *    reporting the removals is one that knew the members;
 *  - nothing came from it for its liveness_ms (the broker may take 1.5
 *    keepalives to fire a will, and fires none when it never saw the node's
 *    connection end): every node republishes its snapshot every third of its
 *    node_liveness_ms, and announces that deadline in it, so peers configured
 *    otherwise agree. Older nodes announce none and are only gone by their
 *    will. A node only judges peers while connected, and gives them a whole
 *    deadline again after each reconnect of its own. The leader then empties
 *    the dead node's retained topics; a node that is alive after all sees its
 *    own topics emptied and publishes them again.
 *
 * Load and unconfirmed publishes: cluster/load.c, on its own topic below.
 *
 * The messages on these topics reach this file already sorted by kind (the
 * broker message dispatch): snapshots through pg_cluster_on_node; presence
 * messages go to presence.c directly. What follows from a node coming or
 * going for the modules above (presence members, ...) is told through the
 * registered listeners (cluster.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/webhooks.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/session.h"
#include "log.h"
#include "pg_topic.h"

#define SNAPSHOT_MIN_INTERVAL_MS 200
/*
 * A snapshot (occupancy diff and publish) walks every local channel: with 100,000 channels it takes long enough
 * that one every 200 ms would keep the loop busy. The next one waits at least this many times what the last
 * one took, so snapshots cost at most about 1/SNAPSHOT_COST_SHARE of the loop; never longer than a liveness
 * refresh period, so peers still hear from this node in time.
 */
#define SNAPSHOT_COST_SHARE 20
#define LIVENESS_REFRESHES 3 /* snapshots per node_liveness_ms: a late one still leaves the deadline met */
struct pg_node {
    char *id;
    json_t *snapshot;    /* NULL: not alive */
    int64_t seen_ms;     /* monotonic time of its last snapshot (or of our last reconnect) */
    int64_t liveness_ms; /* the deadline its snapshot announces; 0: none (older nodes) */
    UT_hash_handle hh;
};

struct pg_cluster {
    struct pg_node *nodes; /* other gateway nodes */
    json_t *occupied;      /* the cluster's channels as last evaluated: {app: {channel: subscriptions}} */
    int dirty;             /* local channels changed since the last snapshot: publish a new one */
    int occupancy_dirty;   /* a peer's snapshot arrived: re-evaluate occupancy, nothing to publish */
    int64_t last_snapshot_ms;
    int64_t snapshot_cost_ms; /* what the last snapshot took (pg_cluster_tick) */
    int64_t last_refresh_ms; /* monotonic time this node last published its snapshot (liveness refresh) */
    const struct pg_cluster_listener *listeners[PG_CLUSTER_MAX_LISTENERS]; /* borrowed, in registration order */
    size_t nlisteners;
};

/* Call member m of every listener that has one, in registration order. */
#define EACH_LISTENER(c, m, ...)                                                                                       \
    do {                                                                                                               \
        for (size_t li_ = 0; li_ < (c)->nlisteners; li_++)                                                             \
            if ((c)->listeners[li_]->m)                                                                                \
                (c)->listeners[li_]->m(__VA_ARGS__);                                                                   \
    } while (0)

/* {root}/_node/{id} (common/pg_topic.h); caller frees; NULL when out of memory or id is no topic level. */
static char *node_topic(struct pg_gw *gw, const char *id)
{
    return pg_topic_new(gw->cfg->topic_root, PG_TOPIC_NODE, NULL, id, NULL);
}

int pg_cluster_init(struct pg_gw *gw)
{
    if (!gw->cluster && !(gw->cluster = calloc(1, sizeof *gw->cluster)))
        return PG_ENOMEM;
    char nodes[PG_TOPIC_FILTER_MAX], presence[PG_TOPIC_FILTER_MAX];
    int rc = pg_topic_filter(nodes, sizeof nodes, gw->cfg->topic_root, PG_TOPIC_NODE);
    if (rc >= 0)
        rc = pg_topic_filter(presence, sizeof presence, gw->cfg->topic_root, PG_TOPIC_PRESENCE);
    if (rc >= 0)
        rc = pg_bridge_subscribe(gw->bridge, nodes);
    if (rc == 0)
        rc = pg_bridge_subscribe(gw->bridge, presence);
    return rc;
}

void pg_cluster_free(struct pg_gw *gw)
{
    struct pg_cluster *c = gw->cluster;
    struct pg_node *n, *tmp;
    if (!c)
        return;
    HASH_ITER(hh, c->nodes, n, tmp) {
        HASH_DEL(c->nodes, n);
        json_decref(n->snapshot);
        free(n->id);
        free(n);
    }
    json_decref(c->occupied);
    free(c);
    gw->cluster = NULL;
}

int pg_cluster_listen(struct pg_gw *gw, const struct pg_cluster_listener *l)
{
    struct pg_cluster *c = gw->cluster;
    if (!c)
        return PG_EINVAL;
    if (c->nlisteners >= PG_CLUSTER_MAX_LISTENERS)
        return PG_ELIMIT;
    c->listeners[c->nlisteners++] = l;
    return 0;
}

int pg_cluster_node_alive(struct pg_gw *gw, const char *id)
{
    struct pg_node *n = NULL;
    if (!strcmp(id, gw->node_id))
        return 1;
    if (gw->cluster)
        HASH_FIND_STR(gw->cluster->nodes, id, n);
    return n && n->snapshot;
}

size_t pg_cluster_node_count(struct pg_gw *gw)
{
    return (gw->cluster ? HASH_COUNT(gw->cluster->nodes) : 0) + 1; /* the table holds live peers only */
}

int pg_cluster_is_leader(struct pg_gw *gw)
{
    struct pg_node *n, *tmp;
    if (!gw->cluster)
        return 1;
    HASH_ITER(hh, gw->cluster->nodes, n, tmp) {
        if (n->snapshot && strcmp(n->id, gw->node_id) < 0)
            return 0;
    }
    return 1;
}

/* This node's channels: {app: {channel: subscriptions}} (exact channels only). */
static json_t *local_channels(struct pg_gw *gw)
{
    json_t *apps = json_object();
    struct pg_app *a, *atmp;
    HASH_ITER(hh, gw->apps, a, atmp) {
        json_t *chans = json_object();
        struct pg_channel *ch, *ctmp;
        HASH_ITER(hh, a->channels, ch, ctmp) {
            /* per-user channels are private plumbing, not channels an app lists or gets webhooks for */
            if (ch->nmembers && strncmp(ch->name, PG_USER_CHANNEL_PREFIX, strlen(PG_USER_CHANNEL_PREFIX)) != 0)
                json_object_set_new(chans, ch->name, json_integer((json_int_t)ch->nmembers));
        }
        if (json_object_size(chans))
            json_object_set_new(apps, a->creds->id, chans);
        else
            json_decref(chans);
    }
    return apps;
}

/* This node's WebSocket sessions per app, every protocol: {app: sessions} (apps with some only). */
static json_t *local_sessions(struct pg_gw *gw)
{
    json_t *apps = json_object();
    struct pg_session *s, *tmp;
    HASH_ITER(hh, gw->sessions, s, tmp) {
        if (s->app)
            json_object_set_new(apps, s->app->creds->id,
                                json_integer(json_integer_value(json_object_get(apps, s->app->creds->id)) + 1));
    }
    return apps;
}

uint64_t pg_cluster_peer_sessions(struct pg_gw *gw, const char *app, size_t *reporting)
{
    uint64_t sum = 0;
    struct pg_node *n, *tmp;
    *reporting = 0;
    if (!gw->cluster)
        return 0;
    HASH_ITER(hh, gw->cluster->nodes, n, tmp) {
        json_t *counts = n->snapshot ? json_object_get(n->snapshot, "sessions") : NULL;
        if (!json_is_object(counts) || !strcmp(n->id, gw->node_id))
            continue;
        json_int_t v = json_integer_value(json_object_get(counts, app));
        (*reporting)++;
        if (v > 0)
            sum += (uint64_t)v;
    }
    return sum;
}

uint64_t pg_cluster_peer_count(struct pg_gw *gw, const char *key, const char *app, const char *name)
{
    uint64_t sum = 0;
    struct pg_node *n, *tmp;
    if (!gw->cluster)
        return 0;
    HASH_ITER(hh, gw->cluster->nodes, n, tmp) {
        if (!n->snapshot || !strcmp(n->id, gw->node_id))
            continue;
        json_int_t v = json_integer_value(json_object_get(json_object_get(json_object_get(n->snapshot, key), app), name));
        if (v > 0)
            sum += (uint64_t)v;
    }
    return sum;
}

json_t *pg_cluster_channels(struct pg_gw *gw, const char *app)
{
    json_t *sum = json_object(), *mine = local_channels(gw);
    struct pg_node *n, *tmp, *peers = gw->cluster ? gw->cluster->nodes : NULL;
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(mine, app), name, v) json_object_set(sum, name, v);
    HASH_ITER(hh, peers, n, tmp) {
        if (!n->snapshot || !strcmp(n->id, gw->node_id))
            continue;
        json_object_foreach(json_object_get(json_object_get(n->snapshot, "channels"), app), name, v) {
            json_int_t have = json_integer_value(json_object_get(sum, name));
            if (json_is_integer(v) && json_integer_value(v) > 0)
                json_object_set_new(sum, name, json_integer(have + json_integer_value(v)));
        }
    }
    json_decref(mine);
    return sum;
}

/* Leader only: compare the cluster's channels with the last view and report the differences. */
static void occupancy_changed(struct pg_gw *gw)
{
    struct pg_cluster *c = gw->cluster;
    json_t *now = json_object();
    struct pg_app *a, *atmp;
    HASH_ITER(hh, gw->apps, a, atmp) {
        json_object_set_new(now, a->creds->id, pg_cluster_channels(gw, a->creds->id));
    }
    json_t *before = c->occupied ? c->occupied : json_object();
    int leader = pg_cluster_is_leader(gw);
    HASH_ITER(hh, gw->apps, a, atmp) {
        json_t *b = json_object_get(before, a->creds->id), *n = json_object_get(now, a->creds->id);
        const char *name;
        json_t *v;
        if (!leader)
            continue;
        json_object_foreach(n, name, v) {
            json_t *old = json_object_get(b, name);
            if (!old)
                pg_webhook_emit(gw, a, json_pack("{s:s, s:s}", "name", "channel_occupied", "channel", name));
            if (!old || json_integer_value(old) != json_integer_value(v))
                pg_webhook_emit(gw, a, json_pack("{s:s, s:s, s:I}", "name", "subscription_count", "channel", name,
                                                 "subscription_count", json_integer_value(v)));
        }
        json_object_foreach(b, name, v) {
            if (!json_object_get(n, name))
                pg_webhook_emit(gw, a, json_pack("{s:s, s:s}", "name", "channel_vacated", "channel", name));
        }
    }
    if (c->occupied)
        json_decref(c->occupied);
    else
        json_decref(before);
    c->occupied = now;
}

int pg_cluster_settled(struct pg_gw *gw)
{
    return !gw->cluster || (!gw->local_dirty && !gw->cluster->dirty && !gw->cluster->occupancy_dirty);
}

static void publish_snapshot(struct pg_gw *gw, int up)
{
    struct pg_cluster *c = gw->cluster;
    char *topic = node_topic(gw, gw->node_id);
    char *body = NULL;
    if (up) {
        json_t *o =
            json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "node", gw->node_id, "version", PUSHGATE_VERSION, "started_ms",
                      (json_int_t)gw->started_ms, "liveness_ms", (json_int_t)gw->cfg->node_liveness_ms, "channels",
                      local_channels(gw), "sessions", local_sessions(gw));
        for (size_t i = 0; o && i < c->nlisteners; i++) {
            const struct pg_cluster_listener *l = c->listeners[i];
            if (l->snapshot_key && l->snapshot)
                json_object_set_new(o, l->snapshot_key, l->snapshot(gw));
        }
        body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    if (topic && (!up || body))
        pg_bridge_publish(gw->bridge, topic, body, body ? strlen(body) : 0, NULL, 1, NULL, NULL);
    c->last_refresh_ms = pg_mono_ms();
    free(topic);
    free(body);
}

/* What the leader empties of a gone node's retained topics (a dead node cannot do it itself). */
enum { CLEAR_NONE, CLEAR_PRESENCE, CLEAR_ALL /* its snapshot too: nothing emptied it */ };

/* n is gone (why: for the log): its members leave, then it leaves the table (n is freed). */
static void node_gone(struct pg_gw *gw, struct pg_node *n, const char *why, int clear)
{
    struct pg_cluster *c = gw->cluster;
    pg_log(PG_LOG_INFO, "cluster", "node %s gone (%s)", n->id, why);
    json_decref(n->snapshot);
    n->snapshot = NULL; /* not alive: out of the leader election and the member union from here */
    EACH_LISTENER(c, nodes_changed, gw, n->id, clear != CLEAR_NONE);
    if (clear == CLEAR_ALL && pg_cluster_is_leader(gw)) {
        char *topic = node_topic(gw, n->id);
        if (topic)
            pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
        free(topic);
    }
    c->occupancy_dirty = 1;
    HASH_DEL(c->nodes, n);
    free(n->id);
    free(n);
}

/* Peers whose announced deadline passed without a snapshot are dead (judged only while connected). */
static void check_liveness(struct pg_gw *gw, int64_t now)
{
    struct pg_node *n, *tmp;
    HASH_ITER(hh, gw->cluster->nodes, n, tmp) {
        if (n->snapshot && n->liveness_ms > 0 && now - n->seen_ms > n->liveness_ms)
            node_gone(gw, n, "no snapshot within its liveness deadline", CLEAR_ALL);
    }
}

void pg_cluster_tick(struct pg_gw *gw)
{
    struct pg_cluster *c = gw->cluster;
    int64_t now = pg_mono_ms();
    if (!c)
        return;
    if (gw->local_dirty) { /* pg_gw_local_changed(): channels, members or session counts of this node */
        c->dirty = 1;
        gw->local_dirty = 0;
    }
    EACH_LISTENER(c, tick, gw, now);
    if (pg_bridge_connected(gw->bridge)) {
        check_liveness(gw, now);
        if (now - c->last_refresh_ms >= gw->cfg->node_liveness_ms / LIVENESS_REFRESHES)
            c->dirty = 1; /* unchanged, but peers must hear from us within our deadline */
    }
    /* while draining, every tick counts: the sessions closed last must still vacate their channels before exit */
    int64_t interval = SNAPSHOT_COST_SHARE * c->snapshot_cost_ms, refresh = gw->cfg->node_liveness_ms / LIVENESS_REFRESHES;
    if (interval > refresh)
        interval = refresh;
    if (interval < SNAPSHOT_MIN_INTERVAL_MS)
        interval = SNAPSHOT_MIN_INTERVAL_MS;
    if ((!c->dirty && !c->occupancy_dirty) || (!gw->draining && now - c->last_snapshot_ms < interval))
        return;
    /* only a local change is published: answering a peer's snapshot with ours would make every node echo the others */
    int publish = c->dirty;
    c->dirty = c->occupancy_dirty = 0;
    c->last_snapshot_ms = now;
    occupancy_changed(gw);
    if (publish && pg_bridge_connected(gw->bridge))
        publish_snapshot(gw, 1);
    c->snapshot_cost_ms = pg_mono_ms() - now;
}

void pg_cluster_connected(struct pg_gw *gw)
{
    struct pg_cluster *c = gw->cluster;
    struct pg_node *n, *tmp;
    int64_t now = pg_mono_ms();
    if (!c)
        return;
    /* what peers published while we were away is on its way again (retained): a whole deadline from now */
    HASH_ITER(hh, c->nodes, n, tmp) {
        n->seen_ms = now;
    }
    publish_snapshot(gw, 1);
    EACH_LISTENER(c, connected, gw);
}

void pg_cluster_stopping(struct pg_gw *gw)
{
    if (!gw->cluster)
        return;
    EACH_LISTENER(gw->cluster, stopping, gw);
    publish_snapshot(gw, 0);
}

void pg_cluster_on_node(struct pg_gw *gw, const char *id, const void *payload, size_t len)
{
    struct pg_cluster *c = gw->cluster;
    struct pg_node *n;
    if (!c)
        return;
    if (!strcmp(id, gw->node_id)) {
        /* emptied while we live: our will after a takeover, or a peer that gave up on us. Say we are here. */
        if (!len)
            c->dirty = 1;
        return;
    }
    json_t *snap = len ? json_loadb(payload, len, 0, NULL) : NULL;
    if (snap && !json_is_object(snap)) {
        json_decref(snap);
        snap = NULL;
    }
    HASH_FIND_STR(c->nodes, id, n);
    if (n && !snap) {
        node_gone(gw, n, "its snapshot was emptied", CLEAR_PRESENCE);
        return;
    }
    if (!snap)
        return;
    if (n && json_integer_value(json_object_get(n->snapshot, "started_ms")) !=
                 json_integer_value(json_object_get(snap, "started_ms"))) {
        /* a new incarnation: its predecessor's members go now; it clears their retained topics itself */
        node_gone(gw, n, "restarted", CLEAR_NONE);
        n = NULL;
    }
    if (!n) {
        if (!(n = calloc(1, sizeof *n)) || !(n->id = strdup(id))) {
            free(n);
            json_decref(snap);
            return;
        }
        HASH_ADD_KEYPTR(hh, c->nodes, n->id, strlen(n->id), n);
        pg_log(PG_LOG_INFO, "cluster", "node %s up", id);
    }
    int was_alive = n->snapshot != NULL;
    json_decref(n->snapshot);
    n->snapshot = snap;
    n->seen_ms = pg_mono_ms();
    n->liveness_ms = json_integer_value(json_object_get(snap, "liveness_ms"));
    if (!was_alive)
        EACH_LISTENER(c, nodes_changed, gw, NULL, 0);
    c->occupancy_dirty = 1; /* counts may have changed: re-evaluate occupancy at the next tick */
}
