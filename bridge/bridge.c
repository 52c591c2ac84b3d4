/*
 * The MQTT bridge: one libmosquitto client driven by its owner's loop.
 *
 * libmosquitto's own thread (mosquitto_loop_start) is never used: the socket
 * is handed to the owner, which calls pg_bridge_io() on readiness, so broker
 * traffic and WebSocket traffic are served by one thread without locks.
 *
 * Connecting never waits for the network: mosquitto_connect_bind_async()
 * (libmosquitto 2.0) makes the socket non-blocking before connect(), so a
 * connect in progress returns at once with the CONNECT packet queued; the
 * owner watches the socket for writability like any other pending output,
 * and mosquitto_loop_write() sends CONNECT once the TCP handshake completes
 * (or reports its failure). A TCP connect or a CONNACK that does not arrive
 * within connect_timeout_ms drops the attempt, which the jittered backoff
 * retries: a broker address that swallows SYNs or a peer that accepts and
 * never answers costs one socket, never the loop. The one blocking step left
 * is libmosquitto's getaddrinfo() of a host name (none for a numeric address);
 * broker_host should be an address or a name resolved locally.
 *
 * Writing: libmosquitto is told the application is threaded
 * (mosquitto_threaded_set), for one effect only: a packet made by a call
 * (a publish, a SUBSCRIBE, a PINGREQ) is queued instead of written at once.
 * The owner's pg_bridge_flush() at the end of its loop pass writes what the
 * pass queued, after the pass's own output to clients: a publish that
 * local_first also delivers here reaches this process's subscribers before
 * the broker (and the broker's work on another core) does, which took 14 %
 * off W2's p50 (bench/README.md, "W2: the broker hop"). While it reads
 * (pg_bridge_io) the client is unthreaded again: the PUBACK of a message
 * leaves before the message is handled, so the broker's in-flight window
 * (max_inflight_messages) keeps moving while the owner fans it out.
 *
 * After a lost session the client is re-initialised before reconnecting, so
 * QoS 1 publishes that were already reported as failed (503 to a REST caller)
 * are not silently re-sent later by libmosquitto's retry queue.
 *
 * This file is the session: create/free, the client's setup, connecting and
 * backoff, socket I/O, ticks, losing the session, logging. The subscription
 * table and the batching of SUBSCRIBE/UNSUBSCRIBE live in subs.c, publishes
 * and received messages in messages.c (bridge_internal.h: who owns which
 * field).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>

#include "bridge_internal.h"

void pg__bridge_log(pg_bridge *b, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (!b->ops.on_log)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->ops.on_log(b->ud, level, msg);
}

static void set_socket(pg_bridge *b, int fd)
{
    if (b->fd == fd)
        return;
    b->fd = fd;
    if (b->ops.on_socket)
        b->ops.on_socket(b->ud, fd);
}

static void schedule_reconnect(pg_bridge *b)
{
    int64_t now = pg_mono_ms();
    /* full jitter: uniformly in [min, backoff] so a fleet of gateways does not reconnect in step */
    int span = b->backoff_ms - b->cfg.reconnect_min_ms;
    int delay = b->cfg.reconnect_min_ms + (span > 0 ? (int)(random() % (span + 1)) : 0);
    b->next_attempt = now + delay;
    b->backoff_ms = b->backoff_ms * 2 > b->cfg.reconnect_max_ms ? b->cfg.reconnect_max_ms : b->backoff_ms * 2;
}

static int setup_client(pg_bridge *b);

/* Called outside libmosquitto callbacks only: re-initialising closes the socket and drops its retry queue. */
static void lost(pg_bridge *b, const char *why)
{
    int was = b->connected, attempt = b->fd >= 0 && !was;
    b->connected = 0;
    b->connect_deadline = 0;
    set_socket(b, -1);
    if (mosquitto_reinitialise(b->mosq, b->cfg.client_id, true, b) != MOSQ_ERR_SUCCESS || setup_client(b) != 0)
        pg__bridge_log(b, 3, "cannot reinitialise MQTT client");
    pg__bridge_fail_pending(b);
    pg__bridge_subs_lost(b);
    if (b->next_attempt == 0)
        schedule_reconnect(b);
    if (attempt) /* the TCP connect or the CONNECT/CONNACK exchange of a background attempt failed */
        pg__bridge_log(b, 2, "cannot connect to broker %s:%d: %s", b->cfg.host, b->cfg.port, why);
    if (was) {
        pg__bridge_log(b, 2, "broker connection lost: %s", why);
        if (b->ops.on_state)
            b->ops.on_state(b->ud, 0);
    }
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props)
{
    pg_bridge *b = obj;
    (void)mosq;
    (void)flags;
    if (rc != 0) {
        pg__bridge_log(b, 3, "broker refused connection: %s", mosquitto_reason_string(rc));
        return; /* libmosquitto closes the socket; lost() follows from the read path */
    }
    b->connected = 1;
    b->connect_deadline = 0;
    b->backoff_ms = b->cfg.reconnect_min_ms;
    uint32_t max_packet = 0; /* bounds the batches of SUBSCRIBE and UNSUBSCRIBE (subs.c) */
    mosquitto_property_read_int32(props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &max_packet, false);
    b->max_packet = max_packet;
    pg__bridge_log(b, 1, "connected to broker %s:%d", b->cfg.host, b->cfg.port);
    pg__bridge_subs_resubscribe(b);
    b->coming_up = 1;
    if (b->ops.on_state)
        b->ops.on_state(b->ud, 1);
    b->coming_up = 0;
    /* what the owner subscribed to before or on connecting (restored channels, control filters) must be in place
       before the gateway calls itself ready: a message published meanwhile would miss this process */
    pg__bridge_subs_count_restoring(b);
    /* the restored filters go out once loop_read returns (pg_bridge_io flushes before writing) */
}

