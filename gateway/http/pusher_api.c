/*
 * The Pusher HTTP API (/apps/{app_id}/...), signed as Pusher's server SDKs
 * sign: auth_signature = hex(HMAC_SHA256(secret, METHOD\npath\nquery)) with
 * the query's other parameters sorted, keys lowercased; body_md5 for bodies;
 * auth_timestamp within 600 s. Triggers answer only after the broker
 * acknowledged every channel's publish.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "cluster/cluster.h"
#include "cluster/devices.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "core/pending.h"
#include "core/publish.h"
#include "http/http.h"
#include "http/pusher_api.h"
#include "log.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "proto/presence.h"
#include "proto/pusher_wire.h"
#include "pushgate_auth.h"
#include "pushgate_bridge.h"

#define MAX_ARGS 32
#define TIMESTAMP_WINDOW_S 600
#define MAX_CHANNELS 100
#define MAX_BATCH 10
#define MAX_EVENT_NAME 200

struct arg {
    char *kv; /* "key=value" as decoded by lws; key lowercased */
};

static int arg_cmp(const void *a, const void *b)
{
    const char *x = ((const struct arg *)a)->kv, *y = ((const struct arg *)b)->kv;
    size_t xl = strcspn(x, "="), yl = strcspn(y, "=");
    int c = strncmp(x, y, xl < yl ? xl : yl);
    return c ? c : (int)xl - (int)yl;
}

static const char *arg_get(struct arg *args, int n, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++)
        if (!strncmp(args[i].kv, key, kl) && args[i].kv[kl] == '=')
            return args[i].kv + kl + 1;
    return NULL;
}

struct args {
    struct arg a[MAX_ARGS];
    int n;
};

/* Keeps a query parameter, its key lowercased; stops after MAX_ARGS. */
static int keep_arg(void *ud, char *param)
{
    struct args *args = ud;
    size_t kl = strcspn(param, "=");
    for (size_t k = 0; k < kl; k++)
        param[k] = (char)tolower((unsigned char)param[k]);
    if (!(args->a[args->n].kv = strdup(param)))
        return -1;
    return ++args->n == MAX_ARGS;
}

/* 0 when the request carries a valid signature of h->app; otherwise answers 401 and returns -1. */
static int verify_signature(struct pg_http *h, const char *method)
{
    struct args all = {.n = 0};
    struct arg *args = all.a;
    char hex[65];
    int n = 0, rc = -1;
    const char *why = "invalid signature";
    char *query = NULL;
    size_t qlen = 0;
    int read = pg_http_query_each(h->wsi, keep_arg, &all);
    n = all.n;
    if (read < 0)
        goto out;
    const char *key = arg_get(args, n, "auth_key"), *ts = arg_get(args, n, "auth_timestamp");
    const char *version = arg_get(args, n, "auth_version"), *sig = arg_get(args, n, "auth_signature");
    const char *md5 = arg_get(args, n, "body_md5");
    if (!key || !ts || !sig || !version) {
        why = "missing auth_key, auth_timestamp, auth_version or auth_signature";
        goto out;
    }
    if (!h->app->creds->key || !pg_secret_equal(key, strlen(key), h->app->creds->key, strlen(h->app->creds->key))) {
        why = "unknown auth_key";
        goto out;
    }
    long long t = strtoll(ts, NULL, 10), now = pg_now_ms() / 1000;
    if (t <= 0 || llabs(now - t) > TIMESTAMP_WINDOW_S) {
        why = "auth_timestamp too far from the server's time (600 s)";
        goto out;
    }
    if (h->body_len || md5) {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int dlen = 0;
        char dhex[2 * EVP_MAX_MD_SIZE + 1];
        if (!md5 || !EVP_Digest(h->body ? h->body : "", h->body_len, digest, &dlen, EVP_md5(), NULL)) {
            why = "body_md5 required with a body";
            goto out;
        }
        for (unsigned i = 0; i < dlen; i++)
            snprintf(dhex + 2 * i, 3, "%02x", digest[i]);
        if (strcasecmp(md5, dhex) != 0) {
            why = "body_md5 does not match the body";
            goto out;
        }
    }
    /* METHOD \n path \n sorted query without auth_signature */
    qsort(args, (size_t)n, sizeof args[0], arg_cmp);
    size_t cap = strlen(method) + strlen(h->path) + 4;
    for (int i = 0; i < n; i++)
        cap += strlen(args[i].kv) + 1;
    if (!(query = malloc(cap)))
        goto out;
    qlen = (size_t)snprintf(query, cap, "%s\n%s\n", method, h->path);
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (!strncmp(args[i].kv, "auth_signature=", 15))
            continue;
        qlen += (size_t)snprintf(query + qlen, cap - qlen, "%s%s", first ? "" : "&", args[i].kv);
        first = 0;
    }
    if (pg_hmac_sha256_hex(h->app->creds->secret, strlen(h->app->creds->secret), query, qlen, hex) != 0)
        goto out;
    if (pg_secret_equal(sig, strlen(sig), hex, 64))
        rc = 0;
