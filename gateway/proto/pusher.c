/*
 * Pusher Channels protocol 7 at /app/{key}: what pusher-js and Laravel Echo
 * speak. Server-to-client frames carry `data` as a JSON string; errors and
 * close codes follow the protocol (4001 unknown app, 4007 old protocol, 4301
 * client events over the rate limit). Frames: proto/pusher_wire.c. A
 * presence channel's members are proto/presence.c's: a subscription joins
 * as its user_id, and its member_left op leaves.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <utlist.h>

#include "cluster/devices.h"
#include "cluster/webhooks.h"
#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/pending.h"
#include "core/publish.h"
#include "core/registry.h"
#include "core/session.h"
#include "core/ws.h"
#include "http/http.h"
#include "log.h"
#include "pg_common.h"
#include "proto/presence.h"
#include "proto/pusher.h"
#include "proto/pusher_wire.h"
#include "pushgate_auth.h"

#define CLIENT_EVENTS_PER_S 10
#define MAX_USER_ID 128 /* as the push API's user ids: both name the channel #server-to-user-{id} */

/* A Pusher session: the core's part first, then what only Pusher keeps (in struct pg_ws's room for it). */
struct pusher_session {
    struct pg_session s;
    char *user_id;          /* user signin (owned) */
    pg_rules *user_perms;   /* the signed-in user_data's `permissions` (owned), NULL without */
    struct pg_due activity; /* gw->pusher_idle, or gw->pusher_wait once pinged; on neither before opening */
    int64_t rate_window_ms; /* client events: start of the current one-second window */
    int rate_count;
};
_Static_assert(sizeof(struct pusher_session) <= sizeof(((struct pg_ws *)0)->own_room),
               "struct pusher_session must fit struct pg_ws");

static struct pusher_session *ps(const struct pg_session *s)
{
    return (struct pusher_session *)(uintptr_t)s; /* s is the first member */
}

/* The release op: the signin and the activity clock go with the session. */
static void pusher_release(struct pg_session *s)
{
    struct pusher_session *p = ps(s);
    pg_due_stop(&p->activity);
    pg_rules_free(p->user_perms);
    free(p->user_id);
    p->user_id = NULL;
    p->user_perms = NULL;
}

/* private-, private-encrypted- and presence-: channel auth in every app (pg_channel_protected) */
static int is_private(const char *ch)
{
    return pg_channel_protected(ch, strlen(ch));
}

static int is_presence(const char *ch)
{
    return !strncmp(ch, "presence-", 9);
}

static void subscription_error(struct pg_session *s, const char *channel, int status, const char *why)
{
    pg_pusher_send_event(s, "pusher:subscription_error", channel,
               json_pack("{s:s, s:s, s:i}", "type", "AuthError", "error", why, "status", status));
}

/*
 * Activity: a client silent for pusher_activity_timeout_s gets a pusher:ping;
 * silent pusher_pong_timeout_s more, it is closed with 4201 so it reconnects.
 * Both are the same for every session, so the clock is two deadline FIFOs
 * (core/dueq.h): every frame moves its session to pusher_idle's tail (O(1),
 * no timer re-sorted per message), pg_pusher_tick() moves the due ones to
 * pusher_wait with their ping and closes those still silent there. Both
 * settings are whole seconds: the tick's granularity (up to 100 ms late) does
 * not show.
 */
void pg_pusher_tick(struct pg_gw *gw)
{
    int64_t now = pg_mono_ms();
    int64_t limit_ms = gw->cfg->pusher_activity_timeout_s * 1000, pong_ms = gw->cfg->pusher_pong_timeout_s * 1000;
    struct pg_due *d;
    while ((d = pg_dueq_pop(&gw->pusher_wait, now, pong_ms))) {
        struct pg_session *s = &lws_container_of(d, struct pusher_session, activity)->s;
        pg_log(PG_LOG_INFO, "pusher", "closing idle connection app=%s socket_id=%s", s->app->creds->id, s->socket_id);
        pg_pusher_send_error(s, 4201, "Pong reply not received");
        pg_session_close(s, 4201, "pong not received");
    }
    while ((d = pg_dueq_pop(&gw->pusher_idle, now, limit_ms))) {
        struct pusher_session *p = lws_container_of(d, struct pusher_session, activity);
        pg_due_start(&gw->pusher_wait, &p->activity, now);
        pg_pusher_send_event(&p->s, "pusher:ping", NULL, json_object());
    }
}

