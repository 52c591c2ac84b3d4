/*
 * The cluster: node liveness, this node's snapshot, cluster-wide channel
 * counts and occupancy webhooks, the webhook leader (cluster.c).
 *
 * Owns struct pg_cluster (opaque, gw->cluster): the table of peer nodes and
 * their last snapshots (channel counts packed, cluster/chansets.h), the
 * occupancy last reported (the leader's, for apps with a webhook), and when
 * this node's snapshot is due. Nothing outside cluster.c reads or writes it; everything
 * goes through the functions below. Every function accepts a gateway whose
 * cluster was never set up (pg_cluster_init not run, or failed): it is then a
 * cluster of one, this node, with nothing to publish.
 *
 * What happens to peers is told upward through listeners: modules above
 * (presence, push registrations, ...) register a struct pg_cluster_listener;
 * the cluster calls them in registration order and never includes their
 * headers.
 *
 * Who calls what:
 *  - server.c: init, free, tick, connected, stopping, settled (the loop);
 *  - the broker message dispatch: pg_cluster_on_node for {root}/_node/{id};
 *  - nobody needs the cluster to report a local change: the channel index,
 *    the protocols and the dashboard's session count mark it in struct
 *    pg_gw (pg_gw_local_changed), and the tick reads it;
 *  - anyone: the read-only queries (node_alive, is_leader, node_count,
 *    channels, channel_count, peer_count, peer_sessions).
 */
#ifndef PG_CLUSTER_CLUSTER_H
#define PG_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct pg_gw;
struct pg_cluster;

#define PG_CLUSTER_MAX_LISTENERS 4

/* What a higher module wants to hear from the cluster; any member may be NULL. */
struct pg_cluster_listener {
    /*
     * A peer came up (gone NULL), or the peer gone is gone (dead, or an earlier
     * incarnation of a restarted node): called after it stopped counting as
     * alive. clear: the leader also empties gone's retained topics (a dead node
     * cannot; a restarted one does itself).
     */
    void (*nodes_changed)(struct pg_gw *gw, const char *gone, int clear);
    /* The broker (re)connected: called after this node's snapshot was published again. */
    void (*connected)(struct pg_gw *gw);
    /* The gateway stops: called before this node's snapshot is emptied. */
    void (*stopping)(struct pg_gw *gw);
    /* Every tick of the cluster (now: monotonic ms), before peers' liveness is judged. */
    void (*tick)(struct pg_gw *gw, int64_t now);
    /* A member of this node's snapshot: snapshot_key: snapshot(gw) (new reference; NULL leaves it out). */
    const char *snapshot_key;
    json_t *(*snapshot)(struct pg_gw *gw);
};

/* Set up gw->cluster and subscribe to the cluster's topics. 0, PG_ENOMEM or the bridge's error. */
int pg_cluster_init(struct pg_gw *gw);
void pg_cluster_free(struct pg_gw *gw);
/* Register l (borrowed: it must outlive the cluster). 0, PG_ELIMIT over PG_CLUSTER_MAX_LISTENERS, PG_EINVAL before
   pg_cluster_init. */
int pg_cluster_listen(struct pg_gw *gw, const struct pg_cluster_listener *l);
/* A message on {root}/_node/{id}: a peer's snapshot (or its emptying), or this node's own. */
void pg_cluster_on_node(struct pg_gw *gw, const char *id, const void *payload, size_t len);
void pg_cluster_tick(struct pg_gw *gw);
void pg_cluster_connected(struct pg_gw *gw);
void pg_cluster_stopping(struct pg_gw *gw);
/* 1 when nothing is left to publish or to evaluate (a draining gateway waits for it). */
int pg_cluster_settled(struct pg_gw *gw);
int pg_cluster_node_alive(struct pg_gw *gw, const char *id);
int pg_cluster_is_leader(struct pg_gw *gw);
size_t pg_cluster_node_count(struct pg_gw *gw); /* live nodes, this one included */
json_t *pg_cluster_channels(struct pg_gw *gw, const char *app); /* new reference: {channel: subscriptions} */
/* Subscriptions to one channel of app over the cluster (this node's and its live peers'); 0: not occupied. */
uint64_t pg_cluster_channel_count(struct pg_gw *gw, const char *app, const char *name);
/* Sum over the other live nodes' snapshots of snapshot[key][app][name] (integers). */
uint64_t pg_cluster_peer_count(struct pg_gw *gw, const char *key, const char *app, const char *name);
/*
 * Sessions of app on the other live nodes, from their snapshots; *reporting:
 * how many of those nodes sent a count (nodes of older versions send none).
 */
uint64_t pg_cluster_peer_sessions(struct pg_gw *gw, const char *app, size_t *reporting);

#endif
