/*
 * WebSocket liveness owned by the gateway (core/liveness.h): two deadline
 * FIFOs (core/dueq.h) instead of one lws validity timer per WebSocket in lws'
 * sorted list, whose every insert walks it (10,000 WebSockets made each HTTP
 * request's timer a walk over 10,000 entries).
 *
 * A WebSocket is on exactly one queue from opening to closing: live_idle
 * until ws_ping_interval_s passed since its opening or last PONG, then
 * live_wait (its PING asked for) until a PONG brings it back to live_idle's
 * tail, or ws_pong_timeout_s passed and it is dropped.
 *
 * Wire: the PING carries 2 bytes ("pg"); lws 4.1 drops an empty PONG before
 * LWS_CALLBACK_RECEIVE_PONG, so only an echoed payload counts as the answer.
 */
#include <string.h>

#include "config.h"
#include "core/gw.h"
#include "core/liveness.h"
#include "log.h"
#include "pg_common.h"

void pg_live_open(struct pg_gw *gw, struct pg_live *l, struct lws *wsi)
{
    l->wsi = wsi;
    l->ping_due = 0;
    pg_due_start(&gw->live_idle, &l->due, pg_mono_ms());
}

void pg_live_pong(struct pg_gw *gw, struct pg_live *l)
{
    if (!l->wsi)
        return; /* not opened (refused at ESTABLISHED) */
    l->ping_due = 0;
    pg_due_start(&gw->live_idle, &l->due, pg_mono_ms());
}

int pg_live_writeable(struct pg_live *l)
{
    if (!l->ping_due)
        return 0;
    l->ping_due = 0;
    /* lws 4.1 hands a PONG to the callback only with a payload: the PING carries one for the peer to echo */
    unsigned char ping[LWS_PRE + 2];
    memcpy(ping + LWS_PRE, "pg", 2);
    if (lws_write(l->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 2)
        return -1;
    /* the protocol's frames go in the next WRITEABLE, when the socket has taken the PING */
    lws_callback_on_writable(l->wsi);
    return 1;
}

void pg_live_closed(struct pg_live *l)
{
    pg_due_stop(&l->due);
    l->wsi = NULL;
    l->ping_due = 0;
}

void pg_live_tick(struct pg_gw *gw)
{
    int64_t now = pg_mono_ms();
    int64_t ping_ms = gw->cfg->ws_ping_interval_s * 1000, pong_ms = gw->cfg->ws_pong_timeout_s * 1000;
    struct pg_due *d;
    while ((d = pg_dueq_pop(&gw->live_wait, now, pong_ms))) {
        /* off the queues now: lws closes it on its next service pass, and CLOSED finds it detached */
        struct pg_live *l = lws_container_of(d, struct pg_live, due);
        l->ping_due = 0;
        pg_log(PG_LOG_INFO, "server", "WebSocket did not answer a PING within ws_pong_timeout_s: dropped");
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG, LWS_TO_KILL_ASYNC);
    }
    while ((d = pg_dueq_pop(&gw->live_idle, now, ping_ms))) {
        struct pg_live *l = lws_container_of(d, struct pg_live, due);
        l->ping_due = 1;
        pg_due_start(&gw->live_wait, &l->due, now);
        lws_callback_on_writable(l->wsi);
    }
}
