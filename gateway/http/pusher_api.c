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
#include <utlist.h>

#include "gateway.h"

#define MAX_ARGS 32
#define TIMESTAMP_WINDOW_S 600
#define MAX_CHANNELS 100
#define MAX_BATCH 10
#define MAX_EVENT_NAME 200

enum route { R_NONE, R_EVENTS, R_BATCH, R_CHANNELS, R_CHANNEL, R_USERS, R_TERMINATE, R_DEVICES };

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

/* 0 when the request carries a valid signature of h->app; otherwise answers 401 and returns -1. */
static int verify_signature(struct pg_gw *gw, struct pg_http *h, const char *method)
{
    struct arg args[MAX_ARGS];
    char frag[PG_QUERY_ARG_MAX + 1], hex[65]; /* every parameter is within max_query_bytes */
    int n = 0, rc = -1;
    const char *why = "invalid signature";
    char *query = NULL;
    size_t qlen = 0;
    for (int i = 0; n < MAX_ARGS && lws_hdr_copy_fragment(h->wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
         i++) {
        size_t kl = strcspn(frag, "=");
        for (size_t k = 0; k < kl; k++)
            frag[k] = (char)tolower((unsigned char)frag[k]);
        if (!(args[n].kv = strdup(frag)))
            goto out;
        n++;
    }
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
    (void)gw;
    return rc;
}

static enum route parse_route(struct pg_gw *gw, struct pg_http *h, char **arg)
{
    const char *p = h->path + 6; /* after "/apps/" */
    size_t n = strcspn(p, "/");
    *arg = NULL;
    h->app = pg_app_lookup(gw, p, n);
    p += n;
    if (!strcmp(p, "/events"))
        return R_EVENTS;
    if (!strcmp(p, "/batch_events"))
        return R_BATCH;
    if (!strcmp(p, "/channels"))
        return R_CHANNELS;
    if (!strcmp(p, "/devices")) /* pushgate's own: MQTT devices online (devices.c) */
        return R_DEVICES;
    if (!strncmp(p, "/users/", 7)) {
        const char *u = p + 7;
        size_t ul = strcspn(u, "/");
        if (ul && !strcmp(u + ul, "/terminate_connections")) {
            *arg = strndup(u, ul);
            return R_TERMINATE;
        }
        return R_NONE;
    }
    if (!strncmp(p, "/channels/", 10)) {
        const char *ch = p + 10;
        size_t cl = strcspn(ch, "/");
        *arg = strndup(ch, cl);
        if (!strcmp(ch + cl, "/users"))
            return R_USERS;
        return ch[cl] ? R_NONE : R_CHANNEL;
    }
    return R_NONE;
}

int pg_pusher_api_route(struct pg_gw *gw, struct pg_http *h)
{
    char *arg;
    if (strncmp(h->path, "/apps/", 6) != 0)
        return 0;
    enum route r = parse_route(gw, h, &arg);
    free(arg);
    h->pusher_api = 1;
    if (r == R_NONE)
        pg_http_respond_error(h, 404, "unknown Pusher API route");
    else if (!h->app)
        pg_http_respond_error(h, 404, "unknown app");
    else if ((r == R_EVENTS || r == R_BATCH || r == R_TERMINATE) != (h->method_post != 0))
        pg_http_respond_error(h, 405, "method not allowed");
    return 1;
}

/* ---- triggering --------------------------------------------------------------------- */

struct trigger {
    struct pg_gw *gw;
    uint64_t serial;
    int remaining;
    int result;     /* worst so far */
    json_t *answer; /* 200 body; {} unless `info` asked for channel attributes */
};

static void channel_info(struct pg_gw *gw, struct pg_app *app, const char *name, json_int_t subs, const char *info,
                         json_t *out);

static void trigger_answer(struct pg_gw *gw, struct trigger *t)
{
    struct pg_http *h = pg_http_find(gw, t->serial);
    if (h) {
        pg_http_unregister(gw, h);
        h->waiting_ack = 0;
        if (t->result == 0)
            pg_http_respond_json(h, 200, t->answer ? json_incref(t->answer) : json_object());
        else if (t->result == PG_ETIMEDOUT)
            pg_http_respond_error(h, 504, "the broker did not acknowledge in time");
        else if (t->result == PG_EDENIED)
            pg_http_respond_error(h, 403, "the broker refused the event");
        else
            pg_http_respond_error(h, 503, "broker unavailable, event not published");
    }
    json_decref(t->answer);
    free(t);
}

static void trigger_acked(void *ud, int result)
{
    struct trigger *t = ud;
    if (result != 0 && t->result == 0)
        t->result = result;
    if (--t->remaining == 0)
        trigger_answer(t->gw, t);
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
    struct trigger *t = calloc(1, sizeof *t);
    if (!t) {
        pg_http_respond_error(h, 500, "out of memory");
        return;
    }
    t->gw = gw;
    pg_http_wait(gw, h);
    t->serial = h->serial;
    t->remaining = 1; /* held until every publish is issued */
    const char *info = nev == 1 ? json_string_value(json_object_get(evs[0], "info")) : NULL;
    if (info) { /* attributes as they are when the event is accepted */
        json_t *all = pg_cluster_channels(gw, h->app->creds->id), *chans = json_object();
        json_t *list = json_object_get(evs[0], "channels"), *one = json_object_get(evs[0], "channel");
        size_t n = one ? 1 : json_array_size(list);
        for (size_t i = 0; i < n; i++) {
            const char *c = one ? json_string_value(one) : json_string_value(json_array_get(list, i));
            json_t *o = json_object();
            channel_info(gw, h->app, c, json_integer_value(json_object_get(all, c)), info, o);
            json_object_set_new(chans, c, o);
        }
        json_decref(all);
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
        for (size_t i = 0; i < n && t->result == 0; i++) {
            const char *c = channel ? channel : json_string_value(json_array_get(channels, i));
            t->remaining++;
            int rc = pg_publish(gw, h->app->creds->id, c, data, json_string_length(json_object_get(ev, "data")), props,
                                trigger_acked, t);
            if (rc != 0) {
                t->remaining--;
                t->result = rc;
            }
        }
    }
    trigger_acked(t, t->result);
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

static const char *query_arg(struct pg_http *h, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    for (int i = 0; lws_hdr_copy_fragment(h->wsi, buf, (int)len, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++)
        if (!strncmp(buf, name, nl) && buf[nl] == '=')
            return buf + nl + 1;
    return NULL;
}

void pg_pusher_api_body_done(struct pg_gw *gw, struct pg_http *h)
{
    char *arg = NULL, ibuf[PG_QUERY_ARG_MAX + 1], pbuf[PG_QUERY_ARG_MAX + 1]; /* whole parameters, never cut */
    json_t *body = NULL;
    enum route r = parse_route(gw, h, &arg);
    if (h->body_too_big) {
        pg_http_respond_error(h, 413, "body larger than max_body_bytes");
        goto out;
    }
    if (verify_signature(gw, h, h->method_post ? "POST" : "GET") != 0)
        goto out;
    if (!h->app->creds->active) {
        pg_http_respond_error(h, 403, "app disabled");
        goto out;
    }
    const char *info = query_arg(h, "info", ibuf, sizeof ibuf);
    if (r == R_EVENTS || r == R_BATCH) {
        body = json_loadb(h->body ? h->body : "", h->body_len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(body)) {
            pg_http_respond_error(h, 400, "body must be a JSON object");
            goto out;
        }
        if (r == R_EVENTS) {
            if (check_event(gw, h, body, 0) == 0)
                trigger(gw, h, &body, 1);
            goto out;
        }
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
        goto out;
    }
    if (r == R_TERMINATE) {
        /* every node closes its sessions of that user: a control message through the broker */
        char kind[300];
        snprintf(kind, sizeof kind, "terminate/%s", arg);
        char *topic = pg_topic(gw, "_ctl", h->app->creds->id, kind);
        struct trigger *t = topic ? calloc(1, sizeof *t) : NULL;
        if (!t || strpbrk(arg, "+#")) {
            free(topic);
            free(t);
            pg_http_respond_error(h, t ? 400 : 500, t ? "invalid user id" : "out of memory");
            goto out;
        }
        t->gw = gw;
        pg_http_wait(gw, h);
        t->serial = h->serial;
        t->remaining = 1;
        int rc = pg_bridge_publish(gw->bridge, topic, "", 0, NULL, 0, trigger_acked, t);
        free(topic);
        if (rc != 0) {
            t->result = rc;
            trigger_acked(t, rc);
        }
        goto out;
    }
    if (r == R_DEVICES) {
        json_t *devices = pg_devices_list(gw, h->app->creds->id);
        if (devices)
            pg_http_respond_json(h, 200, json_pack("{s:o}", "devices", devices));
        else
            pg_http_respond_error(h, 500, "out of memory");
        goto out;
    }
    /* GET: the cluster's view (every node's snapshot, presence union) */
    json_t *all = pg_cluster_channels(gw, h->app->creds->id);
    if (r == R_CHANNELS) {
        const char *prefix = query_arg(h, "filter_by_prefix", pbuf, sizeof pbuf);
        json_t *chans = json_object(), *v;
        const char *name;
        if (info && strstr(info, "user_count") && (!prefix || strncmp(prefix, "presence-", 9) != 0)) {
            json_decref(all);
            json_decref(chans);
            pg_http_respond_error(h, 400, "info=user_count needs filter_by_prefix=presence-");
            goto out;
        }
        json_object_foreach(all, name, v) {
            if (prefix && strncmp(name, prefix, strlen(prefix)) != 0)
                continue;
            json_t *o = json_object();
            channel_info(gw, h->app, name, json_integer_value(v), info, o);
            json_object_set_new(chans, name, o);
        }
        pg_http_respond_json(h, 200, json_pack("{s:o}", "channels", chans));
    } else if (r == R_USERS) {
        if (strncmp(arg, "presence-", 9) != 0) {
            pg_http_respond_error(h, 400, "users are listed for presence channels only");
        } else {
            json_t *members = pg_presence_members(gw, h->app, arg), *users = json_array(), *v;
            const char *uid;
            json_object_foreach(members, uid, v) json_array_append_new(users, json_pack("{s:s}", "id", uid));
            json_decref(members);
            pg_http_respond_json(h, 200, json_pack("{s:o}", "users", users));
        }
    } else if (r == R_CHANNEL) {
        json_t *subs = json_object_get(all, arg);
        json_t *o = json_pack("{s:b}", "occupied", subs != NULL);
        channel_info(gw, h->app, arg, json_integer_value(subs), info, o);
        pg_http_respond_json(h, 200, o);
    }
    json_decref(all);
out:
    json_decref(body);
    free(arg);
}
