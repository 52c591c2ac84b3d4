/*
 * socket.io packets as text (proto/sio_packet.h). Stateless.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_common.h"
#include "proto/sio_packet.h"

int pg_sio_packet_parse(const char *p, size_t n, struct pg_sio_packet *pkt)
{
    memset(pkt, 0, sizeof *pkt);
    if (!n || p[0] < PG_SIO_CONNECT || p[0] > PG_SIO_CONNECT_ERROR)
        return -1; /* 5, 6: binary packets, refused */
    pkt->type = p[0];
    p++, n--;
    pkt->nsp = "/";
    pkt->nsp_len = 1;
    if (n && p[0] == '/') {
        const char *comma = memchr(p, ',', n);
        size_t nl = comma ? (size_t)(comma - p) : n;
        if (nl > PG_SIO_NSP_MAX || !pg_utf8_valid(p, nl))
            return -1;
        pkt->nsp = p;
        pkt->nsp_len = nl;
        p += comma ? nl + 1 : nl;
        n -= comma ? nl + 1 : nl;
    }
    pkt->ack = p;
    while (n && isdigit((unsigned char)*p)) {
        if (++pkt->ack_len > PG_SIO_ACK_DIGITS_MAX)
            return -1;
        p++, n--;
    }
    if (n && !(pkt->data = json_loadb(p, n, JSON_DECODE_ANY, NULL)))
        return -1;
    if (pkt->type == PG_SIO_EVENT && !pg_sio_event_name(pkt)) {
        pg_sio_packet_clear(pkt);
        return -1;
    }
    return 0;
}

void pg_sio_packet_clear(struct pg_sio_packet *pkt)
{
    json_decref(pkt->data);
    pkt->data = NULL;
}

const char *pg_sio_event_name(const struct pg_sio_packet *pkt)
{
    return json_string_value(json_array_get(pkt->data, 0));
}

char *pg_sio_frame(char type, const char *nsp, const char *json, size_t *len)
{
    size_t nl = nsp && strcmp(nsp, "/") ? strlen(nsp) : 0, jl = json ? strlen(json) : 0;
    size_t n = 2 + (nl ? nl + 1 : 0) + jl;
    char *b = malloc(n + 1);
    if (!b)
        return NULL;
    b[0] = '4';
    b[1] = type;
    if (nl) {
        memcpy(b + 2, nsp, nl);
        b[2 + nl] = ',';
    }
    if (jl)
        memcpy(b + n - jl, json, jl);
    b[n] = '\0';
    *len = n;
    return b;
}

char *pg_sio_ack_frame(const char *nsp, const struct pg_sio_packet *pkt, size_t *len)
{
    char reply[PG_SIO_ACK_DIGITS_MAX + 3];
    snprintf(reply, sizeof reply, "%.*s[]", (int)pkt->ack_len, pkt->ack);
    return pg_sio_frame(PG_SIO_ACK, nsp, reply, len);
}
