/*
 * Gateways that are behind, as the broker sees them: every gateway node says on its retained load topic
 * {root}/_node/{node}/load ({"behind":reason,"for_ms":N}; empty once caught up; gateway/cluster/cluster.c, "Load")
 * whether it can deliver what it is sent. While any gateway says it is behind, an app client's (a device's)
 * publish is refused (acl.c), so the broker never acknowledges what a gateway cannot deliver in bounded time.
 *
 * What a device sees for a refused publish (Mosquitto 2.0 gives an ACL check no reason code of its own):
 *  - MQTT v5, QoS 1 or 2: PUBACK / PUBREC with reason 0x87 (not authorized); the message is not delivered and
 *    the device may publish it again later;
 *  - MQTT v3.1.1, QoS 1 or 2: its connection is closed without a PUBACK / PUBREC (a refusal there would be an
 *    ordinary PUBACK, indistinguishable from delivery); the client sends the message again after reconnecting;
 *  - QoS 0, any version: dropped, as QoS 0 promises nothing.
 *
 * A load message is read from MOSQ_EVT_MESSAGE when it comes from a client that is not an app (app clients may not
 * write outside their channel topics anyway: acl.c). A node counts as behind for its for_ms after its last load
 * message (clamped to LOAD_HOLD_MAX_MS), or until it empties the topic: a gateway that dies while behind holds
 * devices back for a few seconds at most. Messages retained before the broker started are not seen (the plugin sees
 * incoming PUBLISHes only); gateways repeat theirs every for_ms / 2 while behind.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pg_topic.h"
#include "plugin.h"

#define LOAD_HOLD_MS 3000      /* a load message without for_ms (gateway/cluster/cluster.c sends this one) */
#define LOAD_HOLD_MAX_MS 60000

void load_on_message(struct plugin *pl, const char *topic, const void *payload, size_t len)
{
    struct pg_topic_ref ref;
    struct gw_load *l;
    json_t *o;
    json_int_t hold;
    const char *why;

    if (pg_topic_parse(pl->conf->topic_root, topic, &ref) != PG_TOPIC_LOAD)
        return;
    HASH_FIND(hh, pl->loads, ref.node.s, ref.node.len, l);
    o = len ? json_loadb(payload, len, 0, NULL) : NULL;
    why = json_string_value(json_object_get(o, "behind"));
    hold = json_integer_value(json_object_get(o, "for_ms"));
    if (!why) {
        if (l) {
            mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "gateway %s caught up: device publishes accepted again",
                                 l->node);
            HASH_DEL(pl->loads, l);
            free(l->node);
            free(l);
        }
        json_decref(o);
        return;
    }
    if (hold <= 0 || hold > LOAD_HOLD_MAX_MS)
        hold = hold <= 0 ? LOAD_HOLD_MS : LOAD_HOLD_MAX_MS;
    if (!l && (l = calloc(1, sizeof *l)) && !(l->node = strndup(ref.node.s, ref.node.len))) {
        free(l);
        l = NULL;
    }
    if (l && !l->until_ms) {
        HASH_ADD_KEYPTR(hh, pl->loads, l->node, strlen(l->node), l);
        if (plugin_hash_oom) { /* left out: the gateways still refuse their own publishes */
            plugin_hash_oom = 0;
            free(l->node);
            free(l);
            l = NULL;
        } else {
            mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "gateway %s is behind (%s): device publishes refused",
                                 l->node, why);
        }
    }
    if (l)
        l->until_ms = pg_mono_ms() + hold;
    json_decref(o);
}

const char *load_behind(struct plugin *pl)
{
    struct gw_load *l, *tmp;
    int64_t now = pg_mono_ms();

    HASH_ITER(hh, pl->loads, l, tmp) {
        if (now < l->until_ms)
            return l->node;
        mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "gateway %s no longer says it is behind", l->node);
        HASH_DEL(pl->loads, l);
        free(l->node);
        free(l);
    }
    return NULL;
}

void loads_free(struct plugin *pl)
{
    struct gw_load *l, *tmp;

    HASH_ITER(hh, pl->loads, l, tmp) {
        HASH_DEL(pl->loads, l);
        free(l->node);
        free(l);
    }
}
