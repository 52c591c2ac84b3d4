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
#include "core/dheap.h"
#include "core/dueq.h"
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
struct pg_load;
struct pg_devices;
struct pg_apps;
struct pg_loop;
struct pg_seq;
struct pg_webhooks;
struct pg_channel_broker;

/*
 * Every field says who writes it. Anyone may read a field; the state of a
 * module that others must not touch sits behind an opaque handle, reached
 * only through that module's header.
 */
struct pg_gw {
    /* ---- set up by server.c before the loop runs, then read-only ---- */
    struct pg_config *cfg;
    struct pg_auth_limits limits; /* for the auth library, from cfg */
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct pg_loop *loop; /* server.c's event loop (its busy share: gw->loop_busy) */
    pg_bridge *bridge;            /* the broker session (bridge/); modules call it, server.c drives it */
    const struct pg_channel_broker *channel_broker; /* the channel index's broker (core/channels.h): the bridge's */
    char node_id[40];
    int64_t started_ms;

    /* ---- the loop (server.c) ---- */
    struct lws *mqtt_wsi;           /* the broker socket as lws sees it */
    lws_sorted_usec_list_t sul_tick;
    int draining;                   /* SIGTERM: no new sessions, close the open ones, then exit */
    int64_t drain_deadline;
    int done;

    /* ---- shared indexes: one writer each ---- */
    struct pg_app *apps;          /* by id: cluster/apps.c adds (apps are never freed before exit) */
    struct pg_session *sessions;  /* by serial: core/registry.c */
    size_t nsessions;             /* core/registry.c */
    uint64_t sessions_opened;     /* core/registry.c: registrations so far; pg_sessions_tick() trims after a burst */
    uint64_t sessions_trimmed;    /* core/registry.c: sessions_opened at the last heap trim */
    int64_t session_opened_ms;    /* core/registry.c: monotonic time of the last registration */
    uint64_t next_serial;         /* sessions (core/registry.c) and HTTP requests (http/http.c) draw from it */
    uint64_t fanout_seq;          /* core/fanout.c: one number per fanned-out message (once-per-session dedup) */
    struct pg_http *requests;     /* HTTP requests waiting for the broker, by serial: http/http.c */
    unsigned answers_unwritten;   /* HTTP answers decided and not yet written or dropped: http/http.c; a drain waits */
    int local_dirty;              /* the node snapshot is stale: pg_gw_local_changed() sets it, cluster/cluster.c clears it */

    /* ---- module state: each pointer is its module's, the struct behind it private to that module ---- */
    struct pg_cluster *cluster;       /* cluster/cluster.c: peers, snapshots, occupancy, listeners */
    struct pg_load *load;             /* cluster/load.c: nodes behind, marks, unconfirmed publishes */
    struct pg_apps *apps_state;       /* cluster/apps.c: the store, revocations, replication */
    struct pg_devices *devices;       /* cluster/devices.c: MQTT devices online per app */
    struct pg_push_regs *push_regs;   /* cluster/push_regs.c: the cluster's push registrations */
    struct pg_webhooks *webhooks;     /* cluster/webhooks.c: queued and in-flight webhook batches */
    struct pg_dashboard *dashboard;   /* http/dashboard.c: per-app session history; NULL until its first tick */
    struct pg_eio *eio_sessions;      /* proto/eio.c: Engine.IO (socket.io) sessions by sid */
    struct pg_pchan *pchans;          /* proto/presence.c: Pusher presence channels by app and name */
    struct pg_addr *addrs;            /* core/admission.c: per-address entries by IP */
    struct pg_listen *listen;         /* listen.c, in a worker: connections waiting for their request line */
    int64_t addrs_swept_ms;           /* core/admission.c */
    /* FIFO lists walked from their heads by the tick, instead of a timer per connection in lws' sorted list */
    struct pg_dueq live_idle, live_wait;     /* core/liveness.c: WebSockets by last PONG, by PING asked */
    struct pg_dueq pusher_idle, pusher_wait; /* proto/pusher.c: sessions by last frame, by pusher:ping sent */
    struct pg_dueq eio_ping, eio_pong;       /* proto/eio.c: sessions by last pong (or opening), by ping sent */
    struct pg_dueq eio_handshake, eio_poll;  /* proto/eio.c: by last transport before CONNECT; by parked GET */
    struct pg_dueq eio_close, eio_upgrade;   /* proto/eio.c: closed polling sessions by close; by upgrade probe */
    struct pg_dueq eio_dead;                 /* proto/eio.c: killed sessions, destroyed by eio_reap */
    lws_sorted_usec_list_t eio_reap;         /* proto/eio.c: one timer per gateway, armed while eio_dead fills */
    struct pg_dueq sio_connect, sio_register; /* proto/sio.c: by opening until CONNECT; by a register to retry */
    struct pg_dheap token_expiry;            /* proto/native.c: authenticated sessions by token expiry */
    struct pg_dueq body_waits;               /* http/http.c: requests waiting for their body, oldest first */
    lws_dll2_owner_t loaded;               /* core/session.c joins, core/publish.c leaves: sessions with output */
    lws_dll2_owner_t to_write;             /* core/ws.c: WebSocket sessions to write at the end of this loop pass */
    int loop_busy;  /* server.c's tick: permille of the last tick the loop spent working; -1 unknown */
    int loop_busy_avg; /* core/ws.c: its moving average, permille */
    int ws_nagle;   /* core/ws.c (pg_ws_tick): 1 while WebSocket writes leave TCP_NODELAY (ws_nagle) */
    uint64_t ws_writes; /* core/ws.c: send() calls that carried frames to WebSocket clients (core/gather.h) */

    /* ---- sequence numbers (core/seq.c, through core/publish.c) ---- */
    char origin[64];          /* this process's publishes: node id + incarnation */
    uint64_t seq_next;        /* the last seq given out */
    struct pg_seq *seq_out;   /* last acknowledged seq per topic */
    long long broker_dropped; /* the broker's $SYS dropped counter; -1 unknown */
    uint64_t own_copies;      /* dispatch.c: broker copies of this process's local_first publishes, dropped */

    /* ---- load: core/publish.c measures it at each tick; server.c and core/session.c as said ---- */
    uint64_t pending_bytes;   /* all out-queues together, at the last tick */
    size_t pending_msgs;
    const char *behind;       /* why publishes are refused now (static string), or NULL */
    int64_t late_until_ms;    /* server.c: broker messages arrived later than max_inbound_lag_ms until then */
    int64_t inbound_lag_ms;   /* server.c: the age of the last broker message that carried a `ts` */
    int64_t rx_paused_ms;     /* paused broker input (core/session.c), resumed at publish.c's tick; 0: reading */
    size_t fan_filling;       /* core/session.c: this fan-out's recipients that read, queues over 3/4 (core/fanout.c) */
};

/*
 * What this node's snapshot reports changed (its channels, what counts as
 * their live members, its session counts): the cluster publishes a new node
 * snapshot at its next tick (cluster/cluster.c reads and clears the flag).
 */
static inline void pg_gw_local_changed(struct pg_gw *gw)
{
    gw->local_dirty = 1;
}

#endif
