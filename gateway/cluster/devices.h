/*
 * MQTT device presence as the broker plugin reports it (devices.c).
 *
 * The broker plugin keeps a retained {root}/{app}/d/{client_id} message
 * {"id","user_id","connected_at"} per online device (emptied when it leaves);
 * every node subscribes and keeps the same table, answered by
 * GET /apps/{id}/devices.
 *
 * Owns struct pg_devices (opaque, gw->devices): that table, created at the
 * first broker connect. Nothing outside devices.c reads it.
 *
 * Who calls what: server.c connected/free; the broker message dispatch
 * pg_devices_on_record; the HTTP API pg_devices_list; whoever publishes for a
 * client pg_devices_channel_reserved.
 */
#ifndef PG_CLUSTER_DEVICES_H
#define PG_CLUSTER_DEVICES_H

#include <stddef.h>
#include <jansson.h>

struct pg_gw;
struct pg_devices;

/* On every broker (re)connect: subscribe once; forget what the previous connection reported (retained re-sent). */
void pg_devices_connected(struct pg_gw *gw);
/*
 * A message on {root}/{app}/d/{id} (app: app_len bytes, not empty; topic: the
 * whole topic, for the log): the device's record, or empty when it left. An
 * id that is empty or more than one level is ignored.
 */
void pg_devices_on_record(struct pg_gw *gw, const char *app, size_t app_len, const char *id, const char *topic,
                          const void *payload, size_t len);
/* New reference: [{"id","user_id","connected_at"}] of app, ordered by client id; NULL on allocation failure. */
json_t *pg_devices_list(struct pg_gw *gw, const char *app);
/* 1 when channel is the device channel: only the broker plugin may publish there (clients get 403). */
int pg_devices_channel_reserved(struct pg_gw *gw, const char *channel);
void pg_devices_free(struct pg_gw *gw);

#endif
