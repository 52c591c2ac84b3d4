/*
 * Bounded lag across the cluster: no node admits publishes that another node
 * cannot deliver in bounded time.
 *
 * Wire: {root}/_node/{id}/load, retained, one per node:
 *   {"mark":k,"seen":{node:mark},"window":max_unconfirmed_publishes}
 * plus "behind":reason,"for_ms":N while the node is behind (republished every
 * N/2 ms); emptied when the node stops, and by the cluster leader when a node
 * dies without doing so.
 *
 * Load: a node that is behind (core/publish.c: out-queues full, broker input
 * paused, broker messages later than max_inbound_lag_ms) says so on its load
 * topic at the next tick, and every node refuses new publishes while any
 * live peer is behind (pg_load_peer_behind, read by pg_publish_refusal):
 * a node without local subscribers must not acknowledge messages a peer
 * cannot deliver. A peer counts as behind for for_ms after its last load
 * message (a node that stops while behind, or whose clearing message is lost,
 * holds nobody back for long), until it empties the topic, or until it is
 * gone. The broker plugin reads the same topics (plugin/load.c) and refuses
 * device publishes meanwhile. Only a node's own state is published, never
 * what it refuses because of a peer: nodes never echo each other's load.
 *
 * Unconfirmed publishes: a node that is not behind yet may already have
 * more waiting in its broker queue than it can deliver in bounded time (a
 * node without subscribers admits publishes far faster than one with 1000 can
 * fan them out), and by the time a message's age shows it, the backlog is
 * seconds deep. So every node bounds what it admits by what every node has
 * processed: its load messages carry a mark (a counter), sent every tick
 * while it publishes or receives, and every quarter of max_unconfirmed_publishes
 * publishes between ticks; a node that processes a mark (its own included)
 * says so at once in "seen", without a new mark of its own (so replies are
 * never answered). The broker delivers a publisher's messages in order, so a
 * node that processed mark k processed every message of that publisher sent
 * before it. Publishes admitted after the oldest mark some live node has not
 * confirmed (pg_load_unconfirmed) may still wait in that node's queue: at
 * max_unconfirmed_publishes of them, publishes are refused. Nodes that send
 * no "seen" (older versions), or that have not processed their own first mark
 * (still reading what the broker retained for them at start), are not waited for. The plugin counts device
 * publishes against the same marks (plugin/load.c).
 *
 * State: struct pg_load (gw->load): this node's marks and counters, and the
 * last load message of every peer (uthash by node id).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uthash.h>

#include "cluster/cluster.h"
#include "cluster/load.h"
#include "config.h"
#include "core/gw.h"
#include "log.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "pushgate_bridge.h"

/*
 * A load message holds its node behind for this long; it is republished every half of it while the node is
 * behind. Several ticks long (a busy loop ticks late), short enough that a node that stopped while behind holds
 * publishes back for a few seconds only.
 */
#define LOAD_HOLD_MS 3000
#define LOAD_HOLD_MAX_MS 60000 /* a peer's for_ms is clamped to this */
#define MARK_RING 64           /* marks whose admitted count this node remembers */
#define MARK_MIN_GAP 16        /* messages at least between two marks made between ticks */

/* A peer's last load message. */
struct peer {
    char *id;
    int64_t until_ms; /* monotonic: behind until then (0: not behind), unless it says otherwise sooner */
    uint64_t mark;    /* its last mark */
    uint64_t seen_me; /* the last of our marks it processed */
    int has_seen;     /* it reports our marks (older nodes do not) */
    UT_hash_handle hh;
};

