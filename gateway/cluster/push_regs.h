/*
 * Push registrations, cluster-wide, and who a push to a user reaches
 * (push_regs.c).
 *
 * A backend registers a (user, connectionId) pair with notification-socket.io's
 * REST API (http/push_api.c) on any node, and the browser then presents the
 * connectionId to a socket.io session on any node (proto/sio.c). So the
 * registration travels as a retained {root}/_ctl/{app}/reg/{connectionId}
 * message {"user":…,"exp":<ms, wall clock>} with an MQTT message expiry, and
 * every node keeps a copy of what the broker holds. "exp" is checked on every
 * lookup; a timer sweeps what expired, since the broker drops expired
 * retained messages without telling subscribers.
 *
 * Owns struct pg_push_regs (opaque, gw->push_regs): the table of
 * registrations by app and connection id, and the sweep timer. Nothing
 * outside push_regs.c reads it. Every function accepts a gateway whose table
 * was never set up (pg_push_regs_init not run, or failed): it then knows no
 * registration.
 *
 * Also the per-user half of the node snapshot: this node's live members of
 * per-user channels ("#server-to-user-{id}"), published under the snapshot key
 * "users" (by the cluster listener dispatch.c registers), and read back
 * from the other nodes' snapshots to count a push's recipients.
 *
 * Who calls what: server.c init and free (before the lws context goes: the
 * timer lives in it); the broker message dispatch pg_push_regs_on_message and
 * the snapshot's pg_push_regs_local_users; the push API pg_push_regs_set (its
 * own acknowledged registration) and pg_push_regs_recipients; socket.io's
 * register pg_push_regs_user; anyone pg_push_regs_id_valid.
 */
#ifndef PG_CLUSTER_PUSH_REGS_H
#define PG_CLUSTER_PUSH_REGS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct pg_gw;
struct pg_app;
struct pg_push_regs;

/* The longest user or connection id, in bytes. */
#define PG_PUSH_ID_MAX 128
/* The node snapshot's member that pg_push_regs_local_users fills and pg_push_regs_recipients reads. */
#define PG_PUSH_REGS_SNAPSHOT_KEY "users"

/* Set up gw->push_regs, subscribe {root}/_ctl/+/reg/+ and start the sweep. 0, PG_ENOMEM or the bridge's error. */
int pg_push_regs_init(struct pg_gw *gw);
void pg_push_regs_free(struct pg_gw *gw);
/* 1 when id may be a user or connection id: 1..128 bytes of UTF-8, no '/', '+', '#', control characters. */
int pg_push_regs_id_valid(const char *id);
/* A message on {root}/_ctl/{app}/reg/{conn} (app: app_len bytes): a registration, or empty when cleared. */
void pg_push_regs_on_message(struct pg_gw *gw, const char *app, size_t app_len, const char *conn, const void *payload,
                             size_t len);
/* Keep conn registered for user in app until exp_ms (wall clock), before the broker's copy arrives. */
void pg_push_regs_set(struct pg_gw *gw, const char *app, const char *conn, const char *user, int64_t exp_ms);
/* The user a live registration of connection id conn in app names; NULL (unknown or expired). Borrowed. */
const char *pg_push_regs_user(struct pg_gw *gw, const char *app, const char *conn);
/* This node's live members of per-user channels: {app: {user: sessions}} (the snapshot's "users"; new reference). */
json_t *pg_push_regs_local_users(struct pg_gw *gw);
/* Live sessions listening to user's channel in app over the cluster: this node's, and the other nodes' snapshots. */
uint64_t pg_push_regs_recipients(struct pg_gw *gw, struct pg_app *app, const char *user);

#endif
