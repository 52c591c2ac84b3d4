/*
 * The event loop: one lws context serves HTTP, WebSocket and the broker
 * socket, on a libuv or libev loop of ours (loop.c; event_loop = uv or ev:
 * epoll) or lws's own poll() loop (event_loop = poll), on this one thread
 * whichever it is. The
 * bridge's socket is adopted into lws as a raw descriptor (a dup(), so lws
 * closing its copy never closes libmosquitto's), the frames queued for
 * WebSockets and the bridge's queued subscriptions are flushed after every
 * loop pass (core/ws.c, bridge), and a 100 ms timer drives
 * keepalive, reconnects, publish timeouts and every module's tick (the load
 * measurement first: core/publish.c).
 *
 * This file only routes: lws events of a WebSocket to its protocol's ops
 * (struct pg_proto, core/session.h), HTTP to http/http.c, broker messages to
 * the module that owns their topic, and it sets modules up and tears them
 * down in order. A signal starts the drain: every session is closed (1001)
 * and the process ends once they, pending requests, answers not yet written
 * and webhooks are gone, or after shutdown_grace_ms.
 *
 * In a worker (cfg->worker >= 0, gateway/workers.c) lws listens on nothing:
 * the worker's own SO_REUSEPORT socket (listen.h) is watched like the broker
 * socket and what it accepts is adopted as lws's own connections, or passed
 * to the sibling holding its Engine.IO session.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cluster/apps.h"
#include "cluster/cluster.h"
#include "cluster/load.h"
#include "cluster/devices.h"
#include "cluster/push_regs.h"
#include "cluster/webhooks.h"
#include "config.h"
#include "loop.h"
#include "core/admission.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/fanout.h"
#include "core/gw.h"
#include "core/liveness.h"
#include "core/msg.h"
#include "core/publish.h"
#include "core/registry.h"
#include "core/seq.h"
#include "core/session.h"
#include "core/ws.h"
#include "dispatch.h"
#include "http/dashboard.h"
#include "http/http.h"
#include "http/routes.h"
#include "http/upgrade.h"
#include "listen.h"
#include "log.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "proto/eio.h"
#include "proto/native.h"
#include "proto/presence.h"
#include "proto/pusher.h"
#include "proto/sio.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"
#include "server.h"

static volatile sig_atomic_t stop_requested;
static struct lws_context *signal_ctx;

/*
 * A WRITEABLE callback that returns -1 after lws_close_reason() asks lws for a clean close: lws answers by sending
 * the close frame at the next POLLOUT. On the libuv loop, lws 4.1 built with _DEBUG (Debian's is) then closes the
 * connection a second time at once, to test that a repeated close is harmless ("uv repeat test" in its
 * lws_service_fd_tsi(), after a handler asked to be closed); that second close finds the frame unsent and drops
 * the socket, and the client sees 1006 instead of the code (4401, 1013, the drain's 1001). So on that loop the
 * close is started here, once, and lws hears that the callback went well: a clean close only changes the wsi's
 * state (nothing is freed), and lws sends the frame at the next POLLOUT as after a -1. (A -1 from RECEIVE takes
 * another way out of lws, without the repeat.)
 */
static const char ws_closing; /* a wsi's opaque user data once its clean close has been started here */

static int ws_closed_cleanly(struct pg_gw *gw, struct lws *wsi, int rc)
{
    if (rc >= 0 || !strcmp(gw->cfg->event_loop, "poll") || !lws_get_close_length(wsi))
        return rc;
    /*
     * lws sends the frame without calling back; the next WRITEABLE comes after it left, and its -1 ends the
     * connection then, as on the poll loop (where that second -1 is what closes it, not the peer's answer)
     */
    if (lws_get_opaque_user_data(wsi) == &ws_closing)
        return rc;
    lws_set_opaque_user_data(wsi, (void *)&ws_closing);
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
    return 0;
}

