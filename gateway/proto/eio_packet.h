/*
 * Engine.IO 4 packets as text: the types a client may send, the answer to
 * its ping, the upgrade probe, the open packet, and how a polling body
 * carries several packets. Pure functions (no session, no I/O, no state),
 * called by proto/eio.c and proto/eio_ws.c; tests/unit/test_eio.c tests them
 * alone.
 *
 * Wire format. A packet is one type character and its data: "0" open, "1"
 * close, "2" ping, "3" pong, "4" message, "5" upgrade, "6" noop. A polling
 * body carries packets separated by the record separator 0x1e
 * ("4a\x1e4b"); an empty piece (two separators in a row, a leading or a
 * trailing one, an empty body) is a packet too, and a malformed one. Binary
 * packets ("b…", base64) are not spoken here. Upgrading to a WebSocket, the
 * client sends "2probe" on it, gets "3probe", then sends "5".
 */
#ifndef PG_PROTO_EIO_PACKET_H
#define PG_PROTO_EIO_PACKET_H

#include <stddef.h>
#include <stdint.h>

enum pg_eio_type {
    PG_EIO_OPEN = '0',
    PG_EIO_CLOSE = '1',
    PG_EIO_PING = '2',
    PG_EIO_PONG = '3',
    PG_EIO_MESSAGE = '4',
    PG_EIO_UPGRADE = '5',
    PG_EIO_NOOP = '6',
};

/* The record separator between the packets of a polling body. */
#define PG_EIO_SEPARATOR '\x1e'
/* The longest ping a client may send (its data is echoed in the pong). */
#define PG_EIO_PING_MAX 16

/*
 * The type of a packet a client sent on an open session: PG_EIO_CLOSE, _PING,
 * _PONG, _MESSAGE or _NOOP; -1 for an empty packet or one a client may not
 * send there (open, upgrade outside a probe, binary, anything else).
 */
int pg_eio_client_type(const char *p, size_t n);
/*
 * The pong that answers the client's ping p (n bytes, "2" first): the same
 * bytes with "3" first, written to out. -1 when the ping is over
 * PG_EIO_PING_MAX bytes or is not UTF-8 (it is echoed in text, and polling
 * bodies reach here unchecked).
 */
int pg_eio_pong(const char *p, size_t n, char out[PG_EIO_PING_MAX]);
/*
 * A packet on a WebSocket that probes a polling session's upgrade:
 * PG_EIO_PING for "2probe", PG_EIO_UPGRADE for "5", -1 for anything else.
 */
int pg_eio_probe_type(const char *p, size_t n);
/*
 * The open packet 0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"},
 * upgrades ["websocket"] when can_upgrade, [] otherwise. New string (caller
 * frees), NULL when out of memory.
 */
char *pg_eio_open_text(const char *sid, int64_t ping_interval_ms, int64_t ping_timeout_ms, int64_t max_payload,
                       int can_upgrade);

/*
 * The packets of a polling body, in order: every piece between separators,
 * empty ones included (n separators: n + 1 packets). The packets are
 * borrowed from the body.
 *
 *     struct pg_eio_split it;
 *     pg_eio_split_init(&it, body, len);
 *     while (pg_eio_split_next(&it, &p, &n)) ...
 */
struct pg_eio_split {
    const char *p, *end;
    int done;
};
void pg_eio_split_init(struct pg_eio_split *it, const char *body, size_t len);
/* 1 with the next packet in *packet, *len; 0 when there are no more. */
int pg_eio_split_next(struct pg_eio_split *it, const char **packet, size_t *len);

#endif
