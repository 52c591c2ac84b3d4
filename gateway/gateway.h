/*
 * Gateway internals shared between its files.
 *
 * Threading: one thread runs the lws loop and owns everything below: the
 * struct pg_gw, every app, channel, session, queued message and the bridge.
 * Nothing here is locked; nothing may be touched from another thread. The
 * only cross-thread entry is the signal handler, which sets a flag and calls
 * lws_cancel_service().
 */
#ifndef PG_GATEWAY_H
#define PG_GATEWAY_H

#include <signal.h>
#include <stdint.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <uthash.h>

#include "config.h"
#include "log.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

/* ---- shared encoded messages and per-session out-queues (msg.c) ---------- */

/*
 * One encoded frame, shared by every session it is queued on. buf has
 * LWS_PRE bytes of headroom before the payload so lws can prepend its frame
 * header in place; lws copies whatever it cannot send at once, so the buffer
 * may be reused by the next session immediately.
 */
struct pg_msg {
    uint32_t refs;
    int reply; /* 1: a reply to its session's own request (one queue only), outside the out-queue limits */
    size_t len;
    unsigned char buf[]; /* LWS_PRE + len + 1 (NUL, handy for logs) */
};

struct pg_msg *pg_msg_new(const void *data, size_t len); /* refs = 1 */
struct pg_msg *pg_msg_from_json(json_t *obj);           /* compact encoding; NULL on failure */
void pg_msg_unref(struct pg_msg *m);
/* {"binary": "<base64>"}: how payload bytes that are not UTF-8 reach JSON clients. */
json_t *pg_binary_json(const void *payload, size_t len);
/* A message payload for JSON clients: JSON stays JSON, other UTF-8 becomes a string, anything else binary. */
json_t *pg_payload_json(const void *payload, size_t len);
/* The value of MQTT user property name, or def. */
const char *pg_prop_get(const struct pg_bridge_prop *props, size_t nprops, const char *name, const char *def);
static inline unsigned char *pg_msg_data(struct pg_msg *m)
{
    return m->buf + LWS_PRE;
}

/*
 * Bounded FIFO of message references. The limits bound the messages the
 * session did not ask for (fan-out); replies (m->reply) are counted apart,
 * in replies, and bounded by their sender reading no more requests while
 * too many wait (pg_native_flow()).
 */
struct pg_outq {
    struct pg_msg **ring;
    size_t head, count, cap;
    size_t bytes;
    size_t replies, reply_bytes; /* of count and bytes: the replies */
};
/* Takes a new reference on success; PG_ELIMIT when the other messages would exceed a limit. */
int pg_outq_push(struct pg_outq *q, struct pg_msg *m, size_t max_bytes, size_t max_msgs);
struct pg_msg *pg_outq_peek(const struct pg_outq *q);
void pg_outq_pop(struct pg_outq *q); /* drops the head's reference */
void pg_outq_clear(struct pg_outq *q);
/*
 * The messages the session did not ask for (fan-out), without its replies: what the out-queue limits bound, and
 * what says whether the gateway keeps up. A pipelining client's replies are its own backpressure (flow control on
 * its requests), never a sign that the gateway is behind.
 */
static inline size_t pg_outq_fanout_count(const struct pg_outq *q)
{
    return q->count - q->replies;
}
static inline size_t pg_outq_fanout_bytes(const struct pg_outq *q)
{
    return q->bytes - q->reply_bytes;
}

/* ---- apps, channels, sessions (channels.c) -------------------------------- */

struct pg_session;
struct pg_app;
struct pg_pchan;
struct pg_node;

struct pg_member { /* one subscription of one session; in the session's hash and the channel's list */
    struct pg_channel *ch;
    struct pg_session *s;
    char *user_id;      /* presence channels: the member this session is (owned) */
    int live;           /* the broker granted the channel's subscription for this member */
    struct pg_member *prev, *next; /* channel's members (utlist DL) */
    UT_hash_handle hh;              /* session's subscriptions, keyed by ch->name */
};

