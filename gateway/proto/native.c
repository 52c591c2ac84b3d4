/*
 * The native protocol at /v1/{app}: JSON frames with a "type", ScaleDrone's
 * model (rooms, JWT authentication, publish) plus MQTT wildcards in
 * subscriptions. Wire format: README "Native protocol".
 *
 * Token expiry: an authenticated session is closed with 4401 once its
 * token's exp + leeway has passed. Each token has its own deadline, so the
 * sessions wait in one deadline heap (core/dheap.h, gw->token_expiry), not
 * in lws' sorted timer list; pg_native_tick() pops the due ones at the
 * loop's tick, at most one tick (100 ms) late. The entry (struct
 * native_session's expiry) is the session's: on the heap from a successful
 * authenticate until it is popped or the session is released (the release
 * op takes it off), so the heap never holds a freed session.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cluster/apps.h"
#include "cluster/devices.h"
#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/dheap.h"
#include "core/gw.h"
#include "core/msg.h"
#include "core/pending.h"
#include "core/publish.h"
#include "core/registry.h"
#include "core/session.h"
#include "core/ws.h"
#include "http/http.h"
#include "log.h"
#include "pg_common.h"
#include "proto/native.h"
#include "pushgate_auth.h"

#define CLIENT_ID_LEN 20

/* A native session: the core's part first, then native flow control (in struct pg_ws's room for it). */
struct native_session {
    struct pg_session s;
    size_t replies_due;  /* requests waiting for the broker before their reply is queued */
    int rx_paused;       /* not reading requests until its replies drain */
    struct pg_dl expiry; /* on gw->token_expiry while its token has not expired (see the file-top comment) */
};
_Static_assert(sizeof(struct native_session) <= sizeof(((struct pg_ws *)0)->own_room),
               "struct native_session must fit struct pg_ws");

static struct native_session *ns(struct pg_session *s)
{
    return (struct native_session *)s; /* s is the first member */
}
#define RESUME_LEN 32

/* The resume token lets a reconnecting client keep its id (and so a JWT bound to it) on any node. */
static void resume_token(const struct pg_app *app, const char *client_id, char out[RESUME_LEN + 1])
{
    char msg[64], hex[65];
    snprintf(msg, sizeof msg, "resume:%s", client_id);
    pg_hmac_sha256_hex(app->creds->secret, strlen(app->creds->secret), msg, strlen(msg), hex);
    memcpy(out, hex, RESUME_LEN);
    out[RESUME_LEN] = '\0';
}

static int query_arg(struct lws *wsi, const char *name, char *out, size_t outlen)
{
    /* a value too long for out is none of ours: never cut to a prefix that might look valid */
    return pg_http_query_arg(wsi, name, out, outlen) >= 0 ? 0 : -1;
}

static int client_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n != CLIENT_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9')))
            return 0;
    return 1;
}

static int native_open(struct pg_session *s, struct lws *wsi)
{
    char want[64] = "", resume[64] = "", expect[RESUME_LEN + 1];
    if (query_arg(wsi, "client_id", want, sizeof want) == 0 && query_arg(wsi, "resume", resume, sizeof resume) == 0 &&
        client_id_valid(want)) {
        resume_token(s->app, want, expect);
        if (pg_secret_equal(resume, strlen(resume), expect, RESUME_LEN))
            memcpy(s->client_id, want, CLIENT_ID_LEN + 1);
    }
    if (!s->client_id[0] && pg_random_token(s->client_id, CLIENT_ID_LEN) != 0)
        return -1;
    resume_token(s->app, s->client_id, expect);
    pg_session_send_json(s, json_pack("{s:s, s:s, s:s}", "type", "open", "client_id", s->client_id, "resume", expect));
    pg_log(PG_LOG_DEBUG, "native", "session open app=%s client=%s", s->app->creds->id, s->client_id);
    return 0;
}

