/*
 * socket.io protocol 5 over Engine.IO 4 at /socket.io/: what socket.io-client
 * 3 and 4 speak, for notification-socket.io's clients.
 *
 * Engine.IO is the transport layer. A session (sid) starts either with an
 * HTTP long-polling handshake (GET ?EIO=4&transport=polling) or directly on a
 * WebSocket (?EIO=4&transport=websocket). Polling: a GET waits until there is
 * something to send (at least the server's ping every sio_ping_interval_ms)
 * and carries every queued packet, separated by \x1e; a POST carries the
 * client's packets. Upgrade: the client opens a WebSocket with the sid, sends
 * "2probe", gets "3probe", lets its pending GET finish (we answer it with the
 * noop "6") and sends "5"; from then on the WebSocket is the transport.
 *
 * socket.io rides in Engine.IO message packets ("4"): CONNECT "0[/nsp,]",
 * EVENT "2[/nsp,][ack]["name",…]", DISCONNECT "1[/nsp,]". The namespace names
 * the app: "/" is default_app (empty: the first configured app), "/{appId}"
 * that app. One namespace per Engine.IO session, although the protocol lets a
 * client multiplex several: the namespace is the session's tenant (its app's
 * credentials, origins, stats, channel rights and admission slot), and a
 * session spanning apps would mix them; a CONNECT for a second namespace gets
 * CONNECT_ERROR, and socket.io-client reaches a second app with forceNew.
 * As socket.io's server does, CONNECT comes first: any other socket.io packet
 * for a namespace the session is not connected to, or a second CONNECT for
 * the one it is, closes the session, and a session with no CONNECT within
 * sio_connect_timeout_ms is closed. Events from clients:
 *   ["register", userId, connectionId]  the backend registered that pair (push_api.c)
 *                                       and it has not expired: the session joins the
 *                                       user's channel "#server-to-user-{userId}" and
 *                                       gets ["registered", {"userId"}] once it is live,
 *                                       then each push as ["message", <message>];
 *                                       otherwise ["error", {"message"}] and nothing more
 *   ["disconnect"]                      (notification-socket.io's old clients) leave
 * Binary packets are refused; a malformed packet ends its own session only.
 *
 * Closing, as Engine.IO servers do: a "1" the client POSTs ends the session
 * and answers its parked GET with the noop "6"; a session the gateway closes
 * answers it with "1" (WebSocket: a close frame). A WebSocket carrying the
 * sid of a session that is already upgraded or probing is accepted and closed
 * at once (an unknown sid is refused with 400 before the upgrade).
 *
 * Admission: a polling handshake costs a session slot for a single request,
 * so a session whose handshake was answered must come back (poll, post or
 * probe an upgrade with its sid) within sio_handshake_timeout_ms, well below
 * the ping interval + timeout that would otherwise end it; clients do so at
 * once. Until its CONNECT, it also goes when it has had no transport for that
 * long (no parked GET, no WebSocket, no request or answer): one GET parked and
 * then dropped does not buy the ping interval + timeout either.
 *
 * Ownership: struct pg_sio is allocated here and embeds the generic session;
 * it is freed by sio_destroy(), only ever from a timer callback (sul_free) or
 * at shutdown, so no fan-out, close or lws callback frees what it iterates.
 * A parked GET is found again by its pg_http serial; a WebSocket reaches its
 * session through its struct pg_ws (w->s), cleared when the session goes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gateway.h"

#define SID_LEN 20
#define NSP_MAX 80
#define CLOSE_GRACE_MS 1000   /* a polling client we close gets this long to fetch the close packet */
#define REGISTER_RETRY_MS 500 /* a registration made through another node may still be on its way here */
/* lws drops an HTTP transaction unanswered for timeout_secs (30 s, server.c): answer a parked GET before */
#define POLL_MAX_MS 20000
#define UPGRADE_TIMEOUT_MS 10000 /* "2probe" to "5", as Engine.IO servers allow */
#define TEXT_PLAIN "text/plain; charset=UTF-8"

struct pg_sio {
    struct pg_session s; /* first: channels.c and server.c see &x->s */
    char sid[SID_LEN + 1];
    char sock_id[SID_LEN + 1]; /* socket.io's id of the namespace socket */
    struct lws *ws;            /* WebSocket: probing until upgraded, then the transport (also s.wsi) */
    struct pg_ws *ws_conn;     /* its lws user data (w->s is this session); NULL without one */
    int upgraded;              /* ws is the transport (from the start for a direct WebSocket) */
    int probing;               /* "2probe" seen, "5" not yet: polling GETs are answered at once */
    int probe_reply;           /* "3probe" waits for ws to be writeable */
    int ping_out;              /* our ping waits for its pong */
    int close_timer;           /* closing while polling: sul_free armed for CLOSE_GRACE_MS */
    int dead;                  /* sul_free armed to destroy at once; nothing more is done */
    uint64_t get_serial;       /* the parked polling GET (pg_http serial); 0: none */
    char *nsp;                 /* the connected namespace; NULL: none */
    char *user, *conn;         /* the registration this session listens for */
    char *pend_user, *pend_conn; /* a register waiting for its registration to arrive */
    char origin[256];          /* Origin of the opening request ("" if none) */
    int returned;              /* a request with the sid came after the handshake */
    int64_t transport_ms;      /* until CONNECT: the last moment the session had a transport (pg_mono_ms) */
    int client_closed;         /* the client sent "1" over polling: its parked GET gets the noop */
    lws_sorted_usec_list_t sul_ping, sul_free, sul_register, sul_poll, sul_upgrade, sul_handshake, sul_connect;
    UT_hash_handle hh_sid; /* gw->sio_sessions */
};

static struct pg_sio *sio_of(const struct pg_session *s)
{
    return (struct pg_sio *)(uintptr_t)s; /* s is the first member */
}

static struct pg_sio *sio_find(struct pg_gw *gw, const char *sid)
{
    struct pg_sio *x;
    HASH_FIND(hh_sid, gw->sio_sessions, sid, strlen(sid), x);
    return x && !x->dead ? x : NULL;
}

