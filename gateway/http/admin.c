/*
 * The apps admin API and the per-app events API (ExPusherLite, seed 003):
 *
 *   GET    /api/admin/apps                      list            (admin Basic auth)
 *   POST   /api/admin/apps                      create          JSON {"app":{"name":…}} or form app[name]=…
 *   GET    /api/admin/apps/{slug}               show
 *   PATCH  /api/admin/apps/{slug}  (or PUT)     update          {"app":{"active":false, …}} or form app[active]=false
 *   DELETE /api/admin/apps/{slug}               delete
 *   GET    /api/admin/apps/{id}/revocations     list revocations of an app (store or config app)
 *   POST   /api/admin/apps/{id}/revocations     revoke {"client":…} or {"jti":…}, optional "ttl_s"
 *   POST   /api/apps/{slug}/events              publish {"topic","event","message"} (Basic key:secret of the app);
 *                                               topic "#general" reaches every session of the app
 *
 * The paths are rows of the route table (http/routes.c), which checks the
 * admin credentials (and, for events, the app's) before these run.
 *
 * Answers are {"data":…} or {"error":{"code","message"}}. Writes go to the
 * apps store and are reloaded at once here; other processes on the same file
 * notice them on their next tick (apps.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apps_store.h"
#include "cluster/apps.h"
#include "cluster/devices.h"
#include "config.h"
#include "core/app.h"
#include "core/channels.h"
#include "core/gw.h"
#include "http/admin.h"
#include "http/http.h"
#include "log.h"
#include "pg_common.h"
#include "pg_topic.h"
#include "pushgate_auth.h"

#define GENERAL_TOPIC "#general"

/* ---- request bodies ------------------------------------------------------------------- */

