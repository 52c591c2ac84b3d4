/*
 * socket.io protocol 5 over Engine.IO 4.
 */
#ifndef PG_PROTO_SIO_H
#define PG_PROTO_SIO_H

#include <stddef.h>
#include <libwebsockets.h>

#include "core/msg.h"
#include "pushgate_bridge.h"

struct pg_gw;
struct pg_http;
struct pg_conn;
struct pg_session;

/*
 * sio.c: socket.io protocol 5 over Engine.IO 4 at /socket.io/ (polling and
 * websocket transports, the upgrade between them). Sessions are struct
 * pg_sio (a struct pg_session first), owned by sio.c.
 */
struct pg_sio;
void pg_sio_http(struct pg_gw *gw, struct pg_http *h); /* a /socket.io/ request, once its body is complete */
int pg_sio_confirm_upgrade(struct pg_gw *gw, struct lws *wsi); /* 0: accept; 1: refused (answered) */
int pg_sio_ws_open(struct pg_gw *gw, struct lws *wsi, struct pg_conn *c);
int pg_sio_ws_receive(struct pg_conn *c, struct lws *wsi, const void *in, size_t len);
int pg_sio_ws_writeable(struct pg_conn *c, struct lws *wsi);
void pg_sio_ws_closed(struct pg_conn *c, struct lws *wsi);
void pg_sio_wake(struct pg_session *s); /* output queued or close decided */
int pg_sio_nsp_slot(const struct pg_session *s);
/* 1 when the session may receive app-wide events: connected to its namespace (and registered, if the app requires auth). */
int pg_sio_may_read_app(const struct pg_session *s);
/* The user a socket.io session registered for, or NULL. */
const char *pg_sio_user(const struct pg_session *s); /* which of the two encodings (namespace "/" or "/{app}") */
void pg_sio_encode(const struct pg_session *s, const void *payload, size_t len, const struct pg_bridge_prop *props,
                   size_t nprops, struct pg_msg **out);
void pg_sio_shutdown(struct pg_gw *gw); /* free every session (context teardown) */
/*
 * In memory, for the fuzz harness: a session opened as by a polling handshake
 * (mode 0), by one with wsi attached as its upgrade probe (2), or by a direct
 * WebSocket wsi (1); headers are read from wsi. Owned by sio.c (freed by
 * pg_sio_shutdown). pg_sio_receive() feeds it one polling POST body (polling
 * 1) or one WebSocket message, as pg_sio_http() and pg_sio_ws_receive() do
 * after their transport checks: 0, or -1 when refused (a malformed polling
 * body also ends the session, as it does over HTTP).
 */
struct pg_session *pg_sio_open_session(struct pg_gw *gw, struct lws *wsi, int mode);
int pg_sio_receive(struct pg_session *s, const char *msg, size_t len, int polling);

#endif
