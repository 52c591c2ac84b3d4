/*
 * Config and store apps, their replication between gateways, revocations,
 * app-wide broadcasts.
 */
#ifndef PG_CLUSTER_APPS_H
#define PG_CLUSTER_APPS_H

#include <stddef.h>
#include <stdint.h>

#include "pushgate_bridge.h"

struct pg_gw;
struct pg_session;

int pg_apps_init(struct pg_gw *gw);
void pg_apps_free(struct pg_gw *gw);
void pg_apps_tick(struct pg_gw *gw);
void pg_apps_connected(struct pg_gw *gw);
/* {root}/_ctl/{app}/revoke and {root}/{app}/b; 1 when handled. */
int pg_apps_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len,
                       const struct pg_bridge_prop *props, size_t nprops);
/* After an admin change of slug: publish its state (retained) for gateways on other stores. */
void pg_apps_announce(struct pg_gw *gw, const char *slug);
/* After this process wrote the store: reload now (its own commits do not move data_version). */
void pg_apps_store_changed(struct pg_gw *gw);
/* Revoke (kind "client" or "jti") until expires_ms: store, close matching sessions, tell other gateways. */
int pg_revoke(struct pg_gw *gw, const char *app, const char *kind, const char *value, int64_t expires_ms);
/* 1 when value is revoked for app. */
int pg_revoked(struct pg_gw *gw, const char *app, const char *kind, const char *value);
/* 1 when the session's client id, socket id, token jti or token client is revoked. */
int pg_session_revoked(struct pg_gw *gw, const struct pg_session *s);

#endif
