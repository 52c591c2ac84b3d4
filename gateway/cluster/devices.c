/*
 * MQTT device presence, as the broker plugin (auth/mosquitto_plugin.c) reports it: one retained message per
 * online device on {root}/{app}/d/{client_id}, {"id","user_id","connected_at"}, emptied when the device leaves.
 *
 * The retained messages are the truth; this table is a copy that every node rebuilds from them. On a reconnect
 * to the broker the table is dropped and refilled from what the broker re-sends, so a device that left while this
 * node was cut off does not linger here. The join/leave events on the device channel reach web clients through
 * the ordinary channel path (channels.c); this file only answers "who is online now".
 */
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "cluster/devices.h"
#include "core/gw.h"
#include "log.h"
#include "pg_topic.h"

/* The plugin writes three short fields; anything bigger was not written by it. */
#define MAX_RECORD_BYTES 4096

struct device {
    char *id; /* hash key: the topic's last level */
    char *user_id;
    int64_t connected_at;
    UT_hash_handle hh;
};

struct dev_app {
    char *id; /* hash key */
    struct device *devices;
    UT_hash_handle hh;
};

struct pg_devices {
    struct dev_app *apps;
    int subscribed;
};

static void device_free(struct device *d)
{
    free(d->id);
    free(d->user_id);
    free(d);
}

static void apps_clear(struct pg_devices *dv)
{
    struct dev_app *a, *atmp;
    struct device *d, *dtmp;

    HASH_ITER(hh, dv->apps, a, atmp) {
        HASH_ITER(hh, a->devices, d, dtmp) {
            HASH_DEL(a->devices, d);
            device_free(d);
        }
        HASH_DEL(dv->apps, a);
        free(a->id);
        free(a);
    }
}

void pg_devices_free(struct pg_gw *gw)
{
    if (!gw->devices)
        return;
    apps_clear(gw->devices);
    free(gw->devices);
    gw->devices = NULL;
}

void pg_devices_connected(struct pg_gw *gw)
{
    char filter[PG_TOPIC_FILTER_MAX];

    if (!gw->devices && !(gw->devices = calloc(1, sizeof *gw->devices))) {
        pg_log(PG_LOG_ERROR, "devices", "out of memory: device presence off");
        return;
    }
    apps_clear(gw->devices);
    if (gw->devices->subscribed)
        return; /* the bridge re-subscribes by itself, and the broker re-sends every retained record */
    if (pg_topic_filter(filter, sizeof filter, gw->cfg->topic_root, PG_TOPIC_DEVICE) >= 0 &&
        pg_bridge_subscribe(gw->bridge, filter) == 0)
        gw->devices->subscribed = 1;
    else
        pg_log(PG_LOG_ERROR, "devices", "cannot subscribe to device presence; retrying at the next connect");
}

/* A record as the plugin writes it, else -1 (ignored: the table keeps what it had). */
static int parse_record(const void *payload, size_t len, char **user_id, int64_t *connected_at)
{
    json_t *o = NULL, *uid, *at;
    int rc = -1;

    *user_id = NULL;
    if (len > MAX_RECORD_BYTES || !(o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL)) ||
        !json_is_object(o))
        goto out;
    uid = json_object_get(o, "user_id");
    at = json_object_get(o, "connected_at");
    if (!json_is_integer(at) || (uid && !json_is_null(uid) && !json_is_string(uid)))
        goto out;
    if (json_is_string(uid) && !(*user_id = strdup(json_string_value(uid))))
        goto out;
    *connected_at = json_integer_value(at);
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static void device_gone(struct pg_devices *dv, const char *app_id, size_t app_len, const char *id)
{
    struct dev_app *a = NULL;
    struct device *d = NULL;

    HASH_FIND(hh, dv->apps, app_id, app_len, a);
    if (a)
        HASH_FIND_STR(a->devices, id, d);
    if (!d)
        return;
    HASH_DEL(a->devices, d);
    device_free(d);
    if (!a->devices) {
        HASH_DEL(dv->apps, a);
        free(a->id);
        free(a);
    }
}

static int device_online(struct pg_devices *dv, const char *app_id, size_t app_len, const char *id, char *user_id,
                         int64_t connected_at)
{
    struct dev_app *a = NULL;
    struct device *d = NULL;

    HASH_FIND(hh, dv->apps, app_id, app_len, a);
    if (!a) {
        if (!(a = calloc(1, sizeof *a)) || !(a->id = strndup(app_id, app_len))) {
            free(a);
            return PG_ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, dv->apps, a->id, app_len, a);
    }
    HASH_FIND_STR(a->devices, id, d);
    if (!d) {
        if (!(d = calloc(1, sizeof *d)) || !(d->id = strdup(id))) {
            free(d);
            if (!a->devices) {
                HASH_DEL(dv->apps, a);
                free(a->id);
                free(a);
            }
            return PG_ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, a->devices, d->id, strlen(d->id), d);
    }
    free(d->user_id);
    d->user_id = user_id;
    d->connected_at = connected_at;
    return 0;
}

void pg_devices_on_record(struct pg_gw *gw, const char *app_id, size_t app_len, const char *id, const char *topic,
                          const void *payload, size_t len)
{
    char *user_id;
    int64_t at;

    if (!gw->devices || !*id || strchr(id, '/'))
        return;
    if (!len) {
        device_gone(gw->devices, app_id, app_len, id);
        pg_log(PG_LOG_DEBUG, "devices", "offline app=%.*s device=%s", (int)app_len, app_id, id);
        return;
    }
    if (parse_record(payload, len, &user_id, &at) != 0) {
        pg_log(PG_LOG_WARN, "devices", "ignored a malformed presence record on %s", topic);
        return;
    }
    if (device_online(gw->devices, app_id, app_len, id, user_id, at) != 0) {
        free(user_id);
        pg_log(PG_LOG_ERROR, "devices", "out of memory: device %s not listed", id);
        return;
    }
    pg_log(PG_LOG_DEBUG, "devices", "online app=%.*s device=%s", (int)app_len, app_id, id);
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(struct device *const *)a)->id, (*(struct device *const *)b)->id);
}

json_t *pg_devices_list(struct pg_gw *gw, const char *app)
{
    struct dev_app *a = NULL;
    struct device *d, *tmp, **sorted = NULL;
    json_t *arr = json_array(), *o;
    size_t n = 0;

    if (!arr)
        return NULL;
    if (gw->devices)
        HASH_FIND_STR(gw->devices->apps, app, a);
    if (!a)
        return arr;
    if (!(sorted = malloc(HASH_COUNT(a->devices) * sizeof *sorted)))
        goto fail;
    HASH_ITER(hh, a->devices, d, tmp) sorted[n++] = d;
    qsort(sorted, n, sizeof *sorted, by_id);
    for (size_t i = 0; i < n; i++) {
        o = json_pack("{s:s, s:s?, s:I}", "id", sorted[i]->id, "user_id", sorted[i]->user_id, "connected_at",
                      (json_int_t)sorted[i]->connected_at);
        if (!o || json_array_append_new(arr, o))
            goto fail;
    }
    free(sorted);
    return arr;
fail:
    free(sorted);
    json_decref(arr);
    return NULL;
}

int pg_devices_channel_reserved(struct pg_gw *gw, const char *channel)
{
    const char *dc = gw->cfg->device_channel;

    return dc && *dc && channel && !strcmp(channel, dc);
}
