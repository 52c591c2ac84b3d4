/*
 * WebSocket and socket.io sessions: what every protocol's session holds, and
 * the helpers that queue frames on it, close it and release it.
 */
#ifndef PG_CORE_SESSION_H
#define PG_CORE_SESSION_H

#include <stdint.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <uthash.h>

#include "core/msg.h"
#include "pushgate_auth.h"

struct pg_gw;
struct pg_app;
struct pg_member;
struct pg_addr;

enum pg_proto { PG_PROTO_NATIVE = 1, PG_PROTO_PUSHER = 2, PG_PROTO_SIO = 3 };

/*
 * Who owns a session:
 *  - native and Pusher: lws, as the per-wsi user data of their WebSocket
 *    (struct pg_conn.u.ws); it ends with LWS_CALLBACK_CLOSED.
 *  - socket.io (PG_PROTO_SIO): sio.c, on the heap (struct pg_sio embeds it).
 *    An Engine.IO session outlives its transports: HTTP long-polling requests
 *    come and go, and a WebSocket may take over (upgrade). s->wsi is that
 *    WebSocket once it is the transport, NULL while polling. Waking such a
 *    session (pg_session_send/close) goes through pg_sio_wake(), and sio.c
 *    frees it from a timer callback, never from inside a fan-out or a close.
 */

struct pg_session {
    uint64_t serial; /* never reused: async completions look sessions up by it */
    struct lws *wsi;
    struct pg_gw *gw;
    struct pg_app *app;
    enum pg_proto proto;
    char client_id[32];
    char socket_id[32]; /* Pusher: "<n>.<n>" */
    char *user_id;      /* Pusher user signin (owned) */
    pg_rules *user_perms; /* Pusher: the signed-in user_data's `permissions` (owned), NULL without */
    int64_t last_rx_ms; /* Pusher activity: last frame from the client (monotonic) */
    int ping_sent;      /* Pusher: we pinged an idle client and wait for any frame */
    int64_t ping_ms;    /* when (monotonic) */
    lws_sorted_usec_list_t sul_activity;
    int64_t rate_window_ms; /* Pusher client events: start of the current one-second window */
    int rate_count;
    pg_token *token; /* owned; NULL until authenticated */
    lws_sorted_usec_list_t sul_expiry;
    struct pg_member *subs; /* hash by channel name */
    size_t nsubs;
    struct pg_outq q;
    unsigned char *rx; /* fragments of the message being received */
    size_t rx_len;
    lws_sorted_usec_list_t sul_rx; /* closes the session when a begun message is not whole in time */
    struct pg_addr *addr;          /* its client address's admission entry (admission.c), or NULL */
    uint64_t delivered_seq; /* last fan-out this session received: dedup across subscriptions */
    uint64_t gap_seq;       /* last fan-out that told this session of a gap: one signal per message */
    int64_t choked_since_ms; /* monotonic: since when its socket takes no bytes while output waits; 0: it drains */
    uint32_t lost;           /* messages not queued while the gateway was behind: a gap signal follows */
    uint16_t close_code;    /* non-zero: close at the next WRITEABLE */
    char close_reason[96];
    size_t replies_due; /* native: requests waiting for the broker before their reply is queued */
    int rx_paused;      /* native: not reading requests until its replies drain (pg_native_flow) */
    UT_hash_handle hh; /* gw->sessions by serial */
};


/* Session helpers (server.c) */
struct pg_session *pg_session_find(struct pg_gw *gw, uint64_t serial);
/* Queue a frame; closes the session (1013) if its queue is over the limit. Takes its own reference. */
void pg_session_send(struct pg_session *s, struct pg_msg *m);
void pg_session_send_json(struct pg_session *s, json_t *obj); /* steals obj */
/*
 * Collect one WebSocket text message of s across fragments: 1 with the message
 * in *msg (valid until pg_ws_collected(s)), 0 while fragments are missing, -1
 * to close (binary frame 1003, over max_bytes 1009, out of memory).
 */
int pg_ws_collect(struct pg_session *s, struct lws *wsi, const void *in, size_t len, uint64_t max_bytes,
                  const char **msg, size_t *msg_len);
void pg_ws_collected(struct pg_session *s);
/* Close after what is queued now (code and reason go to the client). */
void pg_session_close(struct pg_session *s, uint16_t code, const char *reason);
/* Undo what a session holds (channels, queue, token) and unlist it; its owner then frees or reuses the memory. */
void pg_session_release(struct pg_gw *gw, struct pg_session *s);
/* May this session do action on channel? 0, or the HTTP-like error code (401, 403). */
int pg_session_may(struct pg_session *s, pg_action action, const char *channel);

/*
 * 1 when the session may receive app-wide (#general) events: any session of an
 * open app; of an app that requires auth, only authenticated ones (native
 * token, Pusher user signin, registered socket.io user).
 */
int pg_session_may_read_app(const struct pg_session *s);

/*
 * Tells s it may have missed messages of its subscription sub on channel:
 * native {"type":"gap","room":sub,"channel":channel}; Pusher pusher:error 4200
 * and close 4200 (pusher-js reconnects and resubscribes); socket.io event
 * "pushgate:gap" {"room","channel"}. sub and channel NULL (JSON null): any
 * of its subscriptions may have missed messages.
 */
void pg_session_gap(struct pg_session *s, const char *sub, const char *channel);

#endif
