/*
 * One client session, whatever its wire protocol, and the protocol interface.
 *
 * A session is what the core knows of a client: its app, its subscriptions,
 * its out-queue and its close state. What a session does on the wire is its
 * protocol's: every session points at one struct pg_proto (s->proto), an ops
 * table each wire protocol exports once (proto/native.c, proto/pusher.c,
 * proto/sio.c). The core (fan-out, gap signal, app-wide broadcasts, closing
 * sessions for an app's reasons, metrics labels) calls only the table and
 * never asks which protocol a session speaks.
 *
 * This module owns no state of its own: it queues frames on one session,
 * closes it and collects its fragmented input. Sessions by serial (the
 * registry) are core/registry.c's; joining channels is core/channels.c's.
 *
 * Who owns a session:
 *  - native and Pusher: lws, as the per-wsi user data of their WebSocket
 *    (struct pg_ws.own); it ends with LWS_CALLBACK_CLOSED (core/ws.c).
 *  - socket.io: proto/eio.c, on the heap. An Engine.IO session outlives its
 *    transports: HTTP long-polling requests come and go, and a WebSocket may
 *    take over (upgrade). s->wsi is that WebSocket once it is the transport,
 *    NULL while polling. Waking such a session goes through its wake op, and
 *    it is freed from a timer callback, never from inside a fan-out or a close.
 *
 * Threading: the loop thread only (core/gw.h).
 */
#ifndef PG_CORE_SESSION_H
#define PG_CORE_SESSION_H

#include <stdint.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <uthash.h>

#include "core/liveness.h"
#include "core/msg.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

struct pg_gw;
struct pg_app;
struct pg_member;
struct pg_addr;
struct pg_proto;
struct pg_rx;

struct pg_session {
    uint64_t serial; /* never reused: async completions look sessions up by it (core/registry.c) */
    struct lws *wsi;
    struct pg_gw *gw;
    struct pg_app *app;
    const struct pg_proto *proto; /* its wire protocol; static, never NULL once opened */
    char client_id[32];
    char socket_id[32]; /* Pusher: "<n>.<n>"; the fan-out skips the session a message names as its sender */
    int64_t last_rx_ms; /* last frame or packet from the client (monotonic): the protocols' idle checks */
    pg_token *token; /* owned; NULL until authenticated */
    struct pg_member *subs; /* hash by channel name */
    size_t nsubs;
    struct pg_outq q;
    struct pg_rx *rx; /* owned: a message arriving in pieces and its clock (core/session.c); NULL between them */
    struct pg_addr *addr;          /* its client address's admission entry (admission.c), or NULL */
    uint64_t delivered_seq; /* last fan-out this session received: dedup across subscriptions */
    uint64_t gap_seq;       /* last fan-out that told this session of a gap: one signal per message */
    int64_t choked_since_ms; /* monotonic: since when its socket takes no bytes while output waits; 0: it drains */
    uint32_t lost;           /* messages not queued (its queue full while it reads): a gap signal follows */
    int64_t losing_since_ms; /* monotonic: first loss of its current run of losses (core/session.c); 0: none */
    int64_t lost_last_ms;    /* monotonic: its last loss */
    lws_dll2_t loaded; /* in gw->loaded while it has output queued or lost messages (core/publish.c's tick) */
    lws_dll2_t to_write; /* in gw->to_write from a wake to the end of the loop pass (core/ws.c) */
    uint16_t close_code;    /* non-zero: close at the next WRITEABLE */
    uint8_t nagle; /* 1: its socket was last set to leave TCP_NODELAY (core/ws.c); 0: as lws set it, no delay */
    char close_reason[96];
    UT_hash_handle hh; /* gw->sessions by serial (core/registry.c) */
};

/* Bytes a protocol whose session is its socket may add after the struct pg_session (its own fields). */
#define PG_WS_PROTO_BYTES 64 /* struct pusher_session's are the most */

/*
 * What lws keeps per WebSocket (the WebSocket half of server.c's per-connection
 * data): the protocol that speaks on it and the session it carries. Native and
 * Pusher sessions are their socket's (s == &own): each protocol's session
 * struct begins with the struct pg_session and fills own_room (checked where
 * it is defined), so what only one protocol keeps per session stays in its
 * file and costs no allocation. A socket.io WebSocket carries a session
 * proto/eio.c owns, and s goes NULL when that session goes first.
 */
struct pg_ws {
    const struct pg_proto *proto;
    struct pg_session *s;
    struct pg_live live; /* the socket's PING and PONG clock, whichever protocol speaks on it (core/liveness.h) */
    union {
        struct pg_session own;
        unsigned char own_room[sizeof(struct pg_session) + PG_WS_PROTO_BYTES];
    };
};

/* One message as the fan-out hands it to a protocol's encoder (everything borrowed for the call). */
struct pg_event {
    const char *channel; /* the channel it was published on; NULL: an app-wide (#general) broadcast */
    const void *payload;
    size_t len;
    const struct pg_bridge_prop *props; /* its MQTT user properties: event, client_id, socket_id, user_id, ts, … */
    size_t nprops;
};

#define PG_PROTO_MAX_SLOTS 2 /* encodings of one message a protocol may need (socket.io: two namespaces) */

/*
 * A wire protocol. Every entry is required unless it says NULL is allowed.
 * Adding a protocol: one file that defines its table, its upgrade path in
 * pg_ws_path() (http/http.c), its metrics label.
 */
struct pg_proto {
    const char *name; /* metrics and dashboard label: "native", "pusher", "socketio" */

