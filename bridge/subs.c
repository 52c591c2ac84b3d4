/*
 * The bridge's subscription table: one entry per topic filter, refcounted by
 * the owner's pg_bridge_subscribe/unsubscribe calls (uthash keyed by filter).
 *
 * Batching: a filter subscribed (or dropped) while connected is not sent at
 * once; it waits in b->subq (b->unsubq) until pg__bridge_subs_flush(), which
 * the owner reaches once per loop pass through pg_bridge_flush() (and the
 * bridge itself after reading the socket, on every tick, and before every
 * publish, so that a publish never overtakes a subscription change made
 * before it: MQTT keeps one connection's packets in order). A flush sends
 * every queued UNSUBSCRIBE first, then the SUBSCRIBEs, each packet carrying up
 * to PG_BRIDGE_MAX_FILTERS_PER_PACKET filters and no more bytes than the
 * broker's Maximum Packet Size (CONNACK) or PG_BRIDGE_MAX_PACKET_BYTES. Per
 * filter, what the owner did keeps its order: the UNSUBSCRIBE of a dropped
 * entry goes before the SUBSCRIBE of the entry that replaced it, and a filter
 * subscribed and dropped within one pass is never sent at all (the broker
 * ends where it would have ended). Filters of distinct entries commute.
 *
 * Subscription identifiers: MQTT v5 gives one identifier per SUBSCRIBE
 * packet, and messages.c tells the broker's copies of one message apart by
 * their identifiers, so the filters sharing a packet (and its identifier,
 * next_sub_id, which wraps below the largest variable byte integer) must
 * never match one topic together: a packet carries either filters without
 * wildcards only (two of them never match the same topic) or wildcard filters
 * that pairwise overlap on no topic (filters_overlap).
 *
 * Options: a SUBSCRIBE carries one options byte for all its filters
 * (libmosquitto's mosquitto_subscribe_multiple), so filters with No Local and
 * filters without never share a packet either.
 *
 * SUBACK: each SUBSCRIBE in flight is a struct inflight in b->inflight,
 * keyed by its packet id (mid), holding its filters in packet order, so
 * pg__bridge_on_subscribe() finds them in O(1) and gives each filter its own
 * reason code from the granted list: a refused filter fails only its own
 * waiters. An entry dropped while in flight leaves an empty slot behind.
 * UNSUBACKs are not tracked (nobody waits for them).
 *
 * A filter is live once granted on the current connection; a lost session
 * makes every filter not live and empties the queues and b->inflight (the
 * session is clean: the broker forgot them too), and the next connection
 * re-subscribes them all, batched like any other pass.
 *
 * Readiness: the filters queued or in flight when a connection comes up
 * (restored ones, and those on_state(1) adds) are marked restoring;
 * b->restoring counts them and the connection is ready when the last one is
 * answered, dropped or could not be sent.
 *
 * Waiters (pg_bridge_subscribe_wait) hear once: granted, refused, timed out,
 * or PG_EBUSY when the filter is dropped or the bridge freed. They survive a
 * lost connection. The filters that have waiters are also on b->waiting,
 * so the tick's timeouts never walk the whole table. Owns b->subs, b->subq,
 * b->unsubq, b->inflight, b->waiting, b->next_sub_id, b->restoring.
 */
#include <stdlib.h>
#include <string.h>

#include <mqtt_protocol.h>
#include <uthash.h>
#include <utlist.h>

#include "bridge_internal.h"

/* fixed header (1 + 4), packet id (2), properties length (1), subscription identifier (1 + 4) */
#define PACKET_OVERHEAD 13

struct waiter {
    pg_bridge_ack_cb cb;
    void *ud;
    int64_t deadline;
};

struct sub {
    char *filter; /* hash key */
    uint32_t refs;
    uint32_t id; /* MQTT subscription identifier of the SUBSCRIBE that last carried it */
    int wildcard;  /* holds + or #, or is a shared subscription: may match a topic another filter matches */
    int live;      /* the broker granted it on the current connection */
    int restoring; /* subscribed when the connection came up: its SUBACK is part of being ready */
    int queued;    /* in b->subq, waiting for the next flush */
    struct sub *qprev, *qnext;  /* b->subq (utlist) */
    struct inflight *inflight;  /* the SUBSCRIBE in flight that carries it, NULL if none */
    size_t slot;                /* its index in inflight->slots */
    struct waiter *waiters;     /* owners waiting for the SUBACK */
    size_t nwaiters;
    int waiting;                /* in b->waiting: it has waiters (nwaiters > 0) */
    int no_local;               /* PG_BRIDGE_SUB_NO_LOCAL: goes out with the No Local option */
    struct sub *wprev, *wnext;  /* b->waiting (utlist) */
    UT_hash_handle hh;
};