/* ---- lifetime ------------------------------------------------------------------------- */

static void detach_ws(struct pg_sio *x)
{
    if (!x->ws)
        return;
    if (x->ws_conn && x->ws_conn->s == &x->s)
        x->ws_conn->s = NULL;
    x->ws_conn = NULL;
    lws_callback_on_writable(x->ws); /* with no session behind it, its next WRITEABLE closes it */
    x->ws = NULL;
    x->s.wsi = NULL;
}

static struct pg_http *parked_get(struct pg_sio *x)
{
    struct pg_http *h = x->get_serial ? pg_http_find(x->s.gw, x->get_serial) : NULL;
    if (!h)
        x->get_serial = 0; /* the client went away meanwhile */
    return h;
}

/*
 * The parked GET, unless its client hung up: lws reads nothing from a
 * connection whose request waits for its answer, so a dropped GET would
 * otherwise only be noticed when the answer is written. The hung-up one is
 * closed (its late answer would go nowhere) and forgotten.
 */
static struct pg_http *live_get(struct pg_sio *x)
{
    struct pg_http *h = parked_get(x);
    if (!h)
        return NULL;
    char c;
    lws_sockfd_type fd = lws_get_socket_fd(h->wsi);
    ssize_t n = fd >= 0 ? recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) : -1;
    if (n > 0 || fd < 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
        return h;
    pg_log(PG_LOG_DEBUG, "socketio", "parked GET dropped by its client sid=%s", x->sid);
    pg_http_unregister(x->s.gw, h);
    h->waiting_ack = 0;
    x->get_serial = 0;
    lws_set_timeout(h->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    return NULL;
}

static void sio_destroy(struct pg_sio *x)
{
    struct pg_gw *gw = x->s.gw;
    lws_sul_cancel(&x->sul_ping);
    lws_sul_cancel(&x->sul_free);
    lws_sul_cancel(&x->sul_register);
    lws_sul_cancel(&x->sul_poll);
    lws_sul_cancel(&x->sul_upgrade);
    lws_sul_cancel(&x->sul_handshake);
    lws_sul_cancel(&x->sul_connect);
    detach_ws(x);
    struct pg_http *h = parked_get(x);
    if (h) {
        pg_http_unregister(gw, h);
        h->waiting_ack = 0;
        /* the client that closed knows; anyone else learns it from Engine.IO's close */
        pg_http_respond(h, 200, TEXT_PLAIN, x->client_closed ? "6" : "1", 1);
    }
    pg_log(PG_LOG_DEBUG, "socketio", "session closed sid=%s app=%s", x->sid, x->s.app ? x->s.app->id : "-");
    HASH_DELETE(hh_sid, gw->sio_sessions, x);
    pg_session_release(gw, &x->s);
    free(x->nsp);
    free(x->user);
    free(x->conn);
    free(x->pend_user);
    free(x->pend_conn);
    free(x);
}

static void free_due(lws_sorted_usec_list_t *sul)
{
    sio_destroy(lws_container_of(sul, struct pg_sio, sul_free));
}

/* End the session now; it is destroyed from the loop, after whatever is running returns. */
static void sio_kill(struct pg_sio *x)
{
    if (x->dead)
        return;
    x->dead = 1;
    if (!x->s.close_code)
        x->s.close_code = 1000; /* pg_session_send queues nothing more */
    lws_sul_schedule(x->s.gw->ctx, 0, &x->sul_free, free_due, 1);
}

/* The socket.io server ends the Engine.IO session: queued packets first, then Engine.IO's close. */
static void sio_close(struct pg_sio *x, const char *why)
{
    pg_log(PG_LOG_INFO, "socketio", "closing sid=%s: %s", x->sid, why);
    pg_session_close(&x->s, 1000, why);
}

/* ---- output -------------------------------------------------------------------------- */

static void send_raw(struct pg_sio *x, const char *text, size_t len)
{
    struct pg_msg *m = pg_msg_new(text, len);
    if (!m) {
        sio_kill(x);
        return;
    }
    pg_session_send(&x->s, m);
    pg_msg_unref(m);
}

/* "4" + socket.io type + "/nsp," (not for "/") + JSON text; caller frees. */
static char *sio_frame(char type, const char *nsp, const char *json, size_t *len)
{
    size_t nl = nsp && strcmp(nsp, "/") ? strlen(nsp) : 0, jl = json ? strlen(json) : 0;
    size_t n = 2 + (nl ? nl + 1 : 0) + jl;
    char *b = malloc(n + 1);
    if (!b)
        return NULL;
    b[0] = '4';
    b[1] = type;
    if (nl) {
        memcpy(b + 2, nsp, nl);
        b[2 + nl] = ',';
    }
    if (jl)
        memcpy(b + n - jl, json, jl);
    b[n] = '\0';
    *len = n;
    return b;
}

static void sio_send(struct pg_sio *x, char type, const char *nsp, json_t *data /* stolen; may be NULL */)
{
    char *js = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int failed = data && !js;
    json_decref(data);
    size_t n = 0;
    char *f = failed ? NULL : sio_frame(type, nsp, js, &n);
    if (f)
        send_raw(x, f, n);
    else
        sio_kill(x);
    free(f);
    free(js);
}

static void sio_event(struct pg_sio *x, const char *name, json_t *arg /* stolen */)
{
    sio_send(x, '2', x->nsp, arg ? json_pack("[s, o]", name, arg) : NULL);
}

static void sio_error(struct pg_sio *x, const char *message)
{
    sio_event(x, "error", json_pack("{s:s}", "message", message));
}

/* Answer a polling GET with everything queued (the close packet last when closing), or the noop. */
static void flush_get(struct pg_sio *x, struct pg_http *h, int noop_only)
{
    struct pg_gw *gw = x->s.gw;
    size_t cap = x->s.q.bytes + x->s.q.count + 2, n = 0;
    char *b = malloc(cap);
    pg_http_unregister(gw, h);
    h->waiting_ack = 0;
    x->get_serial = 0;
    x->transport_ms = pg_mono_ms(); /* the client polls again at once */
    lws_sul_cancel(&x->sul_poll);
    if (!b) {
        pg_http_respond_error(h, 500, "out of memory");
        sio_kill(x);
        return;
    }
    struct pg_msg *m;
    while (!noop_only && (m = pg_outq_peek(&x->s.q)) != NULL) {
        if (n)
            b[n++] = '\x1e';
        memcpy(b + n, pg_msg_data(m), m->len);
        n += m->len;
        if (x->s.app) {
            x->s.app->stats.frames_out++;
            x->s.app->stats.bytes_out += m->len;
        }
        pg_outq_pop(&x->s.q);
    }
    int closing = x->s.close_code && !noop_only;
    if (closing) {
        if (n)
            b[n++] = '\x1e';
        b[n++] = '1';
    }
    if (!n)
        b[n++] = '6';
    pg_http_respond(h, 200, TEXT_PLAIN, b, n);
    free(b);
    if (closing)
        sio_kill(x);
}

static void wake(struct pg_session *s)
{
    struct pg_sio *x = sio_of(s);
    if (x->dead)
        return;
    if (x->upgraded) {
        if (x->ws)
            lws_callback_on_writable(x->ws);
        return;
    }
    struct pg_http *h = parked_get(x);
    if (h) {
        flush_get(x, h, 0);
    } else if (s->close_code && !x->close_timer) {
        x->close_timer = 1;
        lws_sul_schedule(s->gw->ctx, 0, &x->sul_free, free_due, CLOSE_GRACE_MS * LWS_US_PER_MS);
    }
}

static const char *user(const struct pg_session *s)
{
    return sio_of(s)->user;
}

static int may_read_app(const struct pg_session *s)
{
    const struct pg_sio *x = sio_of(s);
    /* until CONNECT the session only stands in the default app; a locked-down app needs a registered user */
    return x->nsp && (!s->app->creds->require_auth || x->user);
}

/* Which of the two encodings: namespace "/" or "/{app}". */
static int slot(const struct pg_session *s)
{
    const struct pg_sio *x = sio_of(s);
    return x->nsp && strcmp(x->nsp, "/") ? 1 : 0;
}

/* An EVENT ["{event}", <payload as JSON>] in the session's namespace (app-wide broadcasts alike). */
static struct pg_msg *encode(const struct pg_session *s, const struct pg_event *ev)
{
    const char *event = pg_prop_get(ev->props, ev->nprops, "event", "message");
    json_t *data = pg_payload_json(ev->payload, ev->len);
    json_t *arr = data ? json_pack("[s, o]", event, data) : NULL;
    char *js = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    size_t n = 0;
    char *f = js ? sio_frame('2', sio_of(s)->nsp, js, &n) : NULL;
    struct pg_msg *m = f ? pg_msg_new(f, n) : NULL;
    free(f);
    free(js);
    return m;
}

/* The event "pushgate:gap" {"room","channel"}. */
static void gap(struct pg_session *s, const char *sub, const char *channel)
{
    json_t *o = json_pack("{s:s?, s:s?}", "room", sub, "channel", channel);
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    struct pg_bridge_prop prop = {"event", "pushgate:gap"};
    struct pg_event ev = {.payload = js, .len = js ? strlen(js) : 0, .props = &prop, .nprops = 1};
    struct pg_msg *m = js ? encode(s, &ev) : NULL;
    free(js);
    if (m)
        pg_session_send(s, m);
    pg_msg_unref(m);
}

static void refuse(struct pg_session *s, int code, uint16_t close_code, const char *why)
{
    (void)code;
    pg_session_close(s, close_code, why);
}

static void terminate(struct pg_session *s)
{
    pg_session_close(s, 4009, "terminated");
}

static void auth_required(struct pg_session *s)
{
    (void)s; /* nothing held needs a credential: app-wide events ask may_read_app each time */
}

/* ---- heartbeat ----------------------------------------------------------------------- */

static void ping_due(lws_sorted_usec_list_t *sul)
{
    struct pg_sio *x = lws_container_of(sul, struct pg_sio, sul_ping);
    struct pg_gw *gw = x->s.gw;
    if (x->dead || x->s.close_code)
        return;
    if (x->ping_out) {
        pg_log(PG_LOG_INFO, "socketio", "no pong in time, closing sid=%s", x->sid);
        sio_kill(x);
        return;
    }
    x->ping_out = 1;
    send_raw(x, "2", 1);
    lws_sul_schedule(gw->ctx, 0, &x->sul_ping, ping_due, gw->cfg->sio_ping_timeout_ms * LWS_US_PER_MS);
}

/* ---- sessions ------------------------------------------------------------------------ */

static struct pg_app *default_app(struct pg_gw *gw)
{
    const char *id = gw->cfg->default_app && *gw->cfg->default_app ? gw->cfg->default_app
                     : gw->cfg->napps                               ? gw->cfg->apps[0].creds.id
                                                                    : NULL;
    return id ? pg_app_lookup(gw, id, strlen(id)) : NULL;
}

static void connect_due(lws_sorted_usec_list_t *sul)
{
    struct pg_sio *x = lws_container_of(sul, struct pg_sio, sul_connect);
    if (!x->dead && !x->nsp)
        sio_close(x, "no CONNECT within sio_connect_timeout_ms");
}

static struct pg_sio *sio_new(struct pg_gw *gw, struct lws *wsi)
{
    struct pg_sio *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    if (pg_random_token(x->sid, SID_LEN) != 0 || pg_random_token(x->sock_id, SID_LEN) != 0 ||
        pg_http_header(wsi, WSI_TOKEN_ORIGIN, x->origin, sizeof x->origin) < 0) {
        free(x);
        return NULL;
    }
    x->s.proto = &pg_sio_proto;
    x->s.app = default_app(gw); /* until a CONNECT names the namespace: counted somewhere meanwhile */
    snprintf(x->s.client_id, sizeof x->s.client_id, "%s", x->sid);
    x->s.last_rx_ms = pg_mono_ms();
    pg_session_register(gw, &x->s, wsi);
    HASH_ADD_KEYPTR(hh_sid, gw->sio_sessions, x->sid, strlen(x->sid), x);
    lws_sul_schedule(gw->ctx, 0, &x->sul_ping, ping_due, gw->cfg->sio_ping_interval_ms * LWS_US_PER_MS);
    lws_sul_schedule(gw->ctx, 0, &x->sul_connect, connect_due,
                     (lws_usec_t)gw->cfg->sio_connect_timeout_ms * LWS_US_PER_MS);
    pg_log(PG_LOG_DEBUG, "socketio", "session opened sid=%s", x->sid);
    return x;
}

/* 0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}; caller frees. */
static char *open_packet(struct pg_sio *x, int can_upgrade)
{
    const struct pg_config *c = x->s.gw->cfg;
    json_t *o = json_pack("{s:s, s:[], s:I, s:I, s:I}", "sid", x->sid, "upgrades", "pingInterval",
                          (json_int_t)c->sio_ping_interval_ms, "pingTimeout", (json_int_t)c->sio_ping_timeout_ms,
                          "maxPayload", (json_int_t)c->sio_max_payload_bytes);
    if (o && can_upgrade)
        json_array_append_new(json_object_get(o, "upgrades"), json_string("websocket"));
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char *p = js ? malloc(strlen(js) + 2) : NULL;
    if (p)
        snprintf(p, strlen(js) + 2, "0%s", js);
    free(js);
    return p;
}

static int origin_allowed(const struct pg_app *app, const char *origin)
{
    if (!app->conf->allowed_origins || !*origin) /* like WebSockets: only browsers send Origin */
        return 1;
    for (char **o = app->conf->allowed_origins; *o; o++)
        if (!strcmp(*o, origin))
            return 1;
    return 0;
}

/* ---- socket.io: namespaces and registration ------------------------------------------ */

static void ns_leave(struct pg_sio *x)
{
    if (x->user) {
        size_t n = strlen(PG_USER_CHANNEL_PREFIX) + strlen(x->user) + 1;
        char *ch = malloc(n);
        if (ch) {
            snprintf(ch, n, "%s%s", PG_USER_CHANNEL_PREFIX, x->user);
            pg_channel_leave(&x->s, ch);
            free(ch);
        }
    }
    free(x->user);
    free(x->conn);
    free(x->pend_user);
    free(x->pend_conn);
    x->user = x->conn = x->pend_user = x->pend_conn = NULL;
    lws_sul_cancel(&x->sul_register);
}

static void registered(struct pg_sio *x, const char *channel)
{
    struct pg_member *m;
    HASH_FIND_STR(x->s.subs, channel, m);
    if (m)
        m->live = 1; /* now counted as a recipient (the node snapshot says so) */
    pg_cluster_changed(x->s.gw);
    pg_log(PG_LOG_DEBUG, "socketio", "registered sid=%s app=%s user=%s", x->sid, x->s.app->id, x->user);
    sio_event(x, "registered", json_pack("{s:s}", "userId", x->user));
}

struct join_ack {
    struct pg_gw *gw;
    uint64_t serial;
    char *channel;
};

static void join_acked(void *ud, int result)
{
    struct join_ack *a = ud;
    struct pg_session *s = pg_session_find(a->gw, a->serial);
    struct pg_sio *x = s && s->proto == &pg_sio_proto ? sio_of(s) : NULL;
    struct pg_member *m = NULL;
    if (x)
        HASH_FIND_STR(x->s.subs, a->channel, m);
    if (m && !x->dead && result == 0) {
        registered(x, a->channel);
    } else if (m && !x->dead) {
        ns_leave(x);
        sio_error(x, "cannot register now: broker unavailable, try again");
    }
    free(a->channel);
    free(a);
}

static void register_retry(lws_sorted_usec_list_t *sul);

static void try_register(struct pg_sio *x, const char *user, const char *conn, int first)
{
    const char *owner = pg_push_registered_user(x->s.gw, x->s.app->id, conn);
    if (!owner && first) {
        free(x->pend_user);
        free(x->pend_conn);
        x->pend_user = strdup(user);
        x->pend_conn = strdup(conn);
        if (!x->pend_user || !x->pend_conn) {
            sio_kill(x);
            return;
        }
        lws_sul_schedule(x->s.gw->ctx, 0, &x->sul_register, register_retry, REGISTER_RETRY_MS * LWS_US_PER_MS);
        return;
    }
    if (!owner || strcmp(owner, user) != 0) {
        pg_log(PG_LOG_INFO, "socketio", "register refused sid=%s app=%s user=%s connection=%.4s***", x->sid,
               x->s.app->id, user, conn);
        sio_error(x, "registration refused: connectionId unknown, expired or registered for another user");
        return;
    }
    if (x->user && !strcmp(x->user, user)) { /* again, same user: already listening (or about to) */
        free(x->conn);
        x->conn = strdup(conn);
        return;
    }
    ns_leave(x); /* one user per session: a register for another user replaces the previous one */
    size_t n = strlen(PG_USER_CHANNEL_PREFIX) + strlen(user) + 1;
    struct join_ack *a = calloc(1, sizeof *a);
    char *channel = malloc(n);
    if (!a || !channel || !(x->user = strdup(user)) || !(x->conn = strdup(conn))) {
        free(a);
        free(channel);
        sio_kill(x);
        return;
    }
    snprintf(channel, n, "%s%s", PG_USER_CHANNEL_PREFIX, user);
    a->gw = x->s.gw;
    a->serial = x->s.serial;
    a->channel = channel;
    int rc = pg_channel_join(&x->s, channel, join_acked, a);
    if (rc == 1)
        return; /* join_acked follows */
    if (rc == 0)
        registered(x, channel);
    free(a->channel);
    free(a);
    if (rc < 0) {
        free(x->user);
        free(x->conn);
        x->user = x->conn = NULL;
        sio_error(x, rc == PG_EBUSY ? "cannot register now: broker unavailable, try again" : "cannot register");
    }
}

static void register_retry(lws_sorted_usec_list_t *sul)
{
    struct pg_sio *x = lws_container_of(sul, struct pg_sio, sul_register);
    char *user = x->pend_user, *conn = x->pend_conn;
    x->pend_user = x->pend_conn = NULL;
    if (!x->dead && user && conn && x->nsp)
        try_register(x, user, conn, 0);
    free(user);
    free(conn);
}

static void on_register(struct pg_sio *x, json_t *args)
{
    char num[32];
    json_t *ju = json_array_get(args, 1);
    const char *user = json_string_value(ju), *conn = json_string_value(json_array_get(args, 2));
    if (json_is_integer(ju)) { /* emit('register', 42, …): notification-socket.io's ids were object keys */
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(ju));
        user = num;
    }
    if (!user || !conn || !pg_push_id_valid(user) || !pg_push_id_valid(conn)) {
        sio_error(x, "register needs a userId and a connectionId (1-128 bytes, no / + #)");
        return;
    }
    try_register(x, user, conn, 1);
}