struct pg_load {
    struct peer *peers;
    const char *sent;         /* the reason this node last published (static); NULL: not behind */
    int64_t sent_ms;          /* monotonic time of that publish */
    uint64_t mark;            /* this node's last mark */
    uint64_t self_seen;       /* the last of its own marks this node processed */
    uint64_t admitted;        /* publishes this node admitted (pg_load_admitted) */
    uint64_t inbound;         /* app messages it received from the broker (pg_load_inbound) */
    uint64_t admitted_at_mark, inbound_at_mark;
    uint64_t ring[MARK_RING]; /* ring[k % MARK_RING]: admitted when mark k was published */
    int seen_dirty;           /* a node's new mark was processed: tell them at once */
};

static void forget(struct pg_load *c, const char *id)
{
    struct peer *l;
    HASH_FIND_STR(c->peers, id, l);
    if (l) {
        if (l->until_ms)
            pg_log(PG_LOG_INFO, "cluster", "node %s no longer behind: publishes accepted again here", id);
        HASH_DEL(c->peers, l);
        free(l->id);
        free(l);
    }
}

/*
 * This node's load message: {"mark","seen":{node: mark},"window"} and, while it is behind, "behind" and "for_ms";
 * new_mark: a new mark (a publish this node makes; replies carry the old one, so nodes never answer each other's
 * replies). why is static.
 */
static void publish_load(struct pg_gw *gw, const char *why, int new_mark)
{
    struct pg_load *c = gw->load;
    char *topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_LOAD, NULL, gw->node_id, NULL), *body = NULL;
    struct peer *l, *tmp;
    json_t *seen = json_object(), *o;
    if (new_mark) {
        c->mark++;
        c->ring[c->mark % MARK_RING] = c->admitted;
        c->admitted_at_mark = c->admitted;
        c->inbound_at_mark = c->inbound;
    }
    json_object_set_new(seen, gw->node_id, json_integer((json_int_t)c->self_seen));
    HASH_ITER(hh, c->peers, l, tmp) {
        json_object_set_new(seen, l->id, json_integer((json_int_t)l->mark));
    }
    o = json_pack("{s:I, s:o, s:I}", "mark", (json_int_t)c->mark, "seen", seen, "window",
                  (json_int_t)gw->cfg->max_unconfirmed_publishes);
    if (o && why) {
        json_object_set_new(o, "behind", json_string(why));
        json_object_set_new(o, "for_ms", json_integer(LOAD_HOLD_MS));
    }
    body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    c->seen_dirty = 0;
    if (topic && body && pg_bridge_publish(gw->bridge, topic, body, strlen(body), NULL, 1, NULL, NULL) == 0) {
        if (why != c->sent)
            pg_log(why ? PG_LOG_WARN : PG_LOG_INFO, "cluster", "told the cluster: %s", why ? why : "caught up");
        c->sent = why;
        c->sent_ms = pg_mono_ms();
    }
    free(topic);
    free(body);
}

/* Empties this node's load topic (it stops): peers and the plugin forget it at once. */
static void clear_load(struct pg_gw *gw)
{
    char *topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_LOAD, NULL, gw->node_id, NULL);
    if (topic)
        pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
    free(topic);
}

/* 1 when traffic since the last mark calls for a new one before the next tick (a quarter of the window). */
static int mark_due(struct pg_gw *gw)
{
    struct pg_load *c = gw->load;
    uint64_t quarter = (uint64_t)gw->cfg->max_unconfirmed_publishes / 4;
    if (quarter < MARK_MIN_GAP) /* off (0), or so small that marks would outnumber messages: every tick only */
        return 0;
    return c->admitted - c->admitted_at_mark >= quarter || c->inbound - c->inbound_at_mark >= quarter;
}

/*
 * Every tick: a change of this node's own load, a refresh while behind, a new mark when anything was published or
 * received since the last, or marks processed since the last message go out.
 */
static void on_tick(struct pg_gw *gw, int64_t now)
{
    struct pg_load *c = gw->load;
    const char *why = pg_load_local_behind(gw);
    if (!pg_bridge_connected(gw->bridge))
        return;
    int traffic = c->admitted != c->admitted_at_mark || c->inbound != c->inbound_at_mark;
    if ((why != NULL) != (c->sent != NULL) || (why && now - c->sent_ms >= LOAD_HOLD_MS / 2) || traffic ||
        c->seen_dirty)
        publish_load(gw, why, traffic);
}