out:
    for (int i = 0; i < n; i++)
        free(args[i].kv);
    free(query);
    if (rc != 0) {
        pg_log(PG_LOG_INFO, "pusher-api", "refused %s %s: %s", method, h->path, why);
        pg_http_respond_error(h, 401, why);
    }
    return rc;
}

/* ---- triggering --------------------------------------------------------------------- */

static const struct pg_broker_words trigger_words = {
    .refused = "the broker refused the event",
    .late = "the broker did not acknowledge in time",
    .unavailable = "broker unavailable, event not published",
    .failed = NULL, /* a publish that could not be issued counts as the broker being unavailable */
};

struct trigger {
    struct pg_pending p; /* p.serial: the parked request; one acknowledgement per channel */
    json_t *answer;      /* 200 body; {} unless `info` asked for channel attributes */
};

static void channel_info(struct pg_gw *gw, struct pg_app *app, const char *name, json_int_t subs, const char *info,
                         json_t *out);

static void trigger_answer(struct pg_pending *p, int result)
{
    struct trigger *t = (struct trigger *)p;
    struct pg_http *h = pg_http_resume(p->gw, p->serial);
    const char *message;
    int status = pg_broker_status(result, &trigger_words, &message);
    if (!h)
        return;
    if (status == 200)
        pg_http_respond_json(h, 200, t->answer ? json_incref(t->answer) : json_object());
    else
        pg_http_respond_error(h, status, message);
}

static void trigger_drop(struct pg_pending *p)
{
    json_decref(((struct trigger *)p)->answer);
}

/* A trigger waiting for h's publishes; the issuer holds its one acknowledgement until every publish is issued. */
static struct trigger *trigger_new(struct pg_gw *gw, struct pg_http *h)
{
    struct trigger *t = pg_pending_new(gw, 0, sizeof *t, trigger_answer, trigger_drop);
    if (!t)
        return NULL;
    pg_http_wait(gw, h);
    t->p.serial = h->serial;
    return t;
}

/* "#server-to-user-{id}": a user id is one MQTT topic level */
static int user_channel_valid(const char *c)
{
    size_t pl = strlen(PG_USER_CHANNEL_PREFIX);
    return !strncmp(c, PG_USER_CHANNEL_PREFIX, pl) && strlen(c) <= 200 && pg_topic_level_valid(c + pl, strlen(c + pl));
}

/* Validates one event object; on error answers and returns -1. */
static int check_event(struct pg_gw *gw, struct pg_http *h, json_t *ev, int batch)
{
    const char *name = json_string_value(json_object_get(ev, "name"));
    json_t *data = json_object_get(ev, "data"), *channels = json_object_get(ev, "channels");
    const char *channel = json_string_value(json_object_get(ev, "channel"));
    size_t n = channel ? 1 : json_array_size(channels);
    const char *socket_id = json_string_value(json_object_get(ev, "socket_id"));
    if (!json_is_object(ev) || !name || !*name || strlen(name) > MAX_EVENT_NAME) {
        pg_http_respond_error(h, 400, "event name missing or longer than 200 characters");
        return -1;
    }
    /* both travel as MQTT user properties: what the broker would refuse is refused here */
    if (!pg_mqtt_utf8_valid(name, strlen(name))) {
        pg_http_respond_error(h, 400, "event name: control characters and Unicode noncharacters are not allowed");
        return -1;
    }
    if (socket_id && (strlen(socket_id) > MAX_EVENT_NAME || !pg_mqtt_utf8_valid(socket_id, strlen(socket_id)))) {
        pg_http_respond_error(h, 400, "invalid socket_id");
        return -1;
    }
    if (!json_is_string(data)) {
        pg_http_respond_error(h, 400, "data must be a string");
        return -1;
    }
    if (json_string_length(data) > gw->cfg->max_event_data_bytes) {
        pg_http_respond_error(h, 413, "data larger than max_event_data_bytes");
        return -1;
    }
    if (n == 0 || (!channel && !json_is_array(channels)) || n > (batch ? 1 : MAX_CHANNELS)) {
        pg_http_respond_error(h, 400, batch ? "each batch event needs one channel"
                                            : "channel or channels (at most 100) required");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *c = channel ? channel : json_string_value(json_array_get(channels, i));
        if (!c || !(pg_pusher_channel_valid(c) || user_channel_valid(c))) {
            pg_http_respond_error(h, 400, "invalid channel name");
            return -1;
        }
        if (pg_devices_channel_reserved(gw, c)) {
            pg_http_respond_error(h, 403, "only the broker reports device presence on this channel");
            return -1;
        }
    }
    return 0;
}

