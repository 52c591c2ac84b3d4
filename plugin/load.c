/*
 * Gateways that are behind, as the broker sees them. Every gateway node publishes on its retained load topic
 * {root}/_node/{node}/load (gateway/cluster/cluster.c, "Load" and "Unconfirmed publishes"):
 *   {"mark":k,"seen":{node:mark},"window":W[,"behind":reason,"for_ms":N]}
 * and empties it when it stops. A device's (an app client's) publish is refused while
 *  - any gateway says it is behind (for its for_ms after its last such message), or
 *  - any gateway has not yet processed W device publishes the broker admitted: when a gateway's mark k passes
 *    through the broker, the plugin notes how many device publishes it had admitted; every publish admitted after
 *    it is queued for that gateway behind the mark, so once the gateway says it processed its own mark k
 *    ("seen":{its node: k}), those before it are done. Publishes admitted since the last mark it processed are
 *    the ones that may still wait; at W of them, publishes are refused.
 * So the broker never acknowledges more than W device messages a gateway has not processed: the lag of every
 * gateway stays bounded by W messages, whatever the devices' rate.
 *
 * What a device sees for a refused publish (Mosquitto 2.0 gives an ACL check no reason code of its own):
 *  - MQTT v5, QoS 1 or 2: PUBACK / PUBREC with reason 0x87 (not authorized); the message is not delivered and
 *    the device may publish it again later;
 *  - MQTT v3.1.1, QoS 1 or 2: its connection is closed without a PUBACK / PUBREC (a refusal there would be an
 *    ordinary PUBACK, indistinguishable from delivery); the client sends the message again after reconnecting;
 *  - QoS 0, any version: dropped, as QoS 0 promises nothing.
 *
 * A load message is read from MOSQ_EVT_MESSAGE when it comes from a client that is not an app (app clients may not
 * write outside their channel topics anyway: acl.c). A gateway that disconnects (its client id is
 * PG_GATEWAY_CLIENT_ID_PREFIX{node}) is forgotten at once; one silent for LOAD_SILENT_MS no longer holds devices
 * back (a gateway with traffic sends a mark every tick). Messages retained before the broker started are not seen (the plugin sees incoming PUBLISHes only).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pg_topic.h"
#include "plugin.h"

#define LOAD_HOLD_MS 3000    /* a "behind" without for_ms */
#define LOAD_HOLD_MAX_MS 60000
#define LOAD_SILENT_MS 10000 /* a gateway that said nothing for this long is not counted */

static void forget(struct plugin *pl, struct gw_load *l)
{
    HASH_DEL(pl->loads, l);
    free(l->node);
    free(l);
}

void load_on_message(struct plugin *pl, const char *topic, const void *payload, size_t len)
{
    struct pg_topic_ref ref;
    struct gw_load *l;
    json_t *o;
    json_int_t hold, mark, seen;
    const char *why;
    char *node;
    int64_t now = pg_mono_ms();

    if (pg_topic_parse(pl->conf->topic_root, topic, &ref) != PG_TOPIC_LOAD)
        return;
    HASH_FIND(hh, pl->loads, ref.node.s, ref.node.len, l);
    o = len ? json_loadb(payload, len, 0, NULL) : NULL;
    if (!json_is_object(o)) {
        if (l) /* it stopped */
            forget(pl, l);
        json_decref(o);
        return;
    }
    if (!l && (node = strndup(ref.node.s, ref.node.len))) {
        if ((l = calloc(1, sizeof *l))) {
            l->node = node;
            HASH_ADD_KEYPTR(hh, pl->loads, l->node, strlen(l->node), l);
            if (plugin_hash_oom) { /* left out: the gateways still refuse their own publishes */
                plugin_hash_oom = 0;
                free(l);
                l = NULL;
            }
        }
        if (!l)
            free(node);
    }
    if (!l) {
        json_decref(o);
        return;
    }
    why = json_string_value(json_object_get(o, "behind"));
    hold = json_integer_value(json_object_get(o, "for_ms"));
    mark = json_integer_value(json_object_get(o, "mark"));
    seen = json_integer_value(json_object_get(json_object_get(o, "seen"), l->node));
    if (!l->last_ms || now - l->last_ms > LOAD_SILENT_MS || mark < 0 || (uint64_t)mark < l->mark) {
        /* first heard, back after a silence, or a new incarnation: what came before is not its to confirm */
        l->mark = mark > 0 ? (uint64_t)mark : 0;
        l->confirmed = l->mark;
        l->ring[l->mark % GW_MARK_RING] = pl->device_admitted;
    }
    if (mark > 0 && (uint64_t)mark > l->mark) {
        for (uint64_t k = l->mark + 1; k <= (uint64_t)mark && k <= l->mark + GW_MARK_RING; k++)
            l->ring[k % GW_MARK_RING] = pl->device_admitted;
        l->mark = (uint64_t)mark;
    }
    if (seen > 0 && (uint64_t)seen > l->confirmed && (uint64_t)seen <= l->mark)
        l->confirmed = (uint64_t)seen;
    l->window = (uint64_t)(json_integer_value(json_object_get(o, "window")) > 0
                               ? json_integer_value(json_object_get(o, "window")) : 0);
    l->last_ms = now;
    if (why) {
        if (hold <= 0 || hold > LOAD_HOLD_MAX_MS)
            hold = hold <= 0 ? LOAD_HOLD_MS : LOAD_HOLD_MAX_MS;
        if (!l->until_ms)
            mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "gateway %s is behind (%s): device publishes refused",
                                 l->node, why);
        l->until_ms = now + hold;
    } else if (l->until_ms) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "gateway %s caught up: device publishes accepted again",
                             l->node);
        l->until_ms = 0;
    }
    json_decref(o);
}

const char *load_refusal(struct plugin *pl, const char **node, int admit)
{
    struct gw_load *l, *tmp;
    int64_t now = pg_mono_ms();

    HASH_ITER(hh, pl->loads, l, tmp) {
        if (now - l->last_ms > LOAD_SILENT_MS)
            continue;
        *node = l->node;
        if (l->until_ms && now < l->until_ms)
            return "is behind";
        uint64_t done = l->confirmed;
        if (done + GW_MARK_RING <= l->mark) /* older than remembered: count from the oldest remembered */
            done = l->mark - GW_MARK_RING + 1;
        if (l->window && pl->device_admitted - l->ring[done % GW_MARK_RING] >= l->window)
            return "has not processed its window of device publishes yet";
    }
    if (admit)
        pl->device_admitted++;
    return NULL;
}

void load_on_disconnect(struct plugin *pl, const char *client_id)
{
    size_t n = strlen(PG_GATEWAY_CLIENT_ID_PREFIX);
    struct gw_load *l;

    if (!client_id || strncmp(client_id, PG_GATEWAY_CLIENT_ID_PREFIX, n) != 0)
        return;
    HASH_FIND_STR(pl->loads, client_id + n, l);
    if (l) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "gateway %s disconnected: it holds no device back", l->node);
        forget(pl, l);
    }
}

void loads_free(struct plugin *pl)
{
    struct gw_load *l, *tmp;

    HASH_ITER(hh, pl->loads, l, tmp) {
        forget(pl, l);
    }
}
