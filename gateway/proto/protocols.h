/*
 * Every wire protocol the gateway speaks, in one list: what reports per
 * protocol (the pushgate_sessions metric, the dashboard's by_protocol) lists
 * each of them, zeros included, in this order.
 *
 * Adding a protocol: its ops table (core/session.h), one entry here (and
 * PG_NPROTOCOLS), its
 * WebSocket row in http/routes.c.
 */
#ifndef PG_PROTO_PROTOCOLS_H
#define PG_PROTO_PROTOCOLS_H

#include <stddef.h>

struct pg_proto;

#define PG_NPROTOCOLS 3 /* entries of pg_protocols (checked where it is defined) */

extern const struct pg_proto *const pg_protocols[PG_NPROTOCOLS];

/* The index of p in pg_protocols, or PG_NPROTOCOLS when it is not listed. */
size_t pg_protocol_index(const struct pg_proto *p);

#endif