/* One filter of a SUBSCRIBE in flight; w/nw/result are filled when its SUBACK is taken apart. */
struct slot {
    struct sub *s; /* NULL once the entry was dropped */
    struct waiter *w;
    size_t nw;
    int result;
};

struct inflight {
    int mid; /* hash key */
    size_t n;
    UT_hash_handle hh;
    struct slot slots[];
};

struct unsubq {
    char **filters; /* owned */
    size_t n, cap;
};

/* s has waiters from now on: the tick's timeouts look at it (pg__bridge_subs_expire). */
static void waiting_on(pg_bridge *b, struct sub *s)
{
    if (s->waiting)
        return;
    DL_APPEND2(b->waiting, s, wprev, wnext);
    s->waiting = 1;
}

/* s has no waiter left. */
static void waiting_off(pg_bridge *b, struct sub *s)
{
    if (!s->waiting)
        return;
    DL_DELETE2(b->waiting, s, wprev, wnext);
    s->waiting = 0;
}

/* Tell every owner waiting on s the outcome; the array is detached first so callbacks may subscribe again. */
static void finish_waiters(pg_bridge *b, struct sub *s, int result)
{
    struct waiter *w = s->waiters;
    size_t n = s->nwaiters;
    s->waiters = NULL;
    s->nwaiters = 0;
    waiting_off(b, s);
    for (size_t i = 0; i < n; i++)
        w[i].cb(w[i].ud, result);
    free(w);
}

static void unqueue(pg_bridge *b, struct sub *s)
{
    if (!s->queued)
        return;
    DL_DELETE2(b->subq, s, qprev, qnext);
    s->queued = 0;
}

static void unsubq_clear(pg_bridge *b)
{
    struct unsubq *q = b->unsubq;
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->filters[i]);
    free(q->filters);
    free(q);
    b->unsubq = NULL;
}

/* Forget every SUBSCRIBE in flight: its SUBACK will never come (session lost) or no longer matters. */
static void inflight_clear(pg_bridge *b)
{
    struct inflight *f, *tmp;
    HASH_ITER(hh, b->inflight, f, tmp) {
        HASH_DEL(b->inflight, f);
        for (size_t i = 0; i < f->n; i++)
            if (f->slots[i].s)
                f->slots[i].s->inflight = NULL;
        free(f);
    }
}

