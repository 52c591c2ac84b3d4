/*
 * The event loop: one lws context serves HTTP, WebSocket and the broker
 * socket. The bridge's socket is adopted into lws as a raw descriptor (a
 * dup(), so lws closing its copy never closes libmosquitto's), and a 100 ms
 * timer drives keepalive, reconnects and publish timeouts.
 *
 * Load: a session is a slow consumer when its own socket does not drain (it
 * takes no bytes for slow_consumer_ms while output waits), or when its
 * out-queue fills while the gateway keeps up with the others; it is closed
 * with 1013. When the gateway itself is behind (see pg_publish_refusal), it
 * refuses new publishes at the door (503, Retry-After) instead, and stops
 * reading from the broker while a draining session's out-queue is over 3/4
 * of its limit (the broker holds the messages, bounded by max_queued_bytes)
 * until the queues are under 1/4 again. A session whose queue still fills
 * while its socket takes bytes loses the message and is told (a gap signal)
 * rather than being closed along with everyone else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"

static volatile sig_atomic_t stop_requested;
static struct lws_context *signal_ctx;

/* ---- sessions ------------------------------------------------------------------- */

struct pg_session *pg_session_find(struct pg_gw *gw, uint64_t serial)
{
    struct pg_session *s;
    HASH_FIND(hh, gw->sessions, &serial, sizeof serial, s);
    return s;
}

/* A socket.io session may have no WebSocket (long-polling): sio.c answers its parked request instead. */
static void session_wake(struct pg_session *s)
{
    if (s->proto == PG_PROTO_SIO)
        pg_sio_wake(s);
    else
        lws_callback_on_writable(s->wsi);
}

void pg_session_close(struct pg_session *s, uint16_t code, const char *reason)
{
    if (s->close_code)
        return;
    s->close_code = code;
    snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
    session_wake(s);
}

void pg_session_send(struct pg_session *s, struct pg_msg *m)
{
    if (s->close_code)
        return; /* nothing new after a close was decided */
    struct pg_gw *gw = s->gw;
    size_t max_bytes = (size_t)gw->cfg->max_queue_bytes, max_msgs = (size_t)gw->cfg->max_queue_messages;
    int rc = pg_outq_push(&s->q, m, max_bytes, max_msgs);
    int filling = pg_outq_fanout_count(&s->q) > max_msgs / 4 * 3 || pg_outq_fanout_bytes(&s->q) > max_bytes / 4 * 3;
    if (rc == 0 && filling && !gw->rx_paused_ms && gw->mqtt_wsi && s->wsi && !lws_send_pipe_choked(s->wsi)) {
        /* a socket that takes bytes and still has this much waiting: the loop is behind, not the reader */
        gw->rx_paused_ms = pg_mono_ms();
        lws_rx_flow_control(gw->mqtt_wsi, 0);
        pg_log(PG_LOG_INFO, "server", "out-queues 3/4 full: broker input paused until they drain");
    }
    if (rc == PG_ELIMIT && s->wsi && !s->choked_since_ms && !lws_send_pipe_choked(s->wsi)) {
        /* every session is behind because the gateway is: this one is told it missed messages, not closed */
        if (!s->lost++)
            pg_log(PG_LOG_WARN, "session", "out-queue full while the gateway is behind app=%s client=%s queued=%zu",
                   s->app ? s->app->creds->id : "-", s->client_id, s->q.count);
        return;
    }
    if (rc == PG_ELIMIT) {
        pg_log(PG_LOG_WARN, "session", "slow consumer closed app=%s client=%s queued=%zu bytes=%zu",
               s->app ? s->app->creds->id : "-", s->client_id, s->q.count, s->q.bytes);
        pg_outq_clear(&s->q); /* nothing more will be written to it */
        if (s->app)
            s->app->stats.slow_closes++;
        pg_session_close(s, 1013, "slow consumer: out-queue limit reached, reconnect later");
        return;
    }
    if (rc != 0) {
        pg_session_close(s, 1011, "out of memory");
        return;
    }
    session_wake(s);
}

void pg_session_send_json(struct pg_session *s, json_t *obj)
{
    struct pg_msg *m = obj ? pg_msg_from_json(obj) : NULL;
    json_decref(obj);
    if (!m) {
        pg_session_close(s, 1011, "cannot encode frame");
        return;
    }
    pg_session_send(s, m);
    pg_msg_unref(m);
}