/* A presence member on this node: a user with one or more sessions in the channel. */
struct pg_presence_user {
    char *id;
    json_t *info;
    int conns;
    UT_hash_handle hh;
};

struct pg_channel { /* a channel name or a wildcard filter with local subscribers */
    char *name;
    struct pg_presence_user *users; /* presence channels */
    size_t nusers;
    char *topic; /* {root}/{app}/c/{name}, the bridge subscription */
    int wildcard;
    struct pg_app *app;
    struct pg_member *members;
    size_t nmembers;
    struct pg_seq *seqs; /* last seq seen per origin (filters: per origin and channel); seq.c */
    UT_hash_handle hh;
};

#define PG_HISTORY_SAMPLES 360 /* one hour of samples every PG_HISTORY_INTERVAL_MS */
#define PG_HISTORY_INTERVAL_MS 10000

struct pg_app {
    char *id;                         /* owned; the hash key (creds may be replaced, the id stays) */
    const struct pg_app_creds *creds; /* &conf->creds */
    const struct pg_app_conf *conf;   /* the config's, or `owned` for a store app */
    struct pg_app_conf *owned;        /* store apps: current conf (replaced on reload; apps.c) */
    json_t *stored;                   /* store apps: the row as last loaded; NULL once deleted */
    int seen, shadow_warned;          /* apps.c reload bookkeeping */
    struct pg_channel *channels;      /* exact names */
    struct pg_channel *filters;       /* wildcard filters */
    struct pg_pchan *pchans;          /* presence channels known in the cluster (presence.c) */
    struct pg_seq *broadcast_seqs;    /* last seq of app-wide broadcasts per origin (seq.c) */
    struct pg_app_stats {             /* monotonic counters for /metrics (metrics.c) */
        uint64_t frames_in, bytes_in;     /* WebSocket frames from clients */
        uint64_t frames_out, bytes_out;   /* WebSocket frames written to clients */
        uint64_t published, publish_failed; /* publishes handed to the broker on behalf of clients */
        uint64_t delivered;               /* broker messages fanned out (once per message) */
        uint64_t slow_closes;             /* sessions closed for a full out-queue */
        uint64_t gaps;                    /* messages that revealed missed ones before them (seq.c) */
        uint64_t gap_signals;             /* sessions told they missed messages */
        uint64_t shed;                    /* publishes refused because this gateway was behind */
    } stats;
    struct pg_app_history {               /* this node's sessions over the last hour (dashboard.c) */
        int64_t t[PG_HISTORY_SAMPLES];    /* wall-clock ms */
        uint32_t sessions[PG_HISTORY_SAMPLES];
        size_t head, count;               /* ring, oldest first from head */
        int64_t due_ms;                   /* monotonic time of the next sample; 0: at the next tick */
        uint32_t now, counting;           /* sessions at the last count; the count in progress */
    } history;
    UT_hash_handle hh;
};

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

/* ---- HTTP requests (http.c) ------------------------------------------------ */

struct pg_http;
/* Runs once the request body is complete (at once when there is none); answers h now or later. */
typedef void (*pg_http_body_fn)(struct pg_gw *gw, struct pg_http *h);

enum pg_http_method { PG_GET = 1, PG_POST, PG_PUT, PG_PATCH, PG_DELETE, PG_OPTIONS };

