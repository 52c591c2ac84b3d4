/*
 * notification-socket.io's REST API and push registrations.
 */
#ifndef PG_HTTP_PUSH_API_H
#define PG_HTTP_PUSH_API_H

#include <jansson.h>

struct pg_gw;
struct pg_http;
struct pg_app;

/*
 * push_api.c: notification-socket.io's REST API (X-AUTH-TOKEN = an app's
 * push_token). PUT /api/{user}/register?connectionId= publishes a retained
 * {root}/_ctl/{app}/reg/{connectionId} {"user","exp"} with a message expiry,
 * which every node keeps in gw->push_regs; POST /api/{user}/push publishes on
 * {root}/{app}/u/{user}, where registered socket.io sessions listen.
 */
int pg_push_init(struct pg_gw *gw); /* subscribe {root}/_ctl/+/reg/+ */
void pg_push_free(struct pg_gw *gw);
/* A message on {root}/_ctl/{app}/reg/{conn} (app: app_len bytes): a registration, or empty when cleared. */
void pg_push_on_reg(struct pg_gw *gw, const char *app, size_t app_len, const char *conn, const void *payload,
                    size_t len);
/* The user a live registration of connection id conn in app names; NULL (unknown or expired). Borrowed. */
const char *pg_push_registered_user(struct pg_gw *gw, const char *app, const char *conn);
/* 1 when id may be a user or connection id: 1..128 bytes of UTF-8, no '/', '+', '#', control characters. */
int pg_push_id_valid(const char *id);
/* This node's live members of per-user channels: {app: {user: sessions}} (node snapshot, cluster.c). */
json_t *pg_push_local_users(struct pg_gw *gw);

/*
 * Route handlers (http/routes.c). The router checked the token first
 * (pg_push_token_app, h->app); the capture "user" is the path's user id.
 */
void pg_push_register(struct pg_gw *gw, struct pg_http *h); /* PUT /api/{user}/register?connectionId= */
void pg_push_push(struct pg_gw *gw, struct pg_http *h);     /* POST /api/{user}/push */
void pg_push_status_ping(struct pg_gw *gw, struct pg_http *h); /* GET /api/status/ping: "pong" */
void pg_push_status_info(struct pg_gw *gw, struct pg_http *h); /* GET /api/status/info */
/* The app whose push_token X-AUTH-TOKEN carries, if active; NULL with h answered (401, 403). */
struct pg_app *pg_push_token_app(struct pg_gw *gw, struct pg_http *h);

#endif
