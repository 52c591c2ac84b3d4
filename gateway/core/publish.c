/*
 * Publishing on behalf of clients and REST callers, and the load that
 * refuses publishes at the door.
 *
 * Every publish is stamped with `ts` (wall clock: how late receivers get it)
 * and the sequence properties `origin`, `seq`, `prev` (core/seq.c); the seq
 * becomes its topic's prev only once the broker acknowledged it.
 *
 * Load: measured every tick of the loop (pg_publish_load_tick) over the
 * out-queues of the sessions that have output (gw->loaded). When the gateway
 * itself is behind (its out-queues hold more than max_pending_bytes, or on
 * average more than half of behind_queue_messages or of max_queue_bytes, or
 * broker input is paused, or broker messages arrive later than
 * max_inbound_lag_ms), it refuses new publishes (503 with Retry-After, or the
 * protocol's error) instead of closing slow readers. Broker input paused by
 * core/session.c (out-queues 3/4 full while their sockets drain; "full" as
 * pg_behind_messages says) resumes here once the queues are under 1/4 again,
 * or after at most half a publish timeout or keepalive. While any live peer
 * node says it is behind, this node refuses too (cluster/load.c): it must not
 * acknowledge what the peer cannot deliver. A session whose socket takes no
 * bytes for slow_consumer_ms while output waits is closed (1013); one whose
 * socket has been full for less than slow_consumer_grace_ms still counts as
 * reading (core/session.c, pg_session_stuck).
 *
 * local_first: a publish the bridge took is fanned out to this process's own
 * subscribers at once, with the properties the broker would bring back (ts,
 * origin, seq, prev: the gap tracking sees it as it would see the broker's
 * copy). The broker does not send that copy back (the channel subscriptions
 * carry No Local: server.c), and one that comes on another filter is dropped
 * (dispatch.c: its origin is this process's). It saves the broker round trip
 * for local subscribers; the price is that a publish the broker then refuses,
 * loses or never acknowledges (403, 503, 504) was delivered here all the
 * same. Other processes get it from the broker as always.
 *
 * State: the load fields of struct pg_gw (pending_*, behind, rx_paused_ms,
 * late_until_ms); gw->seq_* through core/seq.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/load.h"
#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/fanout.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/publish.h"
#include "core/seq.h"
#include "core/session.h"
#include "log.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "pushgate_bridge.h"

/* The properties of one publish, names and values: the caller's (at most 12) and ts, origin, seq, prev. */
#define PUBLISH_PROPS 20

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

/* local_first: topic's message to this process's own subscribers, as the broker's copy would reach them. */
static void deliver_here(struct pg_gw *gw, const char *topic, const void *payload, size_t len, const char *const *all)
{
    struct pg_bridge_prop p[PUBLISH_PROPS / 2];
    size_t n = 0;
    for (; n < PUBLISH_PROPS / 2 && all[2 * n]; n++) {
        p[n].name = all[2 * n];
        p[n].value = all[2 * n + 1];
    }
    struct pg_topic_ref r;
    if (pg_topic_parse(gw->cfg->topic_root, topic, &r) != PG_TOPIC_NONE)
        pg_fanout_topic(gw, &r, payload, len, p, n);
}

