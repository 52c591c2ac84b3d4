/*
 * socket.io protocol 5 over Engine.IO 4 at /socket.io/ (polling and
 * websocket transports, the upgrade between them): the protocol's table and
 * its HTTP entry. Sessions are struct pg_sio (a struct pg_eio, and so a
 * struct pg_session, first), created and freed by proto/eio.c, their
 * socket.io part owned by proto/sio.c. Loop thread only.
 */
#ifndef PG_PROTO_SIO_H
#define PG_PROTO_SIO_H

#include <stddef.h>
#include <libwebsockets.h>

#include "core/session.h"

struct pg_gw;
struct pg_http;
struct pg_session;

extern const struct pg_proto pg_sio_proto;
void pg_sio_http(struct pg_gw *gw, struct pg_http *h); /* a /socket.io/ request, once its body is complete */
void pg_sio_shutdown(struct pg_gw *gw); /* free every session (context teardown) */
/* From the loop's tick (server.c), after pg_eio_tick(): CONNECT deadlines and register retries that are due. */
void pg_sio_tick(struct pg_gw *gw);
/*
 * In memory, for the fuzz harness: a session opened as by a polling handshake
 * (mode 0), by one with wsi attached as its upgrade probe (2), or by a direct
 * WebSocket wsi (1); headers are read from wsi. Owned by proto/eio.c (freed by
 * pg_sio_shutdown). pg_sio_receive() feeds it one polling POST body (polling
 * 1) or one WebSocket message, as pg_sio_http() and the ws_receive op do
 * after their transport checks: 0, or -1 when refused (a malformed polling
 * body also ends the session, as it does over HTTP). The harness ends a
 * refused WebSocket with the ws_closed op (w: a struct pg_ws whose s is the session).
 */
struct pg_session *pg_sio_open_session(struct pg_gw *gw, struct lws *wsi, int mode);
int pg_sio_receive(struct pg_session *s, const char *msg, size_t len, int polling);

#endif