static void trigger(struct pg_gw *gw, struct pg_http *h, json_t **evs, size_t nev)
{
    const char *why = pg_publish_refusal(gw, h->app);
    if (why) {
        pg_http_respond_overloaded(h, why);
        return;
    }
    struct trigger *t = trigger_new(gw, h);
    if (!t) {
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    const char *info = nev == 1 ? json_string_value(json_object_get(evs[0], "info")) : NULL;
    if (info) { /* attributes as they are when the event is accepted */
        json_t *chans = json_object();
        json_t *list = json_object_get(evs[0], "channels"), *one = json_object_get(evs[0], "channel");
        size_t n = one ? 1 : json_array_size(list);
        for (size_t i = 0; i < n; i++) {
            const char *c = one ? json_string_value(one) : json_string_value(json_array_get(list, i));
            json_t *o = json_object();
            channel_info(gw, h->app, c, (json_int_t)pg_cluster_channel_count(gw, h->app->creds->id, c), info, o);
            json_object_set_new(chans, c, o);
        }
        t->answer = json_pack("{s:o}", "channels", chans);
    }
    for (size_t e = 0; e < nev; e++) {
        json_t *ev = evs[e], *channels = json_object_get(ev, "channels");
        const char *channel = json_string_value(json_object_get(ev, "channel"));
        const char *data = json_string_value(json_object_get(ev, "data"));
        const char *socket_id = json_string_value(json_object_get(ev, "socket_id"));
        const char *props[] = {"event", json_string_value(json_object_get(ev, "name")),
                               socket_id ? "socket_id" : NULL, socket_id, NULL};
        size_t n = channel ? 1 : json_array_size(channels);
        for (size_t i = 0; i < n && t->p.result == 0; i++) {
            const char *c = channel ? channel : json_string_value(json_array_get(channels, i));
            pg_pending_expect(&t->p);
            int rc = pg_publish(gw, h->app->creds->id, c, data, json_string_length(json_object_get(ev, "data")), props,
                                pg_pending_ack, t);
            if (rc != 0)
                pg_pending_ack(t, rc); /* not issued: its acknowledgement is this failure */
        }
    }
    pg_pending_ack(t, 0); /* the issuer's hold */
}

/* Cluster-wide info of one channel: subscriptions from node snapshots, users from presence. */
static void channel_info(struct pg_gw *gw, struct pg_app *app, const char *name, json_int_t subs, const char *info,
                         json_t *out)
{
    if (info && strstr(info, "user_count") && !strncmp(name, "presence-", 9)) {
        json_t *members = pg_presence_members(gw, app, name);
        json_object_set_new(out, "user_count", json_integer((json_int_t)json_object_size(members)));
        json_decref(members);
    }
    if (info && strstr(info, "subscription_count"))
        json_object_set_new(out, "subscription_count", json_integer(subs));
}

/*
 * What every route of the API checks once the body is in: size, signature,
 * app state. 1 when the handler may go on; 0 with h answered. info (buffer of
 * PG_QUERY_ARG_MAX + 1: a whole parameter, never cut): the `info` query
 * parameter, or NULL.
 */
static int prelude(struct pg_http *h, char *info_buf, const char **info)
{
    if (h->body_too_big) {
        pg_http_respond_error(h, 413, "body larger than max_body_bytes");
        return 0;
    }
    if (verify_signature(h, h->method == PG_POST ? "POST" : "GET") != 0)
        return 0;
    if (!h->app->creds->active) {
        pg_http_respond_error(h, 403, "app disabled");
        return 0;
    }
    *info = pg_http_query_arg(h->wsi, "info", info_buf, PG_QUERY_ARG_MAX + 1) >= 0 ? info_buf : NULL;
    return 1;
}

/* The body as a JSON object; NULL with h answered (400). */
static json_t *body_object(struct pg_http *h)
{
    json_t *body = json_loadb(h->body ? h->body : "", h->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        pg_http_respond_error(h, 400, "body must be a JSON object");
        json_decref(body);
        return NULL;
    }
    return body;
}

void pg_pusher_api_events(struct pg_gw *gw, struct pg_http *h)
{
    char ibuf[PG_QUERY_ARG_MAX + 1];
    const char *info;
    json_t *body;
    if (!prelude(h, ibuf, &info) || !(body = body_object(h)))
        return;
    if (check_event(gw, h, body, 0) == 0)
        trigger(gw, h, &body, 1);
    json_decref(body);
}

void pg_pusher_api_batch_events(struct pg_gw *gw, struct pg_http *h)
{
    char ibuf[PG_QUERY_ARG_MAX + 1];
    const char *info;
    json_t *body;
    if (!prelude(h, ibuf, &info) || !(body = body_object(h)))
        return;
    json_t *batch = json_object_get(body, "batch");
    size_t n = json_array_size(batch);
    json_t *evs[MAX_BATCH];
    if (!json_is_array(batch) || n == 0 || n > MAX_BATCH) {
        pg_http_respond_error(h, 400, "batch must be an array of 1 to 10 events");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        evs[i] = json_array_get(batch, i);
        if (check_event(gw, h, evs[i], 1) != 0)
            goto out;
    }
    trigger(gw, h, evs, n);
out:
    json_decref(body);
}

void pg_pusher_api_terminate(struct pg_gw *gw, struct pg_http *h)
{
    char ibuf[PG_QUERY_ARG_MAX + 1];
    const char *info, *user = pg_http_arg(h, "user");
    if (!prelude(h, ibuf, &info))
        return;
    /* every node closes its sessions of that user: a control message through the broker (the route's {user} is
       never empty nor holds a '/', so only memory can fail the topic) */
    char *topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_TERMINATE, h->app->creds->id, user, NULL);
    if (!topic || strpbrk(user, "+#")) {
        free(topic);
        pg_http_respond_error(h, topic ? 400 : 500, topic ? "invalid user id" : "out of memory");
        return;
    }
    struct trigger *t = trigger_new(gw, h);
    if (!t) {
        free(topic);
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    int rc = pg_bridge_publish(gw->bridge, topic, "", 0, NULL, 0, pg_pending_ack, t);
    free(topic);
    if (rc != 0)
        pg_pending_ack(t, rc);
}

void pg_pusher_api_devices(struct pg_gw *gw, struct pg_http *h)
{
    char ibuf[PG_QUERY_ARG_MAX + 1];
    const char *info;
    if (!prelude(h, ibuf, &info))
        return;
    json_t *devices = pg_devices_list(gw, h->app->creds->id);
    if (devices)
        pg_http_respond_json(h, 200, json_pack("{s:o}", "devices", devices));
    else
        pg_http_respond_error(h, 500, "out of memory");
}

/* GET: the cluster's view (every node's snapshot, presence union) */

void pg_pusher_api_channels(struct pg_gw *gw, struct pg_http *h)
{
    char ibuf[PG_QUERY_ARG_MAX + 1], pbuf[PG_QUERY_ARG_MAX + 1];
    const char *info;
    if (!prelude(h, ibuf, &info))
        return;
    json_t *all = pg_cluster_channels(gw, h->app->creds->id);
    const char *prefix = pg_http_query_arg(h->wsi, "filter_by_prefix", pbuf, sizeof pbuf) >= 0 ? pbuf : NULL;
    json_t *chans = json_object(), *v;
    const char *name;
    if (info && strstr(info, "user_count") && (!prefix || strncmp(prefix, "presence-", 9) != 0)) {
        json_decref(all);
        json_decref(chans);
        pg_http_respond_error(h, 400, "info=user_count needs filter_by_prefix=presence-");
        return;
    }
    json_object_foreach(all, name, v) {
        if (prefix && strncmp(name, prefix, strlen(prefix)) != 0)
            continue;
        json_t *o = json_object();
        channel_info(gw, h->app, name, json_integer_value(v), info, o);
        json_object_set_new(chans, name, o);
    }
    pg_http_respond_json(h, 200, json_pack("{s:o}", "channels", chans));
    json_decref(all);
}

void pg_pusher_api_users(struct pg_gw *gw, struct pg_http *h)
{
    char ibuf[PG_QUERY_ARG_MAX + 1];
    const char *info, *channel = pg_http_arg(h, "channel");
    if (!prelude(h, ibuf, &info))
        return;
    if (strncmp(channel, "presence-", 9) != 0) {
        pg_http_respond_error(h, 400, "users are listed for presence channels only");
        return;
    }
    json_t *members = pg_presence_members(gw, h->app, channel), *users = json_array(), *v;
    const char *uid;
    json_object_foreach(members, uid, v) json_array_append_new(users, json_pack("{s:s}", "id", uid));
    json_decref(members);
    pg_http_respond_json(h, 200, json_pack("{s:o}", "users", users));
}

void pg_pusher_api_channel(struct pg_gw *gw, struct pg_http *h)
{
    char ibuf[PG_QUERY_ARG_MAX + 1];
    const char *info, *channel = pg_http_arg(h, "channel");
    if (!prelude(h, ibuf, &info))
        return;
    uint64_t subs = pg_cluster_channel_count(gw, h->app->creds->id, channel);
    json_t *o = json_pack("{s:b}", "occupied", subs > 0);
    channel_info(gw, h->app, channel, (json_int_t)subs, info, o);
    pg_http_respond_json(h, 200, o);
}
