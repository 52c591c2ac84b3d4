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
 * After a lost session the client is re-initialised before reconnecting, so
 * QoS 1 publishes that were already reported as failed (503 to a REST caller)
 * are not silently re-sent later by libmosquitto's retry queue.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>
#include <uthash.h>

#include "pushgate_bridge.h"

#define PG_BRIDGE_MAX_PROPS 16

struct pending {
    int mid;
    int64_t deadline;
    pg_bridge_ack_cb cb;
    void *ud;
    UT_hash_handle hh;
};

struct waiter {
    pg_bridge_ack_cb cb;
    void *ud;
    int64_t deadline;
};

struct sub {
    char *filter; /* hash key */
    uint32_t refs;
    uint32_t id; /* MQTT subscription identifier */
    int wildcard;
    int live;      /* the broker granted it on the current connection */
    int mid;       /* SUBSCRIBE in flight, 0 if none */
    int restoring; /* subscribed when the connection came up: its SUBACK is part of being ready */
    struct waiter *waiters; /* owners waiting for the SUBACK */
    size_t nwaiters;
    UT_hash_handle hh;
};

/*
 * Mosquitto sends one copy of a message per matching subscription, back to
 * back, each carrying that subscription's identifier. The copies of one
 * message form a "group": same topic, payload and properties, pairwise
 * different identifiers. Only the group's first copy is delivered (the owner
 * finds every local recipient itself), so overlapping filters never cause a
 * duplicate, and no copy is judged against a subscription table that may have
 * changed since the broker routed it.
 */
#define PG_BRIDGE_GROUP_IDS 32
struct copy_group {
    char *topic;
    uint32_t hash; /* of payload and user properties */
    size_t len;
    uint32_t ids[PG_BRIDGE_GROUP_IDS];
    size_t nids;
};

struct pg_bridge {
    struct mosquitto *mosq;
    struct pg_bridge_config cfg; /* strings owned (copied) */
    struct pg_bridge_ops ops;
    void *ud;
    int fd;                 /* socket currently handed to the owner, -1 if none */
    int connected;          /* CONNACK success seen and not lost since */
    size_t restoring;       /* subscriptions of the connection's start still awaiting their SUBACK */
    int coming_up;          /* inside on_state(1): its subscriptions are not counted yet */
    int started;
    int64_t next_attempt;   /* monotonic ms of the next connect attempt, 0 = none scheduled */
    /* monotonic ms by which the attempt under way must have its CONNACK, 0 = none (connected or no socket) */
    int64_t connect_deadline;
    int backoff_ms;
    int64_t last_misc;
    uint32_t next_sub_id;
    struct pending *pending;
    struct sub *subs;
    struct copy_group group;
};