static int main_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct pg_gw *gw = lws_context_user(lws_get_context(wsi));
    struct pg_conn *c = user;
    char path[512];

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* only WebSocket upgrades are ours to judge; an h2c offer (curl --http2) is left to lws, which then
           answers the request over HTTP/2 */
        if (!in || strcmp((const char *)in, "websocket") != 0)
            return 0;
        return pg_http_confirm_upgrade(gw, wsi);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        pg_ws_cork(wsi, 1); /* the handshake's answer, written next, waits for the greeting (core/ws.h) */
        return 0;
    case LWS_CALLBACK_ESTABLISHED: {
        struct pg_ws *w = &c->u.ws;
        struct pg_app *app = NULL;
        memset(c, 0, sizeof *c);
        c->is_ws = 1;
        int rc = lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0 ||
                 pg_ws_path(gw, path, &w->proto, &app) != 0 || w->proto->ws_open(gw, w, wsi, app) != 0;
        pg_ws_cork(wsi, 0);
        if (rc)
            return -1;
        pg_live_open(gw, &w->live, wsi); /* every protocol's WebSocket: core/liveness.h */
        return 0;
    }
    case LWS_CALLBACK_ADD_HEADERS: { /* the WebSocket handshake's answer names the worker, as HTTP answers do */
        struct lws_process_html_args *a = in;
        unsigned char *p = (unsigned char *)a->p;
        if (pg_http_add_worker_header(gw, wsi, &p, p + a->max_len))
            return -1;
        a->max_len -= (int)(p - (unsigned char *)a->p);
        a->p = (char *)p;
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        return c->u.ws.proto->ws_receive(&c->u.ws, wsi, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        pg_live_pong(gw, &c->u.ws.live);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        int ping = pg_live_writeable(&c->u.ws.live);
        if (ping)
            return ping < 0 ? -1 : 0;
        return ws_closed_cleanly(gw, wsi, c->u.ws.proto->ws_writeable(&c->u.ws, wsi));
    }
    case LWS_CALLBACK_CLOSED:
        if (c->is_ws) /* the clock of a WebSocket ESTABLISHED opened (detached if it refused it) */
            pg_live_closed(&c->u.ws.live);
        if (c->u.ws.proto) /* NULL: refused at ESTABLISHED */
            c->u.ws.proto->ws_closed(&c->u.ws, wsi);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* fires on every lws_cancel_service(): keep it cheap */
        if (stop_requested && !gw->draining) {
            gw->draining = 1;
            gw->drain_deadline = pg_mono_ms() + gw->cfg->shutdown_grace_ms;
            pg_log(PG_LOG_INFO, "server", "shutting down: closing %zu sessions", gw->nsessions);
            struct pg_session *s, *tmp;
            HASH_ITER(hh, gw->sessions, s, tmp) {
                pg_session_close(s, 1001, "server shutting down, reconnect");
            }
        }
        return 0;
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c && c->is_ws)
            return 0;
        return pg_http_callback(gw, pg_routes_route, wsi, reason, c ? &c->u.http : NULL, in, len);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- the broker socket ----------------------------------------------------------- */

struct mqtt_pss {
    int detached; /* the bridge moved on to another socket; this wsi only waits to close */
};

/* bridge_on_socket() calls so far: a change means the bridge gave up (or replaced) the socket it had */
static unsigned bridge_sockets;
/* open files besides the sessions: HTTP clients, the broker link, listening and hand-off sockets, webhooks, store */
#define PG_OPEN_FILES_RESERVE 4096
/* of the open-files limit, kept out of lws's table for the descriptors lws does not count (open_files_fit) */
#define PG_OPEN_FILES_HEADROOM 64
#define PG_BRIDGE_DRAIN_READS 1024 /* packets read from a broker socket lws has closed, at most */

static int mqtt_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct pg_gw *gw = lws_context_user(lws_get_context(wsi));
    struct mqtt_pss *p = user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (p->detached || wsi != gw->mqtt_wsi)
            return -1;
        pg_bridge_io(gw->bridge, 1, 0);
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (p->detached || wsi != gw->mqtt_wsi)
            return -1;
        pg_bridge_io(gw->bridge, 0, 1);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (gw->mqtt_wsi == wsi) {
            gw->mqtt_wsi = NULL;
            /*
             * lws closes its copy on POLLHUP/POLLERR (a reset broker connection), with or without a RAW_RX
             * first: let libmosquitto read its own descriptor, find the error and report the loss now, not at
             * the next keepalive. One mosquitto_loop_read() may read as little as one packet, and what the broker
             * sent before it went away (a retained-clear, a PUBLISH) stands before the error: read until the
             * bridge lets go of the socket, since nothing watches it after this. The bound only guards a socket
             * that is, after all, alive.
             */
            unsigned mine = bridge_sockets;
            for (int i = 0; i < PG_BRIDGE_DRAIN_READS && !p->detached && !gw->done && bridge_sockets == mine; i++)
                pg_bridge_io(gw->bridge, 1, 0);
        }
        return 0;
    default:
        return 0;
    }
}