struct pg_http {
    uint64_t serial;
    struct pg_gw *gw;
    struct lws *wsi;
    int method_post;
    enum pg_http_method method;
    pg_http_body_fn on_body; /* set by a route that needs the body */
    char path[512];
    struct pg_app *app;
    char *channel;
    int pusher_api; /* 1: /apps/{id}/events|batch_events */
    char *body;
    size_t body_len, body_cap;
    int body_too_big;
    int body_expected; /* Content-Length > 0 */
    int body_done;     /* the body (or its absence) was acted on in this transaction */
    /* response */
    int status;
    const char *ctype;
    char *resp;
    size_t resp_len;
    const char *location;
    const char *www_auth; /* WWW-Authenticate value of a 401 */
    const char *retry_after; /* Retry-After value of a 503 (static string) */
    char *allow_origin;   /* Access-Control-Allow-Origin of the answer (owned; socket.io polling) */
    char *preflight;      /* a CORS preflight answer: the Access-Control-Allow-Headers value (owned; may be "") */
    int waiting_ack;
    int phase; /* 0: headers next, 1: body next */
    int close_after; /* the answer carries Connection: close and the connection closes once it is written */
    int client_close; /* the request asked for the close (Connection: close, HTTP/1.0 without keep-alive) */
    int http10_keepalive; /* HTTP/1.0 with Connection: keep-alive: the answer says keep-alive back */
    lws_sorted_usec_list_t sul_body; /* http_body_timeout_ms: the announced body must have arrived by then */
    UT_hash_handle hh; /* gw->requests by serial */
};

/* Per-wsi user data of the main protocol: either an HTTP transaction or a WebSocket session. */
struct pg_conn {
    int is_ws;
    int is_sio;             /* a socket.io WebSocket: u.ws is unused, sio is the session it carries */
    struct pg_session *sio; /* owned by sio.c; NULL once that session is gone (the socket then closes) */
    union {
        struct pg_http http;
        struct pg_session ws;
    } u;
};

/* ---- the gateway ------------------------------------------------------------- */

struct pg_gw {
    struct pg_config *cfg;
    struct pg_auth_limits limits;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    pg_bridge *bridge;
    struct pg_webhooks *webhooks;
    struct lws *mqtt_wsi;
    lws_sorted_usec_list_t sul_tick;
    struct pg_app *apps;
    struct pg_session *sessions; /* by serial */
    struct pg_sio *sio_sessions; /* socket.io sessions by Engine.IO sid (sio.c) */
    struct pg_push_reg *push_regs; /* registered push connectionIds of the cluster (push_api.c) */
    lws_sorted_usec_list_t sul_push; /* push_api.c: sweeps expired registrations */
    struct pg_http *requests;    /* pending HTTP requests by serial */
    struct pg_addr *addrs;       /* per-address admission entries by IP (admission.c) */
    int64_t addrs_swept_ms;
    size_t nsessions;
    uint64_t next_serial;
    uint64_t fanout_seq;
    char node_id[40];
    int64_t started_ms;
    struct pg_node *nodes;     /* other gateway nodes (cluster.c) */
    json_t *occupied;          /* the cluster's channels as last evaluated: {app: {channel: subscriptions}} */
    int cluster_dirty;         /* local channels changed since the last snapshot: publish a new one */
    int occupancy_dirty;       /* a peer's snapshot arrived: re-evaluate occupancy, nothing to publish */
    int64_t last_snapshot_ms;
    int64_t last_refresh_ms;    /* monotonic time this node last published its snapshot (liveness refresh) */
    int64_t dashboard_count_ms; /* monotonic time of dashboard.c's last session count */
    struct pg_devices *devices; /* MQTT devices online per app, as the broker plugin reports them (devices.c) */
    struct pg_apps_store *store;      /* apps_db, read-write; NULL without one (apps.c) */
    int64_t store_version;            /* its data_version at the last reload */
    int store_dirty;                  /* reload at the next check (own commits keep data_version) */
    int64_t last_store_check_ms, last_revoked_purge_ms;
    struct pg_revocation *revoked;    /* revoked client ids and jti by "app\nkind\nvalue" */
    struct pg_unannounced *unannounced; /* store apps changed while the broker was away (apps.c) */
    char origin[64];             /* this process's publishes: node id + incarnation (seq.c) */
    uint64_t seq_next;           /* the last seq given out */
    struct pg_seq *seq_out;      /* last seq published per topic */
    long long broker_dropped;    /* the broker's $SYS dropped counter; -1 unknown */
    /* load (server.c): measured by the loop's tick and by arriving broker messages */
    uint64_t pending_bytes;      /* all out-queues together, at the last tick */
    size_t pending_msgs;
    const char *behind;          /* why publishes are refused now (static string), or NULL */
    int64_t late_until_ms;       /* monotonic: broker messages arrived later than max_inbound_lag_ms until then */
    int64_t inbound_lag_ms;      /* the age of the last broker message that carried a `ts` */
    int64_t rx_paused_ms;        /* monotonic: since when broker input is paused (out-queues too full); 0: reading */
    int draining;
    int64_t drain_deadline;
    int done;
};

