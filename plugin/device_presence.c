/*
 * Device presence: a device the plugin admitted gets a retained {root}/{app}/d/{client_id} message
 * {"id","user_id","connected_at"}, emptied when it disconnects, and an event device_joined / device_left (v5 user
 * property `event`, payload {"id","user_id"}) on the channel named by device_channel. Devices may not write on
 * that channel; {root}/{app}/d/ is outside their channels anyway.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <mqtt_protocol.h>

#include "pg_topic.h"
#include "plugin.h"

/* A client id becomes a topic level (PG_TOPIC_DEVICE): one that would split or widen the topic gets no presence. */
static int topic_level_ok(const char *s)
{
    return s && pg_topic_level_valid(s, strlen(s));
}

/* QoS 1 so a gateway that subscribed with QoS 1 gets every change. properties is taken (also on failure). */
static int publish(const char *topic, const char *payload, int retain, mosquitto_property *props)
{
    int rc;

    if (!payload)
        payload = ""; /* the broker copies even an empty payload with memcpy */
    rc = mosquitto_broker_publish_copy(NULL, topic, (int)strlen(payload), payload, 1, retain, props);
    if (rc != MOSQ_ERR_SUCCESS)
        mosquitto_property_free_all(&props);
    return rc;
}

/*
 * joined: the retained {root}/{app}/d/{id} record, else its removal; event: also the device_joined/device_left
 * event on the device channel (a session takeover changes the record, not whether the device is online).
 * A failure costs only the report, never the session.
 */
void presence_report(const struct plugin *pl, const struct client_state *st, int joined, int event)
{
    const struct plugin_conf *conf = pl->conf;
    const char *user_id = st->tok ? pg_token_user_id(st->tok) : NULL;
    mosquitto_property *props = NULL;
    char *topic = NULL, *body = NULL;
    json_t *o = NULL;
    int rc = MOSQ_ERR_NOMEM;

    if (!topic_level_ok(st->client_id)) {
        mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "no presence for client=%s app=%s: not a topic level",
                             str_or(st->client_id, "-"), st->app_id);
        return;
    }
    if (!(topic = pg_topic_new(conf->topic_root, PG_TOPIC_DEVICE, st->app_id, st->client_id, NULL)))
        goto out;
    if (joined) {
        o = json_pack("{s:s, s:s?, s:I}", "id", st->client_id, "user_id", user_id, "connected_at",
                      (json_int_t)pg_now_ms());
        if (!o || !(body = json_dumps(o, JSON_COMPACT)))
            goto out;
    }
    if ((rc = publish(topic, body, 1, NULL)) != MOSQ_ERR_SUCCESS)
        goto out;
    if (!event || !conf->device_channel[0])
        goto out;
    free(topic);
    free(body);
    json_decref(o);
    body = NULL;
    rc = MOSQ_ERR_NOMEM;
    o = json_pack("{s:s, s:s?}", "id", st->client_id, "user_id", user_id);
    if (!(topic = pg_topic_new(conf->topic_root, PG_TOPIC_CHANNEL, st->app_id, conf->device_channel, NULL)) || !o ||
        !(body = json_dumps(o, JSON_COMPACT)) ||
        mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "event",
                                           joined ? "device_joined" : "device_left") != MOSQ_ERR_SUCCESS)
        goto out;
    rc = publish(topic, body, 0, props);
    props = NULL;
out:
    if (rc != MOSQ_ERR_SUCCESS)
        mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "presence of client=%s app=%s not published: %s",
                             st->client_id, st->app_id, mosquitto_strerror(rc));
    mosquitto_property_free_all(&props);
    json_decref(o);
    free(body);
    free(topic);
}
