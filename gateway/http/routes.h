/*
 * The gateway's routes: one table (routes.c) of every HTTP path and
 * WebSocket upgrade path the gateway answers, with the handler, the methods,
 * whether the answer waits for the body, and which credentials it takes.
 *
 * Path patterns (h2o style, captures by name):
 *   /api/admin/apps     literal bytes
 *   {name}              one path segment of 1 or more bytes (no '/')
 *   {name?}             one path segment, possibly empty
 *   {name:N}            one path segment of 1 to N bytes
 *   {name+}             1 or more bytes that may span segments (a channel "a/b")
 *   [/]                 an optional trailing '/'
 * An {app} capture names an app by id: the router looks it up (h->app) and
 * answers 404 "unknown app" when there is none. A WebSocket row's {key}
 * names a Pusher app by key and may name none (refused after the upgrade
 * with close code 4001, as Pusher clients expect).
 *
 * Rows sit in scopes, path families with one policy: a scope may answer 405
 * for other methods before anything else, check the admin credentials
 * before saying which of its paths exist, answer its own 404, or let paths
 * it does not know fall through to the next scope.
 *
 * The first path segment of every row is reserved: no app may take it as
 * its id (pg_routes_reserved()), since the REST publish path starts with
 * the app id.
 *
 * Who may call: server.c (pg_routes_route as pg_http_callback's router),
 * http/upgrade.c (pg_routes_match_ws), the unit tests (the matchers are
 * pure: no gateway, no broker). store/app_id.c lists the same reserved names
 * for the broker plugin, which cannot link this table; unit/routes fails
 * when the two differ.
 */
#ifndef PG_HTTP_ROUTES_H
#define PG_HTTP_ROUTES_H

#include "core/session.h"
#include "http/http.h"

/* Method sets of a row: one bit per enum pg_http_method, and the WebSocket upgrade. */
#define PG_M(m) (1u << (m))
#define PG_M_GET PG_M(PG_GET)
#define PG_M_POST PG_M(PG_POST)
#define PG_M_PUT PG_M(PG_PUT)
#define PG_M_PATCH PG_M(PG_PATCH)
#define PG_M_DELETE PG_M(PG_DELETE)
#define PG_M_OPTIONS PG_M(PG_OPTIONS)
#define PG_M_HTTP (PG_M_GET | PG_M_POST | PG_M_PUT | PG_M_PATCH | PG_M_DELETE | PG_M_OPTIONS)
#define PG_M_WS (1u << 7)

/* The credentials a route takes, and who checks them. */
enum pg_route_auth {
    PG_AUTH_NONE,          /* public */
    PG_AUTH_ADMIN,         /* admin_user/admin_password (HTTP Basic): the router, on entering the scope */
    PG_AUTH_APP_BASIC,     /* the app's key:secret (HTTP Basic): the router, once the body is in */
    PG_AUTH_PUSH_TOKEN,    /* X-AUTH-TOKEN = an app's push_token (sets h->app): the router, once the body is in */
    PG_AUTH_APP_SIGNATURE, /* Pusher's signed query (auth_signature, body_md5): the handler, after the size check */
    PG_AUTH_BEARER,        /* an optional JWT (Authorization: Bearer): the handler, after the body's checks */
    PG_AUTH_SESSION,       /* the protocol's own: a WebSocket token or Pusher key, an Engine.IO sid */
};

#define PG_ROUTE_UNRESERVED 1u /* its first segment stays free for app ids (see the row) */

struct pg_route_scope;

struct pg_route {
    const char *name;     /* "admin.app", "pusher.events": for tests and logs */
    unsigned methods;     /* PG_M_* */
    const char *pattern;
    pg_http_body_fn handler; /* HTTP rows */
    int body;             /* the answer waits for the request body (every row a body may come with) */
    enum pg_route_auth auth;
    const char *method_error; /* the 405 message for other methods; NULL: another method does not match */
    const struct pg_proto *proto; /* WebSocket rows: the protocol the upgrade speaks; NULL for HTTP rows */
    unsigned flags;       /* PG_ROUTE_* */
    const struct pg_route_scope *scope; /* NULL for WebSocket rows */
};

/* What the table says about one HTTP request. */
struct pg_route_match {
    const struct pg_route *route; /* status 0: the route; 405 from a row: the row whose path matched */
    int status;                   /* 0, 404 or 405 */
    const char *message;          /* the 404 or 405 message */
    int row_405;                  /* the 405 is the row's (after the app lookup), not the scope's (before all) */
    enum pg_route_auth auth_first; /* checked before status is answered: PG_AUTH_ADMIN or PG_AUTH_NONE */
    int app_first;                /* look {app} up before a row's 405 */
};

/* Matches the HTTP request (PG_M(method), path) against the table; the captures go to args. Pure. */
void pg_routes_match(unsigned method, const char *path, struct pg_route_match *m, struct pg_http_args *args);
/* The WebSocket row path names (captures in args), or NULL. Pure. */
const struct pg_route *pg_routes_match_ws(const char *path, struct pg_http_args *args);
/* One pattern against one path (ws: WebSocket path rules): 1 and the captures appended to args, or 0. Pure. */
int pg_route_pattern_match(const char *pattern, const char *path, int ws, struct pg_http_args *args);

/* The router given to pg_http_callback(): answers h, or sets h->on_body. */
void pg_routes_route(struct pg_gw *gw, struct pg_http *h);

/* 1 when id is the first path segment of a route (an app with that id would be shadowed). */
int pg_routes_reserved(const char *id);

/* The table, for tests: *n rows. */
const struct pg_route *pg_routes_table(size_t *n);

#endif