/* One more publish admitted here or message taken in; a mark goes out as soon as a quarter window is reached. */
static void counted(struct pg_gw *gw, uint64_t *counter)
{
    ++*counter;
    if (mark_due(gw) && pg_bridge_connected(gw->bridge))
        publish_load(gw, pg_load_local_behind(gw), 1);
}

void pg_load_admitted(struct pg_gw *gw)
{
    if (gw->load)
        counted(gw, &gw->load->admitted);
}

void pg_load_inbound(struct pg_gw *gw)
{
    if (gw->load)
        counted(gw, &gw->load->inbound);
}

void pg_load_on_message(struct pg_gw *gw, const char *id, const void *payload, size_t len)
{
    struct pg_load *c = gw->load;
    struct peer *l;
    if (!c)
        return;
    json_t *o = len ? json_loadb(payload, len, 0, NULL) : NULL;
    json_int_t mark = json_integer_value(json_object_get(o, "mark"));
    if (!strcmp(id, gw->node_id)) {
        /* our own mark, back through the broker: everything queued for us before it is processed */
        if (mark > 0 && (uint64_t)mark <= c->mark && (uint64_t)mark > c->self_seen) {
            c->self_seen = (uint64_t)mark;
            c->seen_dirty = 1;
        }
        if (len && !mark) /* what an earlier incarnation left retained: say what we say now */
            c->seen_dirty = 1;
        json_decref(o);
        /* at once: the broker plugin admits device publishes against our confirmations (plugin/load.c) */
        if (c->seen_dirty && pg_bridge_connected(gw->bridge))
            publish_load(gw, pg_load_local_behind(gw), 0);
        return;
    }
    if (!o) {
        forget(c, id);
        return;
    }
    json_int_t hold = json_integer_value(json_object_get(o, "for_ms"));
    json_t *seen_me = json_object_get(json_object_get(o, "seen"), gw->node_id);
    const char *why = json_string_value(json_object_get(o, "behind"));
    HASH_FIND_STR(c->peers, id, l);
    if (!l && (l = calloc(1, sizeof *l))) {
        if ((l->id = strdup(id))) {
            HASH_ADD_KEYPTR(hh, c->peers, l->id, strlen(l->id), l);
        } else {
            free(l);
            l = NULL;
        }
    }
    if (!l) {
        json_decref(o);
        return;
    }
    if (mark > 0 && (uint64_t)mark != l->mark) {
        l->mark = (uint64_t)mark;
        c->seen_dirty = 1; /* its publisher learns at once that we processed everything before it */
    }
    /* waited for once it has caught up with its own start (processed its first mark): a node that starts reads
       every retained message first, and holding the cluster back meanwhile would make each restart an outage */
    if (json_is_integer(seen_me) && json_integer_value(json_object_get(json_object_get(o, "seen"), id)) > 0) {
        l->has_seen = 1;
        l->seen_me = (uint64_t)json_integer_value(seen_me);
    }
    if (why) {
        if (hold <= 0 || hold > LOAD_HOLD_MAX_MS)
            hold = hold <= 0 ? LOAD_HOLD_MS : LOAD_HOLD_MAX_MS;
        if (!l->until_ms)
            pg_log(PG_LOG_WARN, "cluster", "node %s is behind (%s): publishes refused here too", id, why);
        l->until_ms = pg_mono_ms() + hold;
    } else if (l->until_ms) {
        pg_log(PG_LOG_INFO, "cluster", "node %s caught up: publishes accepted again here", id);
        l->until_ms = 0;
    }
    json_decref(o);
    if (c->seen_dirty && pg_bridge_connected(gw->bridge))
        publish_load(gw, pg_load_local_behind(gw), 0);
}

