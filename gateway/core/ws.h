/*
 * The WebSocket transport of protocols whose session is its socket (native,
 * Pusher): the lws events of struct pg_proto for them. The session lives in
 * the socket's struct pg_ws (w->own) from ESTABLISHED to CLOSED; these call
 * the protocol's open, receive and flow ops and write its out-queue, one frame
 * per WRITEABLE. Protocols point their table's ws_* entries here.
 */
#ifndef PG_CORE_WS_H
#define PG_CORE_WS_H

#include <stddef.h>
#include <libwebsockets.h>

struct pg_gw;
struct pg_app;
struct pg_ws;
struct pg_session;

int pg_ws_open(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, struct pg_app *app);
int pg_ws_receive(struct pg_ws *w, struct lws *wsi, const void *in, size_t len);
int pg_ws_writeable(struct pg_ws *w, struct lws *wsi);
void pg_ws_closed(struct pg_ws *w, struct lws *wsi);
/* The wake op of such a protocol: its socket writes at the next WRITEABLE. */
void pg_ws_wake(struct pg_session *s);

#endif
