/*
 * The route table (gateway/http/routes.c) without a gateway: every path of
 * the README's surfaces (REST publish, admin API, events API, Pusher HTTP
 * API, push API, socket.io, dashboard, metrics, health, static files,
 * WebSocket upgrades) matches the right row with the right captures, and
 * near-misses get the 404 or 405 (and message) they always got. Also the
 * pattern matcher alone, the reserved app ids and the table's own rules.
 */
#include <stdio.h>
#include <string.h>

#include "app_id.h"
#include "check.h"
#include "config.h"
#include "http/assets.h"
#include "http/routes.h"

/* "name=value name=value" of the captures, in order. */
static const char *caps(const struct pg_http_args *a, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < a->n && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s=%s", i ? " " : "", a->buf + a->name[i], a->buf + a->value[i]);
    return buf;
}

/* method routes path to row name with captures want_caps ("" none). */
static void routes_to(unsigned method, const char *path, const char *name, const char *want_caps)
{
    struct pg_route_match m;
    struct pg_http_args a;
    char got[700];
    pg_routes_match(method, path, &m, &a);
    CHECK(m.status == 0 && m.route && !strcmp(m.route->name, name), "%s: expected %s, got %s (%d %s)", path, name,
          m.route ? m.route->name : "none", m.status, m.message ? m.message : "");
    CHECK(!strcmp(caps(&a, got, sizeof got), want_caps), "%s: captures \"%s\", expected \"%s\"", path, got,
          want_caps);
}

/* method on path is answered status with message (before any handler runs). */
static void answered(unsigned method, const char *path, int status, const char *message)
{
    struct pg_route_match m;
    struct pg_http_args a;
    pg_routes_match(method, path, &m, &a);
    CHECK(m.status == status && m.message && !strcmp(m.message, message), "%s: expected %d \"%s\", got %d \"%s\"",
          path, status, message, m.status, m.message ? m.message : "");
}

static void rest_and_ops(void)
{
    routes_to(PG_M_POST, "/demo/room/publish", "rest.publish", "app=demo channel=room");
    routes_to(PG_M_POST, "/demo/a/b/publish", "rest.publish", "app=demo channel=a/b");
    routes_to(PG_M_POST, "/demo/publish/publish", "rest.publish", "app=demo channel=publish");
    routes_to(PG_M_POST, "//room/publish", "rest.publish", "app= channel=room"); /* then 404 unknown app */
    answered(PG_M_POST, "/demo/publish", 404, "not found");
    answered(PG_M_POST, "/demo//publish", 404, "not found");
    answered(PG_M_POST, "//publish", 404, "not found");
    answered(PG_M_POST, "/publish", 404, "not found");
    answered(PG_M_GET, "/demo/room/publish", 404, "not found");
    answered(PG_M_PUT, "/demo/room/publish", 405, "method not allowed");
    answered(PG_M_DELETE, "/nope", 405, "method not allowed");

    routes_to(PG_M_GET, "/", "redirect", "");
    routes_to(PG_M_GET, "/healthz", "healthz", "");
    routes_to(PG_M_GET, "/readyz", "readyz", "");
    routes_to(PG_M_GET, "/metrics", "metrics", "");
    routes_to(PG_M_GET, "/pushgate.js", "asset.client", "");
    routes_to(PG_M_GET, "/demo", "asset.demo", "");
    answered(PG_M_GET, "/healthz/", 404, "not found");
    answered(PG_M_GET, "/dashboard.html", 404, "not found"); /* only behind the admin check */
    answered(PG_M_POST, "/healthz", 404, "not found");
    answered(PG_M_OPTIONS, "/metrics", 405, "method not allowed");
}

