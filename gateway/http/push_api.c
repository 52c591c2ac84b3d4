/*
 * notification-socket.io compatibility, REST side: the per-user push API a
 * backend calls with header X-AUTH-TOKEN = an app's push_token.
 *
 *   PUT  /api/{userId}/register?connectionId={id}  -> {"userId","connectionId"}
 *   POST /api/{userId}/push  {"message": <JSON>}   -> {"recipients": N}
 *   GET  /api/status/ping (text "pong"), GET /api/status/info: no token, as in
 *   notification-socket.io (the info page is meant to be opened in a browser)
 *
 * A registration must be known to every gateway node, since the browser may
 * reach any of them: it is published retained on
 * {root}/_ctl/{app}/reg/{connectionId} as {"user":…,"exp":<ms>} with an MQTT
 * message expiry of push_registration_ttl_s, so the broker forgets it by
 * itself. Every node keeps what the broker holds (cluster/push_regs.c).
 *
 * A push is published on {root}/{app}/u/{userId}, the per-user topic that
 * socket.io sessions (and Pusher sessions signed in as that user) listen to
 * as the channel "#server-to-user-{userId}". "recipients" counts those live
 * sessions in the whole cluster: this node's own, plus what the other nodes
 * reported in their retained _node snapshots ("users"), which follow a change
 * within about SNAPSHOT_MIN_INTERVAL_MS plus broker latency.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cluster/push_regs.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/pending.h"
#include "http/http.h"
#include "http/push_api.h"
#include "log.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

#define TOKEN_MAX 512

/* ---- routes -------------------------------------------------------------------------- */

/* The app whose push_token the request carries, or NULL. */
static struct pg_app *token_app(struct pg_gw *gw, struct lws *wsi)
{
    char tok[TOKEN_MAX];
    struct pg_app *a, *tmp, *found = NULL;
    /* lws knows this header (WSI_TOKEN_X_AUTH_TOKEN), so it never reaches lws_hdr_custom_copy() */
    if (pg_http_header(wsi, WSI_TOKEN_X_AUTH_TOKEN, tok, sizeof tok) <= 0)
        return NULL;
    size_t tl = strlen(tok);
    HASH_ITER(hh, gw->apps, a, tmp) {
        const char *pt = a->conf->push_token;
        /* compare with every app: how long this takes does not depend on which one matched */
        if (pt && pg_secret_equal(tok, tl, pt, strlen(pt)) && !found && !pg_app_deleted(a))
            found = a;
    }
    OPENSSL_cleanse(tok, sizeof tok);
    return found;
}

struct pg_app *pg_push_token_app(struct pg_gw *gw, struct pg_http *h)
{
    struct pg_app *app = token_app(gw, h->wsi);
    if (!app) {
        pg_http_respond_error(h, 401, "X-AUTH-TOKEN missing or not a push token of any app");
        return NULL;
    }
    if (!app->creds->active) {
        pg_http_respond_error(h, 403, "app disabled");
        return NULL;
    }
    return app;
}

/* The path's user id (after the token's check, which the router made); NULL with h answered (400). */
static const char *path_user(struct pg_http *h)
{
    const char *user = pg_http_arg(h, "user");
    if (!pg_push_regs_id_valid(user)) {
        pg_http_respond_error(h, 400, "invalid userId (1-128 bytes of UTF-8 without / + #)");
        return NULL;
    }
    return user;
}

static const struct pg_broker_words register_words = {
    .refused = "the broker refused the registration",
    .late = "the broker did not acknowledge the registration in time",
    .unavailable = "broker unavailable, connection not registered",
    .failed = "cannot register",
};

struct reg_ack {
    struct pg_pending p; /* p.serial: the parked request */
    int64_t exp_ms;
    char *app, *user, *conn;
};

static void reg_acked(struct pg_pending *p, int result)
{
    struct reg_ack *a = (struct reg_ack *)p;
    struct pg_http *h = pg_http_resume(p->gw, p->serial);
    const char *message;
    int status = pg_broker_status(result, &register_words, &message);
    if (result == 0) /* our own retained copy may arrive later than the backend's next request */
        pg_push_regs_set(p->gw, a->app, a->conn, a->user, a->exp_ms);
    if (!h)
        return;
    if (status == 200)
        pg_http_respond_json(h, 200, json_pack("{s:s, s:s}", "userId", a->user, "connectionId", a->conn));
    else
        pg_http_respond_error(h, status, message);
}

