/*
 * A worker's listening socket: its own socket on listen_port, shared with
 * its sibling workers through SO_REUSEPORT (gateway/workers.c), accepted
 * from by the lws loop and handed to lws as HTTP connections.
 *
 * Why not lws's own listener: libwebsockets 4.1 as Debian ships it does not
 * set SO_REUSEPORT for LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE (it binds with
 * SO_REUSEADDR alone, so a second worker's bind fails with EADDRINUSE). A
 * worker's context therefore listens on nothing itself
 * (CONTEXT_PORT_NO_LISTEN_SERVER) and watches this socket as a raw
 * descriptor (PG_LISTEN_PROTOCOL); every accepted connection is adopted as
 * lws would adopt it (LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP), so from there on
 * it is an ordinary HTTP or WebSocket connection of the "pushgate" protocol.
 * With one process (workers = 1) none of this runs: lws listens as before.
 */
#ifndef PG_LISTEN_H
#define PG_LISTEN_H

#include <libwebsockets.h>

struct pg_config;

#define PG_LISTEN_PROTOCOL "pushgate-listen"
#define PG_LISTEN_ACCEPTS_PER_PASS 64 /* connections accepted per readable event: the loop serves others too */

/*
 * A nonblocking listening socket bound with SO_REUSEADDR and SO_REUSEPORT to
 * listen_host:listen_port (an address, not an interface name). Returns the
 * descriptor (owned by the caller: adopt it with lws_adopt_descriptor_vhost,
 * LWS_ADOPT_RAW_FILE_DESC, PG_LISTEN_PROTOCOL, and lws owns it) or a
 * negative PG_E* error, logged.
 */
int pg_listen_open(const struct pg_config *cfg);

/* The lws protocol callback of PG_LISTEN_PROTOCOL: accepts what is queued and adopts it into the vhost. */
int pg_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

#endif