static void bridge_on_socket(void *ud, int fd)
{
    struct pg_gw *gw = ud;
    bridge_sockets++;
    gw->rx_paused_ms = 0; /* a new socket is read from the start */
    if (gw->mqtt_wsi) {
        struct mqtt_pss *p = lws_wsi_user(gw->mqtt_wsi);
        if (p)
            p->detached = 1;
        lws_set_timeout(gw->mqtt_wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
        gw->mqtt_wsi = NULL;
    }
    if (fd < 0)
        return;
    lws_sock_file_fd_type u;
    u.filefd = dup(fd);
    if (u.filefd < 0) {
        pg_log(PG_LOG_ERROR, "bridge", "dup of broker socket failed: %s", strerror(errno));
        return;
    }
    gw->mqtt_wsi = lws_adopt_descriptor_vhost(gw->vhost, LWS_ADOPT_RAW_FILE_DESC, u, "pushgate-mqtt", NULL);
    if (!gw->mqtt_wsi) {
        pg_log(PG_LOG_ERROR, "bridge", "cannot watch the broker socket");
        close(u.filefd);
        return;
    }
    lws_callback_on_writable(gw->mqtt_wsi);
}

static void bridge_want_write(void *ud)
{
    struct pg_gw *gw = ud;
    if (gw->mqtt_wsi)
        lws_callback_on_writable(gw->mqtt_wsi);
}

/* broker input paused (core/session.c: out-queues too full) stops a batch of broker reads between two packets */
static int bridge_read_more(void *ud)
{
    const struct pg_gw *gw = ud;
    return !gw->rx_paused_ms && !gw->done;
}

static void bridge_on_state(void *ud, int connected)
{
    struct pg_gw *gw = ud;
    pg_log(connected ? PG_LOG_INFO : PG_LOG_WARN, "bridge", "broker %s", connected ? "connected" : "disconnected");
    if (connected) {
        pg_cluster_connected(gw);
        pg_devices_connected(gw); /* {root}/+/d/+, MQTT device presence */
        pg_apps_connected(gw);
    }
}

static void bridge_on_message(void *ud, const char *topic, const void *payload, size_t len,
                              const struct pg_bridge_prop *props, size_t nprops)
{
    struct pg_gw *gw = ud;
    const char *ts = pg_prop_get(props, nprops, "ts", NULL);
    if (ts) { /* gateways stamp their publishes: how late this one reached us is how far behind we are */
        gw->inbound_lag_ms = pg_now_ms() - strtoll(ts, NULL, 10);
        if (gw->cfg->max_inbound_lag_ms && gw->inbound_lag_ms > gw->cfg->max_inbound_lag_ms)
            gw->late_until_ms = pg_mono_ms() + gw->cfg->max_inbound_lag_ms;
    }
    pg_dispatch_message(gw, topic, payload, len, props, nprops);
}

static void bridge_on_log(void *ud, int level, const char *msg)
{
    (void)ud;
    pg_log(level == 0 ? PG_LOG_DEBUG : level == 1 ? PG_LOG_INFO : level == 2 ? PG_LOG_WARN : PG_LOG_ERROR, "bridge",
           "%s", msg);
}

static void tick(lws_sorted_usec_list_t *sul)
{
    struct pg_gw *gw = lws_container_of(sul, struct pg_gw, sul_tick);
    gw->loop_busy = pg_loop_busy(gw->loop);
    pg_ws_tick(gw);
    pg_publish_load_tick(gw);
    pg_live_tick(gw);
    pg_pusher_tick(gw);
    pg_eio_tick(gw);
    pg_sio_tick(gw);
    pg_native_tick(gw);
    pg_http_tick(gw);
    pg_bridge_tick(gw->bridge);
    pg_cluster_tick(gw);
    pg_webhooks_tick(gw->webhooks);
    pg_dashboard_tick(gw);
    pg_apps_tick(gw);
    pg_addr_tick(gw);
    pg_sessions_tick(gw);
    /* pg_cluster_tick ran first: occupancy webhooks of the last closed sessions are already queued */
    if (gw->draining && ((gw->nsessions == 0 && HASH_COUNT(gw->requests) == 0 && gw->answers_unwritten == 0 &&
                          pg_cluster_settled(gw) &&
                          pg_webhooks_pending(gw->webhooks) == 0) ||
                         pg_mono_ms() >= gw->drain_deadline))
        gw->done = 1;
    lws_sul_schedule(gw->ctx, 0, &gw->sul_tick, tick, PG_BRIDGE_TICK_MS * LWS_US_PER_MS);
}

/* The channel index's broker (core/channels.h): the bridge, as it is. */
static int broker_connected(struct pg_gw *gw)
{
    return pg_bridge_connected(gw->bridge);
}

/* With local_first a channel's publishes made here reached its subscribers here when they were made
   (core/publish.c): the broker keeps its copy (No Local) instead of sending it back to be dropped. */
static int broker_subscribe(struct pg_gw *gw, const char *topic)
{
    return pg_bridge_subscribe_opts(gw->bridge, topic, gw->cfg->local_first ? PG_BRIDGE_SUB_NO_LOCAL : 0);
}

static int broker_subscribe_wait(struct pg_gw *gw, const char *topic, pg_bridge_ack_cb cb, void *ud)
{
    return pg_bridge_subscribe_wait(gw->bridge, topic, cb, ud);
}

static int broker_unsubscribe(struct pg_gw *gw, const char *topic)
{
    return pg_bridge_unsubscribe(gw->bridge, topic);
}

const struct pg_channel_broker pg_server_channel_broker = {
    .connected = broker_connected,
    .subscribe = broker_subscribe,
    .subscribe_wait = broker_subscribe_wait,
    .unsubscribe = broker_unsubscribe,
};

/* ---- setup and run ---------------------------------------------------------------- */

/*
 * The soft open-files limit is set to what this process needs (max_sessions + PG_OPEN_FILES_RESERVE, or
 * max_open_files), raised or lowered, never above the hard limit. lws 4.1 sizes its descriptor table by the limit
 * and, in Debian's build, walks the whole table on every connection's open and close (a sanity check that each fd
 * is unused): at a soft limit of 1,048,576 that is 8 MB read per connection, whatever the process holds.
 *
 * lws makes its context under a limit PG_OPEN_FILES_HEADROOM lower than that (raised after it is made): it
 * stops accepting on its own listener once its sockets fill its table, so the descriptors it does not count (the
 * loop's, the store's, webhooks') never meet EMFILE there. Its accept loop would spin on EMFILE, as would a
 * worker's own listener without its pause (listen.c). Returns the limit to raise to, 0 if none.
 */
/* The soft open-files limit becomes n (under the hard one); -1, with a warning, when it cannot. */
static int open_files_set(rlim_t n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = n;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return 0;
    }
    pg_log(PG_LOG_WARN, "server", "cannot set the open files limit to %llu: %s", (unsigned long long)n, strerror(errno));
    return -1;
}

