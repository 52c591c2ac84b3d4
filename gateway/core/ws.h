/*
 * The WebSocket transport of protocols whose session is its socket (native,
 * Pusher): the lws events of struct pg_proto for them. The session lives in
 * the socket's struct pg_ws (w->own) from ESTABLISHED to CLOSED; these call
 * the protocol's open, receive and flow ops and write its out-queue: at the
 * end of the loop pass in which frames were queued, as many as the socket
 * takes within the limits below, and in a WRITEABLE only what is left.
 * Protocols point their table's ws_* entries here.
 */
#ifndef PG_CORE_WS_H
#define PG_CORE_WS_H

#include <stddef.h>
#include <libwebsockets.h>

struct pg_gw;
struct pg_app;
struct pg_ws;
struct pg_session;

/* One write's share of an out-queue (per pass or WRITEABLE): a fast reader cannot hold the loop for longer. */
#define PG_WS_WRITE_MAX_FRAMES 64
#define PG_WS_WRITE_MAX_BYTES (256 * 1024)
/* From this many frames queued, a write corks a TCP_NODELAY socket (TCP_CORK) and sends them in full segments. */
#define PG_WS_CORK_MIN_FRAMES 3
/* ws_nagle = busy judges the loop's busy share averaged over about this many ticks (an exponential average) */
#define PG_WS_NAGLE_AVG_TICKS 4

int pg_ws_open(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, struct pg_app *app);
int pg_ws_receive(struct pg_ws *w, struct lws *wsi, const void *in, size_t len);
int pg_ws_writeable(struct pg_ws *w, struct lws *wsi);
/*
 * Writes s's out-queue from its head to wsi while the socket takes bytes
 * (wsi is WRITEABLE, or lws keeps no part of a frame for it), within the
 * limits above, and counts the frames in the app's stats. A write clears
 * s->choked_since_ms (core/session.c). Returns the number of frames
 * written, or -1 when lws failed (the socket is to be closed). Also
 * Engine.IO's WebSocket transport's (proto/eio_ws.c).
 */
int pg_ws_write_queued(struct pg_session *s, struct lws *wsi);
void pg_ws_closed(struct pg_ws *w, struct lws *wsi);
/*
 * TCP_CORK on (1) or off (0) for any WebSocket (server.c): on from FILTER_PROTOCOL_CONNECTION, just before lws
 * writes the handshake's answer, off when ESTABLISHED ends, by when pg_ws_open() (or Engine.IO's
 * pg_eio_ws_open()) wrote the greeting. The answer and the greeting leave as one segment, one receive for the
 * client instead of two (and one ACK).
 */
void pg_ws_cork(struct lws *wsi, int on);
/* The wake op of such a protocol: s writes at the end of this loop pass (a close: at its next WRITEABLE). */
void pg_ws_wake(struct pg_session *s);
/* The end of a loop pass (server.c): every woken session writes what it has queued. */
void pg_ws_flush(struct pg_gw *gw);
/* Each tick (server.c, after it set gw->loop_busy): whether sockets leave TCP_NODELAY now (gw->ws_nagle). */
void pg_ws_tick(struct pg_gw *gw);

#endif