static int pusher_open(struct pg_session *s, struct lws *wsi)
{
    char frag[16];
    int protocol = 0;
    unsigned char r[8];
    if (pg_http_query_arg(wsi, "protocol", frag, sizeof frag) > 0) /* other parameters of any length are skipped */
        protocol = atoi(frag);
    if (!s->app) {
        pg_pusher_send_error(s, 4001, "App key not in this cluster");
        pg_session_close(s, 4001, "app does not exist");
        return 0;
    }
    if (!s->app->creds->active) {
        pg_pusher_send_error(s, 4003, "App is disabled");
        pg_session_close(s, 4003, "app disabled");
        return 0;
    }
    if (protocol < 7) {
        pg_pusher_send_error(s, 4007, "Unsupported protocol version");
        pg_session_close(s, 4007, "protocol 7 required");
        return 0;
    }
    /* unique across nodes with overwhelming probability: two random 32-bit numbers */
    if (RAND_bytes(r, sizeof r) != 1)
        return -1;
    uint32_t hi = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
    uint32_t lo = (uint32_t)r[4] << 24 | (uint32_t)r[5] << 16 | (uint32_t)r[6] << 8 | r[7];
    snprintf(s->socket_id, sizeof s->socket_id, "%u.%u", hi, lo);
    snprintf(s->client_id, sizeof s->client_id, "%s", s->socket_id);
    pg_pusher_send_event(s, "pusher:connection_established", NULL,
               json_pack("{s:s, s:I}", "socket_id", s->socket_id, "activity_timeout",
                         (json_int_t)s->gw->cfg->pusher_activity_timeout_s));
    pg_log(PG_LOG_DEBUG, "pusher", "connection app=%s socket_id=%s", s->app->creds->id, s->socket_id);
    s->last_rx_ms = pg_mono_ms();
    pg_due_start(&s->gw->pusher_idle, &ps(s)->activity, s->last_rx_ms);
    return 0;
}

/* The member_left op: a presence membership ends with its subscription. */
static void member_left(struct pg_member *m)
{
    if (m->proto_data)
        pg_presence_leave(m->proto_data);
    m->proto_data = NULL;
}

/* ---- subscribe -------------------------------------------------------------------- */

/* A subscription waiting for the broker's grant. */
struct sub_ack {
    struct pg_pending p; /* p.serial: the session */
    char *channel;
    char *user_id; /* presence */
    json_t *user_info;
};

static void sub_ack_drop(struct pg_pending *p)
{
    struct sub_ack *a = (struct sub_ack *)p;
    free(a->channel);
    free(a->user_id);
    json_decref(a->user_info);
}

static void subscribed(struct pg_session *s, struct sub_ack *a)
{
    struct pg_member *m;
    HASH_FIND_STR(s->subs, a->channel, m);
    if (!m)
        return; /* unsubscribed meanwhile */
    m->live = 1;
    if (a->user_id) {
        m->proto_data = pg_presence_join(s, a->channel, a->user_id, a->user_info);
        a->user_info = NULL;
        json_t *members = pg_presence_members(s->gw, s->app, a->channel), *ids = json_array();
        const char *uid;
        json_t *info;
        json_object_foreach(members, uid, info) json_array_append_new(ids, json_string(uid));
        pg_pusher_send_event(s, "pusher_internal:subscription_succeeded", a->channel,
                             json_pack("{s:{s:o, s:o, s:I}}", "presence", "ids", ids, "hash", members, "count",
                                       (json_int_t)json_array_size(ids)));
    } else {
        pg_pusher_send_event(s, "pusher_internal:subscription_succeeded", a->channel, json_object());
    }
}

/* Pusher clients know no broker: any failure is 503. */
static void subscribe_acked(struct pg_pending *p, int result)
{
    struct sub_ack *a = (struct sub_ack *)p;
    struct pg_session *s = pg_session_find(p->gw, p->serial);
    if (s && result == 0) {
        subscribed(s, a);
    } else if (s) {
        pg_channel_leave(s, a->channel);
        subscription_error(s, a->channel, 503, "broker unavailable");
    }
}

