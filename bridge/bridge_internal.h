/*
 * Shared between the files of libpushgate_bridge; not part of its API (pushgate_bridge.h).
 *
 * One struct pg_bridge per session with the broker. Its files, by job:
 *
 *   bridge.c    the session: create/free, the libmosquitto client's setup and callbacks table, connecting
 *               (non-blocking, connect timeout, jittered backoff), socket I/O and ticks, losing the session,
 *               logging. Owns mosq, cfg, ops/ud, fd, connected, coming_up, started, next_attempt,
 *               connect_deadline, backoff_ms, last_misc, max_packet.
 *   subs.c      the subscription table: refcounted filters with their subscription identifiers, SUBSCRIBE and
 *               its SUBACK, owners waiting for a grant, re-subscribing after a reconnect and counting those
 *               SUBACKs towards readiness; SUBSCRIBEs and UNSUBSCRIBEs queued within a loop pass and sent in
 *               batches, SUBSCRIBEs in flight keyed by packet id. Owns subs, subq, unsubq, inflight,
 *               waiting, next_sub_id, restoring.
 *   messages.c  messages both ways: QoS 1 publishes awaiting their PUBACK, and received messages with the
 *               suppression of the broker's per-subscription copies. Owns pending and group.
 *
 * Threading: none of its own, no locks. Everything runs on the owner's thread inside a public call: libmosquitto
 * calls the callbacks below only from within the libmosquitto calls those make (mostly mosquitto_loop_read from
 * pg_bridge_io), never from a thread of its own (mosquitto_loop_start is never used).
 *
 * Invariants:
 *  - fd >= 0 exactly while a socket is handed to the owner (on_socket); connected implies fd >= 0.
 *  - connect_deadline is set only while an attempt is under way (socket, no CONNACK yet).
 *  - restoring counts the subscriptions whose s->restoring is set; it is 0 whenever not connected.
 *  - an owner's callback (publish ack, subscription waiter) runs after the bridge has updated its own state for
 *    it (entry removed, waiter array detached), so the callback may call back into the bridge, except from
 *    pg_bridge_free.
 */
#ifndef PUSHGATE_BRIDGE_INTERNAL_H
#define PUSHGATE_BRIDGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>

#include "pushgate_bridge.h"

struct pending; /* messages.c: a publish awaiting its PUBACK */
struct sub;     /* subs.c: one subscribed filter */
struct inflight; /* subs.c: a SUBSCRIBE awaiting its SUBACK */
struct unsubq;   /* subs.c: filters whose UNSUBSCRIBE waits for the next flush */

/* filters in one SUBSCRIBE or UNSUBSCRIBE at most (a SUBACK then answers up to this many) */
#define PG_BRIDGE_MAX_FILTERS_PER_PACKET 500
/* bytes of one SUBSCRIBE or UNSUBSCRIBE at most, unless the broker's CONNACK announces a smaller Maximum Packet
   Size (a single filter larger than that still goes alone, and libmosquitto refuses it as today) */
#define PG_BRIDGE_MAX_PACKET_BYTES (64 * 1024)

/*
 * Mosquitto sends one copy of a message per matching subscription, back to
 * back, each carrying that subscription's identifier. The copies of one
 * message form a "group": same topic, payload and properties, pairwise
 * different identifiers. Only the group's first copy is delivered (the owner
 * finds every local recipient itself), so overlapping filters never cause a
 * duplicate, and no copy is judged against a subscription table that may have
 * changed since the broker routed it.
 */
#define PG_BRIDGE_GROUP_IDS 32
struct copy_group {
    char *topic;
    uint32_t hash; /* of payload and user properties */
    size_t len;
    uint32_t ids[PG_BRIDGE_GROUP_IDS];
    size_t nids;
};

struct pg_bridge {
    struct mosquitto *mosq;
    struct pg_bridge_config cfg; /* strings owned (copied) */
    struct pg_bridge_ops ops;
    void *ud;
    int fd;                 /* socket currently handed to the owner, -1 if none */
    int connected;          /* CONNACK success seen and not lost since */
    size_t restoring;       /* subscriptions of the connection's start still awaiting their SUBACK */
    int coming_up;          /* inside on_state(1): its subscriptions are not counted yet */
    int started;
    int64_t next_attempt;   /* monotonic ms of the next connect attempt, 0 = none scheduled */
    /* monotonic ms by which the attempt under way must have its CONNACK, 0 = none (connected or no socket) */
    int64_t connect_deadline;
    int backoff_ms;
    int64_t last_misc;
    uint32_t max_packet;    /* the broker's Maximum Packet Size from its CONNACK, 0 = none announced */
    uint32_t next_sub_id;
    struct pending *pending;
    struct sub *subs;
    struct sub *subq;         /* filters whose SUBSCRIBE waits for the next flush, in request order */
    struct sub *waiting;      /* filters with owners waiting for their SUBACK (pg_bridge_subscribe_wait) */
    struct unsubq *unsubq;    /* NULL when empty */
    struct inflight *inflight; /* SUBSCRIBEs awaiting their SUBACK, by mid */
    struct copy_group group;
};

/* bridge.c */

/* level: 0 debug, 1 info, 2 warning, 3 error; to ops.on_log, if any. */
void pg__bridge_log(pg_bridge *b, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* subs.c */

/* libmosquitto's SUBACK callback. */
void pg__bridge_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                             const mosquitto_property *props);
/* The connection came up: queue a SUBSCRIBE for every filter of the table (sent by the next flush). */
void pg__bridge_subs_resubscribe(pg_bridge *b);
/* After on_state(1): the filters queued or in flight now are the ones readiness waits for. */
void pg__bridge_subs_count_restoring(pg_bridge *b);
/* Send what is queued: UNSUBSCRIBEs, then SUBSCRIBEs, many filters a packet (libmosquitto's queue: the caller
   writes it or asks for writability). Nothing when disconnected. */
void pg__bridge_subs_flush(pg_bridge *b);
/* bridge.c: writes what libmosquitto queued (writable: the socket said it is, write even if nothing is queued);
   asks the owner for writability when the socket took less */
void pg__bridge_write(pg_bridge *b, int writable);
/* The session is gone: no filter is live or in flight (waiters keep waiting). */
void pg__bridge_subs_lost(pg_bridge *b);
/* Time out the waiters whose deadline passed. */
void pg__bridge_subs_expire(pg_bridge *b, int64_t now);
/* pg_bridge_free: waiters hear PG_EBUSY, then the table is freed. */
void pg__bridge_subs_free(pg_bridge *b);

/* messages.c */

/* libmosquitto's PUBACK and message callbacks. */
void pg__bridge_on_publish(struct mosquitto *mosq, void *obj, int mid, int reason, const mosquitto_property *props);
void pg__bridge_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                           const mosquitto_property *props);
/* Every publish in flight fails with PG_EBUSY (session lost or bridge freed). */
void pg__bridge_fail_pending(pg_bridge *b);
/* Publishes whose PUBACK is overdue fail with PG_ETIMEDOUT. */
void pg__bridge_expire_pending(pg_bridge *b, int64_t now);
/* The identifiers a copy may carry changed: a message that repeats the last one is not a copy of it. */
void pg__bridge_group_reset(pg_bridge *b);

#endif
