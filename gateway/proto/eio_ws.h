/*
 * The WebSocket transport of Engine.IO sessions (proto/eio.h) and the
 * upgrade to it: what a protocol riding on Engine.IO (proto/sio.c) puts in
 * the lws entries of its struct pg_proto. Owns no state; loop thread only.
 */
#ifndef PG_PROTO_EIO_WS_H
#define PG_PROTO_EIO_WS_H

#include <stddef.h>
#include <libwebsockets.h>

struct pg_gw;
struct pg_app;
struct pg_ws;
struct pg_eio;
struct pg_eio_ops;

/* The confirm_upgrade op: the Engine.IO query (EIO=4, transport=websocket, sid) and admission. */
int pg_eio_confirm_upgrade(struct pg_gw *gw, struct lws *wsi, struct pg_app *app);
/* The ws_open op, given the upper layer's hooks for a session this WebSocket opens (no sid). */
int pg_eio_ws_open(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, const struct pg_eio_ops *ops);
int pg_eio_ws_receive(struct pg_ws *w, struct lws *wsi, const void *in, size_t len); /* the ws_receive op */
int pg_eio_ws_writeable(struct pg_ws *w, struct lws *wsi);                           /* the ws_writeable op */
void pg_eio_ws_closed(struct pg_ws *w, struct lws *wsi);                             /* the ws_closed op */

/*
 * In memory, for the fuzz harness (through proto/sio.h): a session opened as
 * by a polling handshake (mode 0), by one with wsi attached as its upgrade
 * probe (2), or by a direct WebSocket wsi (1); headers are read from wsi.
 * pg_eio_receive() feeds it one polling POST body (polling 1) or one
 * WebSocket message, as pg_eio_http() and pg_eio_ws_receive() do after their
 * transport checks: 0, or -1 when refused (a malformed polling body also ends
 * the session, as it does over HTTP).
 */
struct pg_eio *pg_eio_open_in_memory(struct pg_gw *gw, struct lws *wsi, int mode, const struct pg_eio_ops *ops);
int pg_eio_receive(struct pg_eio *e, const char *msg, size_t len, int polling);

#endif