static void admin_api(void)
{
    struct pg_route_match m;
    struct pg_http_args a;
    routes_to(PG_M_GET, "/api/admin/apps", "admin.apps", "");
    routes_to(PG_M_POST, "/api/admin/apps/", "admin.apps", "");
    routes_to(PG_M_GET, "/api/admin/apps/my-app", "admin.app", "slug=my-app");
    routes_to(PG_M_PATCH, "/api/admin/apps/my-app/", "admin.app", "slug=my-app");
    routes_to(PG_M_PUT, "/api/admin/apps/my-app", "admin.app", "slug=my-app");
    routes_to(PG_M_DELETE, "/api/admin/apps/my-app", "admin.app", "slug=my-app");
    routes_to(PG_M_GET, "/api/admin/apps/demo/revocations", "admin.revocations", "slug=demo");
    routes_to(PG_M_POST, "/api/admin/apps/demo/revocations/", "admin.revocations", "slug=demo");
    routes_to(PG_M_GET, "/api/admin/apps/revocations", "admin.app", "slug=revocations");
    char longest[128] = "/api/admin/apps/", want[100] = "slug=";
    memset(longest + 16, 'a', 64);
    memset(want + 5, 'a', 64);
    routes_to(PG_M_GET, longest, "admin.app", want);
    strcat(longest, "a"); /* 65 bytes: longer than any slug */
    answered(PG_M_GET, longest, 404, "unknown admin route");
    answered(PG_M_PATCH, longest, 404, "unknown admin route");
    answered(PG_M_GET, "/api/admin", 404, "unknown admin route");
    answered(PG_M_GET, "/api/admin/", 404, "unknown admin route");
    answered(PG_M_GET, "/api/admin/users", 404, "unknown admin route");
    answered(PG_M_GET, "/api/admin/appsx", 404, "unknown admin route");
    answered(PG_M_GET, "/api/admin/apps//", 404, "unknown admin route");
    answered(PG_M_GET, "/api/admin/apps/x//", 404, "unknown admin route");
    answered(PG_M_GET, "/api/admin/apps/x/y", 404, "unknown admin route");
    answered(PG_M_DELETE, "/api/admin/apps", 405, "method not allowed");
    answered(PG_M_POST, "/api/admin/apps/x", 405, "method not allowed");
    answered(PG_M_PUT, "/api/admin/apps/x/revocations", 405, "method not allowed");
    /* the credentials come before any of these answers */
    pg_routes_match(PG_M_GET, "/api/admin/nothing", &m, &a);
    CHECK(m.auth_first == PG_AUTH_ADMIN, "admin scope: credentials first");
    pg_routes_match(PG_M_GET, "/api/adminx/push", &m, &a);
    CHECK(m.auth_first == PG_AUTH_NONE && m.status == 405 && !strcmp(m.message, "use POST to push"),
          "not the admin scope: /api/adminx is a user id");

    routes_to(PG_M_POST, "/api/apps/demo/events", "admin.events", "app=demo");
    answered(PG_M_GET, "/api/apps/demo/events", 405, "method not allowed");
    answered(PG_M_POST, "/api/apps/demo/events/", 404, "not found (POST /api/apps/{app}/events)");
    answered(PG_M_POST, "/api/apps//events", 404, "not found (POST /api/apps/{app}/events)");
    answered(PG_M_POST, "/api/apps/push", 404, "not found (POST /api/apps/{app}/events)");
    pg_routes_match(PG_M_GET, "/api/apps/demo/events", &m, &a);
    CHECK(m.row_405 && !m.app_first, "events: 405 before the app's 404");
}

