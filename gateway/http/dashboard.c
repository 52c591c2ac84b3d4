/*
 * Per-app dashboard: sessions now and over the last hour.
 *
 *   GET /dashboard/{app}       the page (static/dashboard.html, embedded; it fetches the data below)
 *   GET /dashboard/{app}/data  {"app","node","worker","interval_ms","window_ms","now":{...},
 *                               "history":[{"t","sessions"}],"stats":{...}}
 *
 * "worker" is this process's worker number, null when the gateway is one
 * process (gateway/workers.c): with workers the page shows the worker (one
 * node) that answered it, and the cluster figures count every worker.
 *
 * Both need the admin credentials (HTTP Basic, like the admin API): the
 * route table (http/routes.c) checks them and looks the app up.
 *
 * State: struct pg_dashboard (gw->dashboard, this module's alone): per app
 * id, a fixed ring of this node's session counts (an hour at one sample
 * every HISTORY_INTERVAL_MS), created at the first tick and freed at exit
 * (pg_dashboard_free). Apps are never forgotten while the process runs (a
 * deleted app's struct stays too), so neither is their history. The
 * first sample is taken at the first tick after the app appears, so a fresh
 * gateway has history at once. Sessions are counted by walking them once a
 * second, one walk for every app, so nothing is kept up to date on the session
 * hot path. When a count changed the cluster snapshot is republished: the
 * other nodes add this node's count to their "cluster_sessions". The history
 * is this node's own; peers publish their current count, not their past.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "cluster/cluster.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/session.h"
#include "http/assets.h"
#include "http/dashboard.h"
#include "http/http.h"
#include "proto/protocols.h"
#include "pg_common.h"

#define COUNT_INTERVAL_MS 1000
#define HISTORY_SAMPLES 360 /* one hour of samples every HISTORY_INTERVAL_MS */
#define HISTORY_INTERVAL_MS 10000
#define WINDOW_MS ((int64_t)HISTORY_SAMPLES * HISTORY_INTERVAL_MS)

/* This node's sessions of one app over the last hour. */
struct history {
    const struct pg_app *app; /* the key: apps live as long as the process */
    int64_t t[HISTORY_SAMPLES];        /* wall-clock ms */
    uint32_t sessions[HISTORY_SAMPLES];
    size_t head, count;                /* ring, oldest first from head */
    int64_t due_ms;                    /* monotonic time of the next sample; 0: at the next tick */
    uint32_t now, counting;            /* sessions at the last count; the count in progress */
    UT_hash_handle hh;
};

struct pg_dashboard {
    struct history *apps; /* by app pointer */
    int64_t count_ms;     /* monotonic time of the last session count */
};

/* app's history, created on first use; NULL when out of memory. */
static struct history *history_of(struct pg_dashboard *d, const struct pg_app *app)
{
    struct history *h;
    HASH_FIND_PTR(d->apps, &app, h);
    if (!h && (h = calloc(1, sizeof *h))) {
        h->app = app;
        HASH_ADD_PTR(d->apps, app, h);
    }
    return h;
}

/* Asset names without a leading slash are never served by path: this one only behind the admin check. */
#define PAGE_ASSET "dashboard.html"

static void history_add(struct history *hist, int64_t t, uint32_t n)
{
    size_t i = (hist->head + hist->count) % HISTORY_SAMPLES;
    if (hist->count == HISTORY_SAMPLES)
        hist->head = (hist->head + 1) % HISTORY_SAMPLES; /* i was the oldest sample */
    else
        hist->count++;
    hist->t[i] = t;
    hist->sessions[i] = n;
}

