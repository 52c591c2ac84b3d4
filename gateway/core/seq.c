/*
 * Gap detection: no message the broker acknowledged is lost without the
 * subscriber being told.
 *
 * Every message a gateway publishes for an app (pg_publish_topic) carries
 * three user properties: `origin` (this process: node id and a random
 * incarnation, so a restarted node is a new origin), `seq` (a per-origin
 * counter) and `prev` (the seq of the origin's last message on the same
 * topic that the broker had acknowledged when this one was sent, 0 when it
 * does not know one). A receiving gateway keeps, per local channel (exact
 * name or wildcard filter), the highest seq it saw of each origin (for a
 * filter: of each origin and channel). A message whose prev is above that
 * follows a message the broker acknowledged and this process never received:
 * the broker dropped it (a full client queue, max_queued_bytes) or this
 * process was disconnected meanwhile. Its subscribers then get an explicit
 * gap signal (pg_session_gap, core/session.c) before the message.
 *
 * Only acknowledged messages become a prev: a publish the broker refused
 * (PUBACK >= 0x80), that timed out or that was lost with the connection was
 * never promised to anyone, so it never makes a receiver report a gap (a
 * false gap closes every Pusher subscriber of the channel with 4200). Messages
 * in flight together carry the prev acknowledged when each was sent, which
 * may be older than the message before them: a receiver sees prev below its
 * last and reports nothing, and a loss among them shows at the first message
 * sent after its acknowledgement.
 *
 * Invariants and limits:
 *  - A table belongs to its channel: it starts empty when the channel gets
 *    its first local subscriber and dies with the channel, so what was
 *    published while nobody here listened is never reported as a gap.
 *  - Every table holds at most gap_tracking_max entries and forgets the least
 *    recently used one first: a publisher that forgot a topic sends prev 0
 *    ("unknown") and the receiver starts over from that message; a receiver
 *    that forgot an origin does the same. Forgetting can hide a gap, never
 *    invent one.
 *  - A gap is seen when the origin's next message on the channel arrives: the
 *    very last messages before a long silence are reported late, or (when
 *    the origin stops for good) only through the broker's dropped counter.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "config.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/seq.h"
#include "log.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

struct pg_seq {
    char *key; /* topic (publisher) / origin or "origin\nchannel" (receiver) */
    uint64_t last;
    UT_hash_handle hh; /* insertion order = least recently used first */
};

int pg_seq_init(struct pg_gw *gw)
{
    char inc[13];
    if (pg_random_token(inc, sizeof inc - 1) != 0)
        return PG_EIO;
    inc[sizeof inc - 1] = '\0';
    snprintf(gw->origin, sizeof gw->origin, "%s.%s", gw->node_id, inc);
    gw->broker_dropped = -1;
    /* retained and refreshed by the broker every sys_interval; a broker whose ACL refuses it only logs that */
    if (pg_bridge_subscribe(gw->bridge, PG_TOPIC_DROPPED_TOPIC) != 0)
        pg_log(PG_LOG_WARN, "seq", "cannot subscribe to %s", PG_TOPIC_DROPPED_TOPIC);
    return 0;
}

/* Moves e to the most recently used end, or adds it; drops the oldest entries over the bound. */
static void touch(struct pg_gw *gw, struct pg_seq **table, struct pg_seq *e, int present)
{
    if (present)
        HASH_DELETE(hh, *table, e);
    HASH_ADD_KEYPTR(hh, *table, e->key, strlen(e->key), e);
    while (HASH_COUNT(*table) > (unsigned)gw->cfg->gap_tracking_max) {
        struct pg_seq *old = *table;
        HASH_DELETE(hh, *table, old);
        free(old->key);
        free(old);
    }
}

void pg_seq_stamp(struct pg_gw *gw, const char *topic, struct pg_seq_stamp *st)
{
    struct pg_seq *e;
    HASH_FIND_STR(gw->seq_out, topic, e);
    st->n = ++gw->seq_next;
    snprintf(st->seq, sizeof st->seq, "%" PRIu64, st->n);
    snprintf(st->prev, sizeof st->prev, "%" PRIu64, e ? e->last : (uint64_t)0);
}

void pg_seq_published(struct pg_gw *gw, const char *topic, const struct pg_seq_stamp *st)
{
    struct pg_seq *e;
    HASH_FIND_STR(gw->seq_out, topic, e);
    int present = e != NULL;
    if (!e) {
        if (!(e = calloc(1, sizeof *e)) || !(e->key = strdup(topic))) {
            free(e);
            return; /* the next message on topic says prev 0: receivers start over, nothing is invented */
        }
    }
    if (st->n > e->last) /* acknowledgements of messages in flight together may come back in any order */
        e->last = st->n;
    touch(gw, &gw->seq_out, e, present);
}

int pg_seq_parse(const struct pg_bridge_prop *props, size_t nprops, struct pg_seq_in *in)
{
    const char *seq = pg_prop_get(props, nprops, "seq", NULL), *prev = pg_prop_get(props, nprops, "prev", NULL);
    in->origin = pg_prop_get(props, nprops, "origin", NULL);
    if (!in->origin || !seq || !prev)
        return 0;
    char *end;
    in->seq = strtoull(seq, &end, 10);
    if (*end || !in->seq)
        return 0;
    in->prev = strtoull(prev, &end, 10);
    return *end ? 0 : 1;
}

int pg_seq_check(struct pg_gw *gw, struct pg_seq **table, const struct pg_seq_in *in, const char *channel)
{
    char stack[256];
    size_t ol = strlen(in->origin), cl = channel ? strlen(channel) + 1 : 0;
    char *key = ol + cl < sizeof stack ? stack : malloc(ol + cl + 1);
    if (!key)
        return 0;
    memcpy(key, in->origin, ol);
    if (channel) {
        key[ol] = '\n';
        memcpy(key + ol + 1, channel, cl - 1);
    }
    key[ol + cl] = '\0';
    struct pg_seq *e;
    int gap = 0;
    HASH_FIND_STR(*table, key, e);
    if (e && in->seq <= e->last)
        goto out; /* a repeat (QoS 1 redelivery): nothing new, nothing missed */
    if (e)
        gap = in->prev > e->last; /* acknowledged before this one was sent, never seen here */
    int present = e != NULL;
    if (!e && (!(e = calloc(1, sizeof *e)) || !(e->key = strdup(key)))) {
        free(e);
        goto out;
    }
    e->last = in->seq;
    touch(gw, table, e, present);
out:
    if (key != stack)
        free(key);
    return gap;
}

void pg_seq_table_free(struct pg_seq **table)
{
    struct pg_seq *e, *tmp;
    HASH_ITER(hh, *table, e, tmp) {
        HASH_DELETE(hh, *table, e);
        free(e->key);
        free(e);
    }
}

void pg_seq_free(struct pg_gw *gw)
{
    pg_seq_table_free(&gw->seq_out);
}

void pg_seq_on_dropped(struct pg_gw *gw, const void *payload, size_t len)
{
    char buf[32];
    if (len && len < sizeof buf) {
        memcpy(buf, payload, len);
        buf[len] = '\0';
        char *end;
        long long v = strtoll(buf, &end, 10);
        if (!*end && v >= 0) {
            if (gw->broker_dropped >= 0 && v > gw->broker_dropped)
                pg_log(PG_LOG_WARN, "seq", "the broker dropped %lld messages (full client queues: max_queued_bytes)",
                       v - gw->broker_dropped);
            gw->broker_dropped = v;
        }
    }
}