static int check_channel_auth(struct pg_session *s, const char *channel, const char *auth, const char *channel_data)
{
    const char *secret = s->app->creds->secret, *key = s->app->creds->key ? s->app->creds->key : "";
    size_t klen = strlen(key);
    char hex[65];
    if (!auth || strncmp(auth, key, klen) != 0 || auth[klen] != ':')
        return -1;
    size_t n = strlen(s->socket_id) + strlen(channel) + (channel_data ? strlen(channel_data) : 0) + 3;
    char *msg = malloc(n);
    if (!msg)
        return -1;
    snprintf(msg, n, "%s:%s%s%s", s->socket_id, channel, channel_data ? ":" : "", channel_data ? channel_data : "");
    int rc = pg_hmac_sha256_hex(secret, strlen(secret), msg, strlen(msg), hex);
    free(msg);
    if (rc != 0)
        return -1;
    return pg_secret_equal(auth + klen + 1, strlen(auth + klen + 1), hex, 64) ? 0 : -1;
}

/*
 * A public channel of a require_auth app needs a credential too (anyone knows the key): the channel auth signature
 * private channels use, or a signin whose user_data carries `permissions` (the JWT rules) allowing subscribe.
 * 0 when allowed, else the subscription_error status: 401 no credential, 403 signed in but not allowed.
 */
static int public_credential(struct pg_session *s, const char *channel, const char *auth)
{
    if (!s->app->creds->require_auth)
        return 0;
    if (auth && *auth && check_channel_auth(s, channel, auth, NULL) == 0)
        return 0;
    if (ps(s)->user_perms)
        return pg_rules_allow(ps(s)->user_perms, PG_ACT_SUBSCRIBE, channel, strlen(channel)) == PG_ALLOW ? 0 : 403;
    return ps(s)->user_id ? 403 : 401;
}

/*
 * Subscriptions to public channels made while the app was open were given without asking for a credential, so when
 * it starts requiring auth the connection keeps only what its signed-in user's permissions cover. Any other public
 * subscription closes it with 4200 ("reconnect immediately"): pusher-js comes back and subscribes under the new rule.
 */
static void auth_required(struct pg_session *s)
{
    struct pg_member *m, *tmp;
    size_t upl = strlen(PG_USER_CHANNEL_PREFIX);
    HASH_ITER(hh, s->subs, m, tmp) {
        const char *name = m->ch->name;
        if (is_private(name) || !strncmp(name, PG_USER_CHANNEL_PREFIX, upl))
            continue;
        if (ps(s)->user_perms && pg_rules_allow(ps(s)->user_perms, PG_ACT_SUBSCRIBE, name, strlen(name)) == PG_ALLOW)
            continue;
        pg_pusher_send_error(s, 4200, "This app now requires auth: reconnect, then sign in or send channel auth");
        pg_session_close(s, 4200, "app now requires auth");
        return;
    }
}

static void do_subscribe(struct pg_session *s, json_t *data)
{
    const char *channel = json_string_value(json_object_get(data, "channel"));
    const char *auth = json_string_value(json_object_get(data, "auth"));
    const char *channel_data = json_string_value(json_object_get(data, "channel_data"));
    struct sub_ack *a = NULL;
    size_t upl = strlen(PG_USER_CHANNEL_PREFIX);
    if (channel && !strncmp(channel, PG_USER_CHANNEL_PREFIX, upl)) {
        /* pusher-js subscribes to its own user channel after signin; the signin already joined it */
        struct pg_member *um;
        HASH_FIND_STR(s->subs, channel, um);
        if (!ps(s)->user_id || strcmp(channel + upl, ps(s)->user_id) != 0)
            subscription_error(s, channel, 403, "sign in as this user first");
        else if (um && um->live)
            pg_pusher_send_event(s, "pusher_internal:subscription_succeeded", channel, json_object());
        return; /* a pending join answers through signin_acked */
    }
    if (!channel || !pg_pusher_channel_valid(channel)) {
        pg_pusher_send_error(s, 4009, "Invalid channel name");
        return;
    }
    struct pg_member *existing;
    HASH_FIND_STR(s->subs, channel, existing);
    if (existing) {
        pg_pusher_send_error(s, 4009, "Existing subscription to channel");
        return;
    }
    if (is_private(channel) && check_channel_auth(s, channel, auth, is_presence(channel) ? channel_data : NULL)) {
        pg_log(PG_LOG_INFO, "pusher", "subscription refused app=%s socket_id=%s channel=%s: bad auth",
               s->app->creds->id, s->socket_id, channel);
        subscription_error(s, channel, 401, "Invalid signature");
        return;
    }
    int status = is_private(channel) ? 0 : public_credential(s, channel, auth);
    if (status) {
        pg_log(PG_LOG_INFO, "pusher", "subscription refused app=%s socket_id=%s channel=%s: %s", s->app->creds->id,
               s->socket_id, channel, status == 401 ? "no credential" : "not in the user's permissions");
        subscription_error(s, channel, status,
                           status == 401 ? "This app requires auth: sign in first or send a channel auth signature"
                                         : "The signed-in user's permissions do not allow this channel");
        return;
    }
    if (!(a = pg_pending_new(s->gw, s->serial, sizeof *a, subscribe_acked, sub_ack_drop)) ||
        !(a->channel = strdup(channel)))
        goto nomem;
    if (is_presence(channel)) {
        json_t *cd = channel_data ? json_loads(channel_data, 0, NULL) : NULL;
        json_t *uid = json_object_get(cd, "user_id");
        char num[32];
        const char *id = json_string_value(uid);
        if (!id && json_is_integer(uid)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(uid));
            id = num;
        }
        if (!id || !*id) {
            json_decref(cd);
            pg_pending_free(&a->p);
            subscription_error(s, channel, 400, "presence channel_data needs a user_id");
            return;
        }
        if (strlen(id) > MAX_USER_ID || !pg_mqtt_utf8_valid(id, strlen(id))) { /* sent as an MQTT user property */
            json_decref(cd);
            pg_pending_free(&a->p);
            subscription_error(s, channel, 400,
                               "Invalid user_id: at most 128 bytes, no control characters or Unicode noncharacters");
            return;
        }
        a->user_id = strdup(id);
        a->user_info = json_incref(json_object_get(cd, "user_info"));
        json_decref(cd);
        if (!a->user_id)
            goto nomem;
    }
    int rc = pg_channel_join(s, channel, pg_pending_ack, a);
    if (rc == 1)
        return;
    if (rc == 0)
        subscribed(s, a);
    else if (rc == PG_ELIMIT)
        pg_pusher_send_error(s, 4301, "Too many subscriptions");
    else
        subscription_error(s, channel, 503, "cannot subscribe now");
    pg_pending_free(&a->p);
    return;