/* Refresh every app's count now; 1 when some count changed. */
static int count_sessions(struct pg_gw *gw, struct pg_dashboard *d)
{
    struct pg_app *a, *atmp;
    struct pg_session *s, *stmp;
    struct history *h, *htmp;
    int changed = 0;
    HASH_ITER(hh, gw->apps, a, atmp) {
        if ((h = history_of(d, a)))
            h->counting = 0;
    }
    HASH_ITER(hh, gw->sessions, s, stmp) {
        if (s->app && (h = history_of(d, s->app)))
            h->counting++;
    }
    HASH_ITER(hh, d->apps, h, htmp) {
        uint32_t before = h->now;
        h->now = h->counting;
        changed |= before != h->now;
    }
    return changed;
}

void pg_dashboard_tick(struct pg_gw *gw)
{
    int64_t mono = pg_mono_ms();
    if (!gw->dashboard && !(gw->dashboard = calloc(1, sizeof *gw->dashboard)))
        return;
    struct pg_dashboard *d = gw->dashboard;
    if (d->count_ms && mono - d->count_ms < COUNT_INTERVAL_MS)
        return;
    d->count_ms = mono;
    if (count_sessions(gw, d))
        pg_gw_local_changed(gw);
    int64_t wall = pg_now_ms();
    struct history *hist, *htmp;
    HASH_ITER(hh, d->apps, hist, htmp) {
        if (hist->due_ms && mono < hist->due_ms)
            continue;
        history_add(hist, wall, hist->now);
        /* keep the 10 s rhythm; after a stall (a suspended process) start it again from now */
        hist->due_ms = hist->due_ms ? hist->due_ms + HISTORY_INTERVAL_MS : mono + HISTORY_INTERVAL_MS;
        if (hist->due_ms <= mono)
            hist->due_ms = mono + HISTORY_INTERVAL_MS;
    }
}

void pg_dashboard_free(struct pg_gw *gw)
{
    struct history *h, *tmp;
    if (!gw->dashboard)
        return;
    HASH_ITER(hh, gw->dashboard->apps, h, tmp) {
        HASH_DEL(gw->dashboard->apps, h);
        free(h);
    }
    free(gw->dashboard);
    gw->dashboard = NULL;
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
    json_t *o = NULL, *by = json_object(), *hist = json_array();
    json_t *stats = stats_json(&app->stats);
    const struct history *h = gw->dashboard ? history_of(gw->dashboard, app) : NULL;
    struct pg_session *s, *stmp;
    json_int_t local = 0;
    int64_t wall = pg_now_ms();
    if (!by || !hist || !stats)
        goto out;
    for (size_t i = 0; i < PG_NPROTOCOLS; i++) /* every protocol, zeros too */
        json_object_set_new(by, pg_protocols[i]->name, json_integer(0));
    /* counted now, not at the last tick: the page shows what is open at this instant */
    HASH_ITER(hh, gw->sessions, s, stmp) {
        if (s->app != app)
            continue;
        const char *name = s->proto->name;
        json_object_set_new(by, name, json_integer(json_integer_value(json_object_get(by, name)) + 1));
        local++;
    }
    for (size_t k = 0; h && k < h->count; k++) {
        size_t i = (h->head + k) % HISTORY_SAMPLES;
        if (wall - h->t[i] <= WINDOW_MS)
            json_array_append_new(hist, json_pack("{s:I, s:I}", "t", (json_int_t)h->t[i], "sessions",
                                                  (json_int_t)h->sessions[i]));
    }
    json_array_append_new(hist, json_pack("{s:I, s:I}", "t", (json_int_t)wall, "sessions", local));
    size_t reporting = 0;
    uint64_t peers = pg_cluster_peer_sessions(gw, app->creds->id, &reporting);
    json_t *worker = gw->cfg->worker >= 0 ? json_integer(gw->cfg->worker) : json_null();
    o = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:{s:I, s:I, s:O, s:I, s:I, s:I}, s:O, s:O}", "app",
                  app->creds->id, "node", gw->node_id, "worker", worker, "started_ms", (json_int_t)gw->started_ms,
                  "interval_ms", (json_int_t)HISTORY_INTERVAL_MS, "window_ms", (json_int_t)WINDOW_MS, "now", "t",
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
