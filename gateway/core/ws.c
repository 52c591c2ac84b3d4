/*
 * One WebSocket, one session (core/ws.h): native and Pusher.
 *
 * Writing: each WRITEABLE writes the head of the out-queue and goes on with
 * the next frames while the socket still takes bytes, one lws_write each (lws
 * keeps what the socket did not take and reports the pipe choked until it has
 * sent it), at most PG_WS_WRITE_MAX_FRAMES or PG_WS_WRITE_MAX_BYTES so that
 * one fast reader does not hold the loop; what is left waits for the next
 * WRITEABLE. Frames are written from the shared encoded message (lws puts the
 * frame header in the room before it), never copied per session. A closing
 * session first flushes what was queued before the close (e.g. the error
 * frame that explains it), then sends its close code and reason.
 */
#include <string.h>

#include "config.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/registry.h"
#include "core/session.h"
#include "core/ws.h"

int pg_ws_open(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, struct pg_app *app)
{
    struct pg_session *s = &w->own;
    w->s = s;
    s->proto = w->proto;
    s->app = app;
    s->wsi = wsi;
    pg_session_register(gw, s, wsi);
    return s->proto->open(s, wsi);
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

int pg_ws_write_queued(struct pg_session *s, struct lws *wsi)
{
    int n = 0;
    size_t bytes = 0;
    struct pg_msg *m;
    /*
     * WRITEABLE means the socket takes bytes; after that, write until the kernel refuses part of a frame, which
     * lws keeps (lws_partial_buffered) and sends before the next WRITEABLE. Not lws_send_pipe_choked(): that is
     * a poll() syscall per frame, about as costly as the send itself. The price is at most one frame copied.
     */
    while (n < PG_WS_WRITE_MAX_FRAMES && bytes < PG_WS_WRITE_MAX_BYTES && (m = pg_outq_peek(&s->q)) &&
           (!n || !lws_partial_buffered(wsi))) {
        if (lws_write(wsi, pg_msg_data(m), m->len, LWS_WRITE_TEXT) < (int)m->len)
            return -1;
        if (s->app) {
            s->app->stats.frames_out++;
            s->app->stats.bytes_out += m->len;
        }
        bytes += m->len;
        n++;
        pg_outq_pop(&s->q);
    }
    return n;
}

int pg_ws_writeable(struct pg_ws *w, struct lws *wsi)
{
    struct pg_session *s = w->s;
    if (s->close_code && !s->q.count) {
        lws_close_reason(wsi, (enum lws_close_status)s->close_code, (unsigned char *)s->close_reason,
                         strlen(s->close_reason));
        return -1;
    }
    int n = pg_ws_write_queued(s, wsi);
    if (n <= 0)
        return n;
    s->choked_since_ms = 0;
    if (s->proto->flow)
        s->proto->flow(s);
    if (s->q.count || s->close_code)
        lws_callback_on_writable(wsi);
    return 0;
}

void pg_ws_closed(struct pg_ws *w, struct lws *wsi)
{
    (void)wsi;
    if (w->s)
        pg_session_release(w->s->gw, w->s);
}

void pg_ws_wake(struct pg_session *s)
{
    lws_callback_on_writable(s->wsi);
}
