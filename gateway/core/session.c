/*
 * One session's output and input: queueing frames (with the slow-consumer and
 * overload rules), deciding a close, collecting a fragmented WebSocket
 * message, and the gap signal. No state of its own; see core/session.h.
 *
 * Load: the rules below count a queue of behind_queue_messages as full
 * (pg_behind_messages), less than its limit: they keep every reader's lag to
 * that, while one reader a moment behind the others still has room. A session
 * whose out-queue fills while its socket takes bytes right now shows a
 * gateway that is behind: broker input pauses (the loop catches up,
 * core/publish.c resumes it); so do most recipients of one fan-out whose
 * queues fill while they read (core/fanout.c). A message that still finds a
 * reading session's queue at its limit is lost for that session, which is
 * told (a gap signal) rather than closed: before the next message queued for
 * it, or at the load tick once its queue has room. When that is most
 * sessions, the gateway is behind and sheds publishes (core/publish.c).
 *
 * A session whose own socket does not drain is a slow consumer and is closed
 * with 1013. "Does not drain" is judged over slow_consumer_grace_ms
 * (pg_session_stuck), not at one instant: with client_unsent_bytes the kernel
 * holds little, and the socket of a reader that is merely behind is full
 * between two of its reads. A session that reads but goes on losing messages
 * for slow_consumer_ms reads slower than its channels' rate: a slow consumer
 * too.
 *
 * A session with output queued or messages lost is on gw->loaded from the
 * push that made it so until the load tick finds it has neither (or its
 * release): the tick costs what is loaded, not every session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/session.h"
#include "log.h"
#include "pg_common.h"

void pg_session_pause_input(struct pg_gw *gw)
{
    if (gw->rx_paused_ms || !gw->mqtt_wsi)
        return;
    gw->rx_paused_ms = pg_mono_ms();
    lws_rx_flow_control(gw->mqtt_wsi, 0);
    pg_log(PG_LOG_INFO, "server", "out-queues 3/4 full: broker input paused until they drain");
}

void pg_session_close(struct pg_session *s, uint16_t code, const char *reason)
{
    if (s->close_code)
        return;
    s->close_code = code;
    snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
    s->proto->wake(s);
}

void pg_session_slow_close(struct pg_session *s, const char *why, const char *reason)
{
    pg_log(PG_LOG_WARN, "session", "slow consumer closed app=%s client=%s queued=%zu bytes=%zu: %s",
           s->app ? s->app->creds->id : "-", s->client_id, s->q.count, s->q.bytes, why);
    pg_outq_clear(&s->q); /* nothing more will be written to it */
    if (s->app)
        s->app->stats.slow_closes++;
    pg_session_close(s, 1013, reason);
}

/* The load tick (core/publish.c) walks only these; it lets go of a session once it has neither. */
static void loaded(struct pg_session *s)
{
    if (lws_dll2_is_detached(&s->loaded))
        lws_dll2_add_tail(&s->loaded, &s->gw->loaded);
}

int pg_session_stuck(struct pg_session *s, int64_t now)
{
    if (!lws_send_pipe_choked(s->wsi)) {
        s->choked_since_ms = 0;
        return 0;
    }
    if (!s->choked_since_ms)
        s->choked_since_ms = now;
    return now - s->choked_since_ms >= s->gw->cfg->slow_consumer_grace_ms;
}

size_t pg_behind_messages(const struct pg_config *cfg)
{
    long long n = cfg->behind_queue_messages;
    return (size_t)(n > 0 && n < cfg->max_queue_messages ? n : cfg->max_queue_messages);
}

/*
 * s's out-queue is full, and a message is lost for it: records the loss in
 * its run of losses and says whether s still counts as a reader (1) or is a
 * slow consumer (0). Not if its socket is stuck (pg_session_stuck). Nor if
 * the run has lasted slow_consumer_ms: losses, each within
 * slow_consumer_grace_ms of the one before, show a reader slower than its
 * channels' rate, whose socket the kernel empties now and then. s->wsi set.
 */
static int reads_on(struct pg_session *s, int64_t now)
{
    const struct pg_config *cfg = s->gw->cfg;
    if (pg_session_stuck(s, now))
        return 0;
    if (!s->losing_since_ms || now - s->lost_last_ms > cfg->slow_consumer_grace_ms)
        s->losing_since_ms = now;
    s->lost_last_ms = now;
    return now - s->losing_since_ms < cfg->slow_consumer_ms;
}

