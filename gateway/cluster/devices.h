/*
 * MQTT device presence as the broker plugin reports it.
 */
#ifndef PG_CLUSTER_DEVICES_H
#define PG_CLUSTER_DEVICES_H

#include <stddef.h>
#include <jansson.h>

struct pg_gw;

/*
 * devices.c: MQTT device presence. The broker plugin keeps a retained
 * {root}/{app}/d/{client_id} message {"id","user_id","connected_at"} per
 * online device (emptied when it leaves); every node subscribes and keeps the
 * same table, answered by GET /apps/{id}/devices.
 */
/* On every broker (re)connect: subscribe once; forget what the previous connection reported (retained re-sent). */
void pg_devices_connected(struct pg_gw *gw);
int pg_devices_on_message(struct pg_gw *gw, const char *topic, const void *payload, size_t len); /* 1: handled */
/* New reference: [{"id","user_id","connected_at"}] of app, ordered by client id; NULL on allocation failure. */
json_t *pg_devices_list(struct pg_gw *gw, const char *app);
/* 1 when channel is the device channel: only the broker plugin may publish there (clients get 403). */
int pg_devices_channel_reserved(struct pg_gw *gw, const char *channel);
void pg_devices_free(struct pg_gw *gw);

#endif