/* Waiters survive a lost connection: the filter is re-subscribed on reconnect, or they time out. */
void pg__bridge_subs_lost(pg_bridge *b)
{
    struct sub *s, *tmp;
    pg__bridge_group_reset(b);
    b->restoring = 0;
    inflight_clear(b);
    unsubq_clear(b);
    HASH_ITER(hh, b->subs, s, tmp) {
        unqueue(b, s);
        s->live = 0;
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

/*
 * Times out every waiter whose deadline passed; the others keep waiting. Only the filters with waiters are
 * looked at (b->waiting), not the whole table. All expired waiters are taken out of their filters before the
 * first callback runs: a callback may drop any filter, this one or the next in the list.
 */
void pg__bridge_subs_expire(pg_bridge *b, int64_t now)
{
    struct waiter *expired = NULL;
    size_t nexp = 0, cap = 0;
    struct sub *s, *tmp;
    DL_FOREACH_SAFE2(b->waiting, s, tmp, wnext) {
        size_t keep = 0;
        for (size_t i = 0; i < s->nwaiters; i++) {
            struct waiter *w = &s->waiters[i];
            if (now < w->deadline) {
                s->waiters[keep++] = *w;
                continue;
            }
            if (nexp == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct waiter *e = realloc(expired, ncap * sizeof *e);
                if (!e) { /* it keeps waiting; the next tick tries again */
                    s->waiters[keep++] = *w;
                    continue;
                }
                expired = e;
                cap = ncap;
            }
            expired[nexp++] = *w;
        }
        s->nwaiters = keep;
        if (!keep)
            waiting_off(b, s);
    }
    for (size_t i = 0; i < nexp; i++)
        expired[i].cb(expired[i].ud, PG_ETIMEDOUT);
    free(expired);
}

/* What libmosquitto would refuse for a whole packet is refused here for the one filter, never sent. */
static int filter_check(const char *filter)
{
    int rc = mosquitto_sub_topic_check(filter);
    return rc == MOSQ_ERR_SUCCESS ? mosquitto_validate_utf8(filter, (int)strlen(filter)) : rc;
}

/* s goes out with the next flush. */
static void queue_subscribe(pg_bridge *b, struct sub *s)
{
    if (s->queued || s->inflight)
        return;
    int rc = filter_check(s->filter);
    if (rc != MOSQ_ERR_SUCCESS) { /* logged as when it was sent alone; its waiters time out */
        pg__bridge_log(b, 3, "subscribe %s failed: %s", s->filter, mosquitto_strerror(rc));
        return;
    }
    s->queued = 1;
    DL_APPEND2(b->subq, s, qprev, qnext);
}

/* filter's UNSUBSCRIBE goes out with the next flush (at once if it cannot be queued). */
static void queue_unsubscribe(pg_bridge *b, const char *filter)
{
    struct unsubq *q = b->unsubq;
    if (filter_check(filter) != MOSQ_ERR_SUCCESS) /* it was never subscribed either */
        return;
    if (!q && (q = b->unsubq = calloc(1, sizeof *q)) == NULL)
        goto now;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        char **f = realloc(q->filters, cap * sizeof *f);
        if (!f)
            goto now;
        q->filters = f;
        q->cap = cap;
    }
    if ((q->filters[q->n] = strdup(filter)) == NULL)
        goto now;
    q->n++;
    return;
now:
    mosquitto_unsubscribe_v5(b->mosq, NULL, filter, NULL);
}

void pg__bridge_subs_resubscribe(pg_bridge *b)
{
    struct sub *s, *tmp;
    HASH_ITER(hh, b->subs, s, tmp) {
        queue_subscribe(b, s);
    }
}

void pg__bridge_subs_count_restoring(pg_bridge *b)
{
    struct sub *s, *tmp;
    b->restoring = 0;
    HASH_ITER(hh, b->subs, s, tmp) {
        s->restoring = s->queued || s->inflight;
        b->restoring += (size_t)s->restoring;
    }
    if (b->restoring == 0)
        pg__bridge_log(b, 1, "ready: no subscriptions to restore");
}

/* 1 if some topic may match both filters. Conservative: $-topics and shared subscriptions are not told apart. */
static int filters_overlap(const char *a, const char *b)
{
    if (!strncmp(a, "$share/", 7) || !strncmp(b, "$share/", 7))
        return 1;
    for (;;) {
        size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
        if ((la == 1 && *a == '#') || (lb == 1 && *b == '#'))
            return 1;
        if (!(la == 1 && *a == '+') && !(lb == 1 && *b == '+') && (la != lb || memcmp(a, b, la) != 0))
            return 0;
        a += la;
        b += lb;
        if (!*a && !*b)
            return 1;
        if (!*a || !*b) /* one ends here: the other matches too only if all it has left is "/#" */
            return strcmp(*a ? a : b, "/#") == 0;
        a++;
        b++;
    }
}

/* The byte budget of one packet: ours, or the broker's Maximum Packet Size when smaller. */
static size_t packet_budget(const pg_bridge *b)
{
    size_t limit = PG_BRIDGE_MAX_PACKET_BYTES;
    if (b->max_packet && b->max_packet < limit)
        limit = b->max_packet;
    return limit;
}

/* Take the next SUBSCRIBE's filters off b->subq into batch (in queue order); returns how many. */
static size_t take_batch(pg_bridge *b, struct sub **batch)
{
    size_t n = 0, bytes = PACKET_OVERHEAD, budget = packet_budget(b), looked = 0;
    int wildcard = b->subq->wildcard, no_local = b->subq->no_local;
    struct sub *s, *tmp;
    DL_FOREACH_SAFE2(b->subq, s, tmp, qnext) {
        /* a wildcard that overlaps one already taken waits for a later packet; the scan is bounded */
        if (++looked > 4 * PG_BRIDGE_MAX_FILTERS_PER_PACKET)
            break;
        if (s->wildcard != wildcard || s->no_local != no_local) /* one options byte per packet */
            continue;
        size_t need = 2 + strlen(s->filter) + 1;
        if (n > 0 && bytes + need > budget)
            break;
        int clash = 0;
        for (size_t i = 0; wildcard && i < n && !clash; i++)
            clash = filters_overlap(s->filter, batch[i]->filter);
        if (clash)
            continue;
        unqueue(b, s);
        batch[n++] = s;
        bytes += need;
        if (n == PG_BRIDGE_MAX_FILTERS_PER_PACKET)
            break;
    }
    return n;
}

/* One SUBSCRIBE with batch's filters (QoS 1) under one fresh subscription identifier. */
static void send_batch(pg_bridge *b, struct sub **batch, size_t n)
{
    char *filters[PG_BRIDGE_MAX_FILTERS_PER_PACKET];
    mosquitto_property *props = NULL;
    uint32_t id = b->next_sub_id++;
    int mid = 0, rc = MOSQ_ERR_NOMEM;
    if (b->next_sub_id > 268435455) /* largest MQTT variable byte integer */
        b->next_sub_id = 1;
    struct inflight *f = malloc(sizeof *f + n * sizeof f->slots[0]), *old;
    for (size_t i = 0; i < n; i++)
        filters[i] = batch[i]->filter;
    if (f && (rc = mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, id)) == MOSQ_ERR_SUCCESS)
        rc = mosquitto_subscribe_multiple(b->mosq, &mid, (int)n, filters, 1,
                                          batch[0]->no_local ? MQTT_SUB_OPT_NO_LOCAL : 0, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (n == 1)
            pg__bridge_log(b, 3, "subscribe %s failed: %s", batch[0]->filter, mosquitto_strerror(rc));
        else
            pg__bridge_log(b, 3, "subscribe of %zu filters (%s, ...) failed: %s", n, batch[0]->filter,
                           mosquitto_strerror(rc));
        for (size_t i = 0; i < n; i++) /* never answered: its waiters time out, readiness does not wait */
            restored_one(b, batch[i]);
        free(f);
        return;
    }
    /* a packet id reused while an older SUBSCRIBE still has no SUBACK: that one is given up */
    HASH_FIND_INT(b->inflight, &mid, old);
    if (old) {
        HASH_DEL(b->inflight, old);
        for (size_t i = 0; i < old->n; i++)
            if (old->slots[i].s)
                old->slots[i].s->inflight = NULL;
        free(old);
    }
    f->mid = mid;
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        f->slots[i] = (struct slot){.s = batch[i]};
        batch[i]->inflight = f;
        batch[i]->slot = i;
        batch[i]->id = id;
    }
    HASH_ADD_INT(b->inflight, mid, f);
}

