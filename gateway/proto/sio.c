/*
 * socket.io protocol 5 at /socket.io/, riding on Engine.IO 4 sessions
 * (proto/eio.c, proto/eio_ws.c): what socket.io-client 3 and 4 speak, for
 * notification-socket.io's clients. This file is socket.io's namespaces
 * and registrations and the protocol's struct pg_proto; its packets as text
 * are proto/sio_packet.c's.
 *
 * Wire format. socket.io rides in Engine.IO message packets ("4"), which
 * Engine.IO hands here (the message hook of struct pg_eio_ops): CONNECT
 * "0[/nsp,]", EVENT "2[/nsp,][ack]["name",…]", ACK "3[/nsp,]ack[…]",
 * DISCONNECT "1[/nsp,]"; the server answers CONNECT with "0[/nsp,]{"sid"}"
 * or CONNECT_ERROR "4[/nsp,]{"message"}". The namespace names the app: "/"
 * is default_app (empty: the first configured app), "/{appId}" that app. One
 * namespace per Engine.IO session, although the protocol lets a client
 * multiplex several: the namespace is the session's tenant (its app's
 * credentials, origins, stats, channel rights and admission slot), and a
 * session spanning apps would mix them; a CONNECT for a second namespace gets
 * CONNECT_ERROR, and socket.io-client reaches a second app with forceNew.
 * As socket.io's server does, CONNECT comes first: any other socket.io packet
 * for a namespace the session is not connected to, or a second CONNECT for
 * the one it is, closes the session, and a session with no CONNECT within
 * sio_connect_timeout_ms is closed. Events from clients:
 *   ["register", userId, connectionId]  the backend registered that pair (push_api.c,
 *                                       kept on every node by cluster/push_regs.c)
 *                                       and it has not expired: the session joins the
 *                                       user's channel "#server-to-user-{userId}" and
 *                                       gets ["registered", {"userId"}] once it is live,
 *                                       then each push as ["message", <message>];
 *                                       otherwise ["error", {"message"}] and nothing more
 *   ["disconnect"]                      (notification-socket.io's old clients) leave
 * Binary packets are refused; a malformed packet ends its own session only.
 *
 * State: struct pg_sio, a struct pg_eio (and so a struct pg_session) first,
 * allocated and freed by proto/eio.c; this file owns what follows it (the
 * namespace, the registration and its deadlines) and frees it in the destroy
 * hook. Invariant: x->user is set exactly while the session holds (or is
 * joining) the user's channel.
 *
 * Deadlines: the CONNECT deadline (sio_connect_timeout_ms) and the register
 * retry (REGISTER_RETRY_MS) have one interval for every session, so they are
 * deadline FIFOs (core/dueq.h) in struct pg_gw that pg_sio_tick() pops, not
 * timers in lws' sorted list, whose every insert walks it. Each is up to a
 * tick (PG_BRIDGE_TICK_MS) late, which only gives the client more time. The
 * entries are the session's: the destroy hook stops both before proto/eio.c
 * frees it, so a popped entry is always a live (maybe dead, never freed)
 * session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cluster/push_regs.h"
#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/pending.h"
#include "core/registry.h"
#include "core/session.h"
#include "log.h"
#include "pg_common.h"
#include "proto/eio.h"
#include "proto/eio_ws.h"
#include "proto/sio.h"
#include "proto/sio_packet.h"
#include "pushgate_auth.h"

#define SOCK_ID_LEN 20
#define REGISTER_RETRY_MS 500 /* a registration made through another node may still be on its way here */

struct pg_sio {
    struct pg_eio e;               /* first: its Engine.IO session, whose first member is the struct pg_session */
    char sock_id[SOCK_ID_LEN + 1]; /* socket.io's id of the namespace socket */
    char *nsp;                     /* the connected namespace; NULL: none */
    char *user, *conn;             /* the registration this session listens for */
    char *pend_user, *pend_conn;   /* a register waiting for its registration to arrive */
    struct pg_due reg;             /* gw->sio_register while pend_user/pend_conn wait for their retry */
    struct pg_due connect;         /* gw->sio_connect from the opening until the first CONNECT */
};

static struct pg_sio *sio_of(const struct pg_session *s)
{
    return (struct pg_sio *)(uintptr_t)s; /* s is the first member of the first member */
}

