/*
 * notification-socket.io's REST API (push_api.c), X-AUTH-TOKEN = an app's
 * push_token. PUT /api/{user}/register?connectionId= publishes a retained
 * {root}/_ctl/{app}/reg/{connectionId} {"user","exp"} with a message expiry,
 * which every node keeps (cluster/push_regs.h); POST /api/{user}/push
 * publishes on {root}/{app}/u/{user}, where registered socket.io sessions
 * listen.
 *
 * State: none of its own. Who may call: the route table (http/routes.c).
 */
#ifndef PG_HTTP_PUSH_API_H
#define PG_HTTP_PUSH_API_H

struct pg_gw;
struct pg_http;
struct pg_app;

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