int pg_session_may(struct pg_session *s, pg_action action, const char *channel)
{
    if (action == PG_ACT_PUBLISH && pg_devices_channel_reserved(s->gw, channel))
        return 403; /* only the broker plugin reports device presence */
    if (s->token)
        return pg_token_allows(s->token, action, channel, strlen(channel)) == PG_ALLOW ? 0 : 403;
    /* without a token: public channels of an open app only (private-/presence- need a credential everywhere) */
    return s->app->creds->require_auth || pg_channel_protected(channel, strlen(channel)) ? 401 : 0;
}

/* One publish waiting for the broker: its seq becomes the topic's prev only once acknowledged (seq.c). */
struct seq_ack {
    struct pg_gw *gw;
    char *topic; /* owned */
    struct pg_seq_stamp st;
    pg_bridge_ack_cb cb; /* the publisher's, may be NULL */
    void *cb_ud;
};

/* The bridge calls every publish's callback exactly once (acknowledged, refused, timed out, lost, or at shutdown). */
static void seq_acked(void *ud, int result)
{
    struct seq_ack *a = ud;
    if (result == 0)
        pg_seq_published(a->gw, a->topic, &a->st);
    if (a->cb)
        a->cb(a->cb_ud, result);
    free(a->topic);
    free(a);
}

int pg_publish_topic(struct pg_gw *gw, const char *app, const char *topic, const void *payload, size_t len,
                     const char *const *props, pg_bridge_ack_cb cb, void *cb_ud)
{
    const char *all[24];
    char ts[24];
    struct pg_seq_stamp st;
    size_t n = 0;
    for (; props && props[n] && n < 12; n++)
        all[n] = props[n];
    snprintf(ts, sizeof ts, "%lld", (long long)pg_now_ms());
    all[n++] = "ts";
    all[n++] = ts;
    /* receivers find out from these what they missed (seq.c) */
    pg_seq_stamp(gw, topic, &st);
    all[n++] = "origin";
    all[n++] = gw->origin;
    all[n++] = "seq";
    all[n++] = st.seq;
    all[n++] = "prev";
    all[n++] = st.prev;
    all[n] = NULL;
    struct seq_ack *sa = calloc(1, sizeof *sa);
    int rc = PG_ENOMEM;
    if (sa && (sa->topic = strdup(topic))) {
        sa->gw = gw;
        sa->st = st;
        sa->cb = cb;
        sa->cb_ud = cb_ud;
        rc = pg_bridge_publish(gw->bridge, topic, payload, len, all, 0, seq_acked, sa);
    }
    if (rc != 0 && sa) {
        free(sa->topic);
        free(sa);
    }
    struct pg_app *a = pg_app_find(gw, app, strlen(app));
    if (a && rc == 0)
        a->stats.published++;
    else if (a)
        a->stats.publish_failed++;
    return rc;
}

int pg_publish(struct pg_gw *gw, const char *app, const char *channel, const void *payload, size_t len,
               const char *const *props, pg_bridge_ack_cb cb, void *cb_ud)
{
    char *topic = pg_channel_topic(gw, app, channel);
    if (!topic)
        return PG_ENOMEM;
    int rc = pg_publish_topic(gw, app, topic, payload, len, props, cb, cb_ud);
    free(topic);
    return rc;
}

void pg_session_release(struct pg_gw *gw, struct pg_session *s)
{
    if (!s->serial)
        return; /* never opened */
    pg_log(PG_LOG_DEBUG, "session", "closed app=%s client=%s", s->app ? s->app->creds->id : "-", s->client_id);
    lws_sul_cancel(&s->sul_expiry);
    lws_sul_cancel(&s->sul_activity);
    lws_sul_cancel(&s->sul_rx);
    pg_addr_detach(gw, s);
    pg_channel_leave_all(s);
    pg_outq_clear(&s->q);
    pg_token_free(s->token);
    pg_rules_free(s->user_perms);
    free(s->user_id);
    free(s->rx);
    HASH_DEL(gw->sessions, s);
    gw->nsessions--;
    memset(s, 0, sizeof *s);
}