/* a=b&c[d]=e (application/x-www-form-urlencoded) as {"a":"b","c":{"d":"e"}}; NULL when malformed. */
static json_t *form_to_json(const char *body, size_t len)
{
    json_t *root = json_object();
    char *copy = strndup(body, len);
    char *save = NULL;
    if (!root || !copy || memchr(body, '\0', len))
        goto fail;
    for (char *pair = strtok_r(copy, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (!eq)
            goto fail;
        *eq = '\0';
        char *k = pair, *v = eq + 1;
        for (char *p = k; *p; p++)
            if (*p == '+')
                *p = ' ';
        for (char *p = v; *p; p++)
            if (*p == '+')
                *p = ' ';
        if (lws_urldecode(k, k, (int)strlen(k) + 1) || lws_urldecode(v, v, (int)strlen(v) + 1) ||
            !pg_utf8_valid(k, strlen(k)) || !pg_utf8_valid(v, strlen(v)) || !*k)
            goto fail;
        json_t *target = root;
        char *br = strchr(k, '[');
        if (br) { /* one level of nesting: app[name] */
            size_t inner = strlen(br + 1);
            if (br == k || inner < 2 || br[inner] != ']' || memchr(br + 1, '[', inner - 1))
                goto fail;
            *br = '\0';
            br[inner] = '\0';
            target = json_object_get(root, k);
            if (!target) {
                if (json_object_set_new(root, k, target = json_object()))
                    goto fail;
            } else if (!json_is_object(target)) {
                goto fail;
            }
            k = br + 1;
        }
        if (json_object_get(target, k) || json_object_set_new(target, k, json_string(v)))
            goto fail; /* a repeated field is ambiguous */
    }
    free(copy);
    return root;
fail:
    free(copy);
    json_decref(root);
    return NULL;
}

/* The request body as a JSON object (JSON or form encoded); NULL with h answered (400/413). */
static json_t *body_json(struct pg_http *h)
{
    char ctype[128] = "";
    json_t *j;
    if (h->body_too_big) {
        pg_http_respond_error(h, 413, "body larger than max_body_bytes");
        return NULL;
    }
    if (!h->body_len) {
        pg_http_respond_error(h, 400, "empty body");
        return NULL;
    }
    pg_http_header(h->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
    if (!strncasecmp(ctype, "application/x-www-form-urlencoded", 33)) {
        if (!(j = form_to_json(h->body, h->body_len)))
            pg_http_respond_error(h, 400, "malformed form body");
        return j;
    }
    json_error_t e;
    j = json_loadb(h->body, h->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_object(j)) {
        char msg[200];
        snprintf(msg, sizeof msg, "body must be a JSON object or a form: %s", j ? "not an object" : e.text);
        pg_http_respond_error(h, 400, msg);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* {"app":{…}} or the bare object; a new reference. */
static json_t *app_fields(json_t *body)
{
    json_t *inner = json_object_get(body, "app");
    if (json_is_object(inner) && json_object_size(body) == 1)
        return json_incref(inner);
    return json_incref(body);
}

/* Form values are strings: turn them into the types the store expects. */
static int form_types(json_t *changes)
{
    static const char *const bools[] = {"active", "require_auth"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = json_string_value(json_object_get(changes, bools[i]));
        if (!v)
            continue;
        int b = !strcmp(v, "true") || !strcmp(v, "1") ? 1 : !strcmp(v, "false") || !strcmp(v, "0") ? 0 : -1;
        if (b < 0 || json_object_set_new(changes, bools[i], json_boolean(b)))
            return -1;
    }
    const char *o = json_string_value(json_object_get(changes, "allowed_origins"));
    if (o) { /* comma-separated */
        json_t *arr = json_array();
        char *copy = strdup(o), *save = NULL;
        if (!arr || !copy) {
            json_decref(arr);
            free(copy);
            return -1;
        }
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
            json_array_append_new(arr, json_string(t));
        free(copy);
        if (json_object_set_new(changes, "allowed_origins", arr))
            return -1;
    }
    return 0;
}

/* ---- answers ---------------------------------------------------------------------------- */

static void store_error(struct pg_gw *gw, struct pg_http *h, int rc)
{
    const char *msg = pg_apps_store_errmsg(pg_apps_db(gw));
    int status = rc == PG_EINVAL ? 400 : rc == PG_EEXIST ? 409 : rc == PG_ENOTFOUND ? 404 : rc == PG_EBUSY ? 503 : 500;
    pg_http_respond_error(h, status, msg && *msg ? msg : pg_strerror(rc));
}

static void respond_data(struct pg_http *h, int status, json_t *data)
{
    pg_http_respond_json(h, status, data ? json_pack("{s:o}", "data", data) : NULL);
}

/* ---- /api/admin/apps ------------------------------------------------------------------- */

static void admin_create(struct pg_gw *gw, struct pg_http *h)
{
    json_t *body = body_json(h), *fields = NULL, *app = NULL;
    if (!body)
        return;
    fields = app_fields(body);
    const char *name = json_string_value(json_object_get(fields, "name"));
    char slug[PG_APP_SLUG_MAX + 1];
    if (!name) {
        pg_http_respond_error(h, 400, "app name required: {\"app\":{\"name\":\"…\"}} or app[name]=…");
        goto out;
    }
    int slugged = pg_apps_slugify(name, slug) == 0;
    struct pg_app *existing = slugged ? pg_app_find(gw, slug, strlen(slug)) : NULL;
    if (existing && !pg_apps_from_store(gw, existing)) {
        pg_http_respond_error(h, 409, "an app with this id is declared in the config file");
        goto out;
    }
    /* the broker plugin would never admit its devices, and the account's owner keeps the name */
    char why[256];
    int account = slugged ? pg_config_broker_account(gw->cfg, slug, why, sizeof why) : 0;
    if (account < 0) {
        pg_log(PG_LOG_ERROR, "admin", "broker_password_file: %s", why);
        pg_http_respond_error(h, 500, "cannot read broker_password_file");
        goto out;
    }
    if (account) {
        pg_http_respond_error(h, 409, "this app id is a broker account (broker_username or broker_password_file)");
        goto out;
    }
    int rc = pg_apps_store_create(pg_apps_db(gw), name, &app);
    if (rc) {
        store_error(gw, h, rc);
        goto out;
    }
    pg_log(PG_LOG_INFO, "admin", "app %s created", json_string_value(json_object_get(app, "slug")));
    pg_apps_store_changed(gw);
    pg_apps_announce(gw, json_string_value(json_object_get(app, "slug")));
    respond_data(h, 201, app);
out:
    json_decref(fields);
    json_decref(body);
}

static void admin_update(struct pg_gw *gw, struct pg_http *h, const char *slug)
{
    char ctype[128] = "";
    json_t *body = body_json(h), *fields = NULL, *app = NULL;
    if (!body)
        return;
    fields = app_fields(body);
    pg_http_header(h->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
    if (!strncasecmp(ctype, "application/x-www-form-urlencoded", 33) && form_types(fields)) {
        pg_http_respond_error(h, 400, "form fields: active and require_auth take true or false");
        goto out;
    }
    int rc = pg_apps_store_update(pg_apps_db(gw), slug, fields, &app);
    if (rc) {
        store_error(gw, h, rc);
        goto out;
    }
    pg_log(PG_LOG_INFO, "admin", "app %s updated (active=%d)", slug, json_is_true(json_object_get(app, "active")));
    pg_apps_store_changed(gw);
    pg_apps_announce(gw, slug);
    respond_data(h, 200, app);
out:
    json_decref(fields);
    json_decref(body);
}

static void admin_revoke(struct pg_gw *gw, struct pg_http *h, const char *app_id)
{
    json_t *body = body_json(h);
    if (!body)
        return;
    const char *client = json_string_value(json_object_get(body, "client"));
    const char *jti = json_string_value(json_object_get(body, "jti"));
    json_t *ttl = json_object_get(body, "ttl_s");
    if (!client == !jti) {
        pg_http_respond_error(h, 400, "give exactly one of \"client\" or \"jti\" (a string)");
        goto out;
    }
    long long ttl_s = gw->cfg->revocation_ttl_s;
    if (ttl) {
        const char *t = json_string_value(ttl); /* form values are strings */
        if (json_is_integer(ttl))
            ttl_s = json_integer_value(ttl);
        else if (!t || pg_parse_int(t, 1, 315360000, &ttl_s))
            ttl_s = 0;
        if (ttl_s < 1 || ttl_s > 315360000) {
            pg_http_respond_error(h, 400, "ttl_s: expected seconds from 1 to 315360000");
            goto out;
        }
    }
    const char *kind = client ? "client" : "jti", *value = client ? client : jti;
    int64_t expires = pg_now_ms() + ttl_s * 1000;
    int rc = pg_revoke(gw, app_id, kind, value, expires);
    if (rc) {
        store_error(gw, h, rc);
        goto out;
    }
    pg_log(PG_LOG_INFO, "admin", "revoked app=%s %s=%s for %llds", app_id, kind, value, ttl_s);
    respond_data(h, 201, json_pack("{s:s, s:s, s:s, s:I}", "app", app_id, "kind", kind, "value", value,
                                   "expires_ms", (json_int_t)expires));
out:
    json_decref(body);
}

static void admin_revocations(struct pg_gw *gw, struct pg_http *h, const char *app_id)
{
    json_t *all = NULL, *mine = json_array(), *r;
    size_t i;
    int rc = pg_apps_store_revocations(pg_apps_db(gw), pg_now_ms(), &all);
    if (rc || !mine) {
        json_decref(mine);
        store_error(gw, h, rc ? rc : PG_ENOMEM);
        return;
    }
    json_array_foreach(all, i, r) {
        if (!strcmp(json_string_value(json_object_get(r, "app")), app_id))
            json_array_append(mine, r);
    }
    json_decref(all);
    respond_data(h, 200, mine);
}

/* GET: the store's apps; POST: create one. */
void pg_admin_apps(struct pg_gw *gw, struct pg_http *h)
{
    json_t *out = NULL;
    int rc;
    if (h->method == PG_POST)
        admin_create(gw, h);
    else if ((rc = pg_apps_store_list(pg_apps_db(gw), &out)) != 0)
        store_error(gw, h, rc);
    else
        respond_data(h, 200, out);
}

/* One store app: GET, PATCH or PUT (update), DELETE. */
void pg_admin_app(struct pg_gw *gw, struct pg_http *h)
{
    const char *slug = pg_http_arg(h, "slug");
    json_t *out = NULL;
    int rc;
    switch (h->method) {
    case PG_GET:
        if ((rc = pg_apps_store_get(pg_apps_db(gw), slug, &out)) != 0)
            store_error(gw, h, rc);
        else
            respond_data(h, 200, out);
        break;
    case PG_PATCH:
    case PG_PUT:
        admin_update(gw, h, slug);
        break;
    case PG_DELETE:
        if ((rc = pg_apps_store_delete(pg_apps_db(gw), slug)) != 0) {
            store_error(gw, h, rc);
            break;
        }
        pg_log(PG_LOG_INFO, "admin", "app %s deleted", slug);
        pg_apps_store_changed(gw);
        pg_apps_announce(gw, slug);
        respond_data(h, 200, json_pack("{s:s, s:b}", "slug", slug, "deleted", 1));
        break;
    default:
        pg_http_respond_error(h, 405, "method not allowed");
    }
}

/* GET: an app's revocations; POST: revoke. Any app id: revocations apply to config apps too. */
void pg_admin_revocations(struct pg_gw *gw, struct pg_http *h)
{
    const char *slug = pg_http_arg(h, "slug");
    if (!pg_app_lookup(gw, slug, strlen(slug))) {
        pg_http_respond_error(h, 404, "no such app");
        return;
    }
    if (h->method == PG_POST)
        admin_revoke(gw, h, slug);
    else
        admin_revocations(gw, h, slug);
}

/* ---- /api/apps/{slug}/events ----------------------------------------------------------- */

void pg_admin_events(struct pg_gw *gw, struct pg_http *h)
{
    json_t *body = NULL, *message;
    char *payload = NULL, *topic = NULL;
    if (!(body = body_json(h)))
        return;
    const char *t = json_string_value(json_object_get(body, "topic"));
    const char *event = json_string_value(json_object_get(body, "event"));
    const char *form_payload = json_string_value(json_object_get(body, "payload"));
    message = json_object_get(body, "message");
    if (!t || !*t) {
        pg_http_respond_error(h, 400, "topic required (a channel name, or \"" GENERAL_TOPIC "\" for every session)");
        goto out;
    }
    /* the name travels as an MQTT user property: what the broker would refuse is refused here */
    if (!event || !*event || strlen(event) > 200 || !pg_mqtt_utf8_valid(event, strlen(event))) {
        pg_http_respond_error(h, 400, "event required (1-200 bytes, no control characters or Unicode noncharacters)");
        goto out;
    }
    if (message && form_payload) {
        pg_http_respond_error(h, 400, "give message or payload, not both");
        goto out;
    }
    if (form_payload) { /* the seed's form posts carry the message as JSON text */
        json_t *parsed = json_loads(form_payload, JSON_DECODE_ANY, NULL);
        if (!parsed) {
            pg_http_respond_error(h, 400, "payload must be JSON text");
            goto out;
        }
        json_decref(parsed);
        payload = strdup(form_payload);
    } else {
        payload = json_dumps(message ? message : json_object_get(body, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
        if (!payload)
            payload = strdup("{}");
    }
    if (!payload) {
        pg_http_respond_error(h, 500, "out of memory");
        goto out;
    }
    if (strlen(payload) > gw->cfg->max_message_bytes) {
        pg_http_respond_error(h, 413, "message larger than max_message_bytes");
        goto out;
    }
    if (!strcmp(t, GENERAL_TOPIC)) {
        topic = pg_topic_new(gw->cfg->topic_root, PG_TOPIC_BROADCAST, h->app->id, NULL, NULL); /* {root}/{app}/b */
    } else {
        if (pg_channel_check(t, strlen(t), (size_t)gw->cfg->max_channel_bytes, 0) != 0 ||
            !strncmp(t, PG_USER_CHANNEL_PREFIX, strlen(PG_USER_CHANNEL_PREFIX))) {
            pg_http_respond_error(h, 400, "invalid topic (a channel name: UTF-8, no + or #, not too long)");
            goto out;
        }
        if (pg_devices_channel_reserved(gw, t)) {
            pg_http_respond_error(h, 403, "only the broker reports device presence on this channel");
            goto out;
        }
        topic = pg_channel_topic(gw, h->app->id, t);
    }
    if (!topic) {
        pg_http_respond_error(h, 500, "out of memory");
        goto out;
    }
    const char *props[] = {"event", event, NULL};
    pg_http_publish(gw, h, h->app->id, topic, payload, strlen(payload), props, json_object());
out:
    free(topic);
    free(payload);
    json_decref(body);
}