static void blog(pg_bridge *b, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void blog(pg_bridge *b, int level, const char *fmt, ...)
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

static void fail_pending(pg_bridge *b)
{
    struct pending *p, *tmp;
    HASH_ITER(hh, b->pending, p, tmp) {
        HASH_DEL(b->pending, p);
        if (p->cb)
            p->cb(p->ud, PG_EBUSY);
        free(p);
    }
}

/* Tell every owner waiting on s the outcome; the array is detached first so callbacks may subscribe again. */
static void finish_waiters(struct sub *s, int result)
{
    struct waiter *w = s->waiters;
    size_t n = s->nwaiters;
    s->waiters = NULL;
    s->nwaiters = 0;
    for (size_t i = 0; i < n; i++)
        w[i].cb(w[i].ud, result);
    free(w);
}

/* Waiters survive a lost connection: the filter is re-subscribed on reconnect, or they time out. */
/* The identifiers a copy may carry changed: a message that repeats the last one is not a copy of it. */
static void group_reset(pg_bridge *b)
{
    free(b->group.topic);
    b->group.topic = NULL;
    b->group.nids = 0;
}

static void subs_lost(pg_bridge *b)
{
    struct sub *s, *tmp;
    group_reset(b);
    b->restoring = 0;
    HASH_ITER(hh, b->subs, s, tmp) {
        s->live = 0;
        s->mid = 0;
        s->restoring = 0;
    }
}

/* One restoring subscription was answered (or dropped): the last one makes the connection ready. */
static void restored_one(pg_bridge *b, struct sub *s)
{
    if (!s->restoring)
        return;
    s->restoring = 0;
    if (--b->restoring == 0)
        blog(b, 1, "ready: subscriptions acknowledged by the broker");
}

/* Time out the waiters of s whose deadline passed; the others keep waiting. */
static void expire_waiters(struct sub *s, int64_t now)
{
    size_t keep = 0, n = s->nwaiters;
    struct waiter *w = s->waiters, *expired = malloc(n * sizeof *expired);
    size_t nexp = 0;
    if (!expired)
        return;
    for (size_t i = 0; i < n; i++) {
        if (now >= w[i].deadline)
            expired[nexp++] = w[i];
        else
            w[keep++] = w[i];
    }
    s->nwaiters = keep;
    for (size_t i = 0; i < nexp; i++) /* may unsubscribe and free s: touch nothing of s below */
        expired[i].cb(expired[i].ud, PG_ETIMEDOUT);
    free(expired);
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
        blog(b, 3, "cannot reinitialise MQTT client");
    fail_pending(b);
    subs_lost(b);
    if (b->next_attempt == 0)
        schedule_reconnect(b);
    if (attempt) /* the TCP connect or the CONNECT/CONNACK exchange of a background attempt failed */
        blog(b, 2, "cannot connect to broker %s:%d: %s", b->cfg.host, b->cfg.port, why);
    if (was) {
        blog(b, 2, "broker connection lost: %s", why);
        if (b->ops.on_state)
            b->ops.on_state(b->ud, 0);
    }
}

static int subscribe_one(pg_bridge *b, struct sub *s)
{
    mosquitto_property *props = NULL;
    int rc = mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, s->id);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_subscribe_v5(b->mosq, &s->mid, s->filter, 1, 0, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
        blog(b, 3, "subscribe %s failed: %s", s->filter, mosquitto_strerror(rc));
        return PG_EBUSY;
    }
    return 0;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props)
{
    pg_bridge *b = obj;
    (void)mosq;
    (void)flags;
    (void)props;
    if (rc != 0) {
        blog(b, 3, "broker refused connection: %s", mosquitto_reason_string(rc));
        return; /* libmosquitto closes the socket; lost() follows from the read path */
    }
    b->connected = 1;
    b->connect_deadline = 0;
    b->backoff_ms = b->cfg.reconnect_min_ms;
    blog(b, 1, "connected to broker %s:%d", b->cfg.host, b->cfg.port);
    struct sub *s, *tmp;
    HASH_ITER(hh, b->subs, s, tmp) {
        subscribe_one(b, s);
    }
    b->coming_up = 1;
    if (b->ops.on_state)
        b->ops.on_state(b->ud, 1);
    b->coming_up = 0;
    /* what the owner subscribed to before or on connecting (restored channels, control filters) must be in place
       before the gateway calls itself ready: a message published meanwhile would miss this process */
    b->restoring = 0;
    HASH_ITER(hh, b->subs, s, tmp) {
        s->restoring = s->mid != 0;
        b->restoring += (size_t)s->restoring;
    }
    if (b->restoring == 0)
        blog(b, 1, "ready: no subscriptions to restore");
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason, const mosquitto_property *props)
{
    pg_bridge *b = obj;
    struct pending *p;
    (void)mosq;
    (void)props;
    HASH_FIND_INT(b->pending, &mid, p);
    if (!p)
        return;
    HASH_DEL(b->pending, p);
    if (p->cb)
        p->cb(p->ud, reason >= 0x80 ? PG_EDENIED : 0);
    free(p);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
    pg_bridge *b = obj;
    struct sub *s, *tmp;
    (void)mosq;
    (void)props;
    HASH_ITER(hh, b->subs, s, tmp) {
        if (s->mid != mid)
            continue;
        s->mid = 0;
        s->live = count > 0 && granted[0] < 0x80;
        restored_one(b, s);
        if (!s->live)
            blog(b, 3, "broker refused subscription %s (reason 0x%02x)", s->filter, count > 0 ? granted[0] : 0);
        finish_waiters(s, s->live ? 0 : PG_EDENIED);
        return;
    }
}

static uint32_t content_hash(const struct mosquitto_message *m, const struct pg_bridge_prop *up, size_t n)
{
    unsigned hv = 0, part;
    if (m->payloadlen > 0)
        HASH_JEN(m->payload, (unsigned)m->payloadlen, hv);
    for (size_t i = 0; i < n; i++) {
        HASH_JEN(up[i].name, (unsigned)strlen(up[i].name), part);
        hv = hv * 31 + part;
        HASH_JEN(up[i].value, (unsigned)strlen(up[i].value), part);
        hv = hv * 31 + part;
    }
    return hv;
}