static void ns_connect(struct pg_sio *x, const char *nsp, size_t nl, json_t *data)
{
    char name[NSP_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)nl, nsp);
    struct pg_gw *gw = x->s.gw;
    struct pg_app *app = nl == 1 ? default_app(gw) : pg_app_lookup(gw, name + 1, nl - 1);
    const char *why = NULL;
    if (data && !json_is_object(data))
        why = "CONNECT payload must be an object";
    else if (!app)
        why = "Invalid namespace";
    else if (x->nsp) /* another one: the same one closed the session before */
        why = "one namespace per connection: open another connection (socket.io-client: forceNew) for another app";
    else if (!app->creds->active)
        why = "App is disabled";
    else if (!origin_allowed(app, x->origin))
        why = "Origin not allowed";
    if (why) {
        pg_log(PG_LOG_INFO, "socketio", "connect refused sid=%s namespace=%s: %s", x->sid, name, why);
        sio_send(x, '4', name, json_pack("{s:s}", "message", why));
        return;
    }
    if (!(x->nsp = strdup(name))) {
        sio_kill(x);
        return;
    }
    lws_sul_cancel(&x->sul_connect); /* for good, as socket.io's server: a later DISCONNECT does not re-arm it */
    lws_sul_cancel(&x->sul_handshake);
    x->s.app = app;
    sio_send(x, '0', name, json_pack("{s:s}", "sid", x->sock_id));
}