static void reply(struct pg_session *s, const char *type, json_t *cb, const char *room, int code, const char *message)
{
    json_t *o = json_pack("{s:s}", "type", type);
    if (!o)
        return;
    if (cb)
        json_object_set(o, "cb", cb);
    if (room)
        json_object_set_new(o, "room", json_string(room));
    if (code)
        json_object_set_new(o, "error", json_pack("{s:i, s:s}", "code", code, "message", message));
    /* a reply, not fan-out: outside the out-queue limits, bounded by native_flow() */
    struct pg_msg *m = pg_msg_from_json(o);
    json_decref(o);
    if (!m) {
        pg_session_close(s, 1011, "cannot encode frame");
        return;
    }
    m->reply = 1;
    pg_session_send(s, m);
    pg_msg_unref(m);
}

/*
 * Backpressure on a native client's requests: its socket is not read while
 * max_queue_messages replies are due (queued, or waiting for the broker),
 * and read again once half have gone out. The flow op: after each request
 * read and each frame written.
 */
static void native_flow(struct pg_session *s)
{
    struct native_session *n = ns(s);
    size_t due = s->q.replies + n->replies_due, window = (size_t)s->gw->cfg->max_queue_messages;
    if (!n->rx_paused && due >= window && !s->close_code) {
        n->rx_paused = 1;
        lws_rx_flow_control(s->wsi, 0);
        pg_log(PG_LOG_DEBUG, "native", "not reading requests of client=%s: %zu replies due", s->client_id, due);
    } else if (n->rx_paused && due <= window / 2) {
        n->rx_paused = 0;
        lws_rx_flow_control(s->wsi, 1);
    }
}

/* {"type":"error","error":{"code","message"}}: an error that answers no request. */
static void native_error(struct pg_session *s, int code, const char *message)
{
    reply(s, "error", NULL, NULL, code, message);
}

/* May this session do action on channel? 0, or the HTTP-like error code (401, 403). */
static int session_may(struct pg_session *s, pg_action action, const char *channel)
{
    if (action == PG_ACT_PUBLISH && pg_devices_channel_reserved(s->gw, channel))
        return 403; /* only the broker plugin reports device presence */
    if (s->token)
        return pg_token_allows(s->token, action, channel, strlen(channel)) == PG_ALLOW ? 0 : 403;
    /* without a token: public channels of an open app only (private-/presence- need a credential everywhere) */
    return s->app->creds->require_auth || pg_channel_protected(channel, strlen(channel)) ? 401 : 0;
}

void pg_native_tick(struct pg_gw *gw)
{
    struct pg_dl *d;
    while ((d = pg_dheap_pop(&gw->token_expiry, pg_mono_ms()))) {
        struct pg_session *s = &lws_container_of(d, struct native_session, expiry)->s;
        pg_log(PG_LOG_INFO, "native", "token expired app=%s client=%s", s->app->creds->id, s->client_id);
        pg_session_close(s, 4401, "token expired"); /* frees nothing: lws closes it later */
    }
}

/* The release op: a released session leaves the expiry heap before its memory goes. */
static void native_release(struct pg_session *s)
{
    pg_dheap_remove(&s->gw->token_expiry, &ns(s)->expiry);
}

static void do_authenticate(struct pg_session *s, json_t *req, json_t *cb)
{
    char err[160];
    const char *jwt = json_string_value(json_object_get(req, "token"));
    pg_token *tok = NULL;
    if (!jwt) {
        reply(s, "authenticate", cb, NULL, 400, "token must be a string");
        return;
    }
    int rc = pg_token_verify(jwt, strlen(jwt), s->app->creds, &s->gw->limits, pg_now_ms(), &tok, err, sizeof err);
    if (rc == 0 && (!pg_token_client(tok) || strcmp(pg_token_client(tok), s->client_id) != 0)) {
        snprintf(err, sizeof err, "token's client claim does not match this connection's client_id");
        rc = PG_EAUTH;
    }
    if (rc == 0 && (pg_revoked(s->gw, s->app->id, "jti", pg_token_jti(tok)) ||
                    pg_revoked(s->gw, s->app->id, "client", s->client_id))) {
        snprintf(err, sizeof err, "credential revoked");
        rc = PG_EAUTH;
    }
    if (rc != 0) {
        pg_token_free(tok);
        pg_log(PG_LOG_INFO, "native", "authenticate refused app=%s client=%s: %s", s->app->creds->id, s->client_id,
               err);
        reply(s, "authenticate", cb, NULL, rc == PG_ENOMEM ? 500 : 401, err);
        return;
    }
    int64_t left_ms = pg_token_exp_ms(tok) + s->gw->limits.leeway_ms - pg_now_ms();
    /* before the token is taken: a session never holds a token without its expiry (a move never fails) */
    if (pg_dheap_set(&s->gw->token_expiry, &ns(s)->expiry, pg_mono_ms() + (left_ms > 0 ? left_ms : 0)) != 0) {
        pg_token_free(tok);
        reply(s, "authenticate", cb, NULL, 500, "out of memory");
        return;
    }
    pg_token_free(s->token);
    s->token = tok;
    /* exact subscriptions were checked against the previous token: drop those the new one does not allow */
    struct pg_member *m, *mtmp;
    HASH_ITER(hh, s->subs, m, mtmp) {
        if (m->ch->wildcard || pg_token_allows(tok, PG_ACT_SUBSCRIBE, m->ch->name, strlen(m->ch->name)) == PG_ALLOW)
            continue;
        json_t *o = json_pack("{s:s, s:s, s:{s:i, s:s}}", "type", "unsubscribe", "room", m->ch->name, "error", "code",
                              403, "message", "not permitted by the new token");
        pg_channel_leave(s, m->ch->name);
        pg_session_send_json(s, o);
    }
    reply(s, "authenticate", cb, NULL, 0, NULL);
}

