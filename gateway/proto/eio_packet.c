/*
 * Engine.IO packets as text (proto/eio_packet.h). Stateless.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pg_common.h"
#include "proto/eio_packet.h"

int pg_eio_client_type(const char *p, size_t n)
{
    if (!n)
        return -1;
    switch (p[0]) {
    case PG_EIO_CLOSE:
    case PG_EIO_PING:
    case PG_EIO_PONG:
    case PG_EIO_MESSAGE:
    case PG_EIO_NOOP:
        return p[0];
    default:
        return -1; /* 'b' (base64 binary), '0', '5' out of place, garbage */
    }
}

int pg_eio_pong(const char *p, size_t n, char out[PG_EIO_PING_MAX])
{
    if (!n || n > PG_EIO_PING_MAX || !pg_utf8_valid(p, n))
        return -1;
    memcpy(out, p, n);
    out[0] = PG_EIO_PONG;
    return 0;
}

int pg_eio_probe_type(const char *p, size_t n)
{
    if (n == 6 && !memcmp(p, "2probe", 6))
        return PG_EIO_PING;
    if (n == 1 && p[0] == PG_EIO_UPGRADE)
        return PG_EIO_UPGRADE;
    return -1;
}

char *pg_eio_open_text(const char *sid, int64_t ping_interval_ms, int64_t ping_timeout_ms, int64_t max_payload,
                       int can_upgrade)
{
    json_t *o = json_pack("{s:s, s:[], s:I, s:I, s:I}", "sid", sid, "upgrades", "pingInterval",
                          (json_int_t)ping_interval_ms, "pingTimeout", (json_int_t)ping_timeout_ms, "maxPayload",
                          (json_int_t)max_payload);
    if (o && can_upgrade)
        json_array_append_new(json_object_get(o, "upgrades"), json_string("websocket"));
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char *p = js ? malloc(strlen(js) + 2) : NULL;
    if (p)
        snprintf(p, strlen(js) + 2, "%c%s", PG_EIO_OPEN, js);
    free(js);
    return p;
}

void pg_eio_split_init(struct pg_eio_split *it, const char *body, size_t len)
{
    it->p = body;
    it->end = body ? body + len : body;
    it->done = 0;
}

int pg_eio_split_next(struct pg_eio_split *it, const char **packet, size_t *len)
{
    if (it->done)
        return 0;
    const char *sep = it->p < it->end ? memchr(it->p, PG_EIO_SEPARATOR, (size_t)(it->end - it->p)) : NULL;
    *packet = it->p;
    *len = (size_t)((sep ? sep : it->end) - it->p);
    if (sep)
        it->p = sep + 1;
    else
        it->done = 1;
    return 1;
}
