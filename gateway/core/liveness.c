/*
 * WebSocket liveness owned by the gateway (core/liveness.h): two FIFO lists
 * instead of one lws validity timer per WebSocket in lws' sorted list, whose
 * every insert walks it (10,000 WebSockets made each HTTP request's timer a
 * walk over 10,000 entries).
 *
 * A WebSocket is on exactly one list from opening to closing: live_idle
 * until ws_ping_interval_s passed since its opening or last PONG, then
 * live_wait (its PING asked for) until a PONG brings it back to live_idle's
 * tail, or ws_pong_timeout_s passed and it is dropped. Entries are appended
 * with since_ms = now, so each list is in since_ms order and the tick stops
 * at the first entry that is not due.
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

static void to_tail(lws_dll2_owner_t *list, struct pg_live *l, int64_t now)
{
    lws_dll2_remove(&l->link);
    l->since_ms = now;
    lws_dll2_add_tail(&l->link, list);
}

void pg_live_open(struct pg_gw *gw, struct pg_live *l, struct lws *wsi)
{
    l->wsi = wsi;
    l->ping_due = 0;
    to_tail(&gw->live_idle, l, pg_mono_ms());
}

void pg_live_pong(struct pg_gw *gw, struct pg_live *l)
{
    if (!l->wsi)
        return; /* not opened (refused at ESTABLISHED) */
    l->ping_due = 0;
    to_tail(&gw->live_idle, l, pg_mono_ms());
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
    lws_dll2_remove(&l->link);
    l->wsi = NULL;
    l->ping_due = 0;
}

void pg_live_tick(struct pg_gw *gw)
{
    int64_t now = pg_mono_ms();
    int64_t ping_ms = gw->cfg->ws_ping_interval_s * 1000, pong_ms = gw->cfg->ws_pong_timeout_s * 1000;
    lws_dll2_t *d;
    while ((d = lws_dll2_get_head(&gw->live_wait))) {
        struct pg_live *l = lws_container_of(d, struct pg_live, link);
        if (now - l->since_ms < pong_ms)
            break;
        /* off the lists now: lws closes it on its next service pass, and CLOSED finds it detached */
        lws_dll2_remove(&l->link);
        l->ping_due = 0;
        pg_log(PG_LOG_INFO, "server", "WebSocket did not answer a PING within ws_pong_timeout_s: dropped");
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG, LWS_TO_KILL_ASYNC);
    }
    while ((d = lws_dll2_get_head(&gw->live_idle))) {
        struct pg_live *l = lws_container_of(d, struct pg_live, link);
        if (now - l->since_ms < ping_ms)
            break;
        l->ping_due = 1;
        to_tail(&gw->live_wait, l, now);
        lws_callback_on_writable(l->wsi);
    }
}