/* A subscribe or publish waiting for the broker; its reply counts as due (native_flow) until it is queued. */
struct native_ack {
    struct pg_pending p; /* p.serial: the session */
    json_t *cb;
    char *room;
};

static const struct pg_broker_words subscribe_words = {
    .refused = "refused by the broker",
    .late = "broker did not confirm the subscription in time",
    .unavailable = "broker unavailable",
};

static const struct pg_broker_words publish_words = {
    .refused = "refused by the broker",
    .late = "broker did not acknowledge in time",
    .unavailable = "broker unavailable",
};

/* The broker answered (or the request failed): its reply is queued by now, or its session is gone. */
static void ack_drop(struct pg_pending *p)
{
    struct native_ack *a = (struct native_ack *)p;
    struct pg_session *s = pg_session_find(p->gw, p->serial);
    if (s && ns(s)->replies_due)
        ns(s)->replies_due--;
    json_decref(a->cb);
    free(a->room);
}

static struct native_ack *ack_new(struct pg_session *s, json_t *cb, const char *room, pg_pending_fn done)
{
    struct native_ack *a = pg_pending_new(s->gw, s->serial, sizeof *a, done, ack_drop);
    if (!a)
        return NULL;
    ns(s)->replies_due++; /* until ack_drop() */
    a->cb = cb ? json_incref(cb) : NULL;
    if (!(a->room = strdup(room))) {
        pg_pending_free(&a->p);
        return NULL;
    }
    return a;
}

/* A subscription is confirmed only once the broker granted it, so nothing published after the reply is missed. */
static void subscribe_acked(struct pg_pending *p, int result)
{
    struct native_ack *a = (struct native_ack *)p;
    struct pg_session *s = pg_session_find(p->gw, p->serial);
    const char *message;
    int code = pg_broker_status(result, &subscribe_words, &message);
    if (!s)
        return;
    if (code != 200)
        pg_channel_leave(s, a->room);
    reply(s, "subscribe", a->cb, a->room, code == 200 ? 0 : code, message);
}

static void do_subscribe(struct pg_session *s, const char *room, json_t *cb)
{
    int code = session_may(s, PG_ACT_SUBSCRIBE, room);
    /* A wildcard filter is admitted here and checked per delivered channel (like the broker plugin does). */
    if (code == 403 && pg_channel_is_filter(room))
        code = 0;
    if (code) {
        reply(s, "subscribe", cb, room, code, code == 401 ? "authenticate first" : "not permitted");
        return;
    }
    struct native_ack *a = ack_new(s, cb, room, subscribe_acked);
    if (!a) {
        reply(s, "subscribe", cb, room, 500, "out of memory");
        return;
    }
    int rc = pg_channel_join(s, room, pg_pending_ack, a);
    if (rc == 1)
        return; /* a owned by the pending acknowledgement */
    pg_pending_free(&a->p);
    if (rc == 0)
        reply(s, "subscribe", cb, room, 0, NULL);
    else if (rc == PG_ELIMIT)
        reply(s, "subscribe", cb, room, 429, "too many subscriptions");
    else if (rc == PG_EBUSY)
        reply(s, "subscribe", cb, room, 503, "broker unavailable");
    else
        reply(s, "subscribe", cb, room, 500, "cannot subscribe");
}

