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
#include "proto/sio.h"

int pg_ws_path(struct pg_gw *gw, const char *path, enum pg_proto *proto, struct pg_app **app)
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
    enum pg_proto proto;
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
    if (proto == PG_PROTO_SIO) /* its own checks: Engine.IO query, sid, origin against the session's app */
        return pg_sio_confirm_upgrade(gw, wsi);
    if (app && !app->creds->active && proto == PG_PROTO_NATIVE) { /* Pusher clients expect close code 4003 */
        pg_http_refuse_upgrade(wsi, HTTP_STATUS_FORBIDDEN, "app disabled");
        return 1;
    }
    /* browsers send Origin: an app that lists its origins refuses pages from anywhere else */
    char origin[256];
    if (app && app->conf->allowed_origins && pg_http_header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin) != 0) {
        int ok = 0;
        for (char **o = app->conf->allowed_origins; *o && !ok; o++)
            ok = !strcmp(*o, origin);
        if (!ok) {
            pg_log(PG_LOG_INFO, "http", "upgrade refused app=%s: origin not allowed", app->creds->id);
            pg_http_refuse_upgrade(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed");
            return 1;
        }
    }
    if ((why = pg_session_refusal(gw)) != NULL) {
        pg_http_refuse_upgrade(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, why);
        return 1;
    }
    if ((why = pg_addr_refusal(gw, wsi)) != NULL) {
        pg_http_refuse_upgrade(wsi, 429, why);
        return 1;
    }
    return 0;
}
