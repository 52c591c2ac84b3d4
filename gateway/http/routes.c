/*
 * The route table and the router (http/routes.h).
 *
 * Adding a route: a row below (in the scope its path belongs to) and its
 * handler in the module of its surface; tests/unit/test_routes.c lists what
 * every path answers. The order of scopes is the order paths are claimed in;
 * inside a scope, rows do not overlap.
 *
 * The answers to a request that is not routed keep the order clients and
 * tests rely on: admin credentials first (the admin API and the dashboard do
 * not reveal which paths exist), then a scope's 405, the path's 404, then
 * an unknown app's 404 and the row's 405 (in the order of the scope).
 *
 * State: none but the constant table. Loop thread only (pg_routes_route);
 * the matchers are pure.
 */
#include <string.h>

#include "core/app.h"
#include "core/gw.h"
#include "http/admin.h"
#include "http/assets.h"
#include "http/auth.h"
#include "http/dashboard.h"
#include "http/http.h"
#include "http/metrics.h"
#include "http/push_api.h"
#include "http/pusher_api.h"
#include "http/rest.h"
#include "http/routes.h"
#include "proto/native.h"
#include "proto/pusher.h"
#include "proto/sio.h"
#include "pushgate_bridge.h"

struct pg_route_scope {
    /* paths equal to it or under it ("/api/admin": "/api/admin" and "/api/admin/..."); ending in '/': paths
       starting with it; "": every path */
    const char *prefix;
    unsigned methods;         /* 0: any; otherwise other methods are answered 405 method_error before anything */
    const char *method_error;
    enum pg_route_auth auth;  /* PG_AUTH_ADMIN: checked before any other answer of the scope */
    const char *not_found;    /* 404 when no row's path matches; NULL: the next scopes are tried */
    int app_first;            /* an unknown {app} is answered (404) before a row's 405 */
};

static const struct pg_route_scope
    /* claims only its rows' paths: an app may be named dashboard, and POST /dashboard/{channel}/publish is its REST
       publish (the root scope's) */
    dashboard = {"/dashboard", 0, NULL, PG_AUTH_ADMIN, NULL, 0},
    admin = {"/api/admin", 0, NULL, PG_AUTH_ADMIN, "unknown admin route", 0},
    events = {"/api/apps/", 0, NULL, PG_AUTH_NONE, "not found (POST /api/apps/{app}/events)", 0},
    socketio = {"/socket.io", 0, NULL, PG_AUTH_NONE, NULL, 0},
    /* after admin and events: "/api/admin/..." and "/api/apps/..." are never user ids */
    push = {"/api/", 0, NULL, PG_AUTH_NONE, NULL, 0},
    pusher = {"/apps/", PG_M_GET | PG_M_POST, "method not allowed", PG_AUTH_NONE, "unknown Pusher API route", 1},
    root = {"", PG_M_GET | PG_M_POST, "method not allowed", PG_AUTH_NONE, "not found", 0};

static const struct pg_route_scope *const scopes[] = {&dashboard, &admin, &events, &socketio, &push, &pusher, &root};

/* ---- the gateway's own small answers -------------------------------------------------- */

static void redirect_demo(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    h->location = "/demo";
    pg_http_respond(h, 302, "text/plain", "", 0);
}