struct pg_app *pg_app_find(struct pg_gw *gw, const char *id, size_t len);
/* A store app that was deleted: its struct stays for whoever points at it, but it is gone for users. */
static inline int pg_app_deleted(const struct pg_app *a)
{
    return a->owned && !a->stored;
}
/* The app as users (clients, REST, admin calls) see it: NULL when unknown or deleted. */
struct pg_app *pg_app_lookup(struct pg_gw *gw, const char *id, size_t len);

/* apps.c: config and store apps, revocations, app-wide broadcasts */
int pg_apps_init(struct pg_gw *gw);
void pg_apps_free(struct pg_gw *gw);
void pg_apps_tick(struct pg_gw *gw);
void pg_apps_connected(struct pg_gw *gw);
/* {root}/_ctl/{app}/revoke and {root}/{app}/b; 1 when handled. */
int pg_apps_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len,
                       const struct pg_bridge_prop *props, size_t nprops);
/* After an admin change of slug: publish its state (retained) for gateways on other stores. */
void pg_apps_announce(struct pg_gw *gw, const char *slug);
/* After this process wrote the store: reload now (its own commits do not move data_version). */
void pg_apps_store_changed(struct pg_gw *gw);
/* Revoke (kind "client" or "jti") until expires_ms: store, close matching sessions, tell other gateways. */
int pg_revoke(struct pg_gw *gw, const char *app, const char *kind, const char *value, int64_t expires_ms);
/* 1 when value is revoked for app. */
int pg_revoked(struct pg_gw *gw, const char *app, const char *kind, const char *value);
/*
 * 1 when the session may receive app-wide (#general) events: any session of an
 * open app; of an app that requires auth, only authenticated ones (native
 * token, Pusher user signin, registered socket.io user).
 */
int pg_session_may_read_app(const struct pg_session *s);
/* 1 when the session's client id, socket id, token jti or token client is revoked. */
int pg_session_revoked(struct pg_gw *gw, const struct pg_session *s);
/*
 * Subscribe s to name (exact or wildcard filter). 0: live at the broker now.
 * 1: the broker's SUBACK is pending; cb(ud, result) follows as for
 * pg_bridge_subscribe_wait (on failure the caller leaves the channel).
 * PG_ELIMIT over max_subscriptions, PG_EBUSY broker unavailable (nothing joined).
 */
int pg_channel_join(struct pg_session *s, const char *name, pg_bridge_ack_cb cb, void *ud);
void pg_channel_leave(struct pg_session *s, const char *name);
void pg_channel_leave_all(struct pg_session *s);
/* Bridge message for {root}/{app}/c/{channel}: fan out to local subscribers. */
void pg_channels_deliver(struct pg_gw *gw, const char *topic, const void *payload, size_t len,
                         const struct pg_bridge_prop *props, size_t nprops);
