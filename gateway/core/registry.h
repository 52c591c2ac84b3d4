/*
 * The gateway's sessions by serial: every open session of any protocol is
 * listed in gw->sessions from its opening to its release.
 *
 * A serial is never reused, so an asynchronous completion (a broker
 * acknowledgement, a timer) that kept a session's serial finds it again, or
 * finds it gone, without holding a pointer that may dangle.
 *
 * Callers: the protocols open and release their sessions here (core/ws.c for
 * native and Pusher, proto/eio.c for socket.io); anyone may look one up.
 */
#ifndef PG_CORE_REGISTRY_H
#define PG_CORE_REGISTRY_H

#include <stdint.h>
#include <libwebsockets.h>

struct pg_gw;
struct pg_app;
struct pg_session;

/* The open session with this serial, or NULL (closed meanwhile). */
struct pg_session *pg_session_find(struct pg_gw *gw, uint64_t serial);
/*
 * List s (s->proto set, the rest zero or set by its owner): gives it gw, a serial, and counts it against its
 * client address (wsi: the connection that opened it) until pg_session_release().
 */
void pg_session_register(struct pg_gw *gw, struct pg_session *s, struct lws *wsi);
/*
 * Undo what a session holds (channels, queue, token, timers, address slot, its protocol's part through the
 * release op) and unlist it; the memory is zeroed and
 * its owner then frees or reuses it. A session never registered is left alone.
 */
void pg_session_release(struct pg_gw *gw, struct pg_session *s);
/* From the tick: after a burst of new sessions, the heap's free pages go back to the kernel (malloc_trim). */
void pg_sessions_tick(struct pg_gw *gw);
/* Close every local session of app whose user (s->proto->user) is user_id: terminate_connections. */
void pg_sessions_terminate_user(struct pg_gw *gw, struct pg_app *app, const char *user_id);

#endif