static void publish_acked(struct pg_pending *p, int result)
{
    struct native_ack *a = (struct native_ack *)p;
    struct pg_session *s = pg_session_find(p->gw, p->serial);
    const char *message;
    int code = pg_broker_status(result, &publish_words, &message);
    if (s)
        reply(s, "publish", a->cb, a->room, code == 200 ? 0 : code, message);
}

static void do_publish(struct pg_session *s, json_t *req, const char *room, json_t *cb)
{
    json_t *msg = json_object_get(req, "message");
    struct native_ack *ack = NULL;
    char *payload = NULL;
    if (!msg) {
        reply(s, "publish", cb, room, 400, "message is required");
        return;
    }
    if (pg_channel_check(room, strlen(room), (size_t)s->gw->cfg->max_channel_bytes, 0) != 0) {
        reply(s, "publish", cb, room, 400, "invalid room name (no + or # when publishing)");
        return;
    }
    int code = session_may(s, PG_ACT_PUBLISH, room);
    if (code) {
        reply(s, "publish", cb, room, code, code == 401 ? "authenticate first" : "not permitted");
        return;
    }
    payload = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!payload) {
        reply(s, "publish", cb, room, 400, "message cannot be encoded");
        return;
    }
    size_t plen = strlen(payload);
    if (plen > s->gw->cfg->max_message_bytes) {
        reply(s, "publish", cb, room, 413, "message too large");
        goto out;
    }
    const char *why = pg_publish_refusal(s->gw, s->app);
    if (why) {
        reply(s, "publish", cb, room, 503, why);
        goto out;
    }
    if (cb && !(ack = ack_new(s, cb, room, publish_acked))) {
        reply(s, "publish", cb, room, 500, "out of memory");
        goto out;
    }
    const char *props[] = {"event", "message", "client_id", s->client_id, NULL};
    int rc = pg_publish(s->gw, s->app->creds->id, room, payload, plen, props, ack ? pg_pending_ack : NULL, ack);
    if (rc != 0) {
        if (ack)
            pg_pending_free(&ack->p);
        if (cb || rc != PG_EBUSY)
            reply(s, "publish", cb, room, rc == PG_EBUSY ? 503 : rc == PG_ELIMIT ? 413 : 500,
                  rc == PG_EBUSY ? "broker unavailable" : "cannot publish");
        else
            native_error(s, 503, "broker unavailable, message dropped");
    }
out:
    free(payload);
}

static void native_receive(struct pg_session *s, const char *frame, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(frame, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req || !json_is_object(req)) {
        native_error(s, 400, "malformed frame: expected a JSON object");
        goto out;
    }
    const char *type = json_string_value(json_object_get(req, "type"));
    json_t *cb = json_object_get(req, "cb");
    if (cb && !json_is_integer(cb)) {
        native_error(s, 400, "cb must be an integer");
        goto out;
    }
    if (!type) {
        native_error(s, 400, "malformed frame: missing type");
        goto out;
    }
    if (!strcmp(type, "authenticate")) {
        do_authenticate(s, req, cb);
        goto out;
    }
    const char *room = json_string_value(json_object_get(req, "room"));
    if (!strcmp(type, "subscribe") || !strcmp(type, "unsubscribe") || !strcmp(type, "publish")) {
        if (!room || pg_channel_check(room, strlen(room), (size_t)s->gw->cfg->max_channel_bytes, 1) != 0) {
            reply(s, type, cb, NULL, 400, "room must be a valid channel name");
            goto out;
        }
    }
    if (!strcmp(type, "subscribe"))
        do_subscribe(s, room, cb);
    else if (!strcmp(type, "unsubscribe")) {
        pg_channel_leave(s, room);
        if (cb)
            reply(s, "unsubscribe", cb, room, 0, NULL);
    } else if (!strcmp(type, "publish"))
        do_publish(s, req, room, cb);
    else
        reply(s, "error", cb, NULL, 400, "unknown frame type");
out:
    json_decref(req);
}