int pg_publish_topic(struct pg_gw *gw, const char *app, const char *topic, const void *payload, size_t len,
                     const char *const *props, pg_bridge_ack_cb cb, void *cb_ud)
{
    const char *all[PUBLISH_PROPS + 1];
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
    if (rc == 0 && gw->cfg->local_first)
        deliver_here(gw, topic, payload, len, all);
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

const char *pg_publish_refusal(struct pg_gw *gw, struct pg_app *app)
{
    const char *why = pg_load_local_behind(gw);
    /* a peer that cannot deliver what this node would acknowledge (cluster/load.c) */
    if (!why && pg_load_peer_behind(gw))
        why = "gateway overloaded: another gateway node is behind, retry later";
    /* what this node admitted and some node has not processed yet: the bound of every node's lag */
    if (!why && gw->cfg->max_unconfirmed_publishes &&
        pg_load_unconfirmed(gw) >= (uint64_t)gw->cfg->max_unconfirmed_publishes)
        why = "gateway overloaded: earlier publishes not yet delivered by every gateway node, retry later";
    if (why && app)
        app->stats.shed++;
    else if (app)
        pg_load_admitted(gw); /* the caller publishes now */
    return why;
}

/*
 * Every tick: what all out-queues hold, which sessions' sockets do not drain
 * (closed after slow_consumer_ms), and whether the gateway itself is behind.
 * Only the sessions on gw->loaded (output queued or messages lost since they
 * joined, core/session.c) are visited: one whose queue is empty adds nothing
 * to the sums, and it leaves the list here once it owes no gap signal.
 */
void pg_publish_load_tick(struct pg_gw *gw)
{
    const struct pg_config *cfg = gw->cfg;
    int64_t now = pg_mono_ms();
    uint64_t bytes = 0, free_bytes = 0, max_free_bytes = 0;
    size_t msgs = 0, free_msgs = 0, nstuck = 0, max_free_msgs = 0, over_quarter = 0,
           full_msgs = pg_behind_messages(cfg);
    lws_dll2_t *d, *next;
    for (d = lws_dll2_get_head(&gw->loaded); d; d = next) {
        next = d->next; /* d may leave the list, or its session close */
        struct pg_session *s = lws_container_of(d, struct pg_session, loaded);
        if (!s->q.count || s->close_code) {
            s->choked_since_ms = 0;
            if (!s->q.count && !s->lost)
                lws_dll2_remove(&s->loaded);
            continue;
        }
        int stuck = 0;
        if (!s->wsi)
            s->choked_since_ms = 0;
        else
            stuck = pg_session_stuck(s, now);
        if (s->choked_since_ms && now - s->choked_since_ms >= cfg->slow_consumer_ms) {
            char why[64];
            snprintf(why, sizeof why, "socket not drained for %lld ms", (long long)(now - s->choked_since_ms));
            pg_session_slow_close(s, why, "slow consumer: socket not drained, reconnect later");
            continue;
        }
        if (stuck) {
            nstuck++;
        } else {
            /*
             * Its socket takes bytes (or was full for less than slow_consumer_grace_ms: between two of its reader's
             * reads), and the loop writes to it every round: when such queues are long on average, the gateway is
             * behind its readers. Stuck sockets say nothing about the gateway and are left out. The pause ends as it
             * starts (core/session.c): once the sockets that take bytes right now hold under 1/4, and no longer most
             * of those that read.
             */
            size_t fan_msgs = pg_outq_fanout_count(&s->q), fan_bytes = pg_outq_fanout_bytes(&s->q);
            free_bytes += fan_bytes;
            free_msgs += fan_msgs;
            if (fan_msgs >= full_msgs / 4 || fan_bytes >= cfg->max_queue_bytes / 4)
                over_quarter++;
            if (!s->choked_since_ms && fan_msgs > max_free_msgs)
                max_free_msgs = fan_msgs;
            if (!s->choked_since_ms && fan_bytes > max_free_bytes)
                max_free_bytes = fan_bytes;
        }
        bytes += s->q.bytes;
        msgs += s->q.count;
    }
    /*
     * The average is over every session that reads, those with nothing queued (not on gw->loaded) included: one
     * slow reader's long queue is its own matter (a gap signal, in the end 1013), not the gateway being behind.
     */
    size_t readers = gw->nsessions > nstuck ? gw->nsessions - nstuck : 0;
    gw->pending_bytes = bytes;
    gw->pending_msgs = msgs;
    const char *behind = NULL;
    /* our own publishes' PUBACKs and the keepalive's PINGRESP wait behind a pause: keep it well under both */
    int64_t pause_max_ms = cfg->publish_timeout_ms / 2;
    if (pause_max_ms > cfg->broker_keepalive_s * 500)
        pause_max_ms = cfg->broker_keepalive_s * 500;
    int drained =
        max_free_msgs < full_msgs / 4 && max_free_bytes < cfg->max_queue_bytes / 4 && over_quarter * 2 <= readers;
    if (gw->rx_paused_ms && (!gw->mqtt_wsi || drained || now - gw->rx_paused_ms > pause_max_ms)) {
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
    else if (readers && (free_msgs / readers > full_msgs / 2 || free_bytes / readers > cfg->max_queue_bytes / 2))
        behind = "gateway overloaded: its sessions' out-queues are half full, retry later";
    if (behind != gw->behind)
        pg_log(behind ? PG_LOG_WARN : PG_LOG_INFO, "server", "%s (pending %llu bytes in %zu messages)",
               behind ? behind : "caught up: publishes accepted again", (unsigned long long)bytes, msgs);
    gw->behind = behind;
    /* sessions that lost messages while the gateway was behind hear of it once their queue has room again */
    if (!behind) {
        for (d = lws_dll2_get_head(&gw->loaded); d; d = next) {
            next = d->next;
            struct pg_session *s = lws_container_of(d, struct pg_session, loaded);
            if (s->lost && !s->close_code && s->q.count < (size_t)cfg->max_queue_messages / 2) {
                s->lost = 0;
                pg_session_gap(s, NULL, NULL);
            }
        }
    }
}
