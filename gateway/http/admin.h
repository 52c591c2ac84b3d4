/*
 * The admin API.
 */
#ifndef PG_HTTP_ADMIN_H
#define PG_HTTP_ADMIN_H


struct pg_gw;
struct pg_http;

/*
 * Route hooks tried for every method before the built-in routes. Each returns
 * 0 when the path is not its own; otherwise 1 with h answered or h->on_body
 * set. http_admin.c: /api/admin/..., /api/apps/{slug}/events, /dashboard/...
 * push_api.c: notification-socket.io's /api/{userId}/..., /api/status/..., /socket.io/
 */
int pg_admin_route(struct pg_gw *gw, struct pg_http *h);

#endif
