/*
 * socket.io 5 packets as text, inside Engine.IO message packets (after
 * their "4"): decoding what a client sends, encoding what the server sends.
 * Pure functions (no session, no I/O, no state), called by proto/sio.c;
 * tests/unit/test_sio_packets.c tests them alone.
 *
 * Wire format: a type digit, then "/nsp," unless the namespace is "/", then
 * an ack id (digits), then JSON data:
 *   CONNECT        "0[/nsp,][{…}]"
 *   DISCONNECT     "1[/nsp,]"
 *   EVENT          "2[/nsp,][ack]["name",…]"
 *   ACK            "3[/nsp,]ack[…]"
 *   CONNECT_ERROR  "4[/nsp,]{"message"}"   (servers only)
 * Binary EVENT and ACK ("5", "6") are not spoken. A namespace ends at the
 * first comma ("/a" alone, without one, is a namespace and no data).
 */
#ifndef PG_PROTO_SIO_PACKET_H
#define PG_PROTO_SIO_PACKET_H

#include <stddef.h>
#include <jansson.h>

enum pg_sio_type {
    PG_SIO_CONNECT = '0',
    PG_SIO_DISCONNECT = '1',
    PG_SIO_EVENT = '2',
    PG_SIO_ACK = '3',
    PG_SIO_CONNECT_ERROR = '4',
};

#define PG_SIO_NSP_MAX 80        /* bytes of a namespace, its "/" included: "/" + an app id */
#define PG_SIO_ACK_DIGITS_MAX 15 /* digits of an ack id (below 2^53: a JavaScript number) */

/* One decoded packet. Everything but data is borrowed from the packet text (and not NUL-terminated). */
struct pg_sio_packet {
    char type;           /* enum pg_sio_type */
    const char *nsp;     /* "/" when the packet names none */
    size_t nsp_len;
    const char *ack;     /* the ack id's digits; ack_len 0: none (the client waits for no ACK) */
    size_t ack_len;
    json_t *data;        /* owned: the JSON after them (any JSON value), NULL when there is none */
};

/*
 * Decode the packet p[0..n). 0, or -1 when it is malformed: empty, a type
 * other than 0-4, a namespace over PG_SIO_NSP_MAX bytes or not UTF-8 (answers
 * echo it in text, and polling bodies reach here unchecked), an ack id over
 * PG_SIO_ACK_DIGITS_MAX digits, data that is not one JSON value, an EVENT
 * whose data is not an array that starts with the event's name (a string).
 * Release a decoded packet with pg_sio_packet_clear.
 */
int pg_sio_packet_parse(const char *p, size_t n, struct pg_sio_packet *pkt);
void pg_sio_packet_clear(struct pg_sio_packet *pkt);
/* The event name of a decoded EVENT (borrowed from its data). */
const char *pg_sio_event_name(const struct pg_sio_packet *pkt);
/*
 * The Engine.IO message packet "4" + type + "/nsp," (none for "/" or NULL) +
 * json (NULL: none). New string (caller frees) of *len bytes, NULL when out of
 * memory.
 */
char *pg_sio_frame(char type, const char *nsp, const char *json, size_t *len);
/* The ACK without arguments of a decoded packet's ack id: "43[/nsp,]{ack}[]"; as pg_sio_frame. */
char *pg_sio_ack_frame(const char *nsp, const struct pg_sio_packet *pkt, size_t *len);

#endif