nomem:
    if (a)
        pg_pending_free(&a->p);
    pg_pusher_send_error(s, 4200, "out of memory");
}

/* ---- user signin ---------------------------------------------------------------------- */

/* A signin waiting for the broker's grant of the user's channel. */
struct signin_ack {
    struct pg_pending p; /* p.serial: the session */
    char *user_data;
};

static void signin_ack_drop(struct pg_pending *p)
{
    free(((struct signin_ack *)p)->user_data);
}

static void signin_done(struct pg_session *s, const char *user_data)
{
    struct pg_member *m;
    char *channel = pg_channel_of_user(ps(s)->user_id);
    if (channel) {
        HASH_FIND_STR(s->subs, channel, m);
        if (m)
            m->live = 1;
        free(channel);
    }
    pg_pusher_send_event(s, "pusher:signin_success", NULL, json_pack("{s:s}", "user_data", user_data));
}

static void signin_acked(struct pg_pending *p, int result)
{
    struct signin_ack *a = (struct signin_ack *)p;
    struct pg_session *s = pg_session_find(p->gw, p->serial);
    if (s && result == 0) {
        signin_done(s, a->user_data);
    } else if (s && ps(s)->user_id) {
        char *channel = pg_channel_of_user(ps(s)->user_id);
        if (channel) {
            pg_channel_leave(s, channel);
            free(channel);
        }
        free(ps(s)->user_id);
        ps(s)->user_id = NULL;
        pg_rules_free(ps(s)->user_perms);
        ps(s)->user_perms = NULL;
        pg_pusher_send_error(s, 4201, "cannot sign in now: broker unavailable");
    }
}

/*
 * The `permissions` of a signin's user_data (signed by the app's backend, so as trusted as a JWT's claim) become the
 * session's rules for public channels of a require_auth app. Absent: none. Invalid: the signin is refused (4009),
 * as a token with an invalid pattern is. 0 or -1 (answered).
 */
