/*
 * Engine.IO 4 sessions: the transport layer socket.io (proto/sio.c) rides on.
 *
 * An Engine.IO session (sid) outlives its transports: HTTP long-polling
 * requests come and go (proto/eio.c), and a WebSocket may take over
 * (proto/eio_ws.c). Whatever rides on it gives its hooks (struct pg_eio_ops)
 * when a session is created and gets every message packet ("4…") through
 * them, so this layer knows nothing of socket.io.
 *
 * Ownership: a session is allocated by pg_eio_new() (ops->size bytes, the
 * upper layer's struct beginning with a struct pg_eio, itself beginning with
 * the struct pg_session) and listed in gw->eio_sessions by sid. It is freed
 * only by the gateway's reaper timer (gw->eio_reap) after pg_eio_kill() put
 * it on gw->eio_dead (or at pg_eio_shutdown()), so no fan-out, close, tick
 * or lws callback frees what it iterates. Its deadline entries (struct
 * pg_due) are its own: each is on its queue in struct pg_gw from the moment
 * it is started until it is popped or stopped, and eio_destroy() stops every
 * one of them (and the upper layer's destroy hook its own) before the memory
 * goes, so no queue holds a freed session. A parked GET
 * is found again by its pg_http serial; a WebSocket reaches its session
 * through its struct pg_ws (w->s), cleared when the session goes.
 *
 * Callers: proto/eio_ws.c (the WebSocket transport) and the upper layer
 * (proto/sio.c). Loop thread only.
 */
#ifndef PG_PROTO_EIO_H
#define PG_PROTO_EIO_H

#include <stddef.h>
#include <stdint.h>
#include <libwebsockets.h>
#include <uthash.h>

#include "core/session.h"

struct pg_gw;
struct pg_http;
struct pg_eio;

#define PG_EIO_SID_LEN 20
/*
 * With workers (gateway/workers.c), the first PG_EIO_SID_WORKER_CHARS characters of a sid are the number of the
 * worker that made it, in base 62 over the sid's own alphabet (most significant first), the rest random: a request
 * of the session arriving on another worker's connection is handed to its owner (gateway/listen.c). Clients see an
 * opaque sid of the same length and alphabet as before.
 */
#define PG_EIO_SID_WORKER_CHARS 2 /* 62^2 = 3844 numbers, more than PG_WORKERS_MAX */
/* "2probe" to "5" (proto/eio_ws.c), as Engine.IO servers allow: a probe not completed by then is dropped */
#define PG_EIO_UPGRADE_TIMEOUT_MS 10000

/* What rides on Engine.IO sessions; static, given to pg_eio_new() and kept by the session. */
struct pg_eio_ops {
    const struct pg_proto *proto; /* the sessions' protocol table (s->proto) */
    size_t size; /* of the upper layer's session struct, which begins with a struct pg_eio (zeroed at creation) */
    /* The session is registered and its ping armed: set up the upper layer's part. -1: refused (destroyed at once). */
    int (*opened)(struct pg_eio *e);
    /* One message packet from either transport, without its "4". -1: malformed (ends the session or its WebSocket). */
    int (*message)(struct pg_eio *e, const char *data, size_t len);
    /* 1 when a WebSocket sent from origin ("": none) may take the session over. */
    int (*may_upgrade)(const struct pg_eio *e, const char *origin);
    /* The session goes (released from the core already): free what the upper layer holds. */
    void (*destroy)(struct pg_eio *e);
};