/* One socket.io packet (after the Engine.IO "4"); -1: malformed. */
static int sio_packet(struct pg_sio *x, const char *p, size_t n)
{
    if (!n || p[0] < '0' || p[0] > '4')
        return -1; /* 5, 6: binary packets, refused */
    char type = p[0];
    p++, n--;
    const char *nsp = "/";
    size_t nl = 1;
    if (n && p[0] == '/') {
        const char *comma = memchr(p, ',', n);
        nl = comma ? (size_t)(comma - p) : n;
        if (nl > NSP_MAX || !pg_utf8_valid(p, nl))
            return -1; /* answers echo the namespace in text (polling bodies reach here unchecked) */
        nsp = p;
        p += comma ? nl + 1 : nl;
        n -= comma ? nl + 1 : nl;
    }
    const char *ack = p; /* an ack id: the client waits for an ACK packet with it */
    int digits = 0;
    while (n && isdigit((unsigned char)*p)) {
        if (++digits > 15)
            return -1;
        p++, n--;
    }
    json_t *data = NULL;
    if (n && !(data = json_loadb(p, n, JSON_DECODE_ANY, NULL)))
        return -1;
    int rc = 0;
    int here = x->nsp && strlen(x->nsp) == nl && !memcmp(x->nsp, nsp, nl);
    if (type == '2' && !json_string_value(json_array_get(data, 0))) {
        json_decref(data);
        return -1;
    }
    if (type != '4' && (type == '0') == here) {
        /* socket.io's server closes the whole connection on a packet out of order */
        sio_close(x, here ? "CONNECT for a namespace already connected" : "packet before CONNECT to its namespace");
        json_decref(data);
        return 0;
    }
    switch (type) {
    case '0':
        ns_connect(x, nsp, nl, data);
        break;
    case '1':
        ns_leave(x);
        free(x->nsp);
        x->nsp = NULL;
        break;
    case '2': {
        const char *name = json_string_value(json_array_get(data, 0));
        if (!strcmp(name, "register")) {
            on_register(x, data);
        } else if (!strcmp(name, "disconnect")) {
            ns_leave(x);
        }
        if (digits && !x->dead && x->nsp) {
            /* acknowledged on receipt, without arguments: a register's outcome comes as registered/error */
            char reply[24];
            size_t len = 0;
            snprintf(reply, sizeof reply, "%.*s[]", digits, ack);
            char *f = sio_frame('3', x->nsp, reply, &len);
            if (f)
                send_raw(x, f, len);
            free(f);
        }
        break;
    }
    case '3':
        break;
    default:
        rc = -1; /* CONNECT_ERROR comes from servers only */
    }
    json_decref(data);
    return rc;
}