/* The socket.io server ends the Engine.IO session: queued packets first, then Engine.IO's close. */
static void sio_close(struct pg_sio *x, const char *why)
{
    pg_log(PG_LOG_INFO, "socketio", "closing sid=%s: %s", x->e.sid, why);
    pg_session_close(&x->e.s, 1000, why);
}

/* ---- output -------------------------------------------------------------------------- */

static void sio_send(struct pg_sio *x, char type, const char *nsp, json_t *data /* stolen; may be NULL */)
{
    char *js = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int failed = data && !js;
    json_decref(data);
    size_t n = 0;
    char *f = failed ? NULL : pg_sio_frame(type, nsp, js, &n);
    if (f)
        pg_eio_send(&x->e, f, n);
    else
        pg_eio_kill(&x->e);
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
    char *f = js ? pg_sio_frame('2', sio_of(s)->nsp, js, &n) : NULL;
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

/* ---- sessions ------------------------------------------------------------------------ */

static struct pg_app *default_app(struct pg_gw *gw)
{
    const char *id = gw->cfg->default_app && *gw->cfg->default_app ? gw->cfg->default_app
                     : gw->cfg->napps                               ? gw->cfg->apps[0].creds.id
                                                                    : NULL;
    return id ? pg_app_lookup(gw, id, strlen(id)) : NULL;
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
        char *ch = pg_channel_of_user(x->user);
        if (ch) {
            pg_channel_leave(&x->e.s, ch);
            free(ch);
        }
    }
    free(x->user);
    free(x->conn);
    free(x->pend_user);
    free(x->pend_conn);
    x->user = x->conn = x->pend_user = x->pend_conn = NULL;
    pg_due_stop(&x->reg);
}

static void registered(struct pg_sio *x, const char *channel)
{
    struct pg_member *m;
    HASH_FIND_STR(x->e.s.subs, channel, m);
    if (m)
        m->live = 1; /* now counted as a recipient (the node snapshot says so) */
    pg_gw_local_changed(x->e.s.gw);
    pg_log(PG_LOG_DEBUG, "socketio", "registered sid=%s app=%s user=%s", x->e.sid, x->e.s.app->id, x->user);
    sio_event(x, "registered", json_pack("{s:s}", "userId", x->user));
}

/* A registration waiting for the broker's grant of the user's channel. */
struct join_ack {
    struct pg_pending p; /* p.serial: the session */
    char *channel;
};

static void join_ack_drop(struct pg_pending *p)
{
    free(((struct join_ack *)p)->channel);
}

static void join_acked(struct pg_pending *p, int result)
{
    struct join_ack *a = (struct join_ack *)p;
    struct pg_session *s = pg_session_find(p->gw, p->serial);
    struct pg_sio *x = s && s->proto == &pg_sio_proto ? sio_of(s) : NULL;
    struct pg_member *m = NULL;
    if (x)
        HASH_FIND_STR(x->e.s.subs, a->channel, m);
    if (m && !x->e.dead && result == 0) {
        registered(x, a->channel);
    } else if (m && !x->e.dead) {
        ns_leave(x);
        sio_error(x, "cannot register now: broker unavailable, try again");
    }
}