static void healthz(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    pg_http_respond_json(h, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(struct pg_gw *gw, struct pg_http *h)
{
    int up = pg_bridge_ready(gw->bridge) && !gw->draining;
    pg_http_respond_json(h, up ? 200 : 503,
                         json_pack("{s:s, s:b}", "status", up ? "ready" : "not ready", "broker",
                                   pg_bridge_connected(gw->bridge)));
}

/* The embedded file the row's path names (gateway/static, see gateway/CMakeLists.txt). */
static void asset(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    const struct pg_asset *a = pg_asset_find(h->path);
    if (a)
        pg_http_respond(h, 200, a->ctype, a->data, a->len);
    else
        pg_http_respond_error(h, 404, "not found");
}

/* ---- the table ------------------------------------------------------------------------- */

#define ANY_HTTP PG_M_HTTP
#define NOT_ALLOWED "method not allowed"
#define GET_ONLY "method not allowed: GET only"

static const struct pg_route routes[] = {
    /* per-app dashboard (http/dashboard.c); never reserved: apps may carry this id */
    {"dashboard.page", PG_M_GET, "/dashboard/{app}", pg_dashboard_page, 0, PG_AUTH_ADMIN, GET_ONLY, 0,
     PG_ROUTE_UNRESERVED, &dashboard},
    {"dashboard.data", PG_M_GET, "/dashboard/{app}/data", pg_dashboard_data, 0, PG_AUTH_ADMIN, GET_ONLY, 0,
     PG_ROUTE_UNRESERVED, &dashboard},

    /* apps admin API (http/admin.c) */
    {"admin.apps", PG_M_GET | PG_M_POST, "/api/admin/apps[/]", pg_admin_apps, 1, PG_AUTH_ADMIN, NOT_ALLOWED, 0, 0,
     &admin},
    {"admin.app", PG_M_GET | PG_M_PATCH | PG_M_PUT | PG_M_DELETE, "/api/admin/apps/{slug:64}[/]", pg_admin_app, 1,
     PG_AUTH_ADMIN, NOT_ALLOWED, NULL, 0, &admin},
    {"admin.revocations", PG_M_GET | PG_M_POST, "/api/admin/apps/{slug:64}/revocations[/]", pg_admin_revocations, 1,
     PG_AUTH_ADMIN, NOT_ALLOWED, NULL, 0, &admin},

    /* per-app events API (http/admin.c) */
    {"admin.events", PG_M_POST, "/api/apps/{app}/events", pg_admin_events, 1, PG_AUTH_APP_BASIC, NOT_ALLOWED, 0, 0,
     &events},

    /* socket.io long-polling (proto/sio.c): every method, Engine.IO answers them itself */
    {"socketio.polling", ANY_HTTP, "/socket.io[/]", pg_sio_http, 1, PG_AUTH_SESSION, NULL, NULL, 0, &socketio},

    /* notification-socket.io's push API (http/push_api.c) */
    {"push.ping", PG_M_GET, "/api/status/ping", pg_push_status_ping, 0, PG_AUTH_NONE, NOT_ALLOWED, NULL, 0, &push},
    {"push.info", PG_M_GET, "/api/status/info", pg_push_status_info, 0, PG_AUTH_NONE, NOT_ALLOWED, NULL, 0, &push},
    /* an empty user id is the handler's 400, after the token's 401 */
    {"push.register", PG_M_PUT, "/api/{user?}/register", pg_push_register, 1, PG_AUTH_PUSH_TOKEN,
     "use PUT to register", NULL, 0, &push},
    {"push.push", PG_M_POST, "/api/{user?}/push", pg_push_push, 1, PG_AUTH_PUSH_TOKEN, "use POST to push", 0, 0,
     &push},

    /* Pusher HTTP API (http/pusher_api.c); an empty app id is an unknown app */
    {"pusher.events", PG_M_POST, "/apps/{app?}/events", pg_pusher_api_events, 1, PG_AUTH_APP_SIGNATURE, NOT_ALLOWED,
     0, 0, &pusher},
    {"pusher.batch_events", PG_M_POST, "/apps/{app?}/batch_events", pg_pusher_api_batch_events, 1,
     PG_AUTH_APP_SIGNATURE, NOT_ALLOWED, NULL, 0, &pusher},
    {"pusher.channels", PG_M_GET, "/apps/{app?}/channels", pg_pusher_api_channels, 0, PG_AUTH_APP_SIGNATURE,
     NOT_ALLOWED, NULL, 0, &pusher},
    {"pusher.channel", PG_M_GET, "/apps/{app?}/channels/{channel?}", pg_pusher_api_channel, 0,
     PG_AUTH_APP_SIGNATURE, NOT_ALLOWED, NULL, 0, &pusher},
    {"pusher.users", PG_M_GET, "/apps/{app?}/channels/{channel?}/users", pg_pusher_api_users, 0,
     PG_AUTH_APP_SIGNATURE, NOT_ALLOWED, NULL, 0, &pusher},
    {"pusher.terminate", PG_M_POST, "/apps/{app?}/users/{user}/terminate_connections", pg_pusher_api_terminate, 1,
     PG_AUTH_APP_SIGNATURE, NOT_ALLOWED, NULL, 0, &pusher},
    {"pusher.devices", PG_M_GET, "/apps/{app?}/devices", pg_pusher_api_devices, 0, PG_AUTH_APP_SIGNATURE,
     NOT_ALLOWED, NULL, 0, &pusher},

    /* health, metrics, the embedded client and demo page */
    {"redirect", PG_M_GET, "/", redirect_demo, 0, PG_AUTH_NONE, NULL, NULL, 0, &root},
    {"healthz", PG_M_GET, "/healthz", healthz, 0, PG_AUTH_NONE, NULL, NULL, 0, &root},
    {"readyz", PG_M_GET, "/readyz", readyz, 0, PG_AUTH_NONE, NULL, NULL, 0, &root},
    {"metrics", PG_M_GET, "/metrics", pg_metrics_get, 0, PG_AUTH_NONE, NULL, NULL, 0, &root},
    {"asset.client", PG_M_GET, "/pushgate.js", asset, 0, PG_AUTH_NONE, NULL, NULL, 0, &root},
    /* the example app is named demo: GET /demo is this page, POST /demo/{channel}/publish its REST publish */
    {"asset.demo", PG_M_GET, "/demo", asset, 0, PG_AUTH_NONE, NULL, NULL, PG_ROUTE_UNRESERVED, &root},

    /* ScaleDrone-style REST publish (http/rest.c); an empty app id is an unknown app */
    {"rest.publish", PG_M_POST, "/{app?}/{channel+}/publish", pg_rest_publish, 1, PG_AUTH_BEARER, NULL, NULL, 0, &root},

    /* WebSocket upgrades (http/upgrade.c checks them, the protocol runs the session) */
    {"ws.socketio", PG_M_WS, "/socket.io[/]", NULL, 0, PG_AUTH_SESSION, NULL, &pg_sio_proto, 0, NULL},
    {"ws.native", PG_M_WS, "/v1/{app}[/]", NULL, 0, PG_AUTH_SESSION, NULL, &pg_native_proto, 0, NULL},
    {"ws.pusher", PG_M_WS, "/app/{key}[/]", NULL, 0, PG_AUTH_SESSION, NULL, &pg_pusher_proto, 0, NULL},
};

#define NROUTES (sizeof routes / sizeof routes[0])

const struct pg_route *pg_routes_table(size_t *n)
{
    *n = NROUTES;
    return routes;
}

/* ---- matching -------------------------------------------------------------------------- */

/* Appends name (nl bytes) = value (vl bytes) to args; 0, or -1 when it does not fit. */
static int args_add(struct pg_http_args *args, const char *name, size_t nl, const char *value, size_t vl)
{
    size_t used = args->n ? args->value[args->n - 1] + strlen(args->buf + args->value[args->n - 1]) + 1 : 0;
    if (args->n >= PG_HTTP_ARGS_MAX || used + nl + vl + 2 > sizeof args->buf)
        return -1;
    args->name[args->n] = (uint16_t)used;
    memcpy(args->buf + used, name, nl);
    args->buf[used + nl] = '\0';
    args->value[args->n] = (uint16_t)(used + nl + 1);
    memcpy(args->buf + used + nl + 1, value, vl);
    args->buf[used + nl + 1 + vl] = '\0';
    args->n++;
    return 0;
}

/*
 * pat from a '{': the capture's name (*nl bytes at *name), kind ('\0', '?', '+' or ':' with its bound in *max);
 * the pattern after the '}', or NULL when malformed.
 */
static const char *capture_spec(const char *pat, const char **name, size_t *nl, char *kind, size_t *max)
{
    *name = pat + 1;
    *nl = strcspn(*name, "}?+:");
    const char *p = *name + *nl;
    *kind = *p == '}' ? '\0' : *p;
    *max = 0;
    if (*kind == ':') {
        while (*++p >= '0' && *p <= '9')
            *max = *max * 10 + (size_t)(*p - '0');
    } else if (*kind) {
        p++;
    }
    return *p == '}' && *nl ? p + 1 : NULL;
}

/*
 * The WebSocket rule (ws): lws decodes %3F into the path, and a '?' right
 * after a capture ends the path there, as it always did for /v1/{app} and
 * /app/{key}; captures never hold one.
 */
static int match_at(const char *pat, const char *path, int ws, struct pg_http_args *args)
{
    while (*pat) {
        if (!strcmp(pat, "[/]")) {
            path += *path == '/';
            pat += 3;
            continue;
        }
        if (*pat != '{') {
            if (*pat++ != *path++)
                return 0;
            continue;
        }
        const char *name;
        size_t nl, max;
        char kind;
        const char *rest = capture_spec(pat, &name, &nl, &kind, &max);
        if (!rest)
            return 0;
        size_t saved = args->n;
        if (kind == '+') { /* the longest span after which the rest of the pattern matches */
            for (size_t n = strlen(path); n >= 1; n--) {
                if (args_add(args, name, nl, path, n) == 0 && match_at(rest, path + n, ws, args))
                    return 1;
                args->n = saved;
            }
            return 0;
        }
        size_t n = strcspn(path, ws ? "/?" : "/");
        if ((n == 0 && kind != '?') || (kind == ':' && n > max) || args_add(args, name, nl, path, n) != 0)
            return 0;
        if (ws && path[n] == '?')
            return 1;
        path += n;
        pat = rest;
    }
    return *path == '\0';
}

int pg_route_pattern_match(const char *pattern, const char *path, int ws, struct pg_http_args *args)
{
    size_t saved = args->n;
    if (match_at(pattern, path, ws, args))
        return 1;
    args->n = saved;
    return 0;
}

static int scope_takes(const struct pg_route_scope *s, const char *path)
{
    size_t n = strlen(s->prefix);
    if (strncmp(path, s->prefix, n) != 0)
        return 0;
    return !n || s->prefix[n - 1] == '/' || path[n] == '\0' || path[n] == '/';
}

void pg_routes_match(unsigned method, const char *path, struct pg_route_match *m, struct pg_http_args *args)
{
    memset(m, 0, sizeof *m);
    for (size_t si = 0; si < sizeof scopes / sizeof scopes[0]; si++) {
        const struct pg_route_scope *s = scopes[si];
        if (!scope_takes(s, path))
            continue;
        m->auth_first = s->auth;
        m->app_first = s->app_first;
        if (s->methods && !(s->methods & method)) {
            m->status = 405;
            m->message = s->method_error;
            return;
        }
        const struct pg_route *other = NULL; /* a row whose path matched, for another method */
        for (size_t i = 0; i < NROUTES; i++) {
            const struct pg_route *r = &routes[i];
            if (r->scope != s || (!(r->methods & method) && (other || !r->method_error)))
                continue;
            args->n = 0;
            if (!pg_route_pattern_match(r->pattern, path, 0, args))
                continue;
            if (r->methods & method) {
                m->route = r;
                return;
            }
            other = r;
        }
        if (other) {
            args->n = 0;
            pg_route_pattern_match(other->pattern, path, 0, args);
            m->route = other;
            m->status = 405;
            m->message = other->method_error;
            m->row_405 = 1;
            return;
        }
        if (s->not_found) {
            args->n = 0;
            m->status = 404;
            m->message = s->not_found;
            return;
        }
    }
    args->n = 0;
}

const struct pg_route *pg_routes_match_ws(const char *path, struct pg_http_args *args)
{
    for (size_t i = 0; i < NROUTES; i++) {
        args->n = 0;
        if ((routes[i].methods & PG_M_WS) && pg_route_pattern_match(routes[i].pattern, path, 1, args))
            return &routes[i];
    }
    args->n = 0;
    return NULL;
}

/* ---- routing ----------------------------------------------------------------------------- */

/* Runs the route's handler once its credentials are checked (those the router checks). */
static void run_route(struct pg_gw *gw, struct pg_http *h)
{
    const struct pg_route *r = h->route;
    if (r->auth == PG_AUTH_APP_BASIC && !pg_http_app_basic_ok(h, h->app))
        return;
    if (r->auth == PG_AUTH_PUSH_TOKEN && !(h->app = pg_push_token_app(gw, h)))
        return;
    r->handler(gw, h);
}

/* h->app from the {app} capture; 0, or -1 with h answered (404). */
static int lookup_app(struct pg_gw *gw, struct pg_http *h)
{
    const char *id = pg_http_arg(h, "app");
    if (!id)
        return 0;
    if (!(h->app = pg_app_lookup(gw, id, strlen(id)))) {
        pg_http_respond_error(h, 404, "unknown app");
        return -1;
    }
    return 0;
}

void pg_routes_route(struct pg_gw *gw, struct pg_http *h)
{
    struct pg_route_match m;
    pg_routes_match(PG_M(h->method), h->path, &m, h->args);
    if (m.auth_first == PG_AUTH_ADMIN && !pg_http_admin_ok(gw, h))
        return;
    if (m.status && !m.row_405) {
        pg_http_respond_error(h, m.status, m.message);
        return;
    }
    if (m.app_first && lookup_app(gw, h) != 0)
        return;
    if (m.status) {
        pg_http_respond_error(h, m.status, m.message);
        return;
    }
    if (!m.app_first && lookup_app(gw, h) != 0)
        return;
    h->route = m.route;
    if (m.route->body)
        h->on_body = run_route;
    else
        run_route(gw, h);
}

/* ---- reserved app ids -------------------------------------------------------------------- */

int pg_routes_reserved(const char *id)
{
    size_t n = strlen(id);
    for (size_t i = 0; i < NROUTES; i++) {
        const char *seg = routes[i].pattern + 1; /* after the leading '/' */
        size_t sl = strcspn(seg, "/[");
        if ((routes[i].flags & PG_ROUTE_UNRESERVED) || !sl || memchr(seg, '{', sl))
            continue;
        if (sl == n && !memcmp(seg, id, n))
            return 1;
    }
    return 0;
}
