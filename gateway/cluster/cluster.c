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
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <utlist.h>

#include "cluster/chansets.h"
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
/*
 * How long a node that does not lead keeps a gone peer's channels (struct pg_cluster, c->gone). The leader reports
 * that peer's channels vacated at its next evaluation, within SNAPSHOT_MIN_INTERVAL_MS of hearing of the death
 * unless its snapshots are costly; a leader that dies before that evaluation (the workers of one gateway die
 * together) leaves the report to its successor, which can make it only while it still has the channels. A leader
 * that dies within this time after its evaluation has the successor report those channels vacated again: a
 * duplicate, where forgetting them sooner left them occupied for good.
 */
#define GONE_KEEP_MS 2000
/*
 * Parsing a peer's snapshot, building this node's and evaluating occupancy make jansson trees and arrays of every
 * channel concerned, freed at once; their pages stay resident between the live chunks around them. Once that many
 * channels went through since the last time, the tick gives those pages back (malloc_trim walks only the free
 * chunks): with 10,000 channels per worker, the trees were about a third of what a worker's channels cost.
 */
#define TRIM_AFTER_CHANNELS 10000

/*
 * A peer's snapshot is parsed (jansson) when it arrives; its "channels", the bulk of it, are packed
 * (cluster/chansets.h) and dropped from the tree, whose small rest (sessions, the listeners' members) stays.
 */
struct pg_node {
    char *id;
    json_t *snapshot;        /* NULL: not alive; without "channels": they are in chans */
    struct pg_appsets chans; /* its "channels", packed */
    struct pg_appsets first; /* while c->fresh: its "channels" as first heard of since this node started */
    int64_t seen_ms;         /* monotonic time of its last snapshot (or of our last reconnect) */
    int64_t liveness_ms;     /* the deadline its snapshot announces; 0: none (older nodes) */
    int64_t gone_ms;         /* in c->gone: monotonic time it went */
    UT_hash_handle hh;
    struct pg_node *next;    /* in c->gone */
};

/*
 * Occupancy webhooks are the leader's alone, and only the leader keeps what it reported (occupied), for the apps
 * that have a webhook. A node that becomes the leader has reported nothing; it starts from what the leader before
 * it saw, as far as it knows: every node's last snapshot, those of peers gone since its last evaluation as the leader
 * or within GONE_KEEP_MS (gone: the channels of a leader that died are vacated, not forgotten, and so are those of a
 * peer that died just before it) and its own as last published (mine) included. A node
 * that is the leader from its start (fresh) takes each peer's first snapshot instead (the retained one, which the
 * leader before it reported; what came later, that leader stopped reporting when it heard of this node) and none of
 * its own (no other leader saw them), and waits until it has been connected for SNAPSHOT_MIN_INTERVAL_MS, so that
 * those retained snapshots are in. An app that gains a webhook starts from its channels then, silently; an app new
 * to the leader from none.
 */