static int duplicate_copy(pg_bridge *b, const struct mosquitto_message *m, const mosquitto_property *props,
                          const struct pg_bridge_prop *up, size_t n)
{
    struct copy_group *g = &b->group;
    uint32_t ids[PG_BRIDGE_GROUP_IDS], id;
    size_t nids = 0;
    const mosquitto_property *p;
    for (p = mosquitto_property_read_varint(props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &id, false);
         p && nids < PG_BRIDGE_GROUP_IDS;
         p = mosquitto_property_read_varint(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &id, true))
        ids[nids++] = id;
    uint32_t hash = content_hash(m, up, n);
    size_t len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    int same = nids > 0 && g->topic && !strcmp(g->topic, m->topic) && g->hash == hash && g->len == len;
    /* a copy of the group's message carries identifiers the group has not seen; a repeat publish does not */
    for (size_t i = 0; same && i < nids; i++)
        for (size_t k = 0; k < g->nids; k++)
            if (g->ids[k] == ids[i])
                same = 0;
    if (same) {
        for (size_t i = 0; i < nids && g->nids < PG_BRIDGE_GROUP_IDS; i++)
            g->ids[g->nids++] = ids[i];
        return 1;
    }
    free(g->topic);
    g->topic = strdup(m->topic);
    g->hash = hash;
    g->len = len;
    memcpy(g->ids, ids, nids * sizeof ids[0]);
    g->nids = nids;
    return 0;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                       const mosquitto_property *props)
{
    pg_bridge *b = obj;
    struct pg_bridge_prop up[PG_BRIDGE_MAX_PROPS];
    char *names[PG_BRIDGE_MAX_PROPS], *values[PG_BRIDGE_MAX_PROPS];
    size_t n = 0;
    (void)mosq;

    const mosquitto_property *p = props;
    char *name = NULL, *value = NULL;
    for (p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, false);
         p && n < PG_BRIDGE_MAX_PROPS;
         p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
        names[n] = name;
        values[n] = value;
        up[n].name = name;
        up[n].value = value;
        n++;
        name = value = NULL;
    }
    free(name); /* a property past the limit was still allocated */
    free(value);
    if (!duplicate_copy(b, m, props, up, n) && b->ops.on_message)
        b->ops.on_message(b->ud, m->topic, m->payload, m->payloadlen > 0 ? (size_t)m->payloadlen : 0, up, n);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        free(values[i]);
    }
}

static void on_mlog(struct mosquitto *mosq, void *obj, int level, const char *str)
{
    (void)mosq;
    if (level == MOSQ_LOG_ERR || level == MOSQ_LOG_WARNING)
        blog(obj, level == MOSQ_LOG_ERR ? 3 : 2, "libmosquitto: %s", str);
}