static rlim_t open_files_fit(const struct pg_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    rlim_t want = cfg->max_open_files ? (rlim_t)cfg->max_open_files : (rlim_t)cfg->max_sessions + PG_OPEN_FILES_RESERVE;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    rlim_t for_lws = want > 2 * PG_OPEN_FILES_HEADROOM ? want - PG_OPEN_FILES_HEADROOM : want;
    if (open_files_set(for_lws) != 0)
        return 0;
    pg_log(PG_LOG_INFO, "server", "open files limit %llu (was %llu), libwebsockets' share %llu",
           (unsigned long long)want, (unsigned long long)rl.rlim_cur, (unsigned long long)for_lws);
    /* past lws' share a connection is closed at once ("fd too high"), before max_sessions could answer 503 */
    if (for_lws < (rlim_t)cfg->max_sessions + PG_OPEN_FILES_HEADROOM)
        pg_log(PG_LOG_WARN, "server",
               "open files limit %llu cannot hold max_sessions = %lld WebSockets in this process: raise %s, or "
               "lower max_sessions (or run more workers)",
               (unsigned long long)want, cfg->max_sessions,
               cfg->max_open_files ? "max_open_files" : "the hard limit (LimitNOFILE, ulimit -Hn)");
    return want;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    if (signal_ctx)
        lws_cancel_service(signal_ctx);
}

/*
 * lws 4.1 allocates rx_buffer_size (+ LWS_PRE) per WebSocket for as long as it is open, and reads at most that much
 * from its socket per wakeup: the largest per-connection allocation of an idle subscriber, and the pace at which a
 * client's pipelined requests are read. Set from ws_rx_buffer_bytes in pg_server_run(); a longer message reaches
 * the callback in pieces, which pg_ws_collect() reassembles within max_frame_bytes. tx_packet_size keeps a single
 * send() at the 4096 bytes it was when rx_buffer_size also set it. Not const for that one field.
 */
