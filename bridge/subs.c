/*
 * The bridge's subscription table: one entry per topic filter, refcounted by
 * the owner's pg_bridge_subscribe/unsubscribe calls (uthash keyed by filter).
 *
 * Each filter carries its own MQTT subscription identifier (next_sub_id, which
 * wraps below the largest variable byte integer), so messages.c can tell the
 * broker's copies of one message apart. A SUBSCRIBE goes out from
 * subscribe_one() only, one filter per packet, QoS 1; its SUBACK comes back
 * to pg__bridge_on_subscribe(), which finds the entry by scanning the table
 * for the packet's mid. A filter is live once granted on the current
 * connection; a lost session makes every filter not live, and the next
 * connection re-subscribes them all.
 *
 * Readiness: the filters subscribed when a connection comes up (restored ones,
 * and those on_state(1) adds) are marked restoring; b->restoring counts them
 * and the connection is ready when the last one is answered or dropped.
 *
 * Waiters (pg_bridge_subscribe_wait) hear once: granted, refused, timed out,
 * or PG_EBUSY when the filter is dropped or the bridge freed. They survive a
 * lost connection. Owns b->subs, b->next_sub_id, b->restoring.
 */
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>
#include <uthash.h>

#include "bridge_internal.h"

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
void pg__bridge_subs_lost(pg_bridge *b)
{
    struct sub *s, *tmp;
    pg__bridge_group_reset(b);
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
        pg__bridge_log(b, 1, "ready: subscriptions acknowledged by the broker");
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

void pg__bridge_subs_expire(pg_bridge *b, int64_t now)
{
    struct sub *s, *stmp;
    HASH_ITER(hh, b->subs, s, stmp) {
        if (s->nwaiters)
            expire_waiters(s, now);
    }
}

/* The one place a SUBSCRIBE is sent: s's filter alone, with its subscription identifier; s->mid is its packet. */
static int subscribe_one(pg_bridge *b, struct sub *s)
{
    mosquitto_property *props = NULL;
    int rc = mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, s->id);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_subscribe_v5(b->mosq, &s->mid, s->filter, 1, 0, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
        pg__bridge_log(b, 3, "subscribe %s failed: %s", s->filter, mosquitto_strerror(rc));
        return PG_EBUSY;
    }
    return 0;
}

void pg__bridge_subs_resubscribe(pg_bridge *b)
{
    struct sub *s, *tmp;
    HASH_ITER(hh, b->subs, s, tmp) {
        subscribe_one(b, s);
    }
}

void pg__bridge_subs_count_restoring(pg_bridge *b)
{
    struct sub *s, *tmp;
    b->restoring = 0;
    HASH_ITER(hh, b->subs, s, tmp) {
        s->restoring = s->mid != 0;
        b->restoring += (size_t)s->restoring;
    }
    if (b->restoring == 0)
        pg__bridge_log(b, 1, "ready: no subscriptions to restore");
}

/* A SUBACK: its mid names the one filter it answers (a SUBSCRIBE carries one filter, so granted[0] is its code). */
void pg__bridge_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
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
            pg__bridge_log(b, 3, "broker refused subscription %s (reason 0x%02x)", s->filter,
                           count > 0 ? granted[0] : 0);
        finish_waiters(s, s->live ? 0 : PG_EDENIED);
        return;
    }
}

void pg__bridge_subs_free(pg_bridge *b)
{
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
    pg__bridge_group_reset(b);
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
    pg__bridge_group_reset(b);
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
