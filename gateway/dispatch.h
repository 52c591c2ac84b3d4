/*
 * The broker side of the gateway, wired once (dispatch.c): which module
 * handles each kind of incoming broker message, and which modules hear of
 * the cluster's events.
 *
 * Owns no state besides two constant tables. Called by server.c only: init
 * once the cluster is set up, then every message the bridge delivers.
 */
#ifndef PG_DISPATCH_H
#define PG_DISPATCH_H

#include <stddef.h>

#include "pushgate_bridge.h"

struct pg_gw;

/* After pg_cluster_init: register the cluster's listeners, subscribe the topics no other module subscribes. */
int pg_dispatch_init(struct pg_gw *gw);
/* One broker message: parse its topic once and hand the parts to the module that owns its kind. */
void pg_dispatch_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len,
                         const struct pg_bridge_prop *props, size_t nprops);

#endif