    /* --- lws WebSocket events (server.c); native and Pusher use core/ws.c's --- */
    /* Before the upgrade: 0 accept, 1 refused (answered with pg_http_refuse_upgrade). app: from the path, may be NULL. */
    int (*confirm_upgrade)(struct pg_gw *gw, struct lws *wsi, struct pg_app *app);
    /* LWS_CALLBACK_ESTABLISHED; w zeroed but for w->proto. -1 drops the connection. */
    int (*ws_open)(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, struct pg_app *app);
    int (*ws_receive)(struct pg_ws *w, struct lws *wsi, const void *in, size_t len); /* -1: close */
    int (*ws_writeable)(struct pg_ws *w, struct lws *wsi);                           /* -1: close */
    void (*ws_closed)(struct pg_ws *w, struct lws *wsi);

    /* --- one session (core/ws.c calls these for protocols whose session is its socket; NULL for others) --- */
    int (*open)(struct pg_session *s, struct lws *wsi); /* registered already; -1: drop the connection */
    void (*receive)(struct pg_session *s, const char *msg, size_t len); /* one whole text message */
    /* After each message read and each frame written (native: flow control on requests); NULL: nothing. */
    void (*flow)(struct pg_session *s);
    /* pg_session_release(): free what the protocol keeps beside the struct pg_session; NULL: nothing to free. */
    void (*release)(struct pg_session *s);

    /* --- what the core asks of any session --- */
    /* Output was queued or a close decided: get the session's transport to write. */
    void (*wake)(struct pg_session *s);
    /*
     * Encodings: a message is encoded at most once per slot of a protocol and the
     * same frame is queued on every session of that slot. nslots 1..PG_PROTO_MAX_SLOTS;
     * slot NULL when nslots is 1.
     */
    int nslots;
    int (*slot)(const struct pg_session *s);
    /* The frame for ev as s's slot sees it (refs = 1), or NULL when it cannot be encoded: s gets nothing. */
    struct pg_msg *(*encode)(const struct pg_session *s, const struct pg_event *ev);
    /* 1 when s may receive app-wide (#general) broadcasts (an app that requires auth: authenticated ones only). */
    int (*may_read_app)(const struct pg_session *s);
    /* Tell s it may have missed messages of subscription sub on channel (both NULL: of any); see pg_session_gap. */
    void (*gap)(struct pg_session *s, const char *sub, const char *channel);
    /* The channel index drops m (a leave, or the session's release) before it is freed; NULL: nothing to undo. */
    void (*member_left)(struct pg_member *m);
    /* The user s is signed in or registered as (terminate_connections), or NULL. */
    const char *(*user)(const struct pg_session *s);
    /*
     * The gateway closes s for a reason of its app's: disabled or deleted (code 403, close 4003), a credential
     * revoked (401, 4009). code is the HTTP-like status a protocol with an error frame reports before the close.
     */
    void (*refuse)(struct pg_session *s, int code, uint16_t close_code, const char *why);
    /* The app's backend terminated the connections of s's user: close s (4009). */
    void (*terminate)(struct pg_session *s);
    /* s's app now requires auth: close s unless its credentials cover what it holds (s not closing yet). */
    void (*auth_required)(struct pg_session *s);
};

/* Queue a frame; closes the session (1013) if its queue is over the limit. Takes its own reference. */
void pg_session_send(struct pg_session *s, struct pg_msg *m);
void pg_session_send_json(struct pg_session *s, json_t *obj); /* steals obj */
/*
 * Whether s's socket counts as not reading (its session's output waiting on
 * it is its reader's fault): full now, and full since at least
 * slow_consumer_grace_ms ago (s->choked_since_ms: set when first seen full,
 * cleared by a write or when seen not full). A socket that is full only
 * between two of its reader's reads (with client_unsent_bytes, every socket
 * of a reader that is behind) counts as reading. s->wsi not NULL.
 */
int pg_session_stuck(struct pg_session *s, int64_t now);
/*
 * The out-queue length (messages) that the load rules count as full:
 * behind_queue_messages, at most max_queue_messages. Between it and
 * max_queue_messages a reader a moment behind the others waits in its queue
 * instead of losing messages, while the rules keep everyone's lag to theirs.
 */
struct pg_config;
size_t pg_behind_messages(const struct pg_config *cfg);
/*
 * Stop reading from the broker (core/publish.c's tick reads again): the
 * sessions' out-queues are too full for the gateway to take more now.
 */
void pg_session_pause_input(struct pg_gw *gw);
/* Close after what is queued now (code and reason go to the client). */
void pg_session_close(struct pg_session *s, uint16_t code, const char *reason);
/*
 * Close s as a slow consumer (1013, reason): logged with why, its out-queue
 * dropped (nothing more will be written to it), counted for its app.
 */
void pg_session_slow_close(struct pg_session *s, const char *why, const char *reason);
/*
 * Collect one WebSocket text message of s across fragments: 1 with the message
 * in *msg (valid until pg_ws_collected(s)), 0 while fragments are missing, -1
 * to close (binary frame 1003, over max_bytes 1009, out of memory).
 */
int pg_ws_collect(struct pg_session *s, struct lws *wsi, const void *in, size_t len, uint64_t max_bytes,
                  const char **msg, size_t *msg_len);
void pg_ws_collected(struct pg_session *s);
/*
 * Tells s it may have missed messages of its subscription sub on channel, in
 * its protocol's way (native {"type":"gap","room","channel"}; Pusher
 * pusher:error 4200 and close 4200; socket.io event "pushgate:gap"). sub and
 * channel NULL (JSON null): any of its subscriptions may have missed messages.
 * Counted in the app's gap_signals; clears s->lost.
 */
void pg_session_gap(struct pg_session *s, const char *sub, const char *channel);

#endif