static void on_mlog(struct mosquitto *mosq, void *obj, int level, const char *str)
{
    (void)mosq;
    if (level == MOSQ_LOG_ERR || level == MOSQ_LOG_WARNING)
        pg__bridge_log(obj, level == MOSQ_LOG_ERR ? 3 : 2, "libmosquitto: %s", str);
}

static int setup_client(pg_bridge *b)
{
    int rc;
    /* queue what a call makes; pg__bridge_write sends it (see the top of the file). Re-initialising clears it. */
    mosquitto_threaded_set(b->mosq, true);
    mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    /* small control packets (SUBSCRIBE after UNSUBSCRIBE) must not wait for Nagle */
    mosquitto_int_option(b->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_subscribe_v5_callback_set(b->mosq, pg__bridge_on_subscribe);
    mosquitto_connect_v5_callback_set(b->mosq, on_connect);
    mosquitto_publish_v5_callback_set(b->mosq, pg__bridge_on_publish);
    mosquitto_message_v5_callback_set(b->mosq, pg__bridge_on_message);
    mosquitto_log_callback_set(b->mosq, on_mlog);
    if (b->cfg.username && *b->cfg.username) {
        rc = mosquitto_username_pw_set(b->mosq, b->cfg.username, b->cfg.password);
        if (rc != MOSQ_ERR_SUCCESS)
            return rc == MOSQ_ERR_NOMEM ? PG_ENOMEM : PG_EINVAL;
    }
    if (b->cfg.will_topic && *b->cfg.will_topic) {
        rc = mosquitto_will_set_v5(b->mosq, b->cfg.will_topic, 0, NULL, 1, true, NULL);
        if (rc != MOSQ_ERR_SUCCESS)
            return PG_EINVAL;
    }
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int pg_bridge_new(const struct pg_bridge_config *cfg, const struct pg_bridge_ops *ops, void *ud, pg_bridge **out)
{
    int rc = PG_ENOMEM;
    pg_bridge *b = calloc(1, sizeof *b);
    if (!b)
        return PG_ENOMEM;
    b->cfg = *cfg;
    b->cfg.host = dup_or_null(cfg->host);
    b->cfg.username = dup_or_null(cfg->username);
    b->cfg.password = dup_or_null(cfg->password);
    b->cfg.client_id = dup_or_null(cfg->client_id);
    b->cfg.will_topic = dup_or_null(cfg->will_topic);
    if (!b->cfg.host || !b->cfg.client_id)
        goto fail;
    if (b->cfg.reconnect_min_ms < 10)
        b->cfg.reconnect_min_ms = 10;
    if (b->cfg.reconnect_max_ms < b->cfg.reconnect_min_ms)
        b->cfg.reconnect_max_ms = b->cfg.reconnect_min_ms;
    if (b->cfg.connect_timeout_ms <= 0)
        b->cfg.connect_timeout_ms = PG_BRIDGE_CONNECT_TIMEOUT_MS;
    b->ops = *ops;
    b->ud = ud;
    b->fd = -1;
    b->backoff_ms = b->cfg.reconnect_min_ms;
    b->next_sub_id = 1;
    mosquitto_lib_init();
    b->mosq = mosquitto_new(b->cfg.client_id, true, b);
    if (!b->mosq)
        goto fail;
    if ((rc = setup_client(b)) != 0)
        goto fail;
    *out = b;
    return 0;
fail:
    pg_bridge_free(b);
    return rc;
}

void pg_bridge_free(pg_bridge *b)
{
    if (!b)
        return;
    if (b->mosq) {
        if (b->connected) {
            /* flush what is queued (e.g. the node's last retained state), then say goodbye so no will is sent */
            mosquitto_loop_write(b->mosq, 16);
            mosquitto_disconnect_v5(b->mosq, 0, NULL);
            mosquitto_loop_write(b->mosq, 16);
        }
        mosquitto_destroy(b->mosq);
        b->mosq = NULL;
    }
    /* owners hear of everything still pending; they must not call back into the bridge from here */
    b->connected = 0;
    b->started = 0;
    pg__bridge_fail_pending(b);
    pg__bridge_subs_free(b);
    pg__bridge_group_reset(b);
    free((char *)b->cfg.host);
    free((char *)b->cfg.username);
    free((char *)b->cfg.password);
    free((char *)b->cfg.client_id);
    free((char *)b->cfg.will_topic);
    free(b);
    mosquitto_lib_cleanup();
}

static void try_connect(pg_bridge *b)
{
    b->next_attempt = 0;
    /* returns with the TCP connect in progress (MOSQ_ERR_CONN_PENDING inside) and CONNECT queued behind it */
    int rc = mosquitto_connect_bind_async(b->mosq, b->cfg.host, b->cfg.port, b->cfg.keepalive_s, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        pg__bridge_log(b, 2, "cannot connect to broker %s:%d: %s", b->cfg.host, b->cfg.port,
                       rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        lost(b, "connect failed");
        return;
    }
    b->last_misc = pg_mono_ms();
    b->connect_deadline = b->last_misc + b->cfg.connect_timeout_ms;
    set_socket(b, mosquitto_socket(b->mosq));
    if (mosquitto_want_write(b->mosq) && b->ops.want_write)
        b->ops.want_write(b->ud);
}

void pg_bridge_start(pg_bridge *b)
{
    unsigned char addr[sizeof(struct in6_addr)];
    b->started = 1;
    if (inet_pton(AF_INET, b->cfg.host, addr) != 1 && inet_pton(AF_INET6, b->cfg.host, addr) != 1)
        pg__bridge_log(b, 1,
                       "broker host %s is a name: each connect attempt resolves it with a blocking lookup (use an "
                       "address or a name in /etc/hosts)",
                       b->cfg.host);
    try_connect(b);
}

int pg_bridge_connected(const pg_bridge *b)
{
    return b->connected;
}

int pg_bridge_ready(const pg_bridge *b)
{
    return b->connected && !b->coming_up && b->restoring == 0;
}

int pg_bridge_want_write(const pg_bridge *b)
{
    return b->fd >= 0 && mosquitto_want_write(b->mosq);
}

void pg_bridge_io(pg_bridge *b, int readable, int writable)
{
    int rc;
    if (b->fd < 0)
        return;
    /*
     * Reading, libmosquitto writes as it does unthreaded: a message's PUBACK before the message is handled. The
     * broker sends at most max_inflight_messages (20 by default) unacknowledged; held until after the fan-out,
     * the PUBACKs idled it, and W1 across two gateways lost a third of its rate (bench/README.md).
     */
    if (readable)
        mosquitto_threaded_set(b->mosq, false);
    for (int i = 0; readable && i < PG_BRIDGE_READ_BATCH; i++) {
        /*
         * libmosquitto gives no count of what it read; a read that found the socket empty leaves EAGAIN in errno
         * (packet__read), a whole packet leaves what the callbacks left, so the batch ends with one empty read,
         * or earlier when a callback's own EAGAIN (a full client socket) shows through: then the next readiness
         * goes on.
         */
        errno = 0;
        rc = mosquitto_loop_read(b->mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            lost(b, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || b->fd < 0 || (b->ops.read_more && !b->ops.read_more(b->ud)))
            break;
    }
    mosquitto_threaded_set(b->mosq, true); /* queueing again (after a lost() above, setup_client() did it) */
    /* what the callbacks just run queued (the restored filters after a CONNACK among them) */
    pg__bridge_subs_flush(b);
    pg__bridge_write(b, writable);
}

void pg__bridge_write(pg_bridge *b, int writable)
{
    if (b->fd < 0 || (!writable && !mosquitto_want_write(b->mosq)))
        return;
    int rc = mosquitto_loop_write(b->mosq, 64);
    if (rc != MOSQ_ERR_SUCCESS) {
        lost(b, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return;
    }
    /* the socket took part of it (or the TCP connect is still under way): the rest waits for writability */
    if (mosquitto_want_write(b->mosq) && b->ops.want_write)
        b->ops.want_write(b->ud);
}

void pg_bridge_tick(pg_bridge *b)
{
    int64_t now = pg_mono_ms();
    if (!b->started)
        return;
    pg__bridge_subs_expire(b, now);
    pg_bridge_flush(b); /* an owner that does not flush every pass still gets its subscriptions and publishes out */
    if (b->fd < 0) {
        if (b->next_attempt && now >= b->next_attempt)
            try_connect(b);
        return;
    }
    if (b->connect_deadline && now >= b->connect_deadline) {
        /* TCP handshake or CONNACK still missing: give the socket up and let the backoff try again */
        char why[96];
        snprintf(why, sizeof why, "no CONNACK within %d ms (broker_connect_timeout_ms)", b->cfg.connect_timeout_ms);
        lost(b, why);
        return;
    }
    if (now - b->last_misc >= 1000) {
        b->last_misc = now;
        int rc = mosquitto_loop_misc(b->mosq);
        if (rc != MOSQ_ERR_SUCCESS) {
            lost(b, "keepalive timeout");
            return;
        }
        pg__bridge_write(b, 0); /* its PINGREQ */
        if (b->fd < 0)
            return;
    }
    pg__bridge_expire_pending(b, now);
}
