/*
 * WebSocket liveness, for every protocol: a WebSocket gets a PING
 * ws_ping_interval_s after its opening or its last PONG, and one that has
 * not answered it ws_pong_timeout_s later is dropped without a close frame.
 * Browsers and WebSocket libraries answer on their own; a peer stuck inside a
 * frame (a header and no payload, so ws_partial_frame_timeout_ms never
 * starts) cannot, since control frames do not go in the middle of one.
 *
 * Cost: O(1) per event, nothing per WebSocket in lws' sorted timer list. The
 * interval and the timeout are the same for every WebSocket, so they are two
 * deadline FIFOs (core/dueq.h) in struct pg_gw: live_idle (oldest opening or
 * PONG first) and live_wait (oldest PING decision first). A PONG moves its
 * WebSocket to live_idle's tail; the loop's tick (pg_live_tick, every
 * PG_BRIDGE_TICK_MS) pops what is due from the heads, at most one tick late
 * (both settings are whole seconds).
 *
 * State: struct pg_live, in each WebSocket's struct pg_ws (lws' per-wsi user
 * data, core/session.h), from ESTABLISHED to CLOSED; the two lists'
 * owners in struct pg_gw. server.c calls every entry. Loop thread only.
 */
#ifndef PG_CORE_LIVENESS_H
#define PG_CORE_LIVENESS_H

#include <stdint.h>
#include <libwebsockets.h>

#include "core/dueq.h"

struct pg_gw;

struct pg_live {
    struct pg_due due; /* in gw->live_idle or gw->live_wait; on neither before opening and after closing */
    struct lws *wsi;   /* borrowed: the WebSocket this entry watches */
    int ping_due;      /* the PING waits for the next WRITEABLE */
};

/* LWS_CALLBACK_ESTABLISHED: starts the clock. */
void pg_live_open(struct pg_gw *gw, struct pg_live *l, struct lws *wsi);
/* LWS_CALLBACK_RECEIVE_PONG: the peer is alive; the clock starts again. */
void pg_live_pong(struct pg_gw *gw, struct pg_live *l);
/*
 * LWS_CALLBACK_SERVER_WRITEABLE, before the protocol writes: 1 when it wrote
 * the due PING (the protocol's turn comes at the next WRITEABLE, which it
 * asked for), -1 when the write failed (close), 0 when no PING was due.
 */
int pg_live_writeable(struct pg_live *l);
/* LWS_CALLBACK_CLOSED (any WebSocket, even one refused at ESTABLISHED): leaves the lists. */
void pg_live_closed(struct pg_live *l);
/* From the loop's tick: asks due WebSockets for a PING, drops those whose PONG is overdue. */
void pg_live_tick(struct pg_gw *gw);

#endif