static int signin_permissions(struct pg_session *s, json_t *perms)
{
    char why[160];
    if (!perms)
        return 0;
    char *text = json_dumps(perms, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = text ? pg_rules_compile(text, strlen(text), &s->gw->limits, &ps(s)->user_perms, why, sizeof why) : PG_ENOMEM;
    free(text);
    if (rc == 0)
        return 0;
    char msg[200];
    snprintf(msg, sizeof msg, "signin user_data: %s", rc == PG_ENOMEM ? "out of memory" : why);
    pg_log(PG_LOG_INFO, "pusher", "signin refused app=%s socket_id=%s: %s", s->app->creds->id, s->socket_id, msg);
    pg_pusher_send_error(s, 4009, msg);
    return -1;
}

/* auth = key:hex(HMAC_SHA256(secret, socket_id + "::user::" + user_data)); then #server-to-user-{id} reaches us */
static void do_signin(struct pg_session *s, json_t *data)
{
    const char *auth = json_string_value(json_object_get(data, "auth"));
    const char *user_data = json_string_value(json_object_get(data, "user_data"));
    const char *key = s->app->creds->key ? s->app->creds->key : "", *secret = s->app->creds->secret;
    size_t klen = strlen(key);
    char hex[65], *msg = NULL, *channel = NULL;
    json_t *ud = user_data ? json_loads(user_data, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(ud, "id"));
    if (!auth || !id || !*id || strncmp(auth, key, klen) != 0 || auth[klen] != ':') {
        pg_pusher_send_error(s, 4009, "signin needs auth and user_data with an id");
        goto out;
    }
    if (strlen(id) > MAX_USER_ID || !pg_topic_level_valid(id, strlen(id))) { /* the id is a topic level */
        pg_pusher_send_error(s, 4009, "Invalid user id: 1-128 bytes, no / + #, control characters or Unicode noncharacters");
        goto out;
    }
    size_t n = strlen(s->socket_id) + strlen(user_data) + 9;
    if (!(msg = malloc(n)))
        goto out;
    snprintf(msg, n, "%s::user::%s", s->socket_id, user_data);
    if (pg_hmac_sha256_hex(secret, strlen(secret), msg, strlen(msg), hex) != 0 ||
        !pg_secret_equal(auth + klen + 1, strlen(auth + klen + 1), hex, 64)) {
        pg_log(PG_LOG_INFO, "pusher", "signin refused app=%s socket_id=%s: bad auth", s->app->creds->id, s->socket_id);
        pg_pusher_send_error(s, 4009, "Invalid signin signature");
        goto out;
    }
    if (ps(s)->user_id) {
        pg_pusher_send_error(s, 4009, "already signed in");
        goto out;
    }
    if (signin_permissions(s, json_object_get(ud, "permissions")) != 0)
        goto out;
    if (!(channel = pg_channel_of_user(id)) || !(ps(s)->user_id = strdup(id)))
        goto fail;
    struct signin_ack *a = pg_pending_new(s->gw, s->serial, sizeof *a, signin_acked, signin_ack_drop);
    if (!a || !(a->user_data = strdup(user_data))) {
        if (a)
            pg_pending_free(&a->p);
        goto fail;
    }
    int rc = pg_channel_join(s, channel, pg_pending_ack, a);
    if (rc == 1)
        goto out; /* answered when the broker granted the user topic */
    pg_pending_free(&a->p);
    if (rc == 0) {
        signin_done(s, user_data);
        goto out;
    }
    pg_pusher_send_error(s, 4201, "cannot sign in now");
fail: /* not signed in: a later attempt may succeed */
    free(ps(s)->user_id);
    ps(s)->user_id = NULL;
    pg_rules_free(ps(s)->user_perms);
    ps(s)->user_perms = NULL;
out:
    free(msg);
    free(channel);
    json_decref(ud);
}

/* ---- client events ---------------------------------------------------------------- */

static void client_event(struct pg_session *s, const struct pg_pusher_frame *f)
{
    const char *event = f->event, *channel = f->channel;
    struct pg_member *m = NULL;
    int64_t now = pg_mono_ms();
    if (now - ps(s)->rate_window_ms >= 1000) {
        ps(s)->rate_window_ms = now;
        ps(s)->rate_count = 0;
    }
    if (++ps(s)->rate_count > CLIENT_EVENTS_PER_S) {
        pg_pusher_send_error(s, 4301, "Client event rejected - rate limit exceeded");
        return;
    }
    if (channel)
        HASH_FIND_STR(s->subs, channel, m);
    if (!channel || !is_private(channel)) {
        pg_pusher_send_error(s, 4301, "Client event rejected - only supported on private and presence channels");
        return;
    }
    if (!pg_mqtt_utf8_valid(event, strlen(event))) { /* the name travels as an MQTT user property */
        pg_pusher_send_error(s, 4301, "Client event rejected - invalid event name");
        return;
    }
    if (!m || !m->live) {
        pg_pusher_send_error(s, 4301, "Client event rejected - not subscribed to the channel");
        return;
    }
    if (pg_devices_channel_reserved(s->gw, channel)) {
        pg_pusher_send_error(s, 4301, "Client event rejected - only the broker reports device presence on this channel");
        return;
    }
    char *payload = pg_pusher_client_data(f->data);
    if (!payload)
        return;
    const char *why = NULL;
    if (strlen(payload) > s->gw->cfg->max_message_bytes) {
        pg_pusher_send_error(s, 4301, "Client event rejected - data too large");
    } else if ((why = pg_publish_refusal(s->gw, s->app))) {
        pg_pusher_send_error(s, 4301, "Client event rejected - gateway overloaded, retry later");
    } else {
        const char *user_id = m->proto_data ? pg_presence_user(m->proto_data) : NULL;
        const char *props[] = {"event", event, "socket_id", s->socket_id, user_id ? "user_id" : NULL, user_id, NULL};
        if (pg_publish(s->gw, s->app->creds->id, channel, payload, strlen(payload), props, NULL, NULL) != 0) {
            pg_pusher_send_error(s, 4201, "broker unavailable");
        } else {
            /* only this node saw the client send it: it reports the event, once */
            json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", "client_event", "channel", channel, "event",
                                   event, "data", payload, "socket_id", s->socket_id);
            if (ev && user_id)
                json_object_set_new(ev, "user_id", json_string(user_id));
            pg_webhook_emit(s->gw, s->app, ev);
        }
    }
    free(payload);
}

