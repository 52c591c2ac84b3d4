/*
 * The gateway: the state of one gateway process.
 *
 * Threading: one thread runs the lws loop and owns everything below: the
 * struct pg_gw, every app, channel, session, queued message and the bridge.
 * Nothing here is locked; nothing may be touched from another thread. The
 * only cross-thread entry is the signal handler, which sets a flag and calls
 * lws_cancel_service().
 */
#ifndef PG_CORE_GW_H
#define PG_CORE_GW_H

#include <stdint.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "config.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

struct pg_app;
struct pg_dashboard;
struct pg_session;
struct pg_eio;
struct pg_pchan;
struct pg_push_regs;
struct pg_http;
struct pg_addr;
struct pg_cluster;
struct pg_devices;
struct pg_apps;
struct pg_seq;
struct pg_webhooks;

struct pg_gw {
    struct pg_config *cfg;
    struct pg_auth_limits limits;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    pg_bridge *bridge;
    struct pg_webhooks *webhooks;
    struct lws *mqtt_wsi;
    lws_sorted_usec_list_t sul_tick;
    struct pg_app *apps;
    struct pg_session *sessions; /* by serial */
    struct pg_eio *eio_sessions; /* Engine.IO (socket.io) sessions by sid (proto/eio.c) */
    struct pg_pchan *pchans;     /* Pusher presence channels by app and name (proto/presence.c) */
    struct pg_push_regs *push_regs; /* the cluster's push registrations (push_regs.c; opaque: push_regs.h) */
    struct pg_http *requests;    /* pending HTTP requests by serial */
    struct pg_addr *addrs;       /* per-address admission entries by IP (admission.c) */
    int64_t addrs_swept_ms;
    size_t nsessions;
    uint64_t next_serial;
    uint64_t fanout_seq;
    char node_id[40];
    int64_t started_ms;
    struct pg_cluster *cluster; /* peers, snapshots, occupancy (cluster.c; opaque: cluster.h) */
    struct pg_dashboard *dashboard; /* per-app session history (http/dashboard.c); NULL until its first tick */
    int channels_dirty; /* local channels changed since the cluster last looked (pg_gw_channels_changed) */
    struct pg_devices *devices; /* MQTT devices online per app, as the broker plugin reports them (devices.c) */
    struct pg_apps *apps_state;  /* apps store, revocations, replication (apps.c; opaque: apps.h) */
    char origin[64];             /* this process's publishes: node id + incarnation (seq.c) */
    uint64_t seq_next;           /* the last seq given out */
    struct pg_seq *seq_out;      /* last seq published per topic */
    long long broker_dropped;    /* the broker's $SYS dropped counter; -1 unknown */
    /* load (server.c): measured by the loop's tick and by arriving broker messages */
    uint64_t pending_bytes;      /* all out-queues together, at the last tick */
    size_t pending_msgs;
    const char *behind;          /* why publishes are refused now (static string), or NULL */
    int64_t late_until_ms;       /* monotonic: broker messages arrived later than max_inbound_lag_ms until then */
    int64_t inbound_lag_ms;      /* the age of the last broker message that carried a `ts` */
    int64_t rx_paused_ms;        /* monotonic: since when broker input is paused (out-queues too full); 0: reading */
    int draining;
    int64_t drain_deadline;
    int done;
};

/*
 * The local channels (or what counts as their live members) changed: the
 * cluster publishes a new node snapshot at its next tick (cluster/cluster.c
 * reads and clears the flag).
 */
static inline void pg_gw_channels_changed(struct pg_gw *gw)
{
    gw->channels_dirty = 1;
}

#endif