void pg_session_send(struct pg_session *s, struct pg_msg *m)
{
    if (s->close_code)
        return; /* nothing new after a close was decided */
    struct pg_gw *gw = s->gw;
    size_t max_bytes = (size_t)gw->cfg->max_queue_bytes, max_msgs = (size_t)gw->cfg->max_queue_messages;
    if (s->lost && !m->reply && pg_outq_fanout_count(&s->q) + 2 <= max_msgs)
        pg_session_gap(s, NULL, NULL); /* the next message it gets after a loss comes after the gap signal */
    if (s->close_code)
        return; /* the gap closed it (Pusher: 4200) */
    int rc = pg_outq_push(&s->q, m, max_bytes, max_msgs);
    size_t full_msgs = pg_behind_messages(gw->cfg);
    int filling = pg_outq_fanout_count(&s->q) > full_msgs / 4 * 3 || pg_outq_fanout_bytes(&s->q) > max_bytes / 4 * 3;
    if (rc == 0 && filling && !m->reply && !gw->rx_paused_ms && gw->mqtt_wsi && s->wsi) {
        /*
         * A socket that takes bytes right now and still has this much waiting: the loop is behind, not the reader.
         * One that is full, but only for a moment, may be a slow reader: it must not hold back everyone's input
         * alone, but when most recipients of a fan-out are so, the gateway is behind its readers (core/fanout.c).
         */
        if (!lws_send_pipe_choked(s->wsi))
            pg_session_pause_input(gw);
        else if (!pg_session_stuck(s, pg_mono_ms()))
            gw->fan_filling++;
    }
    if (rc == PG_ELIMIT && s->wsi && reads_on(s, pg_mono_ms())) {
        /* it reads: told it missed messages, not closed (many such sessions: the gateway is behind, and sheds) */
        loaded(s);
        if (!s->lost++)
            pg_log(PG_LOG_WARN, "session", "out-queue full while its socket drains app=%s client=%s queued=%zu",
                   s->app ? s->app->creds->id : "-", s->client_id, s->q.count);
        return;
    }
    if (rc == PG_ELIMIT) {
        pg_session_slow_close(s, "out-queue limit reached", "slow consumer: out-queue limit reached, reconnect later");
        return;
    }
    if (rc != 0) {
        pg_session_close(s, 1011, "out of memory");
        return;
    }
    loaded(s);
    s->proto->wake(s);
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

void pg_session_gap(struct pg_session *s, const char *sub, const char *channel)
{
    if (s->close_code)
        return;
    s->lost = 0; /* whatever it lost before, this signal covers it */
    if (s->app)
        s->app->stats.gap_signals++;
    s->proto->gap(s, sub, channel);
}

/*
 * lws hands a message's payload over as it arrives, in as many RECEIVEs as the
 * peer takes writes: a client that starts a message and then trickles it (or
 * never finishes it) would hold its buffer and session forever. The clock
 * starts at the first partial chunk and stops when the message is whole; a
 * peer that stops before the first payload byte is WebSocket liveness's
 * (ws_ping_interval_s, pg_server_run).
 *
 * Memory: a message that comes whole in one piece (the common case) is used
 * in place; only one that comes in pieces gets a struct pg_rx (its clock and
 * its buffer), freed when it is whole: an idle session keeps a pointer.
 */
struct pg_rx {
    lws_sorted_usec_list_t sul; /* closes the session when the message is not whole in time */
    struct pg_session *s;       /* borrowed: its session */
    unsigned char *buf;         /* owned */
    size_t len, cap;
};

static void rx_due(lws_sorted_usec_list_t *sul)
{
    struct pg_session *s = lws_container_of(sul, struct pg_rx, sul)->s;
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
    size_t have = s->rx ? s->rx->len : 0;
    if (have + len > max_bytes) {
        pg_log(PG_LOG_INFO, "session", "message over its size limit app=%s client=%s",
               s->app ? s->app->creds->id : "-", s->client_id);
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)"message too large", 17);
        return -1;
    }
    int last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (last && !have) { /* the common case: one whole frame, used in place */
        *msg = in;
        *msg_len = len;
        return 1;
    }
    struct pg_rx *rx = s->rx;
    if (!rx) {
        if (!(rx = calloc(1, sizeof *rx)))
            return -1;
        rx->s = s;
        s->rx = rx;
    }
    if (rx->len + len > rx->cap) {
        /*
         * lws hands a frame over in pieces of its receive buffer (ws_rx_buffer_bytes, server.c): room for the rest
         * of the frame at once, and doubling across frames, so a large message is not copied once per piece.
         */
        size_t cap = rx->len + len + lws_remaining_packet_payload(wsi);
        if (cap < rx->cap * 2)
            cap = rx->cap * 2;
        if (cap > max_bytes)
            cap = (size_t)max_bytes; /* at least rx->len + len: checked above */
        unsigned char *b = realloc(rx->buf, cap);
        if (!b)
            return -1; /* s->rx is freed with the session (pg_session_release) */
        rx->buf = b;
        rx->cap = cap;
    }
    if (!rx->len && !last)
        lws_sul_schedule(s->gw->ctx, 0, &rx->sul, rx_due,
                         (lws_usec_t)s->gw->cfg->ws_partial_frame_timeout_ms * LWS_US_PER_MS);
    memcpy(rx->buf + rx->len, in, len);
    rx->len += len;
    if (!last)
        return 0;
    *msg = (const char *)rx->buf;
    *msg_len = rx->len;
    return 1;
}

void pg_ws_collected(struct pg_session *s)
{
    struct pg_rx *rx = s->rx;
    if (!rx)
        return;
    lws_sul_cancel(&rx->sul);
    free(rx->buf);
    free(rx);
    s->rx = NULL;
}
