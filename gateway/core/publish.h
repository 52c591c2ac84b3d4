/*
 * Publishing on behalf of clients and REST callers (stamped with ts and the
 * sequence properties), and the load that refuses publishes. Loop thread only.
 *
 * State: the load figures in struct pg_gw: pending_bytes, pending_msgs and
 * behind are measured here at each tick (pg_publish_load_tick); the loop
 * (server.c) records how late broker messages arrive (late_until_ms,
 * inbound_lag_ms), and broker input is paused while out-queues are full
 * (rx_paused_ms: core/session.c pauses, server.c resumes). /metrics and
 * /readyz read them. Callers: the protocols and the HTTP handlers publish; everyone
 * that accepts a publish asks pg_publish_refusal first.
 */
#ifndef PG_CORE_PUBLISH_H
#define PG_CORE_PUBLISH_H

#include <stddef.h>

#include "pushgate_bridge.h"

struct pg_gw;
struct pg_app;

/* Publish on behalf of a client: props NULL-terminated name/value pairs. Same result codes as the bridge. */
int pg_publish(struct pg_gw *gw, const char *app, const char *channel, const void *payload, size_t len,
               const char *const *props, pg_bridge_ack_cb cb, void *cb_ud);
/* The same on any topic of the app (e.g. its broadcast topic {root}/{app}/b). */
int pg_publish_topic(struct pg_gw *gw, const char *app, const char *topic, const void *payload, size_t len,
                     const char *const *props, pg_bridge_ack_cb cb, void *cb_ud);

/*
 * Why this gateway refuses publishes now (it is behind: its out-queues hold
 * more than max_pending_bytes, or on average more than half a session's
 * limit, or broker input is paused, or broker messages arrive later than
 * max_inbound_lag_ms; or a peer node says it is behind, or some node has not
 * processed max_unconfirmed_publishes of ours: cluster/load.c), or NULL.
 * Callers answer 503 with Retry-After (REST) or the protocol's error; the
 * refusal is counted for app (may be NULL). A static string.
 */
const char *pg_publish_refusal(struct pg_gw *gw, struct pg_app *app);

#define PG_RETRY_AFTER_S "1" /* what an overloaded gateway's 503 asks clients to wait */
/*
 * From the loop's tick (server.c): measures what all out-queues hold, closes
 * sessions whose socket has not drained for slow_consumer_ms, decides whether
 * the gateway is behind, resumes paused broker input, and sends the gap
 * signal owed to sessions that lost messages meanwhile.
 */
void pg_publish_load_tick(struct pg_gw *gw);

#endif