static void dashboard(void)
{
    struct pg_route_match m;
    struct pg_http_args a;
    routes_to(PG_M_GET, "/dashboard/demo", "dashboard.page", "app=demo");
    routes_to(PG_M_GET, "/dashboard/demo/data", "dashboard.data", "app=demo");
    answered(PG_M_POST, "/dashboard/demo", 405, "method not allowed: GET only");
    answered(PG_M_DELETE, "/dashboard/demo/data", 405, "method not allowed: GET only");
    /* the scope claims its rows' paths only: the rest is the root's, e.g. the REST publish of an app named dashboard */
    answered(PG_M_POST, "/dashboard/nothing/here", 404, "not found");
    answered(PG_M_GET, "/dashboard", 404, "not found");
    answered(PG_M_GET, "/dashboard/", 404, "not found");
    answered(PG_M_GET, "/dashboard/demo/", 404, "not found");
    answered(PG_M_GET, "/dashboard/demo/data/", 404, "not found");
    answered(PG_M_GET, "/dashboardx", 404, "not found");
    routes_to(PG_M_POST, "/dashboard/room-1/publish", "rest.publish", "app=dashboard channel=room-1");
    routes_to(PG_M_POST, "/dashboard/data/publish", "rest.publish", "app=dashboard channel=data");
    CHECK(!pg_routes_reserved("dashboard"), "an app may be named dashboard");
    pg_routes_match(PG_M_POST, "/dashboard/room-1/publish", &m, &a);
    CHECK(m.auth_first == PG_AUTH_NONE, "dashboard's REST publish: no admin credentials asked");
    pg_routes_match(PG_M_POST, "/dashboard/demo", &m, &a);
    CHECK(m.auth_first == PG_AUTH_ADMIN, "dashboard: credentials first");
}

static void pusher_api(void)
{
    struct pg_route_match m;
    struct pg_http_args a;
    routes_to(PG_M_POST, "/apps/demo/events", "pusher.events", "app=demo");
    routes_to(PG_M_POST, "/apps/demo/batch_events", "pusher.batch_events", "app=demo");
    routes_to(PG_M_GET, "/apps/demo/channels", "pusher.channels", "app=demo");
    routes_to(PG_M_GET, "/apps/demo/channels/presence-room", "pusher.channel", "app=demo channel=presence-room");
    routes_to(PG_M_GET, "/apps/demo/channels/", "pusher.channel", "app=demo channel=");
    routes_to(PG_M_GET, "/apps/demo/channels/presence-room/users", "pusher.users", "app=demo channel=presence-room");
    routes_to(PG_M_GET, "/apps/demo/channels//users", "pusher.users", "app=demo channel=");
    routes_to(PG_M_POST, "/apps/demo/users/u1/terminate_connections", "pusher.terminate", "app=demo user=u1");
    routes_to(PG_M_GET, "/apps/demo/devices", "pusher.devices", "app=demo");
    routes_to(PG_M_POST, "/apps//events", "pusher.events", "app="); /* then 404 unknown app */
    answered(PG_M_GET, "/apps/demo", 404, "unknown Pusher API route");
    answered(PG_M_GET, "/apps/", 404, "unknown Pusher API route");
    answered(PG_M_GET, "/apps/demo/channels/a/b", 404, "unknown Pusher API route");
    answered(PG_M_POST, "/apps/demo/users//terminate_connections", 404, "unknown Pusher API route");
    answered(PG_M_POST, "/apps/demo/x/publish", 404, "unknown Pusher API route");
    answered(PG_M_GET, "/apps/demo/events", 405, "method not allowed");
    answered(PG_M_PUT, "/apps/nope/whatever", 405, "method not allowed");
    pg_routes_match(PG_M_GET, "/apps/demo/events", &m, &a);
    CHECK(m.row_405 && m.app_first, "Pusher API: the app's 404 before the 405");
    answered(PG_M_GET, "/apps", 404, "not found");
}