struct pg_cluster {
    struct pg_node *nodes;       /* other gateway nodes */
    struct pg_node *gone;        /* peers gone since the last evaluation, with their channels (utlist, owned) */
    struct pg_appsets mine;      /* this node's channels as last published */
    struct pg_appsets occupied;  /* the leader's: every app's channels as last reported (set NULL: no webhook) */
    int occupied_valid;          /* 0: not the leader at the last evaluation; occupied is empty */
    int fresh;                   /* no evaluation since this node started: peers keep their first snapshot */
    int dirty;                   /* local channels changed since the last snapshot: publish a new one */
    int occupancy_dirty;         /* a peer's snapshot arrived: re-evaluate occupancy, nothing to publish */
    int64_t last_snapshot_ms;
    int64_t snapshot_cost_ms;    /* what the last snapshot took (pg_cluster_tick) */
    int64_t last_refresh_ms;     /* monotonic time this node last published its snapshot (liveness refresh) */
    int64_t connected_ms;        /* monotonic time of the broker's last (re)connection */
    size_t churned;              /* channels parsed, built or walked since the last malloc_trim */
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

/* per-user channels are private plumbing, not channels an app lists or gets webhooks for */
static int listed(const struct pg_channel *ch)
{
    return ch->nmembers && strncmp(ch->name, PG_USER_CHANNEL_PREFIX, strlen(PG_USER_CHANNEL_PREFIX)) != 0;
}

/* What the cluster's view of app a is made of. */
enum {
    VIEW_LOCAL = 1,     /* this node's channels now (the channel index) */
    VIEW_PUBLISHED = 2, /* this node's channels as last published (mine) */
    VIEW_GONE = 4,      /* the channels of peers gone since the last evaluation */
    VIEW_FIRST = 8,     /* peers' first snapshots since this node started, not their last (c->fresh) */
};

/* The cluster's channels of app a: every live peer's and what `what` adds. New set; NULL: out of memory. */
static struct pg_chanset *view(struct pg_gw *gw, const struct pg_app *a, int what)
{
    struct pg_cluster *c = gw->cluster;
    struct pg_chanset_items it = {0};
    struct pg_chanset *s = NULL;
    struct pg_node *n, *tmp, *peers = c ? c->nodes : NULL;
    const char *id = a->creds->id;
    if (what & VIEW_LOCAL) {
        struct pg_channel *ch, *ctmp;
        HASH_ITER(hh, a->channels, ch, ctmp) {
            if (listed(ch) && pg_chanset_items_push(&it, ch->name, ch->nmembers) < 0)
                goto out;
        }
    }
    if (c && (what & VIEW_PUBLISHED) && pg_chanset_items_add(&it, pg_appsets_get(&c->mine, id)) < 0)
        goto out;
    if (c && (what & VIEW_GONE)) {
        LL_FOREACH(c->gone, n) {
            if (pg_chanset_items_add(&it, pg_appsets_get(what & VIEW_FIRST ? &n->first : &n->chans, id)) < 0)
                goto out;
        }
    }
    HASH_ITER(hh, peers, n, tmp) {
        if (n->snapshot && strcmp(n->id, gw->node_id) &&
            pg_chanset_items_add(&it, pg_appsets_get(what & VIEW_FIRST ? &n->first : &n->chans, id)) < 0)
            goto out;
    }
    s = pg_chanset_new(&it);
out:
    free(it.v);
    return s;
}

/* {root}/_node/{id} (common/pg_topic.h); caller frees; NULL when out of memory or id is no topic level. */
static char *node_topic(struct pg_gw *gw, const char *id)
{
    return pg_topic_new(gw->cfg->topic_root, PG_TOPIC_NODE, NULL, id, NULL);
}

int pg_cluster_init(struct pg_gw *gw)
{
    if (!gw->cluster && !(gw->cluster = calloc(1, sizeof *gw->cluster)))
        return PG_ENOMEM;
    gw->cluster->fresh = 1;
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

static void node_free(struct pg_node *n)
{
    json_decref(n->snapshot);
    pg_appsets_clear(&n->chans);
    pg_appsets_clear(&n->first);
    free(n->id);
    free(n);
}

/* This node made its first evaluation: the peers' first snapshots are no longer needed for a baseline. */
static void fresh_end(struct pg_cluster *c)
{
    struct pg_node *n, *tmp;
    c->fresh = 0;
    HASH_ITER(hh, c->nodes, n, tmp) {
        pg_appsets_clear(&n->first);
    }
}

/* The peers that went before `before` (monotonic ms; INT64_MAX: all) are no longer needed for a baseline. */
static void gone_clear(struct pg_cluster *c, int64_t before)
{
    struct pg_node *n, *tmp;
    LL_FOREACH_SAFE(c->gone, n, tmp) {
        if (n->gone_ms < before) {
            LL_DELETE(c->gone, n);
            node_free(n);
        }
    }
}

void pg_cluster_free(struct pg_gw *gw)
{
    struct pg_cluster *c = gw->cluster;
    struct pg_node *n, *tmp;
    if (!c)
        return;
    HASH_ITER(hh, c->nodes, n, tmp) {
        HASH_DEL(c->nodes, n);
        node_free(n);
    }
    gone_clear(c, INT64_MAX);
    pg_appsets_clear(&c->mine);
    pg_appsets_clear(&c->occupied);
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
            if (listed(ch))
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
    json_t *sum = json_object();
    struct pg_app *a = pg_app_find(gw, app, strlen(app));
    struct pg_chanset *s = a ? view(gw, a, VIEW_LOCAL) : NULL;
    for (size_t i = 0; s && i < s->n; i++)
        json_object_set_new(sum, pg_chanset_name(s, i), json_integer((json_int_t)s->count[i]));
    free(s);
    return sum;
}

uint64_t pg_cluster_channel_count(struct pg_gw *gw, const char *app, const char *name)
{
    struct pg_app *a = app && name ? pg_app_find(gw, app, strlen(app)) : NULL;
    struct pg_channel *ch = NULL;
    struct pg_node *n, *tmp, *peers = gw->cluster ? gw->cluster->nodes : NULL;
    uint64_t sum = 0;
    if (!a)
        return 0;
    HASH_FIND_STR(a->channels, name, ch);
    if (ch && listed(ch))
        sum = ch->nmembers;
    HASH_ITER(hh, peers, n, tmp) {
        if (n->snapshot && strcmp(n->id, gw->node_id))
            sum += pg_chanset_find(pg_appsets_get(&n->chans, app), name);
    }
    return sum;
}

/* What the leader reports for app a: how the cluster's channels went from before to now (NULL: none). */
static void report(struct pg_gw *gw, struct pg_app *a, const struct pg_chanset *before, const struct pg_chanset *now)
{
    size_t at = 0;
    for (size_t i = 0; now && i < now->n; i++) {
        const char *name = pg_chanset_name(now, i);
        const uint32_t *old = pg_chanset_seek(before, &at, name);
        if (!old)
            pg_webhook_emit(gw, a, json_pack("{s:s, s:s}", "name", "channel_occupied", "channel", name));
        if (!old || *old != now->count[i])
            pg_webhook_emit(gw, a, json_pack("{s:s, s:s, s:I}", "name", "subscription_count", "channel", name,
                                             "subscription_count", (json_int_t)now->count[i]));
    }
    at = 0;
    for (size_t i = 0; before && i < before->n; i++) {
        const char *name = pg_chanset_name(before, i);
        if (!pg_chanset_seek(now, &at, name))
            pg_webhook_emit(gw, a, json_pack("{s:s, s:s}", "name", "channel_vacated", "channel", name));
    }
}

/*
 * Leader only: compare the cluster's channels of every app with a webhook with what was last reported, report the
 * differences and keep the new view (the baselines: struct pg_cluster). Returns how many channels it walked.
 */
static size_t occupancy_changed(struct pg_gw *gw)
{
    struct pg_cluster *c = gw->cluster;
    struct pg_appsets now = {0};
    struct pg_app *a, *atmp;
    size_t walked = 0;
    if (HASH_COUNT(gw->apps) && !(now.v = calloc(HASH_COUNT(gw->apps), sizeof *now.v)))
        goto oom;
    HASH_ITER(hh, gw->apps, a, atmp) {
        struct pg_appset *e = &now.v[now.n];
        if (!(e->app = strdup(a->creds->id)))
            goto oom;
        now.n++;
        if (!a->conf || !a->conf->webhook_url)
            continue; /* nothing to report, nothing to keep */
        if (!(e->set = view(gw, a, VIEW_LOCAL)))
            goto oom;
        walked += e->set->n;
        const struct pg_appset *was = c->occupied_valid ? pg_appsets_find(&c->occupied, e->app) : NULL;
        if (!c->occupied_valid) {
            struct pg_chanset *base = view(gw, a, VIEW_GONE | (c->fresh ? VIEW_FIRST : VIEW_PUBLISHED));
            if (!base)
                goto oom;
            walked += base->n;
            report(gw, a, base, e->set);
            free(base);
        } else if (!was) {
            report(gw, a, NULL, e->set);
        } else if (was->set) {
            report(gw, a, was->set, e->set);
        }
    }
    pg_appsets_sort(&now);
    pg_appsets_clear(&c->occupied);
    c->occupied = now;
    c->occupied_valid = 1;
    return walked;
oom:
    /* the last view stays; the next evaluation reports what this one could not */
    pg_log(PG_LOG_WARN, "cluster", "out of memory evaluating occupancy");
    pg_appsets_clear(&now);
    return walked;
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
        json_t *chans = local_channels(gw);
        c->churned += pg_appsets_json_channels(chans);
        /* what a leader will have seen of this node, should this node have to take over from it */
        if (chans && pg_appsets_from_json(chans, &c->mine) < 0)
            pg_log(PG_LOG_WARN, "cluster", "out of memory keeping this node's published channels");
        json_t *o =
            json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "node", gw->node_id, "version", PUSHGATE_VERSION, "started_ms",
                      (json_int_t)gw->started_ms, "liveness_ms", (json_int_t)gw->cfg->node_liveness_ms, "channels",
                      chans, "sessions", local_sessions(gw));
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

/*
 * n is gone (why: for the log): its members leave, then it leaves the table for c->gone, where its channels wait
 * for the next evaluation (a new leader's baseline) and are freed then.
 */
static void node_gone(struct pg_gw *gw, struct pg_node *n, const char *why, int clear)
{
    struct pg_cluster *c = gw->cluster;
    pg_log(PG_LOG_INFO, "cluster", "node %s gone (%s)", n->id, why);
    n->gone_ms = pg_mono_ms();
    json_decref(n->snapshot);
    n->snapshot = NULL; /* not alive: out of the leader election, the member union and the view from here */
    EACH_LISTENER(c, nodes_changed, gw, n->id, clear != CLEAR_NONE);
    if (clear == CLEAR_ALL && pg_cluster_is_leader(gw)) {
        char *topic = node_topic(gw, n->id);
        if (topic)
            pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
        free(topic);
    }
    c->occupancy_dirty = 1;
    HASH_DEL(c->nodes, n);
    LL_PREPEND(c->gone, n);
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
    int publish = c->dirty, leader = pg_cluster_is_leader(gw);
    size_t walked = 0;
    c->dirty = 0;
    c->last_snapshot_ms = now;
    if (!leader) {
        pg_appsets_clear(&c->occupied);
        c->occupied_valid = 0;
        gone_clear(c, now - GONE_KEEP_MS); /* the leader may die before it reported them (GONE_KEEP_MS) */
        fresh_end(c);
        c->occupancy_dirty = 0;
    } else if (c->occupied_valid || !c->fresh || gw->draining ||
               (pg_bridge_connected(gw->bridge) && now - c->connected_ms >= SNAPSHOT_MIN_INTERVAL_MS)) {
        /* (a node that starts as the leader waits for its peers' retained snapshots: struct pg_cluster) */
        walked = occupancy_changed(gw);
        gone_clear(c, INT64_MAX);
        fresh_end(c);
        c->occupancy_dirty = 0;
    } else {
        c->occupancy_dirty = 1; /* a local change too waits for the first evaluation */
    }
    if (publish && pg_bridge_connected(gw->bridge))
        publish_snapshot(gw, 1);
    c->churned += walked;
    if (c->churned >= TRIM_AFTER_CHANNELS) {
        c->churned = 0;
        malloc_trim(0);
    }
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
    c->connected_ms = now;
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
        if (c->fresh && pg_appsets_from_json(json_object_get(snap, "channels"), &n->first) < 0)
            pg_log(PG_LOG_WARN, "cluster", "out of memory reading the channels of node %s", id);
        HASH_ADD_KEYPTR(hh, c->nodes, n->id, strlen(n->id), n);
        pg_log(PG_LOG_INFO, "cluster", "node %s up", id);
    }
    int was_alive = n->snapshot != NULL;
    c->churned += pg_appsets_json_channels(json_object_get(snap, "channels"));
    if (pg_appsets_from_json(json_object_get(snap, "channels"), &n->chans) < 0)
        pg_log(PG_LOG_WARN, "cluster", "out of memory reading the channels of node %s", id);
    json_object_del(snap, "channels"); /* packed into n->chans */
    json_decref(n->snapshot);
    n->snapshot = snap;
    n->seen_ms = pg_mono_ms();
    n->liveness_ms = json_integer_value(json_object_get(snap, "liveness_ms"));
    if (!was_alive)
        EACH_LISTENER(c, nodes_changed, gw, NULL, 0);
    c->occupancy_dirty = 1; /* counts may have changed: re-evaluate occupancy at the next tick */
}