/* Pusher's per-user channel: its messages travel on {root}/{app}/u/{user}. */
#define PG_USER_CHANNEL_PREFIX "#server-to-user-"
/* 1 when some level of name is "+" or "#" (an MQTT filter). */
int pg_channel_is_filter(const char *name);
/* The MQTT topic of a channel name (c/ or, for PG_USER_CHANNEL_PREFIX names, u/); caller frees. */
char *pg_channel_topic(struct pg_gw *gw, const char *app, const char *name);
/* Build "{root}/{app}/{kind}/{name}" into a new string (caller frees). */
char *pg_topic(struct pg_gw *gw, const char *app, const char *kind, const char *name);

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

/* Publish on behalf of a client: props NULL-terminated name/value pairs. Same result codes as the bridge. */
int pg_publish(struct pg_gw *gw, const char *app, const char *channel, const void *payload, size_t len,
               const char *const *props, pg_bridge_ack_cb cb, void *cb_ud);
/* The same on any topic of the app (e.g. its broadcast topic {root}/{app}/b). */
int pg_publish_topic(struct pg_gw *gw, const char *app, const char *topic, const void *payload, size_t len,
                     const char *const *props, pg_bridge_ack_cb cb, void *cb_ud);

/* cluster.c: node liveness, snapshots, cluster-wide channel counts, the webhook leader */
int pg_cluster_init(struct pg_gw *gw);
void pg_cluster_free(struct pg_gw *gw);
int pg_cluster_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len); /* 1: handled */
void pg_cluster_changed(struct pg_gw *gw);
void pg_cluster_tick(struct pg_gw *gw);
void pg_cluster_connected(struct pg_gw *gw);
void pg_cluster_stopping(struct pg_gw *gw);
int pg_cluster_node_alive(struct pg_gw *gw, const char *id);
int pg_cluster_is_leader(struct pg_gw *gw);
size_t pg_cluster_node_count(struct pg_gw *gw); /* live nodes, this one included */
json_t *pg_cluster_channels(struct pg_gw *gw, const char *app); /* new reference: {channel: subscriptions} */
/* Sum over the other live nodes' snapshots of snapshot[key][app][name] (integers). */
uint64_t pg_cluster_peer_count(struct pg_gw *gw, const char *key, const char *app, const char *name);
/*
 * Sessions of app on the other live nodes, from their snapshots; *reporting:
 * how many of those nodes sent a count (nodes of older versions send none).
 */
uint64_t pg_cluster_peer_sessions(struct pg_gw *gw, const char *app, size_t *reporting);

/*
 * devices.c: MQTT device presence. The broker plugin keeps a retained
 * {root}/{app}/d/{client_id} message {"id","user_id","connected_at"} per
 * online device (emptied when it leaves); every node subscribes and keeps the
 * same table, answered by GET /apps/{id}/devices.
 */
/* On every broker (re)connect: subscribe once; forget what the previous connection reported (retained re-sent). */
void pg_devices_connected(struct pg_gw *gw);
int pg_devices_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len); /* 1: handled */
/* New reference: [{"id","user_id","connected_at"}] of app, ordered by client id; NULL on allocation failure. */
json_t *pg_devices_list(struct pg_gw *gw, const char *app);
/* 1 when channel is the device channel: only the broker plugin may publish there (clients get 403). */
int pg_devices_channel_reserved(struct pg_gw *gw, const char *channel);
void pg_devices_free(struct pg_gw *gw);

/* presence.c */
struct pg_pchan;
void pg_presence_local_changed(struct pg_gw *gw, struct pg_app *app, const char *channel, struct pg_session *except);
void pg_presence_on_message(struct pg_gw *gw, struct pg_app *app, const char *node, const char *channel,
                            const void *payload, size_t len);
/* A node came up (gone NULL) or is gone (dead, or an earlier incarnation of a restarted node): drop its members.
   clear: the leader also empties its retained presence topics (a dead node cannot; a restarted one does itself). */
