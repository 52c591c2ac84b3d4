/*
 * The WebSocket transport of Engine.IO sessions (proto/eio.c) and the
 * upgrade to it from long-polling: the lws events of a struct pg_proto whose
 * sessions are Engine.IO's (proto/sio.c points its table here).
 *
 * Wire format. A direct WebSocket (?EIO=4&transport=websocket, no sid) opens
 * a session of its own: the open packet "0{…}" without upgrades, then one
 * Engine.IO packet per text message. Upgrade: the client opens a WebSocket
 * with the sid of its polling session, sends "2probe", gets "3probe", lets
 * its pending GET finish (we answer it with the noop "6") and sends "5"; from
 * then on the WebSocket is the transport. A probe not completed within
 * PG_EIO_UPGRADE_TIMEOUT_MS is dropped and the session goes on polling (its
 * deadline is e->upgrade on gw->eio_upgrade, which pg_eio_tick() pops). A WebSocket
 * carrying the sid of a session that is already upgraded or probing is
 * accepted and closed at once (an unknown sid is refused with 400 before the
 * upgrade). Binary frames and malformed packets close the WebSocket (1003,
 * 1002); an upgraded session goes with it.
 *
 * State: none of its own. A WebSocket's struct pg_ws points at its session
 * (w->s) while the session has it as e->ws; the session clears w->s when it
 * goes first (pg_eio_detach_ws), and a WebSocket without a session closes at
 * its next WRITEABLE with a normal close frame.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/admission.h"
#include "core/app.h"
#include "core/gw.h"
#include "core/session.h"
#include "core/ws.h"
#include "http/http.h"
#include "log.h"
#include "pg_common.h"
#include "proto/eio.h"
#include "proto/eio_packet.h"
#include "proto/eio_ws.h"

int pg_eio_confirm_upgrade(struct pg_gw *gw, struct lws *wsi, struct pg_app *app)
{
    (void)app; /* the upper layer names it, after the upgrade */
    char eio[8], transport[16], sid[PG_EIO_SID_LEN + 8];
    const char *why = NULL;
    int status = HTTP_STATUS_BAD_REQUEST;
    if (pg_http_query_arg(wsi, "EIO", eio, sizeof eio) < 0 || strcmp(eio, "4") != 0) {
        why = "Unsupported protocol version";
    } else if (pg_http_query_arg(wsi, "transport", transport, sizeof transport) < 0 ||
               strcmp(transport, "websocket") != 0) {
        why = "Transport unknown";
    } else if (pg_http_query_arg(wsi, "sid", sid, sizeof sid) != -1) { /* present: a too long one is unknown */
        struct pg_eio *e = pg_eio_find(gw, sid);
        char origin[256] = "";
        if (!e) {
            why = "Session ID unknown";
        } else if (pg_http_header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin) < 0 ||
                   !e->ops->may_upgrade(e, origin)) {
            why = "origin not allowed";
            status = HTTP_STATUS_FORBIDDEN;
        } /* upgraded or probing already: accepted, then closed by pg_eio_ws_open() */
    } else if ((why = pg_session_refusal(gw)) != NULL) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    } else if ((why = pg_addr_refusal(gw, wsi)) != NULL) {
        status = 429;
    }
    if (!why)
        return 0;
    pg_http_refuse_upgrade(wsi, (unsigned int)status, why);
    return 1;
}

int pg_eio_ws_open(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, const struct pg_eio_ops *ops)
{
    char sid[PG_EIO_SID_LEN + 8];
    if (pg_http_query_arg(wsi, "sid", sid, sizeof sid) != -1) { /* an upgrade probe for a polling session */
        struct pg_eio *e = pg_eio_find(gw, sid);
        if (!e)
            return -1;
        if (e->upgraded || e->ws) {
            /* a surplus WebSocket: Engine.IO servers accept it and close it at once, the session goes on */
            pg_log(PG_LOG_DEBUG, "socketio", "surplus websocket closed sid=%s", e->sid);
            lws_callback_on_writable(wsi); /* with no session (w->s NULL) its WRITEABLE closes it */
            return 0;
        }
        pg_eio_returned(e);
        e->ws = wsi;
        e->ws_conn = w;
        w->s = &e->s;
        return 0;
    }
    struct pg_eio *e = pg_eio_new(gw, wsi, ops);
    char *open = e ? pg_eio_open_packet(e, 0) : NULL;
    if (!open) {
        if (e)
            pg_eio_kill(e);
        return -1;
    }
    e->ws = e->s.wsi = wsi;
    e->upgraded = 1;
    e->ws_conn = w;
    w->s = &e->s;
    pg_eio_send(e, open, strlen(open));
    free(open);
    /* the open packet leaves now, in the segment of the handshake's answer (corked until ESTABLISHED ends) */
    if (!e->dead && pg_ws_write_queued(&e->s, wsi) < 0)
        return -1;
    return 0;
}