static void push_api_and_socketio(void)
{
    routes_to(PG_M_PUT, "/api/u1/register", "push.register", "user=u1");
    routes_to(PG_M_POST, "/api/u1/push", "push.push", "user=u1");
    routes_to(PG_M_POST, "/api//push", "push.push", "user="); /* then 401, or 400 invalid userId */
    routes_to(PG_M_PUT, "/api/status/register", "push.register", "user=status");
    routes_to(PG_M_GET, "/api/status/ping", "push.ping", "");
    routes_to(PG_M_GET, "/api/status/info", "push.info", "");
    answered(PG_M_POST, "/api/u1/register", 405, "use PUT to register");
    answered(PG_M_GET, "/api/u1/push", 405, "use POST to push");
    answered(PG_M_POST, "/api/status/ping", 405, "method not allowed");
    /* not the push API's: on to the REST publish or the plain 404 */
    routes_to(PG_M_POST, "/api/status/publish", "rest.publish", "app=api channel=status");
    answered(PG_M_GET, "/api/u1", 404, "not found");
    answered(PG_M_POST, "/api/u1/x/push", 404, "not found");
    answered(PG_M_PUT, "/api/u1", 405, "method not allowed");

    routes_to(PG_M_GET, "/socket.io/", "socketio.polling", "");
    routes_to(PG_M_POST, "/socket.io", "socketio.polling", "");
    routes_to(PG_M_OPTIONS, "/socket.io/", "socketio.polling", "");
    routes_to(PG_M_DELETE, "/socket.io/", "socketio.polling", "");
    answered(PG_M_GET, "/socket.io/x", 404, "not found");
    answered(PG_M_PUT, "/socket.iox", 405, "method not allowed");
}

/* path upgrades to the WebSocket row name with captures ("" none), or to none (name NULL). */
static void upgrades_to(const char *path, const char *name, const char *want_caps)
{
    struct pg_http_args a;
    char got[700];
    const struct pg_route *r = pg_routes_match_ws(path, &a);
    if (!name) {
        CHECK(r == NULL, "%s: no WebSocket route expected, got %s", path, r ? r->name : "");
        return;
    }
    CHECK(r && !strcmp(r->name, name), "%s: expected %s, got %s", path, name, r ? r->name : "none");
    CHECK(!strcmp(caps(&a, got, sizeof got), want_caps), "%s: captures \"%s\", expected \"%s\"", path, got,
          want_caps);
}

static void websocket(void)
{
    upgrades_to("/v1/demo", "ws.native", "app=demo");
    upgrades_to("/v1/demo/", "ws.native", "app=demo");
    upgrades_to("/app/key123", "ws.pusher", "key=key123");
    upgrades_to("/app/key123/", "ws.pusher", "key=key123");
    upgrades_to("/socket.io/", "ws.socketio", "");
    upgrades_to("/socket.io", "ws.socketio", "");
    /* lws decodes %3F into the path: a '?' right after the id ends it */
    upgrades_to("/v1/demo?x", "ws.native", "app=demo");
    upgrades_to("/v1/de?mo/x", "ws.native", "app=de");
    upgrades_to("/v1/demo/?x", NULL, "");
    upgrades_to("/v1/?x", NULL, "");
    upgrades_to("/app/?x", NULL, "");
    upgrades_to("/socket.io?x", NULL, "");
    upgrades_to("/socket.io/x", NULL, "");
    upgrades_to("/v1/", NULL, "");
    upgrades_to("/v1", NULL, "");
    upgrades_to("/v1/demo//", NULL, "");
    upgrades_to("/v1/demo/x", NULL, "");
    upgrades_to("/healthz", NULL, "");
    upgrades_to("/demo/room/publish", NULL, "");
}