/* One Engine.IO packet from either transport; -1: malformed. */
static int eio_packet(struct pg_sio *x, const char *p, size_t n)
{
    struct pg_gw *gw = x->s.gw;
    x->s.last_rx_ms = pg_mono_ms();
    if (x->s.app) {
        x->s.app->stats.frames_in++;
        x->s.app->stats.bytes_in += n;
    }
    if (!n)
        return -1;
    switch (p[0]) {
    case '1': /* the client closes */
        if (x->upgraded) {
            pg_session_close(&x->s, 1000, "closed by the client");
        } else { /* Engine.IO servers end the session and answer a parked GET with the noop */
            x->client_closed = 1;
            sio_kill(x);
        }
        return 0;
    case '2': { /* the client's ping (Engine.IO 3 habit): answer with the same data */
        char pong[16];
        if (n > sizeof pong || !pg_utf8_valid(p, n))
            return -1; /* echoed in text: polling bodies reach here unchecked */
        memcpy(pong, p, n);
        pong[0] = '3';
        send_raw(x, pong, n);
        return 0;
    }
    case '3':
        if (x->ping_out) {
            x->ping_out = 0;
            lws_sul_schedule(gw->ctx, 0, &x->sul_ping, ping_due,
                             gw->cfg->sio_ping_interval_ms * LWS_US_PER_MS);
        }
        return 0;
    case '4':
        return sio_packet(x, p + 1, n - 1);
    case '6':
        return 0;
    default:
        return -1; /* 'b' (base64 binary), '0', '5' out of place, garbage */
    }
}

