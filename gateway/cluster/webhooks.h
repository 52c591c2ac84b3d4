/*
 * Pusher-style webhooks (webhooks.c): batched per app, POSTed with libcurl's
 * multi interface driven from the loop's tick (never blocking), signed with
 * X-Pusher-Key / X-Pusher-Signature, retried with backoff.
 *
 * Owns struct pg_webhooks (opaque, gw->webhooks): the queues per app, the
 * transfers in flight. server.c creates, ticks and frees it; any module
 * emits events (pg_webhook_emit): the cluster leader's occupancy and
 * presence events, client events.
 */
#ifndef PG_CLUSTER_WEBHOOKS_H
#define PG_CLUSTER_WEBHOOKS_H

#include <stddef.h>
#include <jansson.h>

struct pg_gw;
struct pg_app;

struct pg_webhooks;
int pg_webhooks_new(struct pg_gw *gw, struct pg_webhooks **out);
void pg_webhooks_free(struct pg_webhooks *w);
/* Queue one event ({"name":…, "channel":…, …}; stolen) for app's webhook_url; a no-op without one. */
void pg_webhook_emit(struct pg_gw *gw, struct pg_app *app, json_t *event);
/* Called from the loop's tick: progress transfers, send due batches, schedule retries. */
void pg_webhooks_tick(struct pg_webhooks *w);
/* Events queued or in flight (for shutdown and metrics). */
size_t pg_webhooks_pending(const struct pg_webhooks *w);

#endif
