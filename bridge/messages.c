/*
 * Messages through the bridge, both ways.
 *
 * Out: every publish is QoS 1. Its packet id (mid) keys a struct pending in
 * b->pending (uthash) until the PUBACK (pg__bridge_on_publish), the deadline
 * publish_timeout_ms later (pg__bridge_expire_pending, from the tick) or the
 * end of the session (pg__bridge_fail_pending) settles it: the owner's
 * callback runs once, never from inside the publish call, unless
 * pg_bridge_forget() cleared it first. A publish first flushes the queued
 * subscribes and unsubscribes (subs.c), so the broker sees them in the order
 * the owner made them.
 *
 * In: pg__bridge_on_message hands a received message to the owner with its
 * user properties, unless it is one more copy of the message just delivered
 * (b->group, see struct copy_group in bridge_internal.h). The group is reset
 * by subs.c whenever the set of subscription identifiers changes.
 *
 * Owns b->pending and b->group.
 */
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>
#include <uthash.h>

#include "bridge_internal.h"

/* user properties of a received message handed to the owner; later ones are dropped */
#define PG_BRIDGE_MAX_PROPS 16

struct pending {
    int mid;
    int64_t deadline;
    pg_bridge_ack_cb cb;
    void *ud;
    UT_hash_handle hh;
};

void pg__bridge_fail_pending(pg_bridge *b)
{
    struct pending *p, *tmp;
    HASH_ITER(hh, b->pending, p, tmp) {
        HASH_DEL(b->pending, p);
        if (p->cb)
            p->cb(p->ud, PG_EBUSY);
        free(p);
    }
}

void pg__bridge_expire_pending(pg_bridge *b, int64_t now)
{
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

void pg__bridge_on_publish(struct mosquitto *mosq, void *obj, int mid, int reason, const mosquitto_property *props)
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
    /* the subscribes and unsubscribes made before this publish reach the broker before it, as the owner made them:
       a client that subscribes and then publishes on one socket hears its own message */
    pg__bridge_subs_flush(b);
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
    return 0; /* queued: the owner's pg_bridge_flush() at the end of the pass writes it (bridge.c) */
}

void pg_bridge_forget(pg_bridge *b, void *cb_ud)
{
    struct pending *p, *tmp;
    HASH_ITER(hh, b->pending, p, tmp) {
        if (p->ud == cb_ud)
            p->cb = NULL;
    }
}

void pg__bridge_group_reset(pg_bridge *b)
{
    free(b->group.topic);
    b->group.topic = NULL;
    b->group.nids = 0;
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

/* 1 if m is one more copy of the group's message (drop it); else m starts a new group (deliver it). */
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

void pg__bridge_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
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
