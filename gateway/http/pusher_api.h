/*
 * The Pusher HTTP API under /apps/{app_id}/: route handlers of
 * http/routes.c, which looked the app up (h->app). Each checks the size,
 * Pusher's signature and the app's state before its own work.
 * State: none of its own. Who may call: the route table.
 */
#ifndef PG_HTTP_PUSHER_API_H
#define PG_HTTP_PUSHER_API_H

struct pg_gw;
struct pg_http;

void pg_pusher_api_events(struct pg_gw *gw, struct pg_http *h);       /* POST /apps/{app}/events */
void pg_pusher_api_batch_events(struct pg_gw *gw, struct pg_http *h); /* POST /apps/{app}/batch_events */
void pg_pusher_api_terminate(struct pg_gw *gw, struct pg_http *h);    /* POST .../users/{user}/terminate_connections */
void pg_pusher_api_channels(struct pg_gw *gw, struct pg_http *h);     /* GET /apps/{app}/channels */
void pg_pusher_api_channel(struct pg_gw *gw, struct pg_http *h);      /* GET /apps/{app}/channels/{channel} */
void pg_pusher_api_users(struct pg_gw *gw, struct pg_http *h);        /* GET .../channels/{channel}/users */
void pg_pusher_api_devices(struct pg_gw *gw, struct pg_http *h);      /* GET /apps/{app}/devices (pushgate's own) */

#endif