const char *pg_load_peer_behind(struct pg_gw *gw)
{
    struct pg_load *c = gw->load;
    struct peer *l, *tmp;
    int64_t now = pg_mono_ms();
    if (!c)
        return NULL;
    HASH_ITER(hh, c->peers, l, tmp) {
        if (l->until_ms && now < l->until_ms)
            return l->id;
        if (l->until_ms) {
            pg_log(PG_LOG_INFO, "cluster", "node %s no longer says it is behind", l->id);
            l->until_ms = 0;
        }
    }
    return NULL;
}

uint64_t pg_load_unconfirmed(struct pg_gw *gw)
{
    struct pg_load *c = gw->load;
    struct peer *l, *tmp;
    if (!c || !c->mark)
        return 0;
    uint64_t done = c->self_seen; /* the oldest mark of ours some node has not processed yet is done + 1 */
    HASH_ITER(hh, c->peers, l, tmp) {
        /* above our mark: what it saw of an earlier incarnation of ours, nothing of this one yet */
        uint64_t seen = l->seen_me > c->mark ? 0 : l->seen_me;
        if (l->has_seen && pg_cluster_node_alive(gw, l->id) && seen < done)
            done = seen;
    }
    if (done + MARK_RING <= c->mark) /* older than we remember: count from the oldest we do */
        done = c->mark - MARK_RING + 1;
    /* publishes admitted after mark `done` was sent may still wait in a node's broker queue */
    return c->admitted - (done ? c->ring[done % MARK_RING] : 0);
}

const char *pg_load_local_behind(struct pg_gw *gw)
{
    const char *why = gw->behind;
    if (!why && gw->rx_paused_ms)
        why = "gateway overloaded: catching up with broker messages, retry later";
    if (!why && gw->late_until_ms && pg_mono_ms() < gw->late_until_ms)
        why = "gateway overloaded: broker messages arrive late (max_inbound_lag_ms), retry later";
    return why;
}

/* A peer is gone (its members too): it holds nobody back any more. The leader empties its load topic. */
static void on_nodes_changed(struct pg_gw *gw, const char *gone, int clear)
{
    if (!gone || !gw->load)
        return;
    forget(gw->load, gone);
    if (clear && pg_cluster_is_leader(gw)) {
        char *topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_LOAD, NULL, gone, NULL);
        if (topic)
            pg_bridge_publish(gw->bridge, topic, NULL, 0, NULL, 1, NULL, NULL);
        free(topic);
    }
}

/* (Re)connected: a new mark, which also replaces what an earlier incarnation left retained. */
static void on_connected(struct pg_gw *gw)
{
    if (gw->load)
        publish_load(gw, pg_load_local_behind(gw), 1);
}

static void on_stopping(struct pg_gw *gw)
{
    if (gw->load)
        clear_load(gw);
}

static const struct pg_cluster_listener listener = {
    .nodes_changed = on_nodes_changed,
    .connected = on_connected,
    .stopping = on_stopping,
    .tick = on_tick,
};

int pg_load_init(struct pg_gw *gw)
{
    char filter[PG_TOPIC_FILTER_MAX];
    if (!gw->load && !(gw->load = calloc(1, sizeof *gw->load)))
        return PG_ENOMEM;
    int rc = pg_cluster_listen(gw, &listener);
    if (rc == 0 && (rc = pg_topic_filter(filter, sizeof filter, gw->cfg->topic_root, PG_TOPIC_LOAD)) >= 0)
        rc = pg_bridge_subscribe(gw->bridge, filter);
    return rc;
}

void pg_load_free(struct pg_gw *gw)
{
    struct pg_load *c = gw->load;
    struct peer *l, *tmp;
    if (!c)
        return;
    HASH_ITER(hh, c->peers, l, tmp) {
        HASH_DEL(c->peers, l);
        free(l->id);
        free(l);
    }
    free(c);
    gw->load = NULL;
}
