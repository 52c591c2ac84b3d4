/*
 * One WebSocket, one session (core/ws.h): native and Pusher.
 *
 * Writing: a frame queued for a session does not ask lws for a WRITEABLE.
 * The session joins gw->to_write, and at the end of the loop pass
 * (pg_ws_flush(), called by server.c before the loop waits again) it writes
 * what it has queued, straight to its socket. Only a session whose socket
 * refused part of a frame (lws keeps that part and arms POLLOUT itself), or
 * that has more than one pass's share queued, or that is closing, waits for a
 * WRITEABLE. Why: on the libuv loop lws 4.1 turns every
 * lws_callback_on_writable(), and the end of every WRITEABLE, into a
 * uv_poll_start(), which is an epoll_ctl DEL and an ADD; a session that gets
 * one frame at a time paid four epoll_ctl and one loop wakeup per frame on
 * top of its send. Writing at the end of the pass also gathers every frame a
 * pass queued for a session (one broker read carries many messages). The
 * greeting a protocol queues at ESTABLISHED is written there, at once: the
 * socket is corked from just before lws writes the handshake's answer until
 * ESTABLISHED ends (server.c), so both leave in one segment.
 *
 * A write, direct or in a WRITEABLE, goes on with the next frames while the
 * socket takes bytes, one lws_write each (lws keeps what the socket did not
 * take and sends it before anything else), at most PG_WS_WRITE_MAX_FRAMES or
 * PG_WS_WRITE_MAX_BYTES so that one fast reader does not hold the loop; what
 * is left waits for a WRITEABLE. lws makes a send() per frame; the frames that
 * fit PG_GATHER_BYTES leave in one (core/gather.c): under W1's fan-out a
 * session has about two frames at each write, and each send() costs more than
 * the bytes it copies. Frames are written from the shared encoded
 * message (lws puts the frame header in the room before it), never copied
 * per session. A closing session first flushes what was queued before the
 * close (e.g. the error frame that explains it), then sends its close code
 * and reason, in a WRITEABLE (lws_close_reason() needs one).
 *
 * Small frames, one segment each or gathered (ws_nagle). lws sets TCP_NODELAY
 * on every socket: each write leaves at once, one TCP segment, and on
 * loopback the reader's whole receive path runs for each. Without it
 * (Nagle) the kernel holds a small write while an earlier one is
 * unacknowledged and sends what gathered meanwhile as one segment when the
 * ACK comes: a busy reader acknowledges late, so it gets many frames per
 * segment, at a fraction of the CPU on both ends (bench/README.md, "W1:
 * frames per segment"). The price is latency: a reader that delays its ACKs
 * (delayed ACK: 40 ms and more on Linux, up to 200 ms or more elsewhere)
 * holds the next frame as long. ws_nagle = busy takes that price only when the loop itself
 * has no time to spare: at each tick (pg_ws_tick) the loop's busy share
 * (loop.c), averaged over about PG_WS_NAGLE_AVG_TICKS ticks, turns it on
 * from ws_nagle_busy_percent and off under half of it. (At W2's 100,000
 * frames/s the loop is 50-80 % busy with single ticks over 90 %; under W1's
 * fan-out it stays over 96 %.)
 * A socket takes the current setting at its next write (one setsockopt per
 * socket per change); turning TCP_NODELAY back on sends what the kernel held.
 *
 * Ownership: gw->to_write borrows its sessions; a session leaves it when it
 * is written or when its socket closes (pg_ws_closed()), never later.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "core/app.h"
#include "core/gather.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/registry.h"
#include "core/session.h"
#include "core/ws.h"
#include "log.h"

static int greet(struct pg_session *s, struct lws *wsi);

int pg_ws_open(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, struct pg_app *app)
{
    struct pg_session *s = &w->own;
    w->s = s;
    s->proto = w->proto;
    s->app = app;
    s->wsi = wsi;
    pg_session_register(gw, s, wsi);
    if (s->proto->open(s, wsi) != 0)
        return -1;
    return greet(s, wsi);
}

int pg_ws_receive(struct pg_ws *w, struct lws *wsi, const void *in, size_t len)
{
    struct pg_session *s = w->s;
    if (s->close_code)
        return 0;
    if (s->app) {
        s->app->stats.bytes_in += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
            s->app->stats.frames_in++;
    }
    const char *msg;
    size_t n;
    int rc = pg_ws_collect(s, wsi, in, len, s->gw->cfg->max_frame_bytes, &msg, &n);
    if (rc == 1) {
        s->proto->receive(s, msg, n);
        pg_ws_collected(s);
        if (s->proto->flow)
            s->proto->flow(s);
    }
    return rc < 0 ? -1 : 0;
}

/*
 * TCP_CORK around a write of several frames where they cannot be gathered (a TLS connection, an HTTP/2 stream's):
 * each lws_write is one send(), and without the cork each send is one TCP segment, with the whole transmit (and,
 * on loopback, the receiver's) path behind it; corked, the sends only fill the socket buffer and the uncork sends
 * full segments. Below PG_WS_CORK_MIN_FRAMES the two setsockopt() calls cost more than they save, and so they do
 * on a socket in Nagle's mode, where the kernel already holds small sends while earlier data is unacknowledged
 * (bench/README.md, "W1: frames per segment"). A socket that is no TCP socket refuses it, harmlessly.
 */