static void pusher_receive(struct pg_session *s, const char *frame, size_t len)
{
    s->last_rx_ms = pg_mono_ms();
    if (pg_due_queued(&ps(s)->activity)) /* any frame answers our ping; not after a close took it off */
        pg_due_start(&s->gw->pusher_idle, &ps(s)->activity, s->last_rx_ms);
    struct pg_pusher_frame f;
    if (pg_pusher_frame_parse(frame, len, &f) != 0) {
        pg_pusher_send_error(s, 4200, "malformed event: expected {\"event\":..., \"data\":...}");
        return;
    }
    const char *event = f.event;
    json_t *data = f.fields;
    if (!strcmp(event, "pusher:ping")) {
        pg_pusher_send_event(s, "pusher:pong", NULL, json_object());
    } else if (!strcmp(event, "pusher:subscribe")) {
        do_subscribe(s, data);
    } else if (!strcmp(event, "pusher:signin")) {
        do_signin(s, data);
    } else if (!strcmp(event, "pusher:unsubscribe")) {
        const char *channel = json_string_value(json_object_get(data, "channel"));
        if (channel)
            pg_channel_leave(s, channel);
    } else if (!strcmp(event, "pusher:pong")) {
        /* answer to our ping: nothing to do */
    } else if (!strncmp(event, "client-", 7)) {
        client_event(s, &f);
    } else {
        pg_pusher_send_error(s, 4200, "unsupported event");
    }
    pg_pusher_frame_clear(&f);
}

/* pusher-js reconnects at once on a 4200-4299 close and resubscribes every channel. */
static void gap(struct pg_session *s, const char *sub, const char *channel)
{
    (void)sub, (void)channel;
    pg_pusher_send_error(s, 4200, "messages were missed: reconnecting");
    pg_session_close(s, 4200, "messages were missed: reconnect and resubscribe");
}

static int may_read_app(const struct pg_session *s)
{
    return !s->app->creds->require_auth || ps(s)->user_id != NULL;
}

static const char *user(const struct pg_session *s)
{
    return ps(s)->user_id;
}

static void refuse(struct pg_session *s, int code, uint16_t close_code, const char *why)
{
    (void)code; /* pusher-js reads the close code */
    pg_session_close(s, close_code, why);
}

static void terminate(struct pg_session *s)
{
    pg_pusher_send_error(s, 4009, "Connection terminated by the server");
    pg_session_close(s, 4009, "terminated");
}

const struct pg_proto pg_pusher_proto = {
    .name = "pusher",
    .confirm_upgrade = pg_http_upgrade_checks, /* an unknown or disabled app is told after the upgrade (4001, 4003) */
    .ws_open = pg_ws_open,
    .ws_receive = pg_ws_receive,
    .ws_writeable = pg_ws_writeable,
    .ws_closed = pg_ws_closed,
    .open = pusher_open,
    .receive = pusher_receive,
    .release = pusher_release,
    .wake = pg_ws_wake,
    .nslots = 1,
    .encode = pg_pusher_encode,
    .may_read_app = may_read_app,
    .gap = gap,
    .member_left = member_left,
    .user = user,
    .refuse = refuse,
    .terminate = terminate,
    .auth_required = auth_required,
};