static int setup_client(pg_bridge *b)
{
    int rc;
    mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    /* small control packets (SUBSCRIBE after UNSUBSCRIBE) must not wait for Nagle */
    mosquitto_int_option(b->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_subscribe_v5_callback_set(b->mosq, on_subscribe);
    mosquitto_connect_v5_callback_set(b->mosq, on_connect);
    mosquitto_publish_v5_callback_set(b->mosq, on_publish);
    mosquitto_message_v5_callback_set(b->mosq, on_message);
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
    fail_pending(b);
    struct sub *s, *tmp, *subs = b->subs;
    b->subs = NULL;
    HASH_ITER(hh, subs, s, tmp) {
        if (s->nwaiters)
            finish_waiters(s, PG_EBUSY);
    }
    HASH_ITER(hh, subs, s, tmp) {
        HASH_DEL(subs, s);
        free(s->waiters);
        free(s->filter);
        free(s);
    }
    free(b->group.topic);
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
        blog(b, 2, "cannot connect to broker %s:%d: %s", b->cfg.host, b->cfg.port,
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
        blog(b, 1, "broker host %s is a name: each connect attempt resolves it with a blocking lookup (use an "
                   "address or a name in /etc/hosts)", b->cfg.host);
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
    if (readable) {
        rc = mosquitto_loop_read(b->mosq, 64);
        if (rc != MOSQ_ERR_SUCCESS) {
            lost(b, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
            return;
        }
    }
    if (writable || mosquitto_want_write(b->mosq)) {
        rc = mosquitto_loop_write(b->mosq, 64);
        if (rc != MOSQ_ERR_SUCCESS) {
            lost(b, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
            return;
        }
    }
    if (mosquitto_want_write(b->mosq) && b->ops.want_write)
        b->ops.want_write(b->ud);
}

void pg_bridge_tick(pg_bridge *b)
{
    int64_t now = pg_mono_ms();
    if (!b->started)
        return;
    struct sub *s, *stmp;
    HASH_ITER(hh, b->subs, s, stmp) {
        if (s->nwaiters)
            expire_waiters(s, now);
    }
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
        if (mosquitto_want_write(b->mosq) && b->ops.want_write)
            b->ops.want_write(b->ud);
    }
    struct pending *p, *tmp;
    HASH_ITER(hh, b->pending, p, tmp) {
        if (now >= p->deadline) {
            HASH_DEL(b->pending, p);
            if (p->cb)
                p->cb(p->ud, PG_ETIMEDOUT);
            free(p);
        }
    }
}

int pg_bridge_publish(pg_bridge *b, const char *topic, const void *payload, size_t len, const char *const *props,
                      int retain, pg_bridge_ack_cb cb, void *cb_ud)
{
    return pg_bridge_publish_expiring(b, topic, payload, len, props, retain, 0, cb, cb_ud);
}

int pg_bridge_publish_expiring(pg_bridge *b, const char *topic, const void *payload, size_t len,
                               const char *const *props, int retain, uint32_t expiry_s, pg_bridge_ack_cb cb,
                               void *cb_ud)
{
    mosquitto_property *mp = NULL;
    int mid = 0, rc;
    if (!b->connected)
        return PG_EBUSY;
    if (len > INT32_MAX)
        return PG_ELIMIT;
    if (expiry_s && mosquitto_property_add_int32(&mp, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, expiry_s) != 0)
        return PG_ENOMEM;
    for (size_t i = 0; props && props[i] && props[i + 1]; i += 2) {
        if (mosquitto_property_add_string_pair(&mp, MQTT_PROP_USER_PROPERTY, props[i], props[i + 1]) != 0) {
            mosquitto_property_free_all(&mp);
            return PG_ENOMEM;
        }
    }
    struct pending *p = calloc(1, sizeof *p);
    if (!p) {
        mosquitto_property_free_all(&mp);
        return PG_ENOMEM;
    }
    rc = mosquitto_publish_v5(b->mosq, &mid, topic, (int)len, payload, 1, retain != 0, mp);
    mosquitto_property_free_all(&mp);
    if (rc != MOSQ_ERR_SUCCESS) {
        free(p);
        if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST)
            return PG_EBUSY;
        if (rc == MOSQ_ERR_NOMEM)
            return PG_ENOMEM;
        if (rc == MOSQ_ERR_OVERSIZE_PACKET)
            return PG_ELIMIT;
        return PG_EINVAL;
    }
    p->mid = mid;
    p->cb = cb;
    p->ud = cb_ud;
    p->deadline = pg_mono_ms() + b->cfg.publish_timeout_ms;
    HASH_ADD_INT(b->pending, mid, p);
    if (mosquitto_want_write(b->mosq) && b->ops.want_write)
        b->ops.want_write(b->ud);
    return 0;
}

void pg_bridge_forget(pg_bridge *b, void *cb_ud)
{
    struct pending *p, *tmp;
    HASH_ITER(hh, b->pending, p, tmp) {
        if (p->ud == cb_ud)
            p->cb = NULL;
    }
}

int pg_bridge_subscribe(pg_bridge *b, const char *filter)
{
    struct sub *s;
    HASH_FIND_STR(b->subs, filter, s);
    if (s) {
        s->refs++;
        return 0;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->filter = strdup(filter))) {
        free(s);
        return PG_ENOMEM;
    }
    s->refs = 1;
    s->id = b->next_sub_id++;
    if (b->next_sub_id > 268435455) /* largest MQTT variable byte integer */
        b->next_sub_id = 1;
    s->wildcard = strpbrk(filter, "+#") != NULL;
    HASH_ADD_KEYPTR(hh, b->subs, s->filter, strlen(s->filter), s);
    group_reset(b);
    if (b->connected) {
        subscribe_one(b, s);
        if (mosquitto_want_write(b->mosq) && b->ops.want_write)
            b->ops.want_write(b->ud);
    }
    return 0;
}

int pg_bridge_subscribe_wait(pg_bridge *b, const char *filter, pg_bridge_ack_cb cb, void *ud)
{
    struct sub *s;
    HASH_FIND_STR(b->subs, filter, s);
    if (!s)
        return PG_ENOTFOUND;
    if (s->live)
        return 0;
    struct waiter *w = realloc(s->waiters, (s->nwaiters + 1) * sizeof *w);
    if (!w)
        return PG_ENOMEM;
    s->waiters = w;
    w[s->nwaiters].cb = cb;
    w[s->nwaiters].ud = ud;
    w[s->nwaiters].deadline = pg_mono_ms() + b->cfg.publish_timeout_ms;
    s->nwaiters++;
    return 1;
}

int pg_bridge_unsubscribe(pg_bridge *b, const char *filter)
{
    struct sub *s;
    HASH_FIND_STR(b->subs, filter, s);
    if (!s)
        return PG_ENOTFOUND;
    if (--s->refs > 0)
        return 0;
    HASH_DEL(b->subs, s);
    group_reset(b);
    restored_one(b, s);
    if (s->nwaiters)
        finish_waiters(s, PG_EBUSY);
    free(s->waiters);
    if (b->connected) {
        mosquitto_unsubscribe_v5(b->mosq, NULL, s->filter, NULL);
        if (mosquitto_want_write(b->mosq) && b->ops.want_write)
            b->ops.want_write(b->ud);
    }
    free(s->filter);
    free(s);
    return 0;
}
