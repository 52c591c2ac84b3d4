/*
 * Bounded lag across the cluster (load.c): which nodes say they are behind, and how many publishes this node
 * admitted that some node has not processed yet. Loop thread only.
 *
 * Owns struct pg_load (opaque, gw->load). Who calls what:
 *  - the broker message dispatch: pg_load_init (it registers a cluster listener for ticks, peers gone, connect
 *    and stop), pg_load_on_message for {root}/_node/{id}/load, pg_load_inbound for every app message;
 *  - server.c: pg_load_free;
 *  - core/publish.c (pg_publish_refusal): the queries, and pg_load_admitted for every publish it lets through.
 */
#ifndef PG_CLUSTER_LOAD_H
#define PG_CLUSTER_LOAD_H

#include <stddef.h>
#include <stdint.h>

struct pg_gw;

/* Set up gw->load, subscribe to every node's load topic, listen to the cluster. 0, PG_ENOMEM or the bridge's. */
int pg_load_init(struct pg_gw *gw);
void pg_load_free(struct pg_gw *gw);
/* A message on {root}/_node/{id}/load (a node's load and marks; empty: it stopped). */
void pg_load_on_message(struct pg_gw *gw, const char *id, const void *payload, size_t len);
/* Why this node alone is behind (a static string), or NULL: what it tells its peers. */
const char *pg_load_local_behind(struct pg_gw *gw);
/* The id of a peer that says it is behind (borrowed, until the next call), or NULL. */
const char *pg_load_peer_behind(struct pg_gw *gw);
/* Publishes this node admitted that some live node (this one included) may not have processed yet. */
uint64_t pg_load_unconfirmed(struct pg_gw *gw);
/* A publish was admitted here (pg_publish_refusal) / an app message arrived from the broker (dispatch.c). */
void pg_load_admitted(struct pg_gw *gw);
void pg_load_inbound(struct pg_gw *gw);

#endif