static void reg_ack_drop(struct pg_pending *p)
{
    struct reg_ack *a = (struct reg_ack *)p;
    free(a->app);
    free(a->user);
    free(a->conn);
}

void pg_push_register(struct pg_gw *gw, struct pg_http *h)
{
    char conn[PG_PUSH_ID_MAX + 1];
    char *topic = NULL, *body = NULL;
    struct reg_ack *a = NULL;
    struct pg_app *app = h->app;
    const char *user = path_user(h);
    if (!user)
        return;
    if (pg_http_query_arg(h->wsi, "connectionId", conn, sizeof conn) < 0 || !pg_push_regs_id_valid(conn)) {
        pg_http_respond_error(h, 400, "connectionId query argument missing or invalid (1-128 bytes, no / + #)");
        return;
    }
    int64_t ttl_s = gw->cfg->push_registration_ttl_s;
    int64_t exp_ms = pg_now_ms() + ttl_s * 1000;
    json_t *o = json_pack("{s:s, s:I}", "user", user, "exp", (json_int_t)exp_ms);
    body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    a = pg_pending_new(gw, 0, sizeof *a, reg_acked, reg_ack_drop);
    topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_REG, app->id, conn, NULL); /* conn is a level: checked above */
    if (!body || !a || !topic || !(a->app = strdup(app->id)) || !(a->user = strdup(user)) ||
        !(a->conn = strdup(conn))) {
        if (a)
            pg_pending_free(&a->p);
        pg_http_respond_error(h, 500, "out of memory");
        goto out;
    }
    a->exp_ms = exp_ms;
    pg_http_wait(gw, h);
    a->p.serial = h->serial;
    int rc = pg_bridge_publish_expiring(gw->bridge, topic, body, strlen(body), NULL, 1, (uint32_t)ttl_s,
                                        pg_pending_ack, a);
    if (rc != 0) {
        pg_pending_ack(a, rc); /* answers at once: 503 (broker unavailable) or 500 */
        goto out;
    }
    pg_log(PG_LOG_DEBUG, "push", "register app=%s user=%s connection=%.4s***", app->id, user, conn);
out:
    free(topic);
    free(body);
}

void pg_push_push(struct pg_gw *gw, struct pg_http *h)
{
    struct pg_app *app = h->app;
    const char *user = path_user(h);
    if (!user)
        return;
    if (h->body_too_big) {
        pg_http_respond_error(h, 413, "body larger than max_body_bytes");
        return;
    }
    json_t *o = h->body_len ? json_loadb(h->body, h->body_len, 0, NULL) : NULL;
    json_t *message = json_object_get(o, "message");
    if (!message || json_is_null(message)) {
        json_decref(o);
        pg_http_respond_error(h, 400, "body must be a JSON object {\"message\": …}");
        return;
    }
    char *payload = json_dumps(message, JSON_COMPACT | JSON_ENCODE_ANY);
    char *topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_USER, app->id, user, NULL); /* user: path_user */
    json_decref(o);
    if (!payload || !topic) {
        pg_http_respond_error(h, 500, "out of memory");
    } else if (strlen(payload) > gw->cfg->max_message_bytes) {
        pg_http_respond_error(h, 413, "message larger than max_message_bytes");
    } else {
        /* counted before the publish: the sessions this message is addressed to, as this node knows them */
        uint64_t n = pg_push_regs_recipients(gw, app, user);
        const char *props[] = {"event", "message", NULL};
        pg_http_publish(gw, h, app->id, topic, payload, strlen(payload), props,
                        json_pack("{s:I}", "recipients", (json_int_t)n));
    }
    free(payload);
    free(topic);
}

void pg_push_status_ping(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    pg_http_respond(h, 200, "text/plain; charset=utf-8", "pong", 4); /* notification-socket.io's answer */
}

void pg_push_status_info(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    pg_http_respond_json(h, 200, json_pack("{s:s, s:s}", "name", "pushgate", "version", PUSHGATE_VERSION));
}
