/*
 * MOSQ_EVT_ACL_CHECK: what an app session may publish, subscribe to and receive. Its topics are its own app's
 * channel topics only, decided by the token's permissions (or, without a token, by whether the channel is
 * protected); clients that are not apps are non_app.c's.
 *
 * Pusher's protected channels (private-…, presence-…) need a credential in every app: an app client without a
 * token may not publish or subscribe on them, and its wildcard subscriptions never deliver them.
 *
 * While a gateway says it is behind, or has not yet processed its window of device publishes (load.c), an app
 * client's publish is refused even where it is permitted.
 *
 * Every ACL check of an app session re-checks the app and the token's expiry; an expired session is denied and
 * kicked from the next MOSQ_EVT_TICK, because kicking inside the broker's own packet handling (where ACL checks
 * run) would fire MOSQ_EVT_DISCONNECT and close the socket under the caller's feet.
 */
#include <string.h>

#include "pg_topic.h"
#include "plugin.h"

static const char *access_name(int access)
{
    switch (access) {
    case MOSQ_ACL_READ:
        return "read";
    case MOSQ_ACL_WRITE:
        return "write";
    case MOSQ_ACL_SUBSCRIBE:
        return "subscribe";
    case MOSQ_ACL_UNSUBSCRIBE:
        return "unsubscribe";
    default:
        return "unknown";
    }
}

/*
 * The channel of `topic` (NUL-terminated, it ends the topic) when it is {root}/{app}/c/{channel} of this app, with
 * the length in *len; else NULL. A subscription's channel may be a filter: pg_channel_check() decides.
 */
static const char *own_channel(const struct plugin_conf *conf, const char *app_id, const char *topic, size_t *len)
{
    struct pg_topic_ref ref;

    if (pg_topic_parse(conf->topic_root, topic, &ref) != PG_TOPIC_CHANNEL || !pg_topic_part_is(&ref.app, app_id))
        return NULL;
    *len = ref.name.len;
    return ref.name.s;
}

/* NULL to allow, else the reason for the denial (a static string, safe to log). */
static const char *acl_decide(const struct plugin *pl, const struct client_state *st, int access, const char *topic)
{
    size_t len = 0;
    const char *chan = own_channel(pl->conf, st->app_id, topic, &len);
    int wild;

    if (!chan)
        return "outside the app's channel topics";
    switch (access) {
    case MOSQ_ACL_SUBSCRIBE:
        wild = strpbrk(chan, "+#") != NULL;
        if (pg_channel_check(chan, len, (size_t)pl->conf->max_channel_bytes, 1) != 0)
            return "invalid channel filter";
        /* A wildcard filter is accepted: every message it would deliver is checked at READ. */
        if (wild)
            return NULL;
        if (!st->tok)
            return pg_channel_protected(chan, len) ? "protected channel needs a token" : NULL;
        return pg_token_allows(st->tok, PG_ACT_SUBSCRIBE, chan, len) == PG_ALLOW ? NULL : "subscribe not permitted";
    case MOSQ_ACL_READ:
        if (!st->tok)
            return pg_channel_protected(chan, len) ? "protected channel needs a token" : NULL;
        return pg_token_allows(st->tok, PG_ACT_SUBSCRIBE, chan, len) == PG_ALLOW ? NULL : "subscribe not permitted";
    case MOSQ_ACL_WRITE:
        if (pg_channel_check(chan, len, (size_t)pl->conf->max_channel_bytes, 0) != 0)
            return "invalid channel name";
        /* Its events must come from the plugin alone, or a device could report others joining and leaving. */
        if (pl->conf->device_channel[0] && !strcmp(chan, pl->conf->device_channel))
            return "channel reserved for device events";
        if (!st->tok)
            return pg_channel_protected(chan, len) ? "protected channel needs a token" : NULL;
        return pg_token_allows(st->tok, PG_ACT_PUBLISH, chan, len) == PG_ALLOW ? NULL : "publish not permitted";
    default:
        return "unknown access";
    }
}

int on_acl_check(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ed = event_data;
    struct plugin *pl = userdata;
    struct client_state *st = NULL;
    const struct app_entry *app;
    const char *cid = mosquitto_client_id(ed->client);
    const char *why, *behind = NULL, *load_why;

    (void)event;
    tick_check(pl);
    HASH_FIND_PTR(pl->clients, &ed->client, st);
    if (!st) {
        /* An app user without state is a session whose connection is gone; it holds no valid token. */
        if (app_of_user(pl, mosquitto_client_username(ed->client))) {
            mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "%s denied client=%s topic=%s reason=no live session",
                                 access_name(ed->access), str_or(cid, "-"), ed->topic);
            return MOSQ_ERR_ACL_DENIED;
        }
        /* Not an app: what Mosquitto would decide without this plugin (see non_app_resolve()). */
        return pl->acl_allow ? MOSQ_ERR_SUCCESS : MOSQ_ERR_PLUGIN_DEFER;
    }
    if (ed->access == MOSQ_ACL_UNSUBSCRIBE)
        return MOSQ_ERR_SUCCESS; /* giving up a subscription never widens access */
    app = find_app(pl, st->app_id);
    if (st->replaced_by) {
        why = "session taken over"; /* its will: see takeover_note() */
    } else if (!app || !app->creds.active) {
        why = "app removed or inactive";
        schedule_kick(pl, st, why);
    } else if (st->tok && pg_token_expired(st->tok, pg_now_ms())) {
        why = "token expired";
        schedule_kick(pl, st, why);
    } else {
        why = acl_decide(pl, st, ed->access, ed->topic);
    }
    if (!why && ed->access == MOSQ_ACL_WRITE && (load_why = load_refusal(pl, &behind, 1))) {
        /* a gateway cannot deliver it in bounded time: never acknowledged (load.c says what the device sees) */
        mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "write refused client=%s app=%s topic=%s reason=gateway %s %s",
                             str_or(cid, "-"), st->app_id, ed->topic, behind, load_why);
        if (ed->qos > 0 && mosquitto_client_protocol_version(ed->client) != 5)
            return MOSQ_ERR_ADMINISTRATIVE_ACTION; /* v3.1.1: a denial would be an ordinary PUBACK; close instead */
        return MOSQ_ERR_ACL_DENIED; /* v5: PUBACK / PUBREC 0x87 */
    }
    if (!why) {
        mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "%s allowed client=%s app=%s topic=%s", access_name(ed->access),
                             str_or(cid, "-"), st->app_id, ed->topic);
        return MOSQ_ERR_SUCCESS;
    }
    /* READ denials are the expected filtering of wildcard subscriptions; keep them out of notice logs. */
    mosquitto_log_printf(ed->access == MOSQ_ACL_READ ? MOSQ_LOG_DEBUG : MOSQ_LOG_NOTICE,
                         LOG_PREFIX "%s denied client=%s app=%s topic=%s reason=%s", access_name(ed->access),
                         str_or(cid, "-"), st->app_id, ed->topic, why);
    return MOSQ_ERR_ACL_DENIED;
}
