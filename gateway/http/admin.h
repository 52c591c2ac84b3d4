/*
 * The apps admin API (/api/admin/apps...) and the per-app events API
 * (/api/apps/{app}/events): route handlers of http/routes.c, which checks
 * the credentials (admin Basic; the app's key:secret for events) first.
 * State: none of its own (the apps store, through pg_apps_db()). Who may call: the
 * route table.
 */
#ifndef PG_HTTP_ADMIN_H
#define PG_HTTP_ADMIN_H

struct pg_gw;
struct pg_http;

/* /api/admin/apps: GET lists the store's apps, POST creates one. */
void pg_admin_apps(struct pg_gw *gw, struct pg_http *h);
/* /api/admin/apps/{slug}: GET, PATCH or PUT, DELETE. */
void pg_admin_app(struct pg_gw *gw, struct pg_http *h);
/* /api/admin/apps/{slug}/revocations: GET lists, POST revokes a client id or jti. */
void pg_admin_revocations(struct pg_gw *gw, struct pg_http *h);
/* POST /api/apps/{app}/events: publish {"topic","event","message"}; h->app is the path's app. */
void pg_admin_events(struct pg_gw *gw, struct pg_http *h);

#endif