static int ws_receive(struct pg_gw *gw, struct pg_session *s, struct lws *wsi, const void *in, size_t len)
{
    if (s->close_code)
        return 0;
    if (s->app) {
        s->app->stats.bytes_in += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
            s->app->stats.frames_in++;
    }
    const char *msg;
    size_t n;
    int rc = pg_ws_collect(s, wsi, in, len, gw->cfg->max_frame_bytes, &msg, &n);
    if (rc == 1) {
        (s->proto == PG_PROTO_PUSHER ? pg_pusher_receive : pg_native_receive)(s, msg, n);
        pg_ws_collected(s);
        if (s->proto == PG_PROTO_NATIVE)
            pg_native_flow(s);
    }
    return rc < 0 ? -1 : 0;
}

/*
 * lws hands a message's payload over as it arrives, in as many RECEIVEs as the
 * peer takes writes: a client that starts a message and then trickles it (or
 * never finishes it) would hold its buffer and session forever. The clock
 * starts at the first partial chunk and stops when the message is whole; a
 * peer that stops before the first payload byte is WebSocket liveness's
 * (ws_ping_interval_s, pg_server_run).
 */
static void rx_due(lws_sorted_usec_list_t *sul)
{
    struct pg_session *s = lws_container_of(sul, struct pg_session, sul_rx);
    pg_log(PG_LOG_INFO, "session", "message not completed within ws_partial_frame_timeout_ms app=%s client=%s",
           s->app ? s->app->creds->id : "-", s->client_id);
    pg_session_close(s, 1008, "incomplete message timed out");
}

int pg_ws_collect(struct pg_session *s, struct lws *wsi, const void *in, size_t len, uint64_t max_bytes,
                  const char **msg, size_t *msg_len)
{
    if (lws_frame_is_binary(wsi)) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)"text frames only", 16);
        return -1;
    }
    if (s->rx_len + len > max_bytes) {
        pg_log(PG_LOG_INFO, "session", "message over its size limit app=%s client=%s",
               s->app ? s->app->creds->id : "-", s->client_id);
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)"message too large", 17);
        return -1;
    }
    int last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (last && !s->rx_len) { /* the common case: one whole frame, used in place */
        *msg = in;
        *msg_len = len;
        return 1;
    }
    unsigned char *b = realloc(s->rx, s->rx_len + len);
    if (!b)
        return -1;
    if (!s->rx_len && !last)
        lws_sul_schedule(s->gw->ctx, 0, &s->sul_rx, rx_due,
                         (lws_usec_t)s->gw->cfg->ws_partial_frame_timeout_ms * LWS_US_PER_MS);
    s->rx = b;
    memcpy(s->rx + s->rx_len, in, len);
    s->rx_len += len;
    if (!last)
        return 0;
    *msg = (const char *)s->rx;
    *msg_len = s->rx_len;
    return 1;
}

void pg_ws_collected(struct pg_session *s)
{
    lws_sul_cancel(&s->sul_rx);
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
}