/* ---- polling transport ------------------------------------------------------------------ */

static void eio_error(struct pg_http *h, int status, int code, const char *message)
{
    pg_http_respond_json(h, status, json_pack("{s:i, s:s}", "code", code, "message", message));
}

/*
 * Until its CONNECT, a polling session is kept while its client keeps a
 * transport: a parked GET or a WebSocket, or a request or answer within
 * sio_handshake_timeout_ms. A parked GET whose connection drops is not
 * reported to the session, so the timer looks again each time it fires.
 */
static void handshake_due(lws_sorted_usec_list_t *sul)
{
    struct pg_sio *x = lws_container_of(sul, struct pg_sio, sul_handshake);
    if (x->dead || x->nsp)
        return;
    struct pg_gw *gw = x->s.gw;
    int64_t now = pg_mono_ms();
    if (live_get(x) || x->ws)
        x->transport_ms = now;
    int64_t left = x->transport_ms + gw->cfg->sio_handshake_timeout_ms - now;
    if (left > 0) {
        lws_sul_schedule(gw->ctx, 0, &x->sul_handshake, handshake_due, (lws_usec_t)left * LWS_US_PER_MS);
        return;
    }
    if (!x->returned)
        pg_log(PG_LOG_INFO, "socketio", "no request after the handshake within sio_handshake_timeout_ms, closing sid=%s",
               x->sid);
    else
        pg_log(PG_LOG_INFO, "socketio", "no transport before CONNECT for sio_handshake_timeout_ms, closing sid=%s",
               x->sid);
    sio_kill(x);
}

/* The client came back with its sid: the slot is in use, for now. */
static void sio_returned(struct pg_sio *x)
{
    x->returned = 1;
    x->transport_ms = pg_mono_ms();
}

static void handshake(struct pg_gw *gw, struct pg_http *h)
{
    const char *why = pg_session_refusal(gw);
    if (why) {
        pg_http_respond_error(h, 503, why);
        return;
    }
    if ((why = pg_addr_refusal(gw, h->wsi)) != NULL) {
        pg_http_respond_error(h, 429, why);
        return;
    }
    struct pg_sio *x = sio_new(gw, h->wsi);
    char *open = x ? open_packet(x, 1) : NULL;
    if (!open) {
        if (x)
            sio_kill(x);
        pg_http_respond_error(h, 500, "cannot open a session");
        return;
    }
    x->transport_ms = pg_mono_ms();
    lws_sul_schedule(gw->ctx, 0, &x->sul_handshake, handshake_due,
                     (lws_usec_t)gw->cfg->sio_handshake_timeout_ms * LWS_US_PER_MS);
    pg_http_respond(h, 200, TEXT_PLAIN, open, strlen(open));
    free(open);
}

static void poll_due(lws_sorted_usec_list_t *sul)
{
    struct pg_sio *x = lws_container_of(sul, struct pg_sio, sul_poll);
    struct pg_http *h = x->dead ? NULL : parked_get(x);
    if (h)
        flush_get(x, h, 0); /* the noop: the client polls again */
}

static void poll_get(struct pg_sio *x, struct pg_http *h)
{
    if (parked_get(x)) { /* two GETs at once: Engine.IO clients never do that */
        eio_error(h, 400, 3, "Bad request");
        sio_kill(x);
        return;
    }
    if (x->s.q.count || x->s.close_code || x->probing) {
        flush_get(x, h, 0);
        return;
    }
    pg_http_wait(x->s.gw, h); /* answered by the next wake(), or poll_due() */
    x->get_serial = h->serial;
    lws_sul_schedule(x->s.gw->ctx, 0, &x->sul_poll, poll_due, POLL_MAX_MS * LWS_US_PER_MS);
}

/* The packets of a polling POST body, separated by \x1e, in order; -1 at the first malformed one. */
static int eio_payload(struct pg_sio *x, const char *body, size_t len)
{
    const char *p = body, *end = body + len;
    while (p <= end && !x->dead) {
        const char *sep = memchr(p, '\x1e', (size_t)(end - p));
        size_t n = (size_t)((sep ? sep : end) - p);
        if (eio_packet(x, p, n) != 0)
            return -1;
        if (!sep)
            break;
        p = sep + 1;
    }
    return 0;
}

static void poll_post(struct pg_sio *x, struct pg_http *h)
{
    struct pg_gw *gw = x->s.gw;
    if (h->body_too_big || h->body_len > gw->cfg->sio_max_payload_bytes) {
        pg_log(PG_LOG_INFO, "socketio", "payload over sio_max_payload_bytes, closing sid=%s", x->sid);
        pg_http_respond_error(h, 413, "payload too large");
        sio_kill(x);
        return;
    }
    if (!h->body_len) {
        eio_error(h, 400, 3, "Bad request");
        sio_kill(x);
        return;
    }
    if (eio_payload(x, h->body, h->body_len) != 0) {
        pg_log(PG_LOG_INFO, "socketio", "malformed packet, closing sid=%s", x->sid);
        eio_error(h, 400, 3, "Bad request");
        sio_kill(x);
        return;
    }
    pg_http_respond(h, 200, "text/html", "ok", 2);
}

/*
 * CORS preflight of a polling request that carries custom headers (the
 * client's extraHeaders): the headers asked for are allowed when they are
 * plain header names; nothing else of the request matters yet.
 */