void pg_presence_nodes_changed(struct pg_gw *gw, const char *gone, int clear);
/* A message on one of this node's own presence topics: what the broker holds for it, or the echo of a publish. */
void pg_presence_own_message(struct pg_gw *gw, struct pg_app *app, const char *channel, const void *payload,
                             size_t len);
/* (Re)connected: publish this node's members of every presence channel it holds. */
void pg_presence_republish_own(struct pg_gw *gw);
json_t *pg_presence_members(struct pg_gw *gw, struct pg_app *app, const char *channel); /* new reference */
void pg_presence_clear_own(struct pg_gw *gw);
void pg_presence_free(struct pg_app *app);

/* ws_pusher.c */
/* Close every local session of app signed in as user_id (terminate_connections). */
void pg_pusher_terminate_user(struct pg_gw *gw, struct pg_app *app, const char *user_id);
/* The session's app now requires auth: close it (4200, reconnect) if it holds a public channel without credential. */
void pg_pusher_require_auth(struct pg_session *s);
/* {"event", "channel"?, "data": <data as a JSON string>}; data stolen */
void pg_pusher_send_event(struct pg_session *s, const char *event, const char *channel, json_t *data);
int pg_pusher_open(struct pg_session *s, struct lws *wsi);
void pg_pusher_receive(struct pg_session *s, const char *frame, size_t len);
void pg_pusher_encode(const char *channel, const void *payload, size_t len, const struct pg_bridge_prop *props,
                      size_t nprops, struct pg_msg **out);
/* Pusher channel name rules (also used by the HTTP API). */
int pg_pusher_channel_valid(const char *name);
/* Called by the channel index when a session's membership goes away (presence bookkeeping). */
void pg_pusher_member_left(struct pg_member *m);
struct pg_app *pg_app_find_by_key(struct pg_gw *gw, const char *key, size_t len);

/*
 * push_api.c: notification-socket.io's REST API (X-AUTH-TOKEN = an app's
 * push_token). PUT /api/{user}/register?connectionId= publishes a retained
 * {root}/_ctl/{app}/reg/{connectionId} {"user","exp"} with a message expiry,
 * which every node keeps in gw->push_regs; POST /api/{user}/push publishes on
 * {root}/{app}/u/{user}, where registered socket.io sessions listen.
 */
int pg_push_init(struct pg_gw *gw); /* subscribe {root}/_ctl/+/reg/+ */
void pg_push_free(struct pg_gw *gw);
/* {root}/_ctl/{app}/reg/{id}; 1 when handled. */
int pg_push_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len);
/* The user a live registration of connection id conn in app names; NULL (unknown or expired). Borrowed. */
const char *pg_push_registered_user(struct pg_gw *gw, const char *app, const char *conn);
/* 1 when id may be a user or connection id: 1..128 bytes of UTF-8, no '/', '+', '#', control characters. */
int pg_push_id_valid(const char *id);
/* This node's live members of per-user channels: {app: {user: sessions}} (node snapshot, cluster.c). */
json_t *pg_push_local_users(struct pg_gw *gw);

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

/* ws_native.c */
int pg_native_open(struct pg_session *s, struct lws *wsi);
/* {"type":"error","error":{"code","message"}}: an error that answers no request. */
void pg_native_error(struct pg_session *s, int code, const char *message);
void pg_native_receive(struct pg_session *s, const char *frame, size_t len);
/*
 * Backpressure on a native client's requests: its socket is not read while
 * max_queue_messages replies are due (queued, or waiting for the broker),
 * and read again once half have gone out. Called after each request read
 * and each frame written.
 */
void pg_native_flow(struct pg_session *s);
void pg_native_encode(struct pg_gw *gw, const char *channel, const void *payload, size_t len,
                      const struct pg_bridge_prop *props, size_t nprops, struct pg_msg **out);

/* http.c */
int pg_http_callback(struct pg_gw *gw, struct lws *wsi, enum lws_callback_reasons reason, struct pg_http *h,
                     void *in, size_t len);