static void try_register(struct pg_sio *x, const char *user, const char *conn, int first)
{
    const char *owner = pg_push_regs_user(x->e.s.gw, x->e.s.app->id, conn);
    if (!owner && first) {
        free(x->pend_user);
        free(x->pend_conn);
        x->pend_user = strdup(user);
        x->pend_conn = strdup(conn);
        if (!x->pend_user || !x->pend_conn) {
            pg_eio_kill(&x->e);
            return;
        }
        pg_due_start(&x->e.s.gw->sio_register, &x->reg, pg_mono_ms()); /* a second register starts it again */
        return;
    }
    if (!owner || strcmp(owner, user) != 0) {
        pg_log(PG_LOG_INFO, "socketio", "register refused sid=%s app=%s user=%s connection=%.4s***", x->e.sid,
               x->e.s.app->id, user, conn);
        sio_error(x, "registration refused: connectionId unknown, expired or registered for another user");
        return;
    }
    if (x->user && !strcmp(x->user, user)) { /* again, same user: already listening (or about to) */
        free(x->conn);
        x->conn = strdup(conn);
        return;
    }
    ns_leave(x); /* one user per session: a register for another user replaces the previous one */
    struct join_ack *a = pg_pending_new(x->e.s.gw, x->e.s.serial, sizeof *a, join_acked, join_ack_drop);
    char *channel = pg_channel_of_user(user);
    if (!a || !channel || !(x->user = strdup(user)) || !(x->conn = strdup(conn))) {
        if (a)
            pg_pending_free(&a->p);
        free(channel);
        pg_eio_kill(&x->e);
        return;
    }
    a->channel = channel;
    int rc = pg_channel_join(&x->e.s, channel, pg_pending_ack, a);
    if (rc == 1)
        return; /* join_acked follows */
    if (rc == 0)
        registered(x, channel);
    pg_pending_free(&a->p);
    if (rc < 0) {
        free(x->user);
        free(x->conn);
        x->user = x->conn = NULL;
        sio_error(x, rc == PG_EBUSY ? "cannot register now: broker unavailable, try again" : "cannot register");
    }
}

static void register_retry(struct pg_sio *x)
{
    char *user = x->pend_user, *conn = x->pend_conn;
    x->pend_user = x->pend_conn = NULL;
    if (!x->e.dead && user && conn && x->nsp)
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
    if (!user || !conn || !pg_push_regs_id_valid(user) || !pg_push_regs_id_valid(conn)) {
        sio_error(x, "register needs a userId and a connectionId (1-128 bytes, no / + #)");
        return;
    }
    try_register(x, user, conn, 1);
}

static void ns_connect(struct pg_sio *x, const char *nsp, size_t nl, json_t *data)
{
    char name[PG_SIO_NSP_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)nl, nsp);
    struct pg_gw *gw = x->e.s.gw;
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
    else if (!origin_allowed(app, x->e.origin))
        why = "Origin not allowed";
    if (why) {
        pg_log(PG_LOG_INFO, "socketio", "connect refused sid=%s namespace=%s: %s", x->e.sid, name, why);
        sio_send(x, '4', name, json_pack("{s:s}", "message", why));
        return;
    }
    if (!(x->nsp = strdup(name))) {
        pg_eio_kill(&x->e);
        return;
    }
    pg_due_stop(&x->connect); /* for good, as socket.io's server: a later DISCONNECT does not re-arm it */
    pg_eio_connected(&x->e);
    x->e.s.app = app;
    sio_send(x, '0', name, json_pack("{s:s}", "sid", x->sock_id));
}

/* One socket.io packet (after the Engine.IO "4"); -1: malformed. */
static int sio_packet(struct pg_sio *x, const char *p, size_t n)
{
    struct pg_sio_packet pkt;
    if (pg_sio_packet_parse(p, n, &pkt) != 0)
        return -1;
    int rc = 0;
    int here = x->nsp && strlen(x->nsp) == pkt.nsp_len && !memcmp(x->nsp, pkt.nsp, pkt.nsp_len);
    if (pkt.type != PG_SIO_CONNECT_ERROR && (pkt.type == PG_SIO_CONNECT) == here) {
        /* socket.io's server closes the whole connection on a packet out of order */
        sio_close(x, here ? "CONNECT for a namespace already connected" : "packet before CONNECT to its namespace");
        pg_sio_packet_clear(&pkt);
        return 0;
    }
    switch (pkt.type) {
    case PG_SIO_CONNECT:
        ns_connect(x, pkt.nsp, pkt.nsp_len, pkt.data);
        break;
    case PG_SIO_DISCONNECT:
        ns_leave(x);
        free(x->nsp);
        x->nsp = NULL;
        break;
    case PG_SIO_EVENT: {
        const char *name = pg_sio_event_name(&pkt);
        if (!strcmp(name, "register")) {
            on_register(x, pkt.data);
        } else if (!strcmp(name, "disconnect")) {
            ns_leave(x);
        }
        if (pkt.ack_len && !x->e.dead && x->nsp) {
            /* acknowledged on receipt, without arguments: a register's outcome comes as registered/error */
            size_t len = 0;
            char *f = pg_sio_ack_frame(x->nsp, &pkt, &len);
            if (f)
                pg_eio_send(&x->e, f, len);
            free(f);
        }
        break;
    }
    case PG_SIO_ACK:
        break;
    default:
        rc = -1; /* CONNECT_ERROR comes from servers only */
    }
    pg_sio_packet_clear(&pkt);
    return rc;
}