static void preflight(struct pg_http *h)
{
    char want[256] = "";
    if (pg_http_header(h->wsi, WSI_TOKEN_HTTP_AC_REQUEST_HEADERS, want, sizeof want) < 0 ||
        want[strspn(want, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_, ")] != '\0') {
        pg_http_respond_error(h, 400, "Access-Control-Request-Headers: expected header names");
        return;
    }
    if (!(h->preflight = strdup(want))) {
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    pg_http_respond(h, 204, TEXT_PLAIN, "", 0);
}

void pg_sio_http(struct pg_gw *gw, struct pg_http *h)
{
    char eio[8], transport[16], sid[SID_LEN + 8], origin[256];
    /*
     * Pages of any origin may read the answers (CORS), as with
     * notification-socket.io: the app's allowed_origins are enforced when the
     * session CONNECTs to its namespace, and a session only answers requests
     * of the origin that opened it.
     */
    int ol = pg_http_header(h->wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
    if (ol < 0) {
        eio_error(h, 400, 3, "Bad request");
        return;
    }
    if (ol > 0 && !(h->allow_origin = strdup(origin))) {
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    if (h->method == PG_OPTIONS) {
        preflight(h);
        return;
    }
    if (pg_http_query_arg(h->wsi, "EIO", eio, sizeof eio) < 0 || strcmp(eio, "4") != 0) {
        eio_error(h, 400, 5, "Unsupported protocol version");
        return;
    }
    if (pg_http_query_arg(h->wsi, "transport", transport, sizeof transport) < 0 || strcmp(transport, "polling")) {
        eio_error(h, 400, 0, "Transport unknown");
        return;
    }
    if (pg_http_query_arg(h->wsi, "sid", sid, sizeof sid) == -1) {
        if (h->method == PG_GET)
            handshake(gw, h);
        else
            eio_error(h, 400, 2, "Bad handshake method");
        return;
    }
    struct pg_sio *x = sio_find(gw, sid);
    if (!x) {
        eio_error(h, 400, 1, "Session ID unknown");
        return;
    }
    if (strcmp(x->origin, ol > 0 ? origin : "") != 0) {
        eio_error(h, 400, 3, "Bad request");
        return;
    }
    if (x->upgraded || (h->method != PG_GET && h->method != PG_POST)) {
        eio_error(h, 400, 3, "Bad request");
        return;
    }
    sio_returned(x);
    if (h->method == PG_GET)
        poll_get(x, h);
    else
        poll_post(x, h);
}

/* ---- websocket transport ---------------------------------------------------------------- */

static int confirm_upgrade(struct pg_gw *gw, struct lws *wsi, struct pg_app *app)
{
    (void)app; /* the namespace names it, after the upgrade */
    char eio[8], transport[16], sid[SID_LEN + 8];
    const char *why = NULL;
    int status = HTTP_STATUS_BAD_REQUEST;
    if (pg_http_query_arg(wsi, "EIO", eio, sizeof eio) < 0 || strcmp(eio, "4") != 0) {
        why = "Unsupported protocol version";
    } else if (pg_http_query_arg(wsi, "transport", transport, sizeof transport) < 0 ||
               strcmp(transport, "websocket") != 0) {
        why = "Transport unknown";
    } else if (pg_http_query_arg(wsi, "sid", sid, sizeof sid) != -1) { /* present: a too long one is unknown */
        struct pg_sio *x = sio_find(gw, sid);
        char origin[256] = "";
        if (!x) {
            why = "Session ID unknown";
        } else if (pg_http_header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin) < 0 ||
                   (x->nsp && !origin_allowed(x->s.app, origin))) {
            why = "origin not allowed";
            status = HTTP_STATUS_FORBIDDEN;
        } /* upgraded or probing already: accepted, then closed by ws_open() */
    } else if ((why = pg_session_refusal(gw)) != NULL) {
        status = HTTP_STATUS_SERVICE_UNAVAILABLE;
    } else if ((why = pg_addr_refusal(gw, wsi)) != NULL) {
        status = 429;
    }
    if (!why)
        return 0;
    pg_http_refuse_upgrade(wsi, (unsigned int)status, why);
    return 1;
}

static int ws_open(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, struct pg_app *app)
{
    (void)app;
    char sid[SID_LEN + 8];
    if (pg_http_query_arg(wsi, "sid", sid, sizeof sid) != -1) { /* an upgrade probe for a polling session */
        struct pg_sio *x = sio_find(gw, sid);
        if (!x)
            return -1;
        if (x->upgraded || x->ws) {
            /* a surplus WebSocket: Engine.IO servers accept it and close it at once, the session goes on */
            pg_log(PG_LOG_DEBUG, "socketio", "surplus websocket closed sid=%s", x->sid);
            lws_callback_on_writable(wsi); /* with no session (w->s NULL) its WRITEABLE closes it */
            return 0;
        }
        sio_returned(x);
        x->ws = wsi;
        x->ws_conn = w;
        w->s = &x->s;
        return 0;
    }
    struct pg_sio *x = sio_new(gw, wsi);
    char *open = x ? open_packet(x, 0) : NULL;
    if (!open) {
        if (x)
            sio_kill(x);
        return -1;
    }
    x->ws = x->s.wsi = wsi;
    x->upgraded = 1;
    x->ws_conn = w;
    w->s = &x->s;
    send_raw(x, open, strlen(open));
    free(open);
    return 0;
}

/* A probe that never completes would keep answering the polling GETs at once: drop the probe. */
static void upgrade_due(lws_sorted_usec_list_t *sul)
{
    struct pg_sio *x = lws_container_of(sul, struct pg_sio, sul_upgrade);
    if (x->dead || x->upgraded || !x->ws)
        return;
    pg_log(PG_LOG_INFO, "socketio", "upgrade not completed in time sid=%s", x->sid);
    x->probing = x->probe_reply = 0;
    detach_ws(x);
}

/* A whole WebSocket message. -1: close this WebSocket. */
static int ws_message(struct pg_sio *x, const char *p, size_t n)
{
    if (x->upgraded)
        return eio_packet(x, p, n);
    if (n == 6 && !memcmp(p, "2probe", 6)) {
        x->probing = 1;
        x->probe_reply = 1;
        lws_callback_on_writable(x->ws);
        lws_sul_schedule(x->s.gw->ctx, 0, &x->sul_upgrade, upgrade_due, UPGRADE_TIMEOUT_MS * LWS_US_PER_MS);
        struct pg_http *h = parked_get(x);
        if (h) /* the client lets its pending GET finish before it completes the upgrade */
            flush_get(x, h, 0);
        return 0;
    }
    if (n == 1 && p[0] == '5' && x->probing) {
        x->upgraded = 1;
        x->probing = 0;
        x->s.wsi = x->ws;
        lws_sul_cancel(&x->sul_upgrade);
        struct pg_http *h = parked_get(x);
        if (h)
            flush_get(x, h, 1);
        if (x->s.q.count || x->s.close_code)
            lws_callback_on_writable(x->ws);
        pg_log(PG_LOG_DEBUG, "socketio", "upgraded to websocket sid=%s", x->sid);
        return 0;
    }
    return -1;
}

static int ws_receive(struct pg_ws *w, struct lws *wsi, const void *in, size_t len)
{
    struct pg_sio *x = w->s ? sio_of(w->s) : NULL;
    if (!x || x->dead || x->ws != wsi) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0); /* as ws_writeable(): no session behind it */
        return -1;
    }
    const char *msg;
    size_t n;
    int rc = pg_ws_collect(&x->s, wsi, in, len, x->s.gw->cfg->sio_max_payload_bytes, &msg, &n);
    if (rc <= 0)
        return rc;
    rc = ws_message(x, msg, n);
    pg_ws_collected(&x->s);
    if (rc == 0)
        return 0;
    pg_log(PG_LOG_INFO, "socketio", "malformed packet, closing sid=%s", x->sid);
    lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"malformed packet", 16);
    return -1;
}

static int ws_writeable(struct pg_ws *w, struct lws *wsi)
{
    struct pg_sio *x = w->s ? sio_of(w->s) : NULL;
    unsigned char probe[LWS_PRE + 8];
    if (!x || x->dead || x->ws != wsi) {
        /* its session is gone, or it never had one (a surplus WebSocket): a normal close frame, not a hang-up */
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    if (x->probe_reply) {
        x->probe_reply = 0;
        memcpy(probe + LWS_PRE, "3probe", 6);
        if (lws_write(wsi, probe + LWS_PRE, 6, LWS_WRITE_TEXT) < 6)
            return -1;
        if (x->upgraded && (x->s.q.count || x->s.close_code))
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (!x->upgraded)
        return 0;
    if (x->s.close_code && !x->s.q.count) {
        lws_close_reason(wsi, (enum lws_close_status)x->s.close_code, (unsigned char *)x->s.close_reason,
                         strlen(x->s.close_reason));
        return -1;
    }
    struct pg_msg *m = pg_outq_peek(&x->s.q);
    if (!m)
        return 0;
    if (lws_write(wsi, pg_msg_data(m), m->len, LWS_WRITE_TEXT) < (int)m->len)
        return -1;
    if (x->s.app) {
        x->s.app->stats.frames_out++;
        x->s.app->stats.bytes_out += m->len;
    }
    pg_outq_pop(&x->s.q);
    if (x->s.q.count || x->s.close_code)
        lws_callback_on_writable(wsi);
    return 0;
}

static void ws_closed(struct pg_ws *w, struct lws *wsi)
{
    struct pg_sio *x = w->s ? sio_of(w->s) : NULL;
    w->s = NULL;
    if (!x || x->ws != wsi)
        return;
    x->ws = NULL;
    x->ws_conn = NULL;
    if (x->upgraded) {
        x->s.wsi = NULL;
        sio_kill(x);
    } else { /* a failed probe: the session goes on polling */
        lws_sul_cancel(&x->sul_upgrade);
        x->probing = 0;
        x->probe_reply = 0;
        pg_ws_collected(&x->s); /* a partial message of the probe goes with it */
    }
}

void pg_sio_shutdown(struct pg_gw *gw)
{
    struct pg_sio *x, *tmp;
    HASH_ITER(hh_sid, gw->sio_sessions, x, tmp) {
        sio_destroy(x);
    }
}

/* ---- in-memory entry points (tests/fuzz/fuzz_sio.c) ------------------------------------------ */

struct pg_session *pg_sio_open_session(struct pg_gw *gw, struct lws *wsi, int mode)
{
    struct pg_sio *x = sio_new(gw, wsi);
    if (!x)
        return NULL;
    if (mode != 0)
        x->ws = wsi; /* as ws_open(): a probe for the polling session, or its transport */
    if (mode == 1) {
        x->s.wsi = wsi;
        x->upgraded = 1;
    }
    return &x->s;
}

int pg_sio_receive(struct pg_session *s, const char *msg, size_t len, int polling)
{
    struct pg_sio *x = sio_of(s);
    if (x->dead)
        return -1;
    if (polling) {
        if (x->upgraded)
            return -1; /* pg_sio_http() answers 400 and keeps the session */
        if (len > s->gw->cfg->sio_max_payload_bytes || !len || eio_payload(x, msg, len) != 0) {
            sio_kill(x);
            return -1;
        }
        return 0;
    }
    if (!x->ws || len > s->gw->cfg->sio_max_payload_bytes)
        return -1; /* ws_receive(): not this session's WebSocket, or closed for its size */
    return ws_message(x, msg, len) == 0 ? 0 : -1;
}

const struct pg_proto pg_sio_proto = {
    .name = "socketio",
    .confirm_upgrade = confirm_upgrade,
    .ws_open = ws_open,
    .ws_receive = ws_receive,
    .ws_writeable = ws_writeable,
    .ws_closed = ws_closed,
    .wake = wake,
    .nslots = 2,
    .slot = slot,
    .encode = encode,
    .may_read_app = may_read_app,
    .gap = gap,
    .user = user,
    .refuse = refuse,
    .terminate = terminate,
    .auth_required = auth_required,
};