/*
 * A channel message: {"type":"message","room","message","client_id","timestamp"[,"event"]} (the publisher's
 * client_id or null, its `ts` or now, an event other than "message"). An app-wide broadcast:
 * {"type":"broadcast","event","message","timestamp"} (now).
 */
static struct pg_msg *encode(const struct pg_session *s, const struct pg_event *ev)
{
    const char *sender = NULL, *ts = NULL, *event = NULL;
    json_t *message, *o;
    (void)s;
    if (!ev->channel) {
        json_t *data = pg_payload_json(ev->payload, ev->len);
        o = json_pack("{s:s, s:s, s:O, s:I}", "type", "broadcast", "event",
                      pg_prop_get(ev->props, ev->nprops, "event", "message"), "message", data, "timestamp",
                      (json_int_t)pg_now_ms());
        json_decref(data);
        goto out;
    }
    for (size_t i = 0; i < ev->nprops; i++) {
        const struct pg_bridge_prop *p = &ev->props[i];
        if (!strcmp(p->name, "client_id"))
            sender = p->value;
        else if (!strcmp(p->name, "ts"))
            ts = p->value;
        else if (!strcmp(p->name, "event") && strcmp(p->value, "message") != 0)
            event = p->value; /* e.g. device_joined: "message", the default, is left out */
    }
    if (!(message = pg_payload_json(ev->payload, ev->len)))
        return NULL;
    long long when = ts ? strtoll(ts, NULL, 10) : 0;
    o = json_pack("{s:s, s:s, s:o, s:s?, s:I}", "type", "message", "room", ev->channel, "message", message,
                  "client_id", sender, "timestamp", (json_int_t)(when > 0 ? when : pg_now_ms()));
    if (!o)
        return NULL;
    if (!sender)
        json_object_set_new(o, "client_id", json_null());
    if (event)
        json_object_set_new(o, "event", json_string(event));
out:;
    struct pg_msg *m = o ? pg_msg_from_json(o) : NULL;
    json_decref(o);
    return m;
}

static void gap(struct pg_session *s, const char *sub, const char *channel)
{
    pg_session_send_json(s, json_pack("{s:s, s:s?, s:s?}", "type", "gap", "room", sub, "channel", channel));
}

static int may_read_app(const struct pg_session *s)
{
    return !s->app->creds->require_auth || s->token != NULL;
}

static const char *user(const struct pg_session *s)
{
    (void)s;
    return NULL; /* a token's user_id claim is no signin: terminate_connections is Pusher's and socket.io's */
}

/* An error frame saying why, then the close. */
static void refuse(struct pg_session *s, int code, uint16_t close_code, const char *why)
{
    native_error(s, code, why);
    pg_session_close(s, close_code, why);
}

static void terminate(struct pg_session *s)
{
    pg_session_close(s, 4009, "terminated");
}

static void auth_required(struct pg_session *s)
{
    if (!s->token)
        refuse(s, 401, 4009, "this app now requires a token");
}

/* An app that is disabled refuses the upgrade (Pusher clients instead expect close code 4003 after it). */
static int confirm_upgrade(struct pg_gw *gw, struct lws *wsi, struct pg_app *app)
{
    if (app && !app->creds->active) {
        pg_http_refuse_upgrade(wsi, HTTP_STATUS_FORBIDDEN, "app disabled");
        return 1;
    }
    return pg_http_upgrade_checks(gw, wsi, app);
}

const struct pg_proto pg_native_proto = {
    .name = "native",
    .confirm_upgrade = confirm_upgrade,
    .ws_open = pg_ws_open,
    .ws_receive = pg_ws_receive,
    .ws_writeable = pg_ws_writeable,
    .ws_closed = pg_ws_closed,
    .open = native_open,
    .release = native_release,
    .receive = native_receive,
    .flow = native_flow,
    .wake = pg_ws_wake,
    .nslots = 1,
    .encode = encode,
    .may_read_app = may_read_app,
    .gap = gap,
    .user = user,
    .refuse = refuse,
    .terminate = terminate,
    .auth_required = auth_required,
};
