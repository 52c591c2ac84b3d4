/*
 * WebSocket upgrade checks (http/upgrade.h). The paths are rows of the one
 * route table (http/routes.c); socket.io's upgrades are checked by
 * proto/sio.c, which knows its Engine.IO sessions.
 */
#include <string.h>

#include "config.h"
#include "core/admission.h"
#include "core/app.h"
#include "http/http.h"
#include "http/routes.h"
#include "http/upgrade.h"
#include "log.h"

int pg_ws_path(struct pg_gw *gw, const char *path, const struct pg_proto **proto, struct pg_app **app)
{
    struct pg_http_args args;
    const struct pg_route *r = pg_routes_match_ws(path, &args);
    if (!r)
        return -1;
    const char *id = pg_http_args_get(&args, "app"), *key = pg_http_args_get(&args, "key");
    *proto = r->proto;
    *app = id ? pg_app_lookup(gw, id, strlen(id)) : key ? pg_app_find_by_key(gw, key, strlen(key)) : NULL;
    /* an unknown app id is refused before the upgrade; Pusher clients expect close code 4001 for an unknown key */
    return id && !*app ? -1 : 0;
}

int pg_http_confirm_upgrade(struct pg_gw *gw, struct lws *wsi)
{
    char path[PG_HTTP_PATH_MAX];
    const struct pg_proto *proto;
    struct pg_app *app;
    const char *why = NULL;
    int refuse = pg_http_refusal(gw, wsi, &why);
    if (refuse) {
        pg_http_refuse_upgrade(wsi, (unsigned int)refuse, why);
        return 1;
    }
    if (pg_http_header(wsi, WSI_TOKEN_GET_URI, path, sizeof path) <= 0 || pg_ws_path(gw, path, &proto, &app) != 0) {
        pg_http_refuse_upgrade(wsi, HTTP_STATUS_NOT_FOUND, "unknown app or path");
        return 1;
    }
    /* the protocol's own checks, then (native, Pusher) pg_http_upgrade_checks; socket.io: Engine.IO query, sid, origin */
    return proto->confirm_upgrade(gw, wsi, app);
}