static void cork(struct lws *wsi, int on)
{
    int fd = (int)lws_get_socket_fd(wsi);
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* the socket takes the gateway's current ws_nagle state (see the top of the file) */
static void set_nagle(struct pg_session *s, struct lws *wsi, int on)
{
    int fd = (int)lws_get_socket_fd(wsi), nodelay = !on;
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
    s->nagle = (uint8_t)on;
}

void pg_ws_tick(struct pg_gw *gw)
{
    const struct pg_config *cfg = gw->cfg;
    int on = gw->ws_nagle, busy = gw->loop_busy;
    /* a moving average over about PG_WS_NAGLE_AVG_TICKS ticks: a tick or two of a burst do not switch */
    if (busy >= 0)
        gw->loop_busy_avg += (busy - gw->loop_busy_avg) / PG_WS_NAGLE_AVG_TICKS;
    if (cfg->ws_nagle_mode != PG_WS_NAGLE_BUSY)
        on = cfg->ws_nagle_mode == PG_WS_NAGLE_ON;
    else if (busy < 0)
        on = 0; /* the poll loop tells nothing */
    else if (gw->loop_busy_avg >= cfg->ws_nagle_busy_percent * 10)
        on = 1;
    else if (gw->loop_busy_avg < cfg->ws_nagle_busy_percent * 5)
        on = 0;
    if (on != gw->ws_nagle)
        pg_log(PG_LOG_DEBUG, "ws", "loop busy %d.%d %% of recent ticks: frames %s", gw->loop_busy_avg / 10,
               gw->loop_busy_avg % 10, on ? "gathered by the kernel (Nagle)" : "sent at once (TCP_NODELAY)");
    gw->ws_nagle = on;
}

/*
 * The socket a session's frames may be gathered on (core/gather.h): a plain WebSocket's own. Not a TLS
 * connection's (what lws sends there is TLS records, which could not be handed back to lws raw) nor an HTTP/2
 * stream's (its connection carries others' frames too). -1: write frame by frame.
 */
static int gather_fd(struct lws *wsi)
{
    if (lws_is_ssl(wsi) || lws_get_network_wsi(wsi) != wsi)
        return -1;
    return (int)lws_get_socket_fd(wsi);
}

/*
 * Sends what was gathered; what the socket did not take goes to lws unframed (LWS_WRITE_HTTP on a WebSocket is a
 * raw write): lws keeps it, asks for POLLOUT and sends it before anything else. -1: the socket failed.
 */
static int gather_flush(struct pg_gw *gw, struct lws *wsi)
{
    const unsigned char *rest;
    size_t restlen;
    gw->ws_writes++;
    if (pg_gather_end(&rest, &restlen) < 0)
        return -1;
    if (restlen && lws_write(wsi, (unsigned char *)rest, restlen, LWS_WRITE_HTTP) < 0)
        return -1;
    return 0;
}

int pg_ws_write_queued(struct pg_session *s, struct lws *wsi)
{
    int n = 0, gathering = 0;
    size_t bytes = 0;
    struct pg_msg *m;
    struct pg_gw *gw = s->gw;
    if (s->nagle != gw->ws_nagle)
        set_nagle(s, wsi, gw->ws_nagle);
    int fd = gather_fd(wsi);
    int corked = fd < 0 && !s->nagle && s->q.count >= PG_WS_CORK_MIN_FRAMES;
    if (corked)
        cork(wsi, 1);
    /*
     * WRITEABLE means the socket takes bytes; after that, write until the kernel refuses part of a frame, which
     * lws keeps (lws_partial_buffered) and sends before the next WRITEABLE. Not lws_send_pipe_choked(): that is
     * a poll() syscall per frame, about as costly as the send itself. The price is at most one frame copied, or
     * one gather (PG_GATHER_BYTES). Frames that fit a gather whole leave together in one send().
     */
    while (n < PG_WS_WRITE_MAX_FRAMES && bytes < PG_WS_WRITE_MAX_BYTES && (m = pg_outq_peek(&s->q)) &&
           (!n || !lws_partial_buffered(wsi))) {
        size_t need = m->len + PG_GATHER_HEADER_MAX;
        if (gathering && pg_gather_room() < need) {
            gathering = 0;
            if (gather_flush(gw, wsi) < 0) {
                n = -1;
                break;
            }
            if (lws_partial_buffered(wsi))
                break;
        }
        /* not behind bytes lws holds: it would send those into the gather and queue the frame after them */
        if (!gathering && fd >= 0 && need <= PG_GATHER_BYTES && !lws_partial_buffered(wsi) && pg_gather_begin(fd) == 0)
            gathering = 1;
        if (!gathering)
            gw->ws_writes++;
        if (lws_write(wsi, pg_msg_data(m), m->len, LWS_WRITE_TEXT) < (int)m->len) {
            n = -1;
            break;
        }
        if (s->app) {
            s->app->stats.frames_out++;
            s->app->stats.bytes_out += m->len;
        }
        bytes += m->len;
        n++;
        pg_outq_pop(&s->q);
    }
    if (gathering && gather_flush(gw, wsi) < 0)
        n = -1;
    if (corked)
        cork(wsi, 0);
    if (n > 0)
        s->choked_since_ms = 0; /* it drains */
    return n;
}

/*
 * Writes what the socket takes of s's queue; after frames left, the protocol may read again, and what is left,
 * or a close, waits for a WRITEABLE. -1: lws failed (the socket is to be closed).
 */
static int write_out(struct pg_session *s, struct lws *wsi)
{
    int n = pg_ws_write_queued(s, wsi);
    if (n <= 0)
        return n;
    if (s->proto->flow)
        s->proto->flow(s);
    if (s->q.count || s->close_code)
        lws_callback_on_writable(wsi);
    return 0;
}

/*
 * ESTABLISHED, after the protocol queued its greeting ("open", pusher:connection_established): it leaves now
 * rather than at the end of the pass, while the socket is still corked (pg_ws_cork()), so that the handshake's
 * answer and the greeting share one TCP segment. A session the protocol is closing writes in its WRITEABLE.
 */
static int greet(struct pg_session *s, struct lws *wsi)
{
    if (s->close_code || !s->q.count)
        return 0;
    lws_dll2_remove(&s->to_write);
    return write_out(s, wsi);
}

void pg_ws_cork(struct lws *wsi, int on)
{
    if (lws_get_network_wsi(wsi) == wsi) /* not a stream of an HTTP/2 connection, which others share */
        cork(wsi, on);
}

int pg_ws_writeable(struct pg_ws *w, struct lws *wsi)
{
    struct pg_session *s = w->s;
    if (s->close_code && !s->q.count) {
        lws_close_reason(wsi, (enum lws_close_status)s->close_code, (unsigned char *)s->close_reason,
                         strlen(s->close_reason));
        return -1;
    }
    return write_out(s, wsi);
}

void pg_ws_flush(struct pg_gw *gw)
{
    struct lws_dll2 *d;
    while ((d = lws_dll2_get_head(&gw->to_write))) {
        struct pg_session *s = lws_container_of(d, struct pg_session, to_write);
        lws_dll2_remove(d);
        if (s->close_code) {
            lws_callback_on_writable(s->wsi);
            continue;
        }
        if (lws_partial_buffered(s->wsi))
            continue; /* lws asked for its WRITEABLE when it kept the part, and the queue follows it there */
        if (write_out(s, s->wsi) < 0)
            /* lws marked the socket unusable; nothing in a loop pass may free the wsi, so lws does it next */
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    }
}

void pg_ws_closed(struct pg_ws *w, struct lws *wsi)
{
    (void)wsi;
    if (!w->s)
        return;
    lws_dll2_remove(&w->s->to_write);
    pg_session_release(w->s->gw, w->s);
}

void pg_ws_wake(struct pg_session *s)
{
    if (s->close_code)
        lws_callback_on_writable(s->wsi);
    else if (lws_dll2_is_detached(&s->to_write))
        lws_dll2_add_tail(&s->to_write, &s->gw->to_write);
}