/* ---- what Engine.IO asks of socket.io (struct pg_eio_ops) -------------------------------- */

static int sio_opened(struct pg_eio *e)
{
    struct pg_sio *x = lws_container_of(e, struct pg_sio, e);
    struct pg_gw *gw = e->s.gw;
    if (pg_random_token(x->sock_id, SOCK_ID_LEN) != 0)
        return -1;
    e->s.app = default_app(gw); /* until a CONNECT names the namespace: counted somewhere meanwhile */
    pg_due_start(&gw->sio_connect, &x->connect, pg_mono_ms());
    return 0;
}

static int sio_message(struct pg_eio *e, const char *p, size_t n)
{
    return sio_packet(lws_container_of(e, struct pg_sio, e), p, n);
}

/* Before its CONNECT a session has no app of its own to check the Origin against. */
static int sio_may_upgrade(const struct pg_eio *e, const char *origin)
{
    const struct pg_sio *x = (const struct pg_sio *)e;
    return !x->nsp || origin_allowed(e->s.app, origin);
}

static void sio_destroy(struct pg_eio *e)
{
    struct pg_sio *x = lws_container_of(e, struct pg_sio, e);
    pg_due_stop(&x->reg); /* off their queues before proto/eio.c frees x */
    pg_due_stop(&x->connect);
    free(x->nsp);
    free(x->user);
    free(x->conn);
    free(x->pend_user);
    free(x->pend_conn);
}

static const struct pg_eio_ops sio_eio_ops = {
    .proto = &pg_sio_proto,
    .size = sizeof(struct pg_sio),
    .opened = sio_opened,
    .message = sio_message,
    .may_upgrade = sio_may_upgrade,
    .destroy = sio_destroy,
};

/* ---- entry points -------------------------------------------------------------------------- */

static int ws_open(struct pg_gw *gw, struct pg_ws *w, struct lws *wsi, struct pg_app *app)
{
    (void)app; /* the namespace names it, after the upgrade */
    return pg_eio_ws_open(gw, w, wsi, &sio_eio_ops);
}

void pg_sio_http(struct pg_gw *gw, struct pg_http *h)
{
    pg_eio_http(gw, h, &sio_eio_ops);
}

void pg_sio_tick(struct pg_gw *gw)
{
    int64_t now = pg_mono_ms();
    struct pg_due *d;
    /* nothing here frees a session (closing and killing free at a later turn of the loop): popping on is safe */
    while ((d = pg_dueq_pop(&gw->sio_connect, now, gw->cfg->sio_connect_timeout_ms))) {
        struct pg_sio *x = lws_container_of(d, struct pg_sio, connect);
        if (!x->e.dead && !x->nsp)
            sio_close(x, "no CONNECT within sio_connect_timeout_ms");
    }
    while ((d = pg_dueq_pop(&gw->sio_register, now, REGISTER_RETRY_MS)))
        register_retry(lws_container_of(d, struct pg_sio, reg));
}

void pg_sio_shutdown(struct pg_gw *gw)
{
    pg_eio_shutdown(gw);
}

struct pg_session *pg_sio_open_session(struct pg_gw *gw, struct lws *wsi, int mode)
{
    struct pg_eio *e = pg_eio_open_in_memory(gw, wsi, mode, &sio_eio_ops);
    return e ? &e->s : NULL;
}

int pg_sio_receive(struct pg_session *s, const char *msg, size_t len, int polling)
{
    return pg_eio_receive(pg_eio_of(s), msg, len, polling);
}

const struct pg_proto pg_sio_proto = {
    .name = "socketio",
    .confirm_upgrade = pg_eio_confirm_upgrade,
    .ws_open = ws_open,
    .ws_receive = pg_eio_ws_receive,
    .ws_writeable = pg_eio_ws_writeable,
    .ws_closed = pg_eio_ws_closed,
    .wake = pg_eio_wake,
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
