/*
 * What every gateway node must agree on travels through the broker as
 * retained messages, never through a node-local table alone:
 *
 *  {root}/_node/{id}              this node's liveness and snapshot
 *                                 {"node","version","started_ms","liveness_ms",
 *                                 "channels":{app:{channel:subscriptions}},
 *                                 "sessions":{app:sessions}} (older nodes omit "sessions", "liveness_ms"),
 *                                 "users":{app:{user:live sessions on its per-user channel}} (push_api.c);
 *                                 the MQTT will empties it when the node dies
 *  {root}/{app}/p/{id}/{channel}  this node's members of a presence channel (presence.c)
 *
 * Every node subscribes to both, so each holds the same view of the whole
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
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

#define SNAPSHOT_MIN_INTERVAL_MS 200
#define LIVENESS_REFRESHES 3 /* snapshots per node_liveness_ms: a late one still leaves the deadline met */

struct pg_node {
    char *id;
    json_t *snapshot;    /* NULL: not alive */
    int64_t seen_ms;     /* monotonic time of its last snapshot (or of our last reconnect) */
    int64_t liveness_ms; /* the deadline its snapshot announces; 0: none (older nodes) */
    UT_hash_handle hh;
};

static char *node_topic(struct pg_gw *gw, const char *id)
{
    size_t n = strlen(gw->cfg->topic_root) + strlen(id) + 8;
    char *t = malloc(n);
    if (t)
        snprintf(t, n, "%s/_node/%s", gw->cfg->topic_root, id);
    return t;
}

int pg_cluster_init(struct pg_gw *gw)
{
    char *nodes = node_topic(gw, "+");
    char *presence = pg_topic(gw, "+", "p", "#");
    char *ctl = pg_topic(gw, "_ctl", "+", "terminate/+");
    int rc = nodes && presence && ctl ? 0 : PG_ENOMEM;
    if (rc == 0)
        rc = pg_bridge_subscribe(gw->bridge, nodes);
    if (rc == 0)
        rc = pg_bridge_subscribe(gw->bridge, presence);
    if (rc == 0)
        rc = pg_bridge_subscribe(gw->bridge, ctl);
    free(nodes);
    free(presence);
    free(ctl);
    return rc;
}

void pg_cluster_free(struct pg_gw *gw)
{
    struct pg_node *n, *tmp;
    pg_devices_free(gw);
    HASH_ITER(hh, gw->nodes, n, tmp) {
        HASH_DEL(gw->nodes, n);
        json_decref(n->snapshot);
        free(n->id);
        free(n);
    }
    json_decref(gw->occupied);
    gw->occupied = NULL;
}

int pg_cluster_node_alive(struct pg_gw *gw, const char *id)
{
    struct pg_node *n;
    if (!strcmp(id, gw->node_id))
        return 1;
    HASH_FIND_STR(gw->nodes, id, n);
    return n && n->snapshot;
}

size_t pg_cluster_node_count(struct pg_gw *gw)
{
    return HASH_COUNT(gw->nodes) + 1; /* the table holds live peers only */
}

