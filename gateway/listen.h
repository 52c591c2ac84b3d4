/*
 * A worker's listening socket: its own socket on listen_port, shared with
 * its sibling workers through SO_REUSEPORT (gateway/workers.c), accepted
 * from by the lws loop and handed to lws as HTTP connections, or to the
 * sibling that holds the connection's Engine.IO session.
 *
 * Why not lws's own listener: libwebsockets 4.1 as Debian ships it does not
 * set SO_REUSEPORT for LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE (it binds with
 * SO_REUSEADDR alone, so a second worker's bind fails with EADDRINUSE), and
 * lws reads a connection as soon as it has it, where a connection meant for
 * a sibling must be passed on unread. A worker's context therefore listens
 * on nothing itself (CONTEXT_PORT_NO_LISTEN_SERVER) and watches this
 * socket as a raw descriptor (PG_LISTEN_PROTOCOL); every connection it
 * keeps is adopted as lws would adopt it (LWS_ADOPT_SOCKET |
 * LWS_ADOPT_HTTP), so from there on it is an ordinary HTTP or WebSocket
 * connection of the "pushgate" protocol. With one process (workers = 1)
 * none of this runs: lws listens as before, its socket only given
 * TCP_DEFER_ACCEPT and client_unsent_bytes (pg_listen_tune_lws).
 */
#ifndef PG_LISTEN_H
#define PG_LISTEN_H

#include <libwebsockets.h>

struct pg_config;
struct pg_gw;

#define PG_LISTEN_PROTOCOL "pushgate-listen"
/*
 * Connections accepted per readable event of the listening socket, at most: it is accepted from until EAGAIN (a
 * sibling took the rest, or the queue is empty) or this many. A burst of new connections (a reconnect storm) is
 * taken off the kernel's queue in few loop passes, before it overflows listen_backlog, and a pass still ends
 * within a few milliseconds for the sessions already open.
 */
#define PG_LISTEN_ACCEPTS_PER_PASS 512
/* a new connection is accepted once it has sent its first bytes, or after about this many seconds (TCP_DEFER_ACCEPT) */
#define PG_LISTEN_DEFER_ACCEPT_S 1
/* pg_listen_defer_lws() looks for lws' listening socket among the descriptors below this */
#define PG_LISTEN_LWS_FD_SCAN 1024
#define PG_LISTEN_EVENTS_PER_PASS 64 /* connections received, or looked at again, per readable event */
/* At the open-files limit (accept: EMFILE), the listening socket is not watched for this long; the warning about it
   is logged at most every PG_LISTEN_FULL_LOG_MS. */
#define PG_LISTEN_FULL_PAUSE_MS 100
#define PG_LISTEN_FULL_LOG_MS 10000

/*
 * In a worker: opens the listening socket (listen_host:listen_port, an
 * address, not an interface name; SO_REUSEADDR and SO_REUSEPORT) and
 * watches it, the connections waiting for their request line and the
 * worker's hand-off channel (cfg->handoff) in gw's lws loop, through
 * PG_LISTEN_PROTOCOL. 0, or a negative PG_E* error, logged. The state is
 * gw->listen's until pg_listen_free().
 */
int pg_listen_start(struct pg_gw *gw);
/*
 * Before anything starts (workers.c, for one process too): 0 if listen_host:listen_port can be bound now, else a
 * negative PG_E* error, logged ("cannot listen on ..."). A listen_host that does not resolve (an interface name) passes.
 */
int pg_listen_probe(const struct pg_config *cfg);
/*
 * One process (workers = 1), after lws made its context: lws' own listening socket on listen_port gets
 * TCP_DEFER_ACCEPT and client_unsent_bytes, as a worker's socket has (lws 4.1 has no option for them and no call
 * that names the socket, so it is found among this process's descriptors). Nothing found (an interface
 * listen_host, a port lws did not take) is only logged at debug.
 */
void pg_listen_tune_lws(const struct pg_config *cfg);
/* Closes the connections still waiting and frees the state; before lws_context_destroy (its timer is lws's). */
void pg_listen_free(struct pg_gw *gw);

/* The lws protocol callback of PG_LISTEN_PROTOCOL. */
int pg_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

/*
 * What the start of a request (buf, n bytes) says about where it goes:
 * 1 when it is a request at the Engine.IO path (/socket.io or /socket.io/)
 * with a sid query parameter (*sid, *sid_len point into buf); 0 when it is
 * not (another path, no sid, not an HTTP request line); PG_EBUSY when the
 * bytes so far cannot tell. Only the request line is read.
 */
int pg_listen_request_sid(const char *buf, size_t n, const char **sid, size_t *sid_len);

#endif
