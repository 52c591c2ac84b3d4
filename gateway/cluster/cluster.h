/*
 * Node liveness, snapshots, cluster-wide channel counts, the webhook leader.
 */
#ifndef PG_CLUSTER_CLUSTER_H
#define PG_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct pg_gw;

int pg_cluster_init(struct pg_gw *gw);
void pg_cluster_free(struct pg_gw *gw);
int pg_cluster_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len); /* 1: handled */
void pg_cluster_changed(struct pg_gw *gw);
void pg_cluster_tick(struct pg_gw *gw);
void pg_cluster_connected(struct pg_gw *gw);
void pg_cluster_stopping(struct pg_gw *gw);
int pg_cluster_node_alive(struct pg_gw *gw, const char *id);
int pg_cluster_is_leader(struct pg_gw *gw);
size_t pg_cluster_node_count(struct pg_gw *gw); /* live nodes, this one included */
json_t *pg_cluster_channels(struct pg_gw *gw, const char *app); /* new reference: {channel: subscriptions} */
/* Sum over the other live nodes' snapshots of snapshot[key][app][name] (integers). */
uint64_t pg_cluster_peer_count(struct pg_gw *gw, const char *key, const char *app, const char *name);
/*
 * Sessions of app on the other live nodes, from their snapshots; *reporting:
 * how many of those nodes sent a count (nodes of older versions send none).
 */
uint64_t pg_cluster_peer_sessions(struct pg_gw *gw, const char *app, size_t *reporting);

#endif