/* UNSUBSCRIBEs of up to PG_BRIDGE_MAX_FILTERS_PER_PACKET queued filters each, in queue order. */
static void send_unsubscribes(pg_bridge *b)
{
    struct unsubq *q = b->unsubq;
    size_t budget = packet_budget(b);
    for (size_t i = 0; i < q->n;) {
        size_t n = 0, bytes = PACKET_OVERHEAD;
        while (i + n < q->n && n < PG_BRIDGE_MAX_FILTERS_PER_PACKET) {
            size_t need = 2 + strlen(q->filters[i + n]);
            if (n > 0 && bytes + need > budget)
                break;
            bytes += need;
            n++;
        }
        int rc = mosquitto_unsubscribe_multiple(b->mosq, NULL, (int)n, q->filters + i, NULL);
        if (rc != MOSQ_ERR_SUCCESS)
            pg__bridge_log(b, 2, "unsubscribe of %zu filters failed: %s", n, mosquitto_strerror(rc));
        i += n;
    }
    unsubq_clear(b);
}

void pg__bridge_subs_flush(pg_bridge *b)
{
    struct sub *batch[PG_BRIDGE_MAX_FILTERS_PER_PACKET];
    if (!b->connected || (!b->subq && !b->unsubq))
        return;
    if (b->unsubq)
        send_unsubscribes(b);
    while (b->subq) {
        size_t n = take_batch(b, batch);
        if (n > 0)
            send_batch(b, batch, n);
    }
}

