/*
 * Admission: whether a new session may open at all (the gateway is draining,
 * its broker is away, max_sessions is reached) and whether its client address
 * may open one more (max_sessions_per_address, max_new_sessions_per_address).
 *
 * State: per-address entries (struct pg_addr, gw->addrs), this module's
 * alone; a session holds a counted reference to its address's entry
 * (s->addr) from pg_addr_attach() to pg_addr_detach(). Callers: the upgrade
 * checks (http/http.c), socket.io's handshake (proto/sio.c), the session
 * registry (attach, detach), the loop's tick.
 */
#ifndef PG_CORE_ADMISSION_H
#define PG_CORE_ADMISSION_H

#include <libwebsockets.h>

struct pg_gw;
struct pg_session;

/*
 * Why the client at wsi's address may not open a session now (answer 429), or
 * NULL: then it is counted among this second's new sessions of its address.
 */
const char *pg_addr_refusal(struct pg_gw *gw, struct lws *wsi);
/* Counts s among the live sessions of wsi's address until pg_addr_detach() (pg_session_release does). */
void pg_addr_attach(struct pg_gw *gw, struct pg_session *s, struct lws *wsi);
void pg_addr_detach(struct pg_gw *gw, struct pg_session *s);
/* From the loop's tick: forgets addresses with no session and no recent new one. */
void pg_addr_tick(struct pg_gw *gw);
/* At exit, after every session is released. */
void pg_addr_free(struct pg_gw *gw);

/* Why no new session may open now (shutting down, broker unavailable, max_sessions reached), or NULL. */
const char *pg_session_refusal(const struct pg_gw *gw);

#endif