static struct lws_protocols protocols[] = {
    {"pushgate", main_callback, sizeof(struct pg_conn), 4096, 0, NULL, 4096},
    {"pushgate-mqtt", mqtt_callback, sizeof(struct mqtt_pss), 0, 0, NULL, 0},
    {PG_LISTEN_PROTOCOL, pg_listen_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void apps_free(struct pg_gw *gw)
{
    pg_load_free(gw);
    pg_cluster_free(gw);
    pg_devices_free(gw);
    pg_dashboard_free(gw);
    pg_apps_free(gw);
}

int pg_server_run(struct pg_config *cfg)
{
    struct pg_gw gw;
    struct lws_context_creation_info info;
    struct pg_loop loop = {0};
    char client_id[64], *will = NULL;
    int rc = 1;

    memset(&gw, 0, sizeof gw);
    gw.cfg = cfg;
    gw.loop = &loop;
    gw.loop_busy = -1;
    gw.ws_nagle = cfg->ws_nagle_mode == PG_WS_NAGLE_ON;
    gw.channel_broker = &pg_server_channel_broker;
    gw.started_ms = pg_now_ms();
    pg_config_auth_limits(cfg, &gw.limits);
    if (*cfg->node_id)
        snprintf(gw.node_id, sizeof gw.node_id, "%s", cfg->node_id);
    else if (pg_random_token(gw.node_id, 12) != 0)
        return 1;
    if (pg_apps_init(&gw) != 0)
        goto out;

    snprintf(client_id, sizeof client_id, PG_GATEWAY_CLIENT_ID_PREFIX "%s", gw.node_id);
    /* the node's retained {root}/_node/{id}, emptied by the broker when this process dies */
    if (!(will = pg_topic_new(cfg->topic_root, PG_TOPIC_NODE, NULL, gw.node_id, NULL))) {
        pg_log(PG_LOG_ERROR, "server", "node_id \"%s\" is not one MQTT topic level (no / + #), or out of memory",
               gw.node_id);
        goto out;
    }
    struct pg_bridge_config bc = {
        .host = cfg->broker_host,
        .port = (int)cfg->broker_port,
        .username = cfg->broker_username,
        .password = cfg->broker_password,
        .client_id = client_id,
        .keepalive_s = (int)cfg->broker_keepalive_s,
        .reconnect_min_ms = (int)cfg->broker_reconnect_min_ms,
        .reconnect_max_ms = (int)cfg->broker_reconnect_max_ms,
        .connect_timeout_ms = (int)cfg->broker_connect_timeout_ms,
        .publish_timeout_ms = (int)cfg->publish_timeout_ms,
        .will_topic = will,
    };
    struct pg_bridge_ops ops = {
        .on_socket = bridge_on_socket,
        .want_write = bridge_want_write,
        .read_more = bridge_read_more,
        .on_state = bridge_on_state,
        .on_message = bridge_on_message,
        .on_log = bridge_on_log,
    };
    if (pg_bridge_new(&bc, &ops, &gw, &gw.bridge) != 0) {
        pg_log(PG_LOG_ERROR, "server", "cannot create the MQTT client");
        goto out;
    }
    if (pg_webhooks_new(&gw, &gw.webhooks) != 0) {
        pg_log(PG_LOG_ERROR, "server", "cannot create the webhook client");
        goto out;
    }

    rlim_t open_files = open_files_fit(cfg);
    memset(&info, 0, sizeof info);
    /* a worker shares listen_port with its siblings through its own SO_REUSEPORT socket (listen.h), adopted below */
    info.port = cfg->worker >= 0 ? CONTEXT_PORT_NO_LISTEN_SERVER : (int)cfg->listen_port;
    info.iface = cfg->listen_host;
    protocols[0].rx_buffer_size = (size_t)cfg->ws_rx_buffer_bytes;
    info.protocols = protocols;
    info.user = &gw;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    /* lws 4.1 with IPv6 support binds every address when iface is an IPv4 literal: keep loopback loopback */
    if (!strchr(cfg->listen_host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.pt_serv_buf_size = 16384;
    /*
     * WebSocket liveness is the gateway's (core/liveness.h, from tick()):
     * lws's validity timers, one per WebSocket in its sorted timer list,
     * made every timer insert walk all of them. A policy without a hangup
     * time keeps lws from arming any (its default policy would).
     */
    static const lws_retry_bo_t no_validity_timers = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_validity_timers;
    /* lws drops a request whose headers overflow its store without an answer: the store is larger than
       max_header_bytes, so that the gateway answers 431 itself up to 4 x max_header_bytes */
    info.max_http_header_data2 = (unsigned int)(cfg->max_header_bytes * 4);
    /*
     * lws gives every connection that store (64 KB by default) until its handshake is done. Carved from the heap,
     * a burst of handshakes left those pages resident between the long-lived allocations of the sockets that
     * stayed (about 0.2 KB per idle WebSocket, bench/README.md "W3 memory"); as mmap()s they go back when freed.
     */
    mallopt(M_MMAP_THRESHOLD, (int)info.max_http_header_data2);
    /* lws's own waits (a stalled body among them) end silently: they must outlast http_body_timeout_ms (408) */
    long long wait_s = cfg->http_body_timeout_ms / 1000 + 5;
    info.timeout_secs = (unsigned int)(wait_s > 30 ? wait_s : 30);
    info.keepalive_timeout = (int)cfg->http_keepalive_s; /* announced in every kept answer (http.c) */
    if (pg_loop_init(&loop, cfg->event_loop, &info) != 0)
        goto out;
    info.pcontext = &gw.ctx; /* NULL once the context is freed (pg_loop_free) */
    gw.ctx = lws_create_context(&info);
    if (open_files)
        open_files_set(open_files);
    if (!gw.ctx) {
        pg_log(PG_LOG_ERROR, "server", "cannot listen on %s:%lld%s", cfg->listen_host, cfg->listen_port,
               loop.uv   ? ", or lws cannot load its libuv plugin (libwebsockets-evlib-uv; event_loop = poll needs none)"
               : loop.ev ? ", or lws cannot load its libev plugin (libwebsockets-evlib-ev; event_loop = poll needs none)"
                         : "");
        goto out;
    }
    /*
     * On a libuv loop lws 4.1 returns a context even when its listening vhost failed (the port was taken after
     * workers.c probed it), and tearing that context down calls into its unloaded libuv plugin: the context is
     * left to the exit (loop.broken), a leak on a failed start only. On libev likewise, to be safe.
     */
    if (!(gw.vhost = lws_get_vhost_by_name(gw.ctx, "default"))) {
        pg_log(PG_LOG_ERROR, "server", "cannot listen on %s:%lld", cfg->listen_host, cfg->listen_port);
        loop.broken = loop.uv || loop.ev;
        goto out;
    }
    if (cfg->worker >= 0 && pg_listen_start(&gw) != 0)
        goto out;
    if (cfg->worker < 0)
        pg_listen_tune_lws(cfg);
    signal_ctx = gw.ctx;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    pg_log(PG_LOG_INFO, "server", "listening on http://%s:%lld node=%s worker=%d apps=%zu broker=%s:%lld loop=%s",
           cfg->listen_host, cfg->listen_port, gw.node_id, cfg->worker, cfg->napps, cfg->broker_host,
           cfg->broker_port, pg_loop_name(&loop));
    if (pg_cluster_init(&gw) != 0 || pg_dispatch_init(&gw) != 0 || pg_push_regs_init(&gw) != 0 || pg_seq_init(&gw) != 0)
        goto out;
    pg_bridge_start(gw.bridge);
    lws_sul_schedule(gw.ctx, 0, &gw.sul_tick, tick, PG_BRIDGE_TICK_MS * LWS_US_PER_MS);
    pg_loop_run(&loop, &gw);
    pg_cluster_stopping(&gw);
    pg_log(PG_LOG_INFO, "server", "stopped");
    rc = 0;
out:
    if (gw.ctx && !loop.broken) {
        lws_sul_cancel(&gw.sul_tick);
        signal_ctx = NULL;
        pg_sio_shutdown(&gw); /* socket.io sessions are not lws's: free them while the context still runs */
        pg_push_regs_free(&gw); /* its sweep timer lives in the context */
        pg_listen_free(&gw);    /* its timer too; the connections still waiting for their request line */
        lws_context_destroy(gw.ctx); /* closes sessions and HTTP requests first: they reference apps */
    }
    pg_loop_free(&loop, &gw.ctx);
    pg_addr_free(&gw);             /* after the sessions: releasing them detaches their addresses */
    pg_webhooks_free(gw.webhooks); /* after the sessions: closing them may still emit events */
    pg_bridge_free(gw.bridge);
    pg_seq_free(&gw);
    pg_presence_free(&gw); /* after the sessions (they leave their presence channels), before the apps */
    apps_free(&gw);
    free(will);
    return rc;
}