void pg_bridge_flush(pg_bridge *b)
{
    pg__bridge_subs_flush(b);
    pg__bridge_write(b, 0);
}

/* A SUBACK: its mid names the SUBSCRIBE it answers; granted[i] is the reason code of that packet's i-th filter. */
void pg__bridge_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                             const mosquitto_property *props)
{
    pg_bridge *b = obj;
    struct inflight *f;
    (void)mosq;
    (void)props;
    HASH_FIND_INT(b->inflight, &mid, f);
    if (!f)
        return;
    HASH_DEL(b->inflight, f);
    /* every entry's state first, then the owners: a callback may subscribe or drop any filter of the packet */
    for (size_t i = 0; i < f->n; i++) {
        struct slot *sl = &f->slots[i];
        struct sub *s = sl->s;
        if (!s)
            continue;
        int code = i < (size_t)(count > 0 ? count : 0) ? granted[i] : -1;
        s->inflight = NULL;
        s->live = code >= 0 && code < 0x80;
        restored_one(b, s);
        if (!s->live)
            pg__bridge_log(b, 3, "broker refused subscription %s (reason 0x%02x)", s->filter, code >= 0 ? code : 0);
        sl->w = s->waiters;
        sl->nw = s->nwaiters;
        sl->result = s->live ? 0 : PG_EDENIED;
        s->waiters = NULL;
        s->nwaiters = 0;
        waiting_off(b, s);
    }
    for (size_t i = 0; i < f->n; i++) {
        struct slot *sl = &f->slots[i];
        for (size_t k = 0; k < sl->nw; k++)
            sl->w[k].cb(sl->w[k].ud, sl->result);
        free(sl->w);
    }
    free(f);
}

void pg__bridge_subs_free(pg_bridge *b)
{
    struct sub *s, *tmp, *subs = b->subs;
    inflight_clear(b);
    unsubq_clear(b);
    b->subq = NULL;
    b->subs = NULL;
    HASH_ITER(hh, subs, s, tmp) {
        if (s->nwaiters)
            finish_waiters(b, s, PG_EBUSY);
    }
    HASH_ITER(hh, subs, s, tmp) {
        HASH_DEL(subs, s);
        free(s->waiters);
        free(s->filter);
        free(s);
    }
}

int pg_bridge_subscribe_opts(pg_bridge *b, const char *filter, unsigned opts)
{
    struct sub *s;
    int no_local = (opts & PG_BRIDGE_SUB_NO_LOCAL) != 0, shared = !strncmp(filter, "$share/", 7);
    if ((opts & ~PG_BRIDGE_SUB_NO_LOCAL) || (no_local && shared))
        return PG_EINVAL;
    HASH_FIND_STR(b->subs, filter, s);
    if (s) {
        if (s->no_local != no_local) /* one subscription per filter at the broker, so one set of options */
            return PG_EINVAL;
        s->refs++;
        return 0;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->filter = strdup(filter))) {
        free(s);
        return PG_ENOMEM;
    }
    s->refs = 1;
    s->no_local = no_local;
    s->wildcard = strpbrk(filter, "+#") != NULL || shared;
    HASH_ADD_KEYPTR(hh, b->subs, s->filter, strlen(s->filter), s);
    pg__bridge_group_reset(b);
    if (b->connected)
        queue_subscribe(b, s);
    return 0;
}

int pg_bridge_subscribe(pg_bridge *b, const char *filter)
{
    return pg_bridge_subscribe_opts(b, filter, 0);
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
    waiting_on(b, s);
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
    if (s->inflight)
        s->inflight->slots[s->slot].s = NULL;
    if (s->queued) /* never sent: the broker has nothing to forget */
        unqueue(b, s);
    else if (b->connected)
        queue_unsubscribe(b, s->filter);
    if (s->nwaiters)
        finish_waiters(b, s, PG_EBUSY);
    free(s->waiters);
    free(s->filter);
    free(s);
    return 0;
}
