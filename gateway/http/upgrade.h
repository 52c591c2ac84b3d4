/*
 * WebSocket upgrades: which protocol and app a WebSocket path names, and
 * the checks an upgrade passes before lws accepts it (limits, app, origin,
 * capacity, per-address admission). A refused upgrade is answered with the
 * gateway's JSON error body; an accepted one becomes a session of its
 * protocol (server.c, LWS_CALLBACK_ESTABLISHED).
 *
 * State: none. Who may call: server.c (confirm, then the path again once the
 * connection is a WebSocket). Loop thread only.
 */
#ifndef PG_HTTP_UPGRADE_H
#define PG_HTTP_UPGRADE_H

#include <libwebsockets.h>

#include "core/session.h"

struct pg_gw;
struct pg_app;

/*
 * The WebSocket route path names (http/routes.c): 0 with its protocol and
 * app ("/v1/{app}": native, by id; "/app/{key}": Pusher, by key, app NULL when
 * no app has that key: refused after the upgrade; "/socket.io/": socket.io,
 * app NULL: the namespace names it later), or -1 (no route, unknown app id).
 */
int pg_ws_path(struct pg_gw *gw, const char *path, const struct pg_proto **proto, struct pg_app **app);
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE of a WebSocket: 0 accept; 1 refused (answered). */
int pg_http_confirm_upgrade(struct pg_gw *gw, struct lws *wsi);

#endif
