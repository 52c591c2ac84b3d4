/*
 * (Messages of clients that are not apps are only looked at for gateways' load topics: load.c.)
 * Messages of app clients carry no gateway metadata: MOSQ_EVT_MESSAGE removes the user properties the gateway
 * reads as facts (user_id, client_id, socket_id, ts, and the delivery sequence origin, seq, prev that gap
 * detection trusts) and an `event` naming a protocol event (pusher:…, pusher_internal:…, client-…, pushgate:…,
 * socket.io's reserved names). A device's will never reaches anyone, as the plugin
 * cannot see a will's properties (no API for them; the ACL check of a will gets none, and wills skip
 * MOSQ_EVT_MESSAGE): on a disconnect the broker checks it after MOSQ_EVT_DISCONNECT, when the session's state is
 * gone, and on a session takeover before it, when the session is marked as taken over (takeover_note()).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <mqtt_protocol.h>

#include "plugin.h"

/* 1 if a device may not name its message `event`: names the protocols use for their own events. */
static int event_reserved(const char *name)
{
    static const char *const prefixes[] = {"pusher:", "pusher_internal:", "client-", "pushgate:"};
    /* socket.io's reserved event names, and the plugin's own device events */
    static const char *const names[] = {"connect",     "connect_error",  "disconnect",    "disconnecting",
                                        "newListener", "removeListener", "device_joined", "device_left"};

    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
            return 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i]))
            return 1;
    return 0;
}

/* 1 if an app client's message may not carry this user property: gateways read it as a fact about the sender. */
static int user_property_forged(const char *name, const char *value)
{
    /* origin, seq, prev: the delivery sequence of gateway publishes; forged, they would fake or hide gaps */
    static const char *const facts[] = {"user_id", "client_id", "socket_id", "ts", "origin", "seq", "prev"};

    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
        if (!strcmp(name, facts[i]))
            return 1;
    return !strcmp(name, "event") && event_reserved(value);
}

/* Appends a copy of prop (whatever its type) to *out; properties are typed by identifier, so one reader fits. */
static int property_copy_one(const mosquitto_property *prop, mosquitto_property **out)
{
    int id = mosquitto_property_identifier(prop);
    uint8_t b;
    uint16_t i16;
    uint32_t i32;
    void *bin = NULL;
    char *str = NULL, *val = NULL;
    int rc;

    if (mosquitto_property_read_byte(prop, id, &b, false))
        return mosquitto_property_add_byte(out, id, b);
    if (mosquitto_property_read_int16(prop, id, &i16, false))
        return mosquitto_property_add_int16(out, id, i16);
    if (mosquitto_property_read_int32(prop, id, &i32, false))
        return mosquitto_property_add_int32(out, id, i32);
    if (mosquitto_property_read_varint(prop, id, &i32, false))
        return mosquitto_property_add_varint(out, id, i32);
    /* what the readers allocate is the broker's: mosquitto_free() */
    if (mosquitto_property_read_binary(prop, id, &bin, &i16, false)) {
        rc = mosquitto_property_add_binary(out, id, bin, i16);
        mosquitto_free(bin);
        return rc;
    }
    if (mosquitto_property_read_string_pair(prop, id, &str, &val, false)) {
        rc = mosquitto_property_add_string_pair(out, id, str, val);
        mosquitto_free(str);
        mosquitto_free(val);
        return rc;
    }
    if (mosquitto_property_read_string(prop, id, &str, false)) {
        rc = mosquitto_property_add_string(out, id, str);
        mosquitto_free(str);
        return rc;
    }
    return MOSQ_ERR_NOMEM; /* a read failed to allocate (every identifier has one of the types above) */
}

/*
 * An incoming PUBLISH (not the plugin's own, not a will): an app client's message loses the user properties only
 * gateways and the plugin may set. The broker stores whatever list ed->properties points to afterwards and, in
 * 2.0.11, does not free the one it passed in.
 */
int on_message(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_message *ed = event_data;
    struct plugin *pl = userdata;
    struct client_state *st = NULL;
    const mosquitto_property *p;
    mosquitto_property *kept = NULL;
    char *name = NULL, *value = NULL;
    int forged = 0, rc = MOSQ_ERR_SUCCESS;

    (void)event;
    if (!ed->client)
        return MOSQ_ERR_SUCCESS;
    HASH_FIND_PTR(pl->clients, &ed->client, st);
    if (!st && !app_of_user(pl, mosquitto_client_username(ed->client))) {
        load_on_message(pl, ed->topic, ed->payload, ed->payloadlen); /* the gateway, operators */
        return MOSQ_ERR_SUCCESS;
    }
    if (!ed->properties)
        return MOSQ_ERR_SUCCESS;
    for (p = ed->properties; p && rc == MOSQ_ERR_SUCCESS; p = mosquitto_property_next(p)) {
        if (mosquitto_property_identifier(p) == MQTT_PROP_USER_PROPERTY &&
            mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, false)) {
            if (user_property_forged(name, value))
                forged++;
            else
                rc = mosquitto_property_add_string_pair(&kept, MQTT_PROP_USER_PROPERTY, name, value);
            mosquitto_free(name);
            mosquitto_free(value);
            name = value = NULL;
            continue;
        }
        rc = property_copy_one(p, &kept);
    }
    if (rc != MOSQ_ERR_SUCCESS || !forged) {
        mosquitto_property_free_all(&kept);
        /* Unable to clean it: the message is refused rather than delivered with forged metadata. */
        return forged ? MOSQ_ERR_NOMEM : MOSQ_ERR_SUCCESS;
    }
    mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "removed %d reserved user properties from client=%s topic=%s",
                         forged, str_or(mosquitto_client_id(ed->client), "-"), ed->topic);
    mosquitto_property_free_all(&ed->properties);
    ed->properties = kept;
    return MOSQ_ERR_SUCCESS;
}