struct pg_eio {
    struct pg_session s; /* first: the core (channels, fan-out, server.c) sees &e->s */
    const struct pg_eio_ops *ops;
    char sid[PG_EIO_SID_LEN + 1];
    char origin[256];          /* Origin of the opening request ("" if none): the only one its requests may carry */
    struct lws *ws;            /* WebSocket: probing until upgraded, then the transport (also s.wsi) */
    struct pg_ws *ws_conn;     /* its lws user data (w->s is this session); NULL without one */
    int upgraded;              /* ws is the transport (from the start for a direct WebSocket) */
    int probing;               /* "2probe" seen, "5" not yet: polling GETs are answered at once */
    int probe_reply;           /* "3probe" waits for ws to be writeable */
    int ping_out;              /* our ping waits for its pong (in gw->eio_pong) */
    int close_timer;           /* closing while polling: reap is on gw->eio_close for the close grace */
    int dead;                  /* reap is on gw->eio_dead: destroyed at the next loop turn; nothing more is done */
    int connected;             /* the upper layer is connected (pg_eio_connected): no handshake deadline */
    int returned;              /* a request with the sid came after the handshake */
    int client_closed;         /* the client sent "1" over polling: its parked GET gets the noop */
    uint64_t get_serial;       /* the parked polling GET (pg_http serial); 0: none */
    int64_t transport_ms;      /* until connected: the last moment the session had a transport (pg_mono_ms) */
    /* deadline FIFOs (core/dueq.h), popped by pg_eio_tick(): gw->eio_ping or gw->eio_pong (ping_out) while alive;
     * gw->eio_handshake from a polling handshake until connected; gw->eio_poll while a GET is parked;
     * gw->eio_upgrade from "2probe" until "5" or the probe's WebSocket closes */
    struct pg_due ping, handshake, poll, upgrade;
    /* gw->eio_close (the close grace, close_timer), then gw->eio_dead once killed (dead): at most one of the two */
    struct pg_due reap;
    UT_hash_handle hh_sid; /* gw->eio_sessions */
};

static inline struct pg_eio *pg_eio_of(const struct pg_session *s)
{
    return (struct pg_eio *)(uintptr_t)s; /* s is the first member */
}

/* From the loop's tick (server.c): pings, pong, handshake and upgrade deadlines, parked GETs due for the noop,
 * closed polling sessions whose client did not fetch the close packet in time. */
void pg_eio_tick(struct pg_gw *gw);

/* --- for the upper layer --- */

/* A request at the Engine.IO path (polling transport), once its body is complete; new sessions get ops. */
void pg_eio_http(struct pg_gw *gw, struct pg_http *h, const struct pg_eio_ops *ops);
/* Queue one packet (copied); out of memory ends the session. */
void pg_eio_send(struct pg_eio *e, const char *text, size_t len);
/* End the session now; it is destroyed from the loop, after whatever is running returns. */
void pg_eio_kill(struct pg_eio *e);
/* The upper layer connected: the session is in use, its handshake deadline is lifted for good. */
void pg_eio_connected(struct pg_eio *e);
/* The wake op of the upper layer's struct pg_proto. */
void pg_eio_wake(struct pg_session *s);
/* Free every session (context teardown). */
void pg_eio_shutdown(struct pg_gw *gw);
/*
 * The worker number a sid of len bytes names (PG_EIO_SID_WORKER_CHARS), or -1 when it can name none (shorter,
 * another alphabet). Any sid decodes, a single process's too: only a worker asks, about what it did not make.
 */
int pg_eio_sid_worker(const char *sid, size_t len);

/* --- for the transports (proto/eio_ws.c) --- */

/* A new session opened by wsi's request (its Origin is kept), registered, or NULL. */
struct pg_eio *pg_eio_new(struct pg_gw *gw, struct lws *wsi, const struct pg_eio_ops *ops);
struct pg_eio *pg_eio_find(struct pg_gw *gw, const char *sid); /* a live session by sid, or NULL */
/* 0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}; caller frees. */
char *pg_eio_open_packet(struct pg_eio *e, int can_upgrade);
/* The client came back with its sid: the slot is in use, for now. */
void pg_eio_returned(struct pg_eio *e);
/* One Engine.IO packet from either transport; -1: malformed. */
int pg_eio_packet(struct pg_eio *e, const char *p, size_t n);
/* The packets of a polling POST body, separated by \x1e, in order; -1 at the first malformed one. */
int pg_eio_payload(struct pg_eio *e, const char *body, size_t len);
/* The parked polling GET, or NULL. */
struct pg_http *pg_eio_parked_get(struct pg_eio *e);
/* Answer the polling GET h with everything queued (the close packet last when closing), or the noop. */
void pg_eio_flush_get(struct pg_eio *e, struct pg_http *h, int noop_only);
/* Let go of the WebSocket (its next WRITEABLE closes it); the session goes on polling or ends. */
void pg_eio_detach_ws(struct pg_eio *e);

#endif
