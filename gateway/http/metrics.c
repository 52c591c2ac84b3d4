/*
 * GET /metrics: this process's counters and gauges in the Prometheus text
 * exposition format. Counters are per app and only ever grow; gauges are read
 * at scrape time (sessions are counted by walking them: scrapes are rare,
 * messages are not, so nothing is kept up to date on the hot path for them).
 * With workers (gateway/workers.c) the figures are the answering worker's
 * alone; pushgate_worker_info names it, as X-Pushgate-Worker does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/webhooks.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/publish.h"
#include "core/session.h"
#include "http/http.h"
#include "http/metrics.h"
#include "proto/protocols.h"
#include "pushgate_bridge.h"

struct counter {
    const char *name, *help;
    size_t off; /* in struct pg_app_stats */
};

#define C(f) offsetof(struct pg_app_stats, f)
static const struct counter counters[] = {
    {"pushgate_frames_in_total", "WebSocket frames received from clients.", C(frames_in)},
    {"pushgate_bytes_in_total", "WebSocket payload bytes received from clients.", C(bytes_in)},
    {"pushgate_frames_out_total", "WebSocket frames written to clients.", C(frames_out)},
    {"pushgate_bytes_out_total", "WebSocket payload bytes written to clients.", C(bytes_out)},
    {"pushgate_published_total", "Messages handed to the broker for clients (WebSocket and HTTP).", C(published)},
    {"pushgate_publish_failed_total", "Publishes refused because the broker was unavailable.", C(publish_failed)},
    {"pushgate_delivered_total", "Broker messages fanned out to this process's sessions.", C(delivered)},
    {"pushgate_slow_consumer_closes_total", "Sessions closed as slow consumers (1013): socket not drained.",
     C(slow_closes)},
    {"pushgate_gaps_total", "Broker messages that showed earlier ones never reached this process.", C(gaps)},
    {"pushgate_gap_signals_total", "Sessions told that they missed messages.", C(gap_signals)},
    {"pushgate_publish_shed_total", "Publishes refused (503) because this gateway was behind.", C(shed)},
};

char *pg_metrics_render(struct pg_gw *gw, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    struct pg_app *a, *atmp;
    fprintf(f, "# HELP pushgate_sessions Open WebSocket sessions.\n# TYPE pushgate_sessions gauge\n");
    HASH_ITER(hh, gw->apps, a, atmp) {
        size_t count[PG_NPROTOCOLS + 1] = {0}; /* the last: a protocol not listed (none) */
        if (pg_app_deleted(a))
            continue;
        struct pg_session *s, *stmp;
        HASH_ITER(hh, gw->sessions, s, stmp) {
            if (s->app == a)
                count[pg_protocol_index(s->proto)]++;
        }
        /* every protocol, zeros too, by its name */
        for (size_t i = 0; i < PG_NPROTOCOLS; i++)
            fprintf(f, "pushgate_sessions{app=\"%s\",protocol=\"%s\"} %zu\n", a->creds->id, pg_protocols[i]->name,
                    count[i]);
    }
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", counters[i].name, counters[i].help, counters[i].name);
        HASH_ITER(hh, gw->apps, a, atmp) {
            if (pg_app_deleted(a))
                continue;
            uint64_t v = *(const uint64_t *)((const char *)&a->stats + counters[i].off);
            fprintf(f, "%s{app=\"%s\"} %llu\n", counters[i].name, a->creds->id, (unsigned long long)v);
        }
    }
    fprintf(f, "# HELP pushgate_broker_connected 1 while the gateway's MQTT session is up.\n"
               "# TYPE pushgate_broker_connected gauge\npushgate_broker_connected %d\n",
            pg_bridge_connected(gw->bridge));
    if (gw->broker_dropped >= 0)
        fprintf(f, "# HELP pushgate_broker_dropped_messages Messages the broker dropped (all clients; $SYS).\n"
                   "# TYPE pushgate_broker_dropped_messages gauge\npushgate_broker_dropped_messages %lld\n",
                gw->broker_dropped);
    fprintf(f,
            "# HELP pushgate_own_copies_dropped_total Own publishes the broker sent back (local_first).\n"
            "# TYPE pushgate_own_copies_dropped_total counter\npushgate_own_copies_dropped_total %llu\n",
            (unsigned long long)gw->own_copies);
    fprintf(f,
            "# HELP pushgate_ws_writes_total send() calls that carried frames to WebSocket clients (frames gathered).\n"
            "# TYPE pushgate_ws_writes_total counter\npushgate_ws_writes_total %llu\n",
            (unsigned long long)gw->ws_writes);
    fprintf(f, "# HELP pushgate_pending_bytes Bytes queued for all sessions (at the last tick).\n"
               "# TYPE pushgate_pending_bytes gauge\npushgate_pending_bytes %llu\n",
            (unsigned long long)gw->pending_bytes);
    fprintf(f, "# HELP pushgate_inbound_lag_ms Age of the last broker message stamped by a gateway.\n"
               "# TYPE pushgate_inbound_lag_ms gauge\npushgate_inbound_lag_ms %lld\n",
            (long long)gw->inbound_lag_ms);
    fprintf(f, "# HELP pushgate_overloaded 1 while publishes are refused because the gateway is behind.\n"
               "# TYPE pushgate_overloaded gauge\npushgate_overloaded %d\n",
            pg_publish_refusal(gw, NULL) != NULL);
    if (gw->loop_busy >= 0)
        fprintf(f, "# HELP pushgate_loop_busy_ratio Share of the last tick (100 ms) the event loop spent working.\n"
                   "# TYPE pushgate_loop_busy_ratio gauge\npushgate_loop_busy_ratio %d.%03d\n",
                gw->loop_busy / 1000, gw->loop_busy % 1000);
    fprintf(f, "# HELP pushgate_ws_nagle 1 while WebSocket frames are gathered by the kernel (ws_nagle).\n"
               "# TYPE pushgate_ws_nagle gauge\npushgate_ws_nagle %d\n",
            gw->ws_nagle);
    fprintf(f, "# HELP pushgate_webhook_queue Webhook events queued or in flight.\n"
               "# TYPE pushgate_webhook_queue gauge\npushgate_webhook_queue %zu\n",
            gw->webhooks ? pg_webhooks_pending(gw->webhooks) : (size_t)0);
    fprintf(f, "# HELP pushgate_cluster_nodes Live gateway nodes this process sees, itself included.\n"
               "# TYPE pushgate_cluster_nodes gauge\npushgate_cluster_nodes %zu\n",
            pg_cluster_node_count(gw));
    /* which process answered: with workers each has its own figures (gateway/workers.c) */
    fprintf(f, "# HELP pushgate_worker_info The node and worker that answered this scrape (worker -1: one process).\n"
               "# TYPE pushgate_worker_info gauge\npushgate_worker_info{node=\"%s\",worker=\"%d\"} 1\n",
            gw->node_id, gw->cfg->worker);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

void pg_metrics_get(struct pg_gw *gw, struct pg_http *h)
{
    size_t n = 0;
    char *text = pg_metrics_render(gw, &n);
    if (text)
        pg_http_respond(h, 200, "text/plain; version=0.0.4; charset=utf-8", text, n);
    else
        pg_http_respond_error(h, 500, "out of memory");
    free(text);
}
