/*
 * Apps at run time (apps.c): the config file's apps and the apps store's,
 * their replication between gateways, revocations.
 *
 * Owns struct pg_apps (opaque, gw->apps_state): the open apps store, when it
 * was last read, the revocations in memory, the apps changed while the broker
 * was away, and per app whether it came from the store, its conf and row as
 * last loaded. It creates and frees every struct pg_app (core/app.h) and is
 * the only writer of an app's conf, creds and deleted flag. Nothing outside
 * apps.c reads its state; everything goes through the functions below.
 *
 * Who calls what:
 *  - server.c: init, free, tick, connected (the loop);
 *  - the broker message dispatch: pg_apps_on_state, pg_apps_on_revoke for
 *    the topics named at each;
 *  - the admin API: pg_apps_db (the store to edit), pg_apps_from_store,
 *    pg_apps_store_changed and pg_apps_announce after each edit, pg_revoke;
 *  - whoever admits a credential: pg_revoked, pg_session_revoked.
 */
#ifndef PG_CLUSTER_APPS_H
#define PG_CLUSTER_APPS_H

#include <stddef.h>
#include <stdint.h>

struct pg_gw;
struct pg_app;
struct pg_apps;
struct pg_apps_store;
struct pg_session;

/* Load the config's apps, open apps_db (if set) and load its apps. */
int pg_apps_init(struct pg_gw *gw);
void pg_apps_free(struct pg_gw *gw);
void pg_apps_tick(struct pg_gw *gw);
/* On every broker (re)connect: subscribe, announce what changed while the broker was away. */
void pg_apps_connected(struct pg_gw *gw);
/* The apps store (borrowed), NULL without apps_db. */
struct pg_apps_store *pg_apps_db(struct pg_gw *gw);
/* 1 when a was loaded from the apps store, 0 when the config file declares it. */
int pg_apps_from_store(struct pg_gw *gw, const struct pg_app *a);
/* {root}/_ctl/apps/{slug}: another gateway's copy of a store app, a tombstone, or empty (deleted). */
void pg_apps_on_state(struct pg_gw *gw, const char *slug, const void *payload, size_t len);
/* {root}/_ctl/{app}/revoke: another gateway's revocation {"kind","value","expires_ms"}. */
void pg_apps_on_revoke(struct pg_gw *gw, const char *app, const void *payload, size_t len);
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