int pg_cluster_is_leader(struct pg_gw *gw)
{
    struct pg_node *n, *tmp;
    HASH_ITER(hh, gw->nodes, n, tmp) {
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
    HASH_ITER(hh, gw->nodes, n, tmp) {
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
    HASH_ITER(hh, gw->nodes, n, tmp) {
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
    struct pg_node *n, *tmp;
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(mine, app), name, v) json_object_set(sum, name, v);
    HASH_ITER(hh, gw->nodes, n, tmp) {
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
    json_t *now = json_object();
    struct pg_app *a, *atmp;
    HASH_ITER(hh, gw->apps, a, atmp) {
        json_object_set_new(now, a->creds->id, pg_cluster_channels(gw, a->creds->id));
    }
    json_t *before = gw->occupied ? gw->occupied : json_object();
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
    if (gw->occupied)
        json_decref(gw->occupied);
    else
        json_decref(before);
    gw->occupied = now;
}

void pg_cluster_changed(struct pg_gw *gw)
{
    gw->cluster_dirty = 1;
}

static void publish_snapshot(struct pg_gw *gw, int up)
{
    char *topic = node_topic(gw, gw->node_id);
    char *body = NULL;
    if (up) {
        json_t *o =
            json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "node", gw->node_id, "version", PUSHGATE_VERSION, "started_ms",
                      (json_int_t)gw->started_ms, "liveness_ms", (json_int_t)gw->cfg->node_liveness_ms, "channels",
                      local_channels(gw), "sessions", local_sessions(gw));
        if (o)
            json_object_set_new(o, "users", pg_push_local_users(gw));
        body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    if (topic && (!up || body))
        pg_bridge_publish(gw->bridge, topic, body, body ? strlen(body) : 0, NULL, 1, NULL, NULL);
    gw->last_refresh_ms = pg_mono_ms();
    free(topic);
    free(body);
}

/* What the leader empties of a gone node's retained topics (a dead node cannot do it itself). */
enum { CLEAR_NONE, CLEAR_PRESENCE, CLEAR_ALL /* its snapshot too: nothing emptied it */ };

/* n is gone (why: for the log): its members leave, then it leaves the table (n is freed). */
static void node_gone(struct pg_gw *gw, struct pg_node *n, const char *why, int clear)
{
    pg_log(PG_LOG_INFO, "cluster", "node %s gone (%s)", n->id, why);
    json_decref(n->snapshot);
    n->snapshot = NULL; /* not alive: out of the leader election and the member union from here */
    pg_presence_nodes_changed(gw, n->id, clear != CLEAR_NONE);
    if (clear == CLEAR_ALL && pg_cluster_is_leader(gw)) {
        char *topic = node_topic(gw, n->id);
        if (topic)
            pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
        free(topic);
    }
    gw->occupancy_dirty = 1;
    HASH_DEL(gw->nodes, n);
    free(n->id);
    free(n);
}

/* Peers whose announced deadline passed without a snapshot are dead (judged only while connected). */
static void check_liveness(struct pg_gw *gw, int64_t now)
{
    struct pg_node *n, *tmp;
    HASH_ITER(hh, gw->nodes, n, tmp) {
        if (n->snapshot && n->liveness_ms > 0 && now - n->seen_ms > n->liveness_ms)
            node_gone(gw, n, "no snapshot within its liveness deadline", CLEAR_ALL);
    }
}

void pg_cluster_tick(struct pg_gw *gw)
{
    int64_t now = pg_mono_ms();
    if (pg_bridge_connected(gw->bridge)) {
        check_liveness(gw, now);
        if (now - gw->last_refresh_ms >= gw->cfg->node_liveness_ms / LIVENESS_REFRESHES)
            gw->cluster_dirty = 1; /* unchanged, but peers must hear from us within our deadline */
    }
    /* while draining, every tick counts: the sessions closed last must still vacate their channels before exit */
    if ((!gw->cluster_dirty && !gw->occupancy_dirty) ||
        (!gw->draining && now - gw->last_snapshot_ms < SNAPSHOT_MIN_INTERVAL_MS))
        return;
    /* only a local change is published: answering a peer's snapshot with ours would make every node echo the others */
    int publish = gw->cluster_dirty;
    gw->cluster_dirty = gw->occupancy_dirty = 0;
    gw->last_snapshot_ms = now;
    occupancy_changed(gw);
    if (publish && pg_bridge_connected(gw->bridge))
        publish_snapshot(gw, 1);
}

void pg_cluster_connected(struct pg_gw *gw)
{
    struct pg_node *n, *tmp;
    int64_t now = pg_mono_ms();
    /* what peers published while we were away is on its way again (retained): a whole deadline from now */
    HASH_ITER(hh, gw->nodes, n, tmp) {
        n->seen_ms = now;
    }
    publish_snapshot(gw, 1);
    pg_presence_republish_own(gw); /* our retained members may have been cleared (by our will's effect) or lost */
    pg_devices_connected(gw); /* devices.c: {root}/+/d/+, MQTT device presence */
}

void pg_cluster_stopping(struct pg_gw *gw)
{
    pg_presence_clear_own(gw);
    publish_snapshot(gw, 0);
}

int pg_cluster_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len)
{
    size_t rl = strlen(gw->cfg->topic_root);
    if (strncmp(topic, gw->cfg->topic_root, rl) != 0 || topic[rl] != '/')
        return 0;
    const char *rest = topic + rl + 1;
    if (!strncmp(rest, "_node/", 6)) {
        const char *id = rest + 6;
        struct pg_node *n;
        if (!strcmp(id, gw->node_id)) {
            /* emptied while we live: our will after a takeover, or a peer that gave up on us. Say we are here. */
            if (!len)
                gw->cluster_dirty = 1;
            return 1;
        }
        json_t *snap = len ? json_loadb(payload, len, 0, NULL) : NULL;
        if (snap && !json_is_object(snap)) {
            json_decref(snap);
            snap = NULL;
        }
        HASH_FIND_STR(gw->nodes, id, n);
        if (n && !snap) {
            node_gone(gw, n, "its snapshot was emptied", CLEAR_PRESENCE);
            return 1;
        }
        if (!snap)
            return 1;
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
                return 1;
            }
            HASH_ADD_KEYPTR(hh, gw->nodes, n->id, strlen(n->id), n);
            pg_log(PG_LOG_INFO, "cluster", "node %s up", id);
        }
        int was_alive = n->snapshot != NULL;
        json_decref(n->snapshot);
        n->snapshot = snap;
        n->seen_ms = pg_mono_ms();
        n->liveness_ms = json_integer_value(json_object_get(snap, "liveness_ms"));
        if (!was_alive)
            pg_presence_nodes_changed(gw, NULL, 0);
        gw->occupancy_dirty = 1; /* counts may have changed: re-evaluate occupancy at the next tick */
        return 1;
    }
    if (!strncmp(rest, "_ctl/", 5)) { /* _ctl/{app}/terminate/{user}; other _ctl topics belong to apps.c, push_api.c */
        const char *app_id = rest + 5, *slash = strchr(app_id, '/');
        if (!slash || strncmp(slash, "/terminate/", 11) != 0)
            return 0;
        struct pg_app *app = pg_app_find(gw, app_id, (size_t)(slash - app_id));
        if (app && slash[11]) {
            pg_log(PG_LOG_INFO, "cluster", "terminating connections app=%s user=%s", app->creds->id, slash + 11);
            pg_sessions_terminate_user(gw, app, slash + 11);
        }
        return 1;
    }
    if (pg_devices_on_message(gw, topic, payload, len)) /* {app}/d/{client_id} */
        return 1;
    /* {app}/p/{node}/{channel} */
    const char *slash = strchr(rest, '/');
    if (!slash || strncmp(slash, "/p/", 3) != 0)
        return 0;
    struct pg_app *app = pg_app_find(gw, rest, (size_t)(slash - rest));
    const char *node = slash + 3, *ch = strchr(node, '/');
    if (ch && ch[1]) {
        char id[64];
        snprintf(id, sizeof id, "%.*s", (int)(ch - node), node);
        int own = !strcmp(id, gw->node_id);
        if (own && app)
            pg_presence_own_message(gw, app, ch + 1, payload, len);
        else if (own && len) /* ours, of an app we no longer have: nobody else would ever clear it */
            pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
        else if (app)
            pg_presence_on_message(gw, app, id, ch + 1, payload, len);
    }
    return 1;
}