static int ws_writeable(struct pg_session *s, struct lws *wsi)
{
    /* a closing session first flushes what was queued before the close (e.g. the error that explains it) */
    if (s->close_code && !s->q.count) {
        lws_close_reason(wsi, (enum lws_close_status)s->close_code, (unsigned char *)s->close_reason,
                         strlen(s->close_reason));
        return -1;
    }
    struct pg_msg *m = pg_outq_peek(&s->q);
    if (!m)
        return 0;
    if (lws_write(wsi, pg_msg_data(m), m->len, LWS_WRITE_TEXT) < (int)m->len)
        return -1;
    s->choked_since_ms = 0;
    if (s->app) {
        s->app->stats.frames_out++;
        s->app->stats.bytes_out += m->len;
    }
    pg_outq_pop(&s->q);
    if (s->proto == PG_PROTO_NATIVE)
        pg_native_flow(s);
    if (s->q.count || s->close_code)
        lws_callback_on_writable(wsi);
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
    case LWS_CALLBACK_ESTABLISHED: {
        struct pg_session *s = &c->u.ws;
        memset(c, 0, sizeof *c);
        c->is_ws = 1;
        enum pg_proto proto;
        if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0 || pg_ws_path(gw, path, &proto, &s->app) != 0)
            return -1;
        if (proto == PG_PROTO_SIO)
            return pg_sio_ws_open(gw, wsi, c);
        s->gw = gw;
        s->wsi = wsi;
        s->serial = ++gw->next_serial;
        HASH_ADD(hh, gw->sessions, serial, sizeof s->serial, s);
        gw->nsessions++;
        pg_addr_attach(gw, s, wsi);
        if ((proto == PG_PROTO_PUSHER ? pg_pusher_open(s, wsi) : pg_native_open(s, wsi)) != 0)
            return -1;
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        if (c->is_sio)
            return pg_sio_ws_receive(c, wsi, in, len);
        return ws_receive(gw, &c->u.ws, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (c->is_sio)
            return pg_sio_ws_writeable(c, wsi);
        return ws_writeable(&c->u.ws, wsi);
    case LWS_CALLBACK_CLOSED:
        if (c->is_sio)
            pg_sio_ws_closed(c, wsi);
        else
            pg_session_release(gw, &c->u.ws);
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
             * lws closes its copy on POLLHUP/POLLERR (a reset broker connection)
             * without a RAW_RX first: let libmosquitto read its own descriptor,
             * find the error and report the loss now, not at the next keepalive.
             */
            if (!p->detached && !gw->done)
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

static void bridge_on_state(void *ud, int connected)
{
    struct pg_gw *gw = ud;
    pg_log(connected ? PG_LOG_INFO : PG_LOG_WARN, "bridge", "broker %s", connected ? "connected" : "disconnected");
    if (connected) {
        pg_cluster_connected(gw);
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
    if (!pg_seq_on_message(ud, topic, payload, len) && /* the broker's dropped counter */
        !pg_push_on_message(ud, topic, payload, len) && /* {root}/_ctl/{app}/reg/{connectionId} */
        !pg_cluster_on_message(ud, topic, payload, len) && !pg_apps_on_message(ud, topic, payload, len, props, nprops))
        pg_channels_deliver(ud, topic, payload, len, props, nprops);
}

static void bridge_on_log(void *ud, int level, const char *msg)
{
    (void)ud;
    pg_log(level == 0 ? PG_LOG_DEBUG : level == 1 ? PG_LOG_INFO : level == 2 ? PG_LOG_WARN : PG_LOG_ERROR, "bridge",
           "%s", msg);
}

const char *pg_publish_refusal(struct pg_gw *gw, struct pg_app *app)
{
    const char *why = gw->behind;
    if (!why && gw->rx_paused_ms)
        why = "gateway overloaded: catching up with broker messages, retry later";
    if (!why && gw->late_until_ms && pg_mono_ms() < gw->late_until_ms)
        why = "gateway overloaded: broker messages arrive late (max_inbound_lag_ms), retry later";
    if (why && app)
        app->stats.shed++;
    return why;
}

/*
 * Every tick: what all out-queues hold, which sessions' sockets do not drain
 * (closed after slow_consumer_ms), and whether the gateway itself is behind.
 */
static void load_tick(struct pg_gw *gw)
{
    const struct pg_config *cfg = gw->cfg;
    int64_t now = pg_mono_ms();
    uint64_t bytes = 0, free_bytes = 0, max_free_bytes = 0;
    size_t msgs = 0, free_msgs = 0, draining = 0, max_free_msgs = 0;
    struct pg_session *s, *tmp;
    HASH_ITER(hh, gw->sessions, s, tmp) {
        if (!s->q.count || s->close_code) {
            s->choked_since_ms = 0;
            continue;
        }
        if (s->wsi && lws_send_pipe_choked(s->wsi)) {
            if (!s->choked_since_ms) {
                s->choked_since_ms = now;
            } else if (now - s->choked_since_ms >= cfg->slow_consumer_ms) {
                pg_log(PG_LOG_WARN, "session", "slow consumer closed app=%s client=%s queued=%zu bytes=%zu: socket "
                       "not drained for %lld ms", s->app ? s->app->creds->id : "-", s->client_id, s->q.count,
                       s->q.bytes, (long long)(now - s->choked_since_ms));
                pg_outq_clear(&s->q);
                if (s->app)
                    s->app->stats.slow_closes++;
                pg_session_close(s, 1013, "slow consumer: socket not drained, reconnect later");
                continue;
            }
        } else {
            /*
             * Its socket takes bytes, and the loop writes a frame to it every round: output piles up here only
             * when the loop itself is too slow. Choked sockets say nothing about the gateway and are left out.
             */
            s->choked_since_ms = 0;
            size_t fan_msgs = pg_outq_fanout_count(&s->q), fan_bytes = pg_outq_fanout_bytes(&s->q);
            free_bytes += fan_bytes;
            free_msgs += fan_msgs;
            draining++;
            if (fan_msgs > max_free_msgs)
                max_free_msgs = fan_msgs;
            if (fan_bytes > max_free_bytes)
                max_free_bytes = fan_bytes;
        }
        bytes += s->q.bytes;
        msgs += s->q.count;
    }
    gw->pending_bytes = bytes;
    gw->pending_msgs = msgs;
    const char *behind = NULL;
    /* our own publishes' PUBACKs and the keepalive's PINGRESP wait behind a pause: keep it well under both */
    int64_t pause_max_ms = cfg->publish_timeout_ms / 2;
    if (pause_max_ms > cfg->broker_keepalive_s * 500)
        pause_max_ms = cfg->broker_keepalive_s * 500;
    if (gw->rx_paused_ms && (!gw->mqtt_wsi || (max_free_msgs < (size_t)cfg->max_queue_messages / 4 &&
                                               max_free_bytes < cfg->max_queue_bytes / 4) ||
                             now - gw->rx_paused_ms > pause_max_ms)) {
        if (now - gw->rx_paused_ms > pause_max_ms)
            pg_log(PG_LOG_WARN, "server", "broker input paused for %lld ms: reading again", (long long)pause_max_ms);
        if (gw->mqtt_wsi)
            lws_rx_flow_control(gw->mqtt_wsi, 1);
        gw->rx_paused_ms = 0;
    }
    if (gw->rx_paused_ms)
        behind = "gateway overloaded: catching up with broker messages, retry later";
    else if (bytes > cfg->max_pending_bytes)
        behind = "gateway overloaded: too much output pending (max_pending_bytes), retry later";
    else if (draining && (free_msgs / draining > (size_t)cfg->max_queue_messages / 2 ||
                          free_bytes / draining > cfg->max_queue_bytes / 2))
        behind = "gateway overloaded: its sessions' out-queues are half full, retry later";
    if (behind != gw->behind)
        pg_log(behind ? PG_LOG_WARN : PG_LOG_INFO, "server", "%s (pending %llu bytes in %zu messages)",
               behind ? behind : "caught up: publishes accepted again", (unsigned long long)bytes, msgs);
    gw->behind = behind;
    /* sessions that lost messages while the gateway was behind hear of it once their queue has room again */
    if (!behind) {
        HASH_ITER(hh, gw->sessions, s, tmp) {
            if (s->lost && !s->close_code && s->q.count < (size_t)cfg->max_queue_messages / 2) {
                s->lost = 0;
                pg_session_gap(s, NULL, NULL);
            }
        }
    }
}

static void tick(lws_sorted_usec_list_t *sul)
{
    struct pg_gw *gw = lws_container_of(sul, struct pg_gw, sul_tick);
    load_tick(gw);
    pg_bridge_tick(gw->bridge);
    pg_cluster_tick(gw);
    pg_webhooks_tick(gw->webhooks);
    pg_dashboard_tick(gw);
    pg_apps_tick(gw);
    pg_addr_tick(gw);
    /* pg_cluster_tick ran first: occupancy webhooks of the last closed sessions are already queued */
    if (gw->draining && ((gw->nsessions == 0 && HASH_COUNT(gw->requests) == 0 && !gw->cluster_dirty &&
                          !gw->occupancy_dirty &&
                          pg_webhooks_pending(gw->webhooks) == 0) ||
                         pg_mono_ms() >= gw->drain_deadline))
        gw->done = 1;
    lws_sul_schedule(gw->ctx, 0, &gw->sul_tick, tick, PG_BRIDGE_TICK_MS * LWS_US_PER_MS);
}

/* ---- setup and run ---------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    if (signal_ctx)
        lws_cancel_service(signal_ctx);
}

static const struct lws_protocols protocols[] = {
    {"pushgate", main_callback, sizeof(struct pg_conn), 4096, 0, NULL, 0},
    {"pushgate-mqtt", mqtt_callback, sizeof(struct mqtt_pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void apps_free(struct pg_gw *gw)
{
    pg_cluster_free(gw);
    pg_apps_free(gw);
}

int pg_server_run(struct pg_config *cfg);
int pg_server_run(struct pg_config *cfg)
{
    struct pg_gw gw;
    struct lws_context_creation_info info;
    char client_id[64], will[128];
    int rc = 1;

    memset(&gw, 0, sizeof gw);
    gw.cfg = cfg;
    gw.started_ms = pg_now_ms();
    pg_config_auth_limits(cfg, &gw.limits);
    if (*cfg->node_id)
        snprintf(gw.node_id, sizeof gw.node_id, "%s", cfg->node_id);
    else if (pg_random_token(gw.node_id, 12) != 0)
        return 1;
    if (pg_apps_init(&gw) != 0)
        goto out;

    snprintf(client_id, sizeof client_id, PG_GATEWAY_CLIENT_ID_PREFIX "%s", gw.node_id);
    snprintf(will, sizeof will, "%s/_node/%s", cfg->topic_root, gw.node_id);
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

    memset(&info, 0, sizeof info);
    info.port = (int)cfg->listen_port;
    info.iface = cfg->listen_host;
    info.protocols = protocols;
    info.user = &gw;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    /* lws 4.1 with IPv6 support binds every address when iface is an IPv4 literal: keep loopback loopback */
    if (!strchr(cfg->listen_host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.pt_serv_buf_size = 16384;
    /*
     * WebSocket liveness, for every protocol (lws's validity timer: plain
     * HTTP requests are not subject to it): a WebSocket gets a PING
     * ws_ping_interval_s after its opening or its last PONG, and one that
     * has not answered it ws_pong_timeout_s later is dropped. Browsers and
     * WebSocket libraries answer on their own; a peer stuck inside a frame
     * (a header and no payload, so ws_partial_frame_timeout_ms never
     * starts) cannot, since control frames do not go in the middle of one.
     */
    lws_retry_bo_t liveness = {
        .secs_since_valid_ping = (uint16_t)cfg->ws_ping_interval_s,
        .secs_since_valid_hangup = (uint16_t)(cfg->ws_ping_interval_s + cfg->ws_pong_timeout_s),
    };
    info.retry_and_idle_policy = &liveness;
    /* lws drops a request whose headers overflow its store without an answer: the store is larger than
       max_header_bytes, so that the gateway answers 431 itself up to 4 x max_header_bytes */
    info.max_http_header_data2 = (unsigned int)(cfg->max_header_bytes * 4);
    /* lws's own waits (a stalled body among them) end silently: they must outlast http_body_timeout_ms (408) */
    long long wait_s = cfg->http_body_timeout_ms / 1000 + 5;
    info.timeout_secs = (unsigned int)(wait_s > 30 ? wait_s : 30);
    info.keepalive_timeout = (int)cfg->http_keepalive_s; /* announced in every kept answer (http.c) */
    gw.ctx = lws_create_context(&info);
    if (!gw.ctx) {
        pg_log(PG_LOG_ERROR, "server", "cannot listen on %s:%lld", cfg->listen_host, cfg->listen_port);
        goto out;
    }
    gw.vhost = lws_get_vhost_by_name(gw.ctx, "default");
    signal_ctx = gw.ctx;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    pg_log(PG_LOG_INFO, "server", "listening on http://%s:%lld node=%s apps=%zu broker=%s:%lld", cfg->listen_host,
           cfg->listen_port, gw.node_id, cfg->napps, cfg->broker_host, cfg->broker_port);
    if (pg_cluster_init(&gw) != 0 || pg_push_init(&gw) != 0 || pg_seq_init(&gw) != 0)
        goto out;
    pg_bridge_start(gw.bridge);
    lws_sul_schedule(gw.ctx, 0, &gw.sul_tick, tick, PG_BRIDGE_TICK_MS * LWS_US_PER_MS);

    while (!gw.done && lws_service(gw.ctx, 0) >= 0)
        ;
    pg_cluster_stopping(&gw);
    pg_log(PG_LOG_INFO, "server", "stopped");
    rc = 0;
out:
    if (gw.ctx) {
        lws_sul_cancel(&gw.sul_tick);
        signal_ctx = NULL;
        pg_sio_shutdown(&gw); /* socket.io sessions are not lws's: free them while the context still runs */
        pg_push_free(&gw);    /* its sweep timer lives in the context */
        lws_context_destroy(gw.ctx); /* closes sessions and HTTP requests first: they reference apps */
    }
    pg_addr_free(&gw);             /* after the sessions: releasing them detaches their addresses */
    pg_webhooks_free(gw.webhooks); /* after the sessions: closing them may still emit events */
    pg_bridge_free(gw.bridge);
    pg_seq_free(&gw);
    apps_free(&gw);
    return rc;
}
