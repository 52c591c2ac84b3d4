/*
 * Pusher frames and names (proto/pusher_wire.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/msg.h"
#include "core/session.h"
#include "pg_common.h"
#include "proto/pusher_wire.h"

#define MAX_CHANNEL_NAME 164

int pg_pusher_channel_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_CHANNEL_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("-_=@,.;", name[i]))
            return 0;
    return 1;
}

int pg_pusher_frame_parse(const char *text, size_t len, struct pg_pusher_frame *f)
{
    memset(f, 0, sizeof *f);
    f->root = json_loadb(text, len, 0, NULL);
    f->event = json_string_value(json_object_get(f->root, "event"));
    if (!f->root || !f->event) {
        pg_pusher_frame_clear(f);
        return PG_EINVAL;
    }
    f->channel = json_string_value(json_object_get(f->root, "channel"));
    f->data = json_object_get(f->root, "data");
    /* pusher-js sends data as an object; some clients send it JSON-encoded */
    f->decoded = json_is_string(f->data) ? json_loads(json_string_value(f->data), 0, NULL) : NULL;
    f->fields = f->decoded ? f->decoded : f->data;
    return 0;
}

void pg_pusher_frame_clear(struct pg_pusher_frame *f)
{
    json_decref(f->decoded);
    json_decref(f->root);
    memset(f, 0, sizeof *f);
}

char *pg_pusher_client_data(const json_t *data)
{
    return json_is_string(data) ? strdup(json_string_value(data))
                                : json_dumps(data ? data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
}

void pg_pusher_send_event(struct pg_session *s, const char *event, const char *channel, json_t *data)
{
    char *str = data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(data);
    json_t *o = json_pack("{s:s, s:s}", "event", event, "data", str ? str : "{}");
    free(str);
    if (o && channel)
        json_object_set_new(o, "channel", json_string(channel));
    pg_session_send_json(s, o);
}

void pg_pusher_send_error(struct pg_session *s, int code, const char *message)
{
    /* pusher:error carries data as an object, not a string (as Pusher sends it) */
    json_t *o = json_pack("{s:s, s:{s:s, s:i}}", "event", "pusher:error", "data", "message", message, "code", code);
    pg_session_send_json(s, o);
}

/*
 * A channel message: {"event","channel","data"[,"user_id"]}, data the payload as a JSON string (UTF-8 as it is,
 * other bytes as {"binary": base64} text). An app-wide broadcast: an event without a channel, as pusher-js's
 * bind() / bind_global() receive it, data the payload as compact JSON text.
 */
struct pg_msg *pg_pusher_encode(const struct pg_session *s, const struct pg_event *ev)
{
    const char *event = "message", *user_id = NULL;
    json_t *data, *o;
    (void)s;
    for (size_t i = 0; i < ev->nprops; i++) {
        if (!strcmp(ev->props[i].name, "event"))
            event = ev->props[i].value;
        else if (!strcmp(ev->props[i].name, "user_id"))
            user_id = ev->props[i].value;
    }
    if (!ev->channel) {
        json_t *payload = pg_payload_json(ev->payload, ev->len);
        char *text = payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(payload);
        o = text ? json_pack("{s:s, s:s}", "event", pg_prop_get(ev->props, ev->nprops, "event", "message"), "data",
                             text)
                 : NULL;
        free(text);
        goto out;
    }
    if (pg_utf8_valid(ev->payload, ev->len)) {
        data = json_stringn(ev->payload, ev->len);
    } else {
        json_t *bin = pg_binary_json(ev->payload, ev->len);
        char *str = bin ? json_dumps(bin, JSON_COMPACT) : NULL;
        json_decref(bin);
        data = str ? json_string(str) : NULL;
        free(str);
    }
    o = json_pack("{s:s, s:s, s:o}", "event", event, "channel", ev->channel, "data", data);
    if (o && user_id)
        json_object_set_new(o, "user_id", json_string(user_id));
out:;
    struct pg_msg *m = o ? pg_msg_from_json(o) : NULL;
    json_decref(o);
    return m;
}