/* A whole WebSocket message. -1: close this WebSocket. */
static int ws_message(struct pg_eio *e, const char *p, size_t n)
{
    if (e->upgraded)
        return pg_eio_packet(e, p, n);
    int probe = pg_eio_probe_type(p, n);
    if (probe == PG_EIO_PING) {
        e->probing = 1;
        e->probe_reply = 1;
        lws_callback_on_writable(e->ws);
        pg_due_start(&e->s.gw->eio_upgrade, &e->upgrade, pg_mono_ms()); /* a repeated probe starts it again */
        struct pg_http *h = pg_eio_parked_get(e);
        if (h) /* the client lets its pending GET finish before it completes the upgrade */
            pg_eio_flush_get(e, h, 0);
        return 0;
    }
    if (probe == PG_EIO_UPGRADE && e->probing) {
        e->upgraded = 1;
        e->probing = 0;
        e->s.wsi = e->ws;
        pg_due_stop(&e->upgrade);
        struct pg_http *h = pg_eio_parked_get(e);
        if (h)
            pg_eio_flush_get(e, h, 1);
        if (e->s.q.count || e->s.close_code)
            lws_callback_on_writable(e->ws);
        pg_log(PG_LOG_DEBUG, "socketio", "upgraded to websocket sid=%s", e->sid);
        return 0;
    }
    return -1;
}

int pg_eio_ws_receive(struct pg_ws *w, struct lws *wsi, const void *in, size_t len)
{
    struct pg_eio *e = w->s ? pg_eio_of(w->s) : NULL;
    if (!e || e->dead || e->ws != wsi) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0); /* as pg_eio_ws_writeable(): no session behind it */
        return -1;
    }
    const char *msg;
    size_t n;
    int rc = pg_ws_collect(&e->s, wsi, in, len, e->s.gw->cfg->sio_max_payload_bytes, &msg, &n);
    if (rc <= 0)
        return rc;
    rc = ws_message(e, msg, n);
    pg_ws_collected(&e->s);
    if (rc == 0)
        return 0;
    pg_log(PG_LOG_INFO, "socketio", "malformed packet, closing sid=%s", e->sid);
    lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"malformed packet", 16);
    return -1;
}

int pg_eio_ws_writeable(struct pg_ws *w, struct lws *wsi)
{
    struct pg_eio *e = w->s ? pg_eio_of(w->s) : NULL;
    unsigned char probe[LWS_PRE + 8];
    if (!e || e->dead || e->ws != wsi) {
        /* its session is gone, or it never had one (a surplus WebSocket): a normal close frame, not a hang-up */
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    if (e->probe_reply) {
        e->probe_reply = 0;
        memcpy(probe + LWS_PRE, "3probe", 6);
        if (lws_write(wsi, probe + LWS_PRE, 6, LWS_WRITE_TEXT) < 6)
            return -1;
        if (e->upgraded && (e->s.q.count || e->s.close_code))
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (!e->upgraded)
        return 0;
    if (e->s.close_code && !e->s.q.count) {
        lws_close_reason(wsi, (enum lws_close_status)e->s.close_code, (unsigned char *)e->s.close_reason,
                         strlen(e->s.close_reason));
        return -1;
    }
    int n = pg_ws_write_queued(&e->s, wsi); /* as many frames as the socket takes, as native's */
    if (n <= 0)
        return n;
    if (e->s.q.count || e->s.close_code)
        lws_callback_on_writable(wsi);
    return 0;
}

void pg_eio_ws_closed(struct pg_ws *w, struct lws *wsi)
{
    struct pg_eio *e = w->s ? pg_eio_of(w->s) : NULL;
    w->s = NULL;
    if (!e || e->ws != wsi)
        return;
    e->ws = NULL;
    e->ws_conn = NULL;
    if (e->upgraded) {
        e->s.wsi = NULL;
        pg_eio_kill(e);
    } else { /* a failed probe: the session goes on polling */
        pg_due_stop(&e->upgrade);
        e->probing = 0;
        e->probe_reply = 0;
        pg_ws_collected(&e->s); /* a partial message of the probe goes with it */
    }
}

/* ---- in-memory entry points (tests/fuzz/fuzz_sio.c, through proto/sio.c) ---------------------- */

struct pg_eio *pg_eio_open_in_memory(struct pg_gw *gw, struct lws *wsi, int mode, const struct pg_eio_ops *ops)
{
    struct pg_eio *e = pg_eio_new(gw, wsi, ops);
    if (!e)
        return NULL;
    if (mode != 0)
        e->ws = wsi; /* as pg_eio_ws_open(): a probe for the polling session, or its transport */
    if (mode == 1) {
        e->s.wsi = wsi;
        e->upgraded = 1;
    }
    return e;
}

int pg_eio_receive(struct pg_eio *e, const char *msg, size_t len, int polling)
{
    if (e->dead)
        return -1;
    if (polling) {
        if (e->upgraded)
            return -1; /* pg_eio_http() answers 400 and keeps the session */
        if (len > e->s.gw->cfg->sio_max_payload_bytes || !len || pg_eio_payload(e, msg, len) != 0) {
            pg_eio_kill(e);
            return -1;
        }
        return 0;
    }
    if (!e->ws || len > e->s.gw->cfg->sio_max_payload_bytes)
        return -1; /* pg_eio_ws_receive(): not this session's WebSocket, or closed for its size */
    return ws_message(e, msg, len) == 0 ? 0 : -1;
}