int pg_http_confirm_upgrade(struct pg_gw *gw, struct lws *wsi);
/* Answers a refused WebSocket upgrade: status with the JSON error body {"error":{"code","message"}}. */
void pg_http_refuse_upgrade(struct lws *wsi, unsigned int status, const char *message);
/* Why no new session may open now (shutting down, broker unavailable, max_sessions reached), or NULL. */
const char *pg_session_refusal(const struct pg_gw *gw);

/* admission.c: per-address limits (max_sessions_per_address, max_new_sessions_per_address) */
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
/* Answers: JSON body (o stolen) / {"error":{"code","message"}}. */
void pg_http_respond_json(struct pg_http *h, int status, json_t *o);
void pg_http_respond_error(struct pg_http *h, int status, const char *message);
/* 503 with Retry-After: the gateway is behind (why: pg_publish_refusal's reason). */
void pg_http_respond_overloaded(struct pg_http *h, const char *why);
/* Answers with body (copied) as ctype. */
void pg_http_respond(struct pg_http *h, int status, const char *ctype, const void *body, size_t len);
/* Header value into buf; its length, 0 when absent, -1 when longer than buf. */
int pg_http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, int len);
/* Park h until an asynchronous answer; completions find it by h->serial (NULL once the client left). */
void pg_http_wait(struct pg_gw *gw, struct pg_http *h);
struct pg_http *pg_http_find(struct pg_gw *gw, uint64_t serial);
void pg_http_unregister(struct pg_gw *gw, struct pg_http *h);
/*
 * Publish for h on topic and answer h once the broker acknowledged: 200 with
 * ok (stolen; NULL: {"ok":true}), 403 refused, 504 no acknowledgement in time,
 * 503 broker unavailable.
 */
void pg_http_publish(struct pg_gw *gw, struct pg_http *h, const char *app, const char *topic, const void *payload,
                     size_t len, const char *const *props, json_t *ok);
/* HTTP Basic credentials of the request: 0 and user/pass filled, or -1 (absent or malformed). */
int pg_http_basic_auth(struct lws *wsi, char *user, size_t ulen, char *pass, size_t plen);
/*
 * The admin API's check: 1 when the request carries the configured admin
 * credentials; otherwise h is answered (401 with WWW-Authenticate, or 404 when
 * the admin API is off) and 0 is returned.
 */
int pg_http_admin_ok(struct pg_gw *gw, struct pg_http *h);
/* A query argument by exact name (URL-decoded) into buf: its length, -1 when absent, -2 when longer than buf. */
int pg_http_query_arg(struct lws *wsi, const char *name, char *buf, size_t len);
/*
 * Route hooks tried for every method before the built-in routes. Each returns
 * 0 when the path is not its own; otherwise 1 with h answered or h->on_body
 * set. http_admin.c: /api/admin/..., /api/apps/{slug}/events, /dashboard/...
 * push_api.c: notification-socket.io's /api/{userId}/..., /api/status/..., /socket.io/
 */
int pg_admin_route(struct pg_gw *gw, struct pg_http *h);
/* dashboard.c: /dashboard/{app} and its data; called by pg_admin_route. */
int pg_dashboard_route(struct pg_gw *gw, struct pg_http *h);
/* dashboard.c: sample per-app session counts (called from the loop's tick). */
void pg_dashboard_tick(struct pg_gw *gw);
int pg_push_route(struct pg_gw *gw, struct pg_http *h);
/* "/v1/{app}" -> native (app set), "/app/{key}" -> Pusher (app may be NULL: refused after the upgrade). */
int pg_ws_path(struct pg_gw *gw, const char *path, enum pg_proto *proto, struct pg_app **app);

/*
 * http_pusher_api.c: the Pusher HTTP API under /apps/{id}/. route() returns 1
 * for its paths (h->pusher_api set, or an error answer already set);
 * body_done() runs once the request body (if any) is complete.
 */