static void patterns(void)
{
    struct pg_http_args a = {.n = 0};
    char got[700];
    CHECK(pg_route_pattern_match("/a/{x}/b", "/a/1/b", 0, &a) && !strcmp(caps(&a, got, sizeof got), "x=1"), "x");
    a.n = 0;
    CHECK(!pg_route_pattern_match("/a/{x}/b", "/a//b", 0, &a) && a.n == 0, "{x} is never empty");
    CHECK(pg_route_pattern_match("/a/{x?}/b", "/a//b", 0, &a) && !strcmp(caps(&a, got, sizeof got), "x="), "x?");
    a.n = 0;
    CHECK(pg_route_pattern_match("/a/{x:3}", "/a/123", 0, &a), "x:3 fits");
    a.n = 0;
    CHECK(!pg_route_pattern_match("/a/{x:3}", "/a/1234", 0, &a), "x:3 too long");
    CHECK(pg_route_pattern_match("/{x+}/end", "/a/b/end/end", 0, &a) && !strcmp(caps(&a, got, sizeof got), "x=a/b/end"),
          "x+ takes the longest span: %s", got);
    a.n = 0;
    CHECK(!pg_route_pattern_match("/{x+}/end", "/end", 0, &a), "x+ is never empty");
    CHECK(pg_route_pattern_match("/a[/]", "/a", 0, &a) && pg_route_pattern_match("/a[/]", "/a/", 0, &a), "[/]");
    CHECK(!pg_route_pattern_match("/a[/]", "/a//", 0, &a), "[/] is one slash");
    CHECK(!pg_route_pattern_match("/a", "/ab", 0, &a) && !pg_route_pattern_match("/ab", "/a", 0, &a), "literals");
    a.n = 0;
    CHECK(pg_route_pattern_match("/{x}", "/a?b", 0, &a) && !strcmp(caps(&a, got, sizeof got), "x=a?b"),
          "HTTP paths keep a '?'");
}

static void reserved(void)
{
    static const char *const yes[] = {"v1", "app", "apps", "api", "socket.io", "healthz", "readyz", "metrics",
                                      "pushgate.js"};
    static const char *const no[] = {"demo", "dashboard", "", "status", "publish", "admin", "V1", "api2", "ap"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        CHECK(pg_routes_reserved(yes[i]), "%s is a route name", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        CHECK(!pg_routes_reserved(no[i]), "%s is free", no[i]);
    /* the store's list (which the broker plugin applies too) is the route table's names and the control topics' */
    size_t n;
    const char *const *names = pg_app_id_reserved_names(&n);
    for (size_t i = 0; i < n; i++)
        CHECK(pg_routes_reserved(names[i]) || !strcmp(names[i], "_ctl") || !strcmp(names[i], "_node"),
              "the store reserves %s, which no route starts with", names[i]);
    const struct pg_route *rt = pg_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        char seg[64] = "";
        size_t sl = strcspn(rt[i].pattern + 1, "/[");
        if (sl < sizeof seg)
            memcpy(seg, rt[i].pattern + 1, sl);
        if (sl && !strchr(seg, '{') && !(rt[i].flags & PG_ROUTE_UNRESERVED))
            CHECK(pg_app_id_reserved(seg), "route %s starts with %s, which the store does not reserve", rt[i].name, seg);
    }
    CHECK(pg_app_id_reserved("_ctl") && pg_app_id_reserved("_node") && !pg_app_id_reserved("demo"), "topics, demo");
}

static void table_rules(void)
{
    size_t n;
    const struct pg_route *t = pg_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        const struct pg_route *r = &t[i];
        int ws = (r->methods & PG_M_WS) != 0;
        CHECK(ws == (r->methods == PG_M_WS), "%s: WebSocket rows are only that", r->name);
        CHECK(ws ? !r->handler && !r->scope : r->handler && r->scope, "%s: handler and scope", r->name);
        CHECK(r->body || !(r->methods & (PG_M_POST | PG_M_PUT | PG_M_PATCH)), "%s: a body may come, it waits for it",
              r->name);
        CHECK(r->pattern[0] == '/', "%s: pattern starts with /", r->name);
        if (!strncmp(r->name, "asset.", 6))
            CHECK(pg_asset_find(r->pattern) != NULL, "%s: %s is embedded", r->name, r->pattern);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(t[j].name, r->name) != 0, "%s: names are unique", r->name);
    }
}

int main(void)
{
    patterns();
    rest_and_ops();
    admin_api();
    dashboard();
    pusher_api();
    push_api_and_socketio();
    websocket();
    reserved();
    table_rules();
    return check_report("test_routes");
}
