/*
 * Per-app dashboard: sessions now and over the last hour.
 *
 *   GET /dashboard/{app}       the page (static/dashboard.html, embedded; it fetches the data below)
 *   GET /dashboard/{app}/data  {"app","node","interval_ms","window_ms","now":{...},"history":[{"t","sessions"}],
 *                               "stats":{...}}
 *
 * Both need the admin credentials (HTTP Basic, like the admin API): the
 * route table (http/routes.c) checks them and looks the app up.
 *
 * Each app keeps a fixed ring of this node's session counts (struct
 * pg_app_history, an hour at one sample every PG_HISTORY_INTERVAL_MS): the
 * first sample is taken at the first tick after the app appears, so a fresh
 * gateway has history at once. Sessions are counted by walking them once a
 * second, one walk for every app, so nothing is kept up to date on the session
 * hot path. When a count changed the cluster snapshot is republished: the
 * other nodes add this node's count to their "cluster_sessions". The history
 * is this node's own; peers publish their current count, not their past.
 */
#include <stdio.h>
#include <string.h>

#include "cluster/cluster.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/session.h"
#include "http/assets.h"
#include "http/dashboard.h"
#include "http/http.h"
#include "pg_common.h"

#define COUNT_INTERVAL_MS 1000
#define WINDOW_MS ((int64_t)PG_HISTORY_SAMPLES * PG_HISTORY_INTERVAL_MS)

/* Asset names without a leading slash are never served by path: this one only behind the admin check. */
#define PAGE_ASSET "dashboard.html"

static void history_add(struct pg_app_history *hist, int64_t t, uint32_t n)
{
    size_t i = (hist->head + hist->count) % PG_HISTORY_SAMPLES;
    if (hist->count == PG_HISTORY_SAMPLES)
        hist->head = (hist->head + 1) % PG_HISTORY_SAMPLES; /* i was the oldest sample */
    else
        hist->count++;
    hist->t[i] = t;
    hist->sessions[i] = n;
}

/* Refresh every app's history.now; 1 when some count changed. */
static int count_sessions(struct pg_gw *gw)
{
    struct pg_app *a, *atmp;
    struct pg_session *s, *stmp;
    int changed = 0;
    HASH_ITER(hh, gw->apps, a, atmp) {
        a->history.counting = 0;
    }
    HASH_ITER(hh, gw->sessions, s, stmp) {
        if (s->app)
            s->app->history.counting++;
    }
    HASH_ITER(hh, gw->apps, a, atmp) {
        uint32_t before = a->history.now;
        a->history.now = a->history.counting;
        changed |= before != a->history.now;
    }
    return changed;
}

void pg_dashboard_tick(struct pg_gw *gw)
{
    int64_t mono = pg_mono_ms();
    if (gw->dashboard_count_ms && mono - gw->dashboard_count_ms < COUNT_INTERVAL_MS)
        return;
    gw->dashboard_count_ms = mono;
    if (count_sessions(gw))
        pg_cluster_changed(gw);
    int64_t wall = pg_now_ms();
    struct pg_app *a, *atmp;
    HASH_ITER(hh, gw->apps, a, atmp) {
        struct pg_app_history *hist = &a->history;
        if (hist->due_ms && mono < hist->due_ms)
            continue;
        history_add(hist, wall, hist->now);
        /* keep the 10 s rhythm; after a stall (a suspended process) start it again from now */
        hist->due_ms = hist->due_ms ? hist->due_ms + PG_HISTORY_INTERVAL_MS : mono + PG_HISTORY_INTERVAL_MS;
        if (hist->due_ms <= mono)
            hist->due_ms = mono + PG_HISTORY_INTERVAL_MS;
    }
}

static json_t *stats_json(const struct pg_app_stats *st)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "frames_in", (json_int_t)st->frames_in, "bytes_in",
                     (json_int_t)st->bytes_in, "frames_out", (json_int_t)st->frames_out, "bytes_out",
                     (json_int_t)st->bytes_out, "published", (json_int_t)st->published, "publish_failed",
                     (json_int_t)st->publish_failed, "delivered", (json_int_t)st->delivered, "slow_closes",
                     (json_int_t)st->slow_closes);
}

/* The data document; NULL when out of memory. */
static json_t *data_json(struct pg_gw *gw, struct pg_app *app)
{
    json_t *o = NULL, *by = json_pack("{s:i, s:i, s:i}", "native", 0, "pusher", 0, "socketio", 0), *hist = json_array();
    json_t *stats = stats_json(&app->stats);
    const struct pg_app_history *h = &app->history;
    struct pg_session *s, *stmp;
    json_int_t local = 0;
    int64_t wall = pg_now_ms();
    if (!by || !hist || !stats)
        goto out;
    /* counted now, not at the last tick: the page shows what is open at this instant */
    HASH_ITER(hh, gw->sessions, s, stmp) {
        if (s->app != app)
            continue;
        const char *name = s->proto->name;
        json_object_set_new(by, name, json_integer(json_integer_value(json_object_get(by, name)) + 1));
        local++;
    }
    for (size_t k = 0; k < h->count; k++) {
        size_t i = (h->head + k) % PG_HISTORY_SAMPLES;
        if (wall - h->t[i] <= WINDOW_MS)
            json_array_append_new(hist, json_pack("{s:I, s:I}", "t", (json_int_t)h->t[i], "sessions",
                                                  (json_int_t)h->sessions[i]));
    }
    json_array_append_new(hist, json_pack("{s:I, s:I}", "t", (json_int_t)wall, "sessions", local));
    size_t reporting = 0;
    uint64_t peers = pg_cluster_peer_sessions(gw, app->creds->id, &reporting);
    o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:O, s:I, s:I, s:I}, s:O, s:O}", "app", app->creds->id,
                  "node", gw->node_id, "started_ms", (json_int_t)gw->started_ms, "interval_ms",
                  (json_int_t)PG_HISTORY_INTERVAL_MS, "window_ms", (json_int_t)WINDOW_MS, "now", "t",
                  (json_int_t)wall, "sessions", local, "by_protocol", by, "cluster_sessions",
                  local + (json_int_t)peers, "cluster_nodes", (json_int_t)pg_cluster_node_count(gw),
                  "cluster_nodes_reporting", (json_int_t)reporting + 1, "history", hist, "stats", stats);
out:
    json_decref(by);
    json_decref(hist);
    json_decref(stats);
    return o;
}

void pg_dashboard_data(struct pg_gw *gw, struct pg_http *h)
{
    pg_dashboard_tick(gw); /* a sample that is due (the first one, right after start) is in the answer */
    json_t *o = data_json(gw, h->app);
    if (o)
        pg_http_respond_json(h, 200, o);
    else
        pg_http_respond_error(h, 500, "out of memory");
}

void pg_dashboard_page(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    const struct pg_asset *a = pg_asset_find(PAGE_ASSET);
    if (a)
        pg_http_respond(h, 200, a->ctype, a->data, a->len);
    else
        pg_http_respond_error(h, 500, "dashboard page not built in");
}