int pg_pusher_api_route(struct pg_gw *gw, struct pg_http *h);
void pg_pusher_api_body_done(struct pg_gw *gw, struct pg_http *h);

/*
 * webhooks.c: Pusher-style webhooks, batched per app, POSTed with libcurl's
 * multi interface driven from the loop's tick (never blocking), signed with
 * X-Pusher-Key / X-Pusher-Signature, retried with backoff.
 */
struct pg_webhooks;
int pg_webhooks_new(struct pg_gw *gw, struct pg_webhooks **out);
void pg_webhooks_free(struct pg_webhooks *w);
/* Queue one event ({"name":…, "channel":…, …}; stolen) for app's webhook_url; a no-op without one. */
void pg_webhook_emit(struct pg_gw *gw, struct pg_app *app, json_t *event);
/* Called from the loop's tick: progress transfers, send due batches, schedule retries. */
void pg_webhooks_tick(struct pg_webhooks *w);
/* Events queued or in flight (for shutdown and metrics). */
size_t pg_webhooks_pending(const struct pg_webhooks *w);

/*
 * Why this gateway refuses publishes now (it is behind: its out-queues hold
 * more than max_pending_bytes, or on average more than half a session's
 * limit, or broker messages arrive later than max_inbound_lag_ms), or NULL.
 * Callers answer 503 with Retry-After (REST) or the protocol's error; the
 * refusal is counted for app (may be NULL).
 */
const char *pg_publish_refusal(struct pg_gw *gw, struct pg_app *app);
#define PG_RETRY_AFTER_S "1" /* what an overloaded gateway's 503 asks clients to wait */

/* seq.c: sequence numbers on every app message, gap detection and the gap signal */
struct pg_seq;
struct pg_seq_stamp {
    uint64_t n;
    char seq[24], prev[24]; /* the `seq` and `prev` property values */
};
struct pg_seq_in { /* the sequence properties of a received message */
    const char *origin; /* borrowed from the message */
    uint64_t seq, prev;
};
/* Sets gw->origin; subscribes the broker's dropped counter. */
int pg_seq_init(struct pg_gw *gw);
void pg_seq_free(struct pg_gw *gw);
/* The seq and prev of the next publish on topic; pg_seq_published() once the broker acknowledged it. */
void pg_seq_stamp(struct pg_gw *gw, const char *topic, struct pg_seq_stamp *st);
void pg_seq_published(struct pg_gw *gw, const char *topic, const struct pg_seq_stamp *st);
/* 1 when props carry origin, seq and prev (in filled). */
int pg_seq_parse(const struct pg_bridge_prop *props, size_t nprops, struct pg_seq_in *in);
/* Records in in *table (key: origin, or origin and channel); 1 when messages before it were missed. */
int pg_seq_check(struct pg_gw *gw, struct pg_seq **table, const struct pg_seq_in *in, const char *channel);
void pg_seq_table_free(struct pg_seq **table);
/* $SYS/broker/publish/messages/dropped; 1 when handled. */
int pg_seq_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len);
/*
 * Tells s it may have missed messages of its subscription sub on channel:
 * native {"type":"gap","room":sub,"channel":channel}; Pusher pusher:error 4200
 * and close 4200 (pusher-js reconnects and resubscribes); socket.io event
 * "pushgate:gap" {"room","channel"}. sub and channel NULL (JSON null): any
 * of its subscriptions may have missed messages.
 */
void pg_session_gap(struct pg_session *s, const char *sub, const char *channel);

/* metrics.c: GET /metrics in the Prometheus text format; caller frees the text. */
char *pg_metrics_render(struct pg_gw *gw, size_t *len);

/* assets.c (generated from gateway/static) */
struct pg_asset {
    const char *path, *ctype;
    const unsigned char *data;
    size_t len;
};
const struct pg_asset *pg_asset_find(const char *path);

#endif
