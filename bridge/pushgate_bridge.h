/*
 * libpushgate_bridge: the gateway's one MQTT v5 session with the broker.
 *
 * The bridge owns no thread and no event loop. Its owner (the gateway's loop)
 * watches the socket given to on_socket(), calls pg_bridge_io() on readiness,
 * and pg_bridge_tick() every PG_BRIDGE_TICK_MS or so for keepalive,
 * reconnection with backoff and publish timeouts. Every callback runs inside
 * one of those calls, on the owner's thread.
 *
 * Subscriptions are refcounted by topic filter and restored after every
 * reconnect. Each filter carries an MQTT subscription identifier so that the
 * copies the broker sends of a message matching several of our filters (an
 * exact channel and a wildcard) reach the owner once.
 *
 * Subscribes and unsubscribes are queued and go to the broker together, as
 * few SUBSCRIBE/UNSUBSCRIBE packets with many filters each, when the owner
 * calls pg_bridge_flush() once per loop pass (and at the latest on the next
 * pg_bridge_io() or pg_bridge_tick()): a storm of subscriptions costs a few
 * round trips, not one per filter. Publishes are queued too and leave with
 * that flush, after what the owner's pass wrote to its clients. A publish
 * queues the subscription changes made before it first, so the broker still
 * sees subscription changes and publishes in the order they were made.
 */
#ifndef PUSHGATE_BRIDGE_H
#define PUSHGATE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>

#include "pg_common.h"

#define PG_BRIDGE_TICK_MS 100
/* connect_timeout_ms when the owner gives none */
#define PG_BRIDGE_CONNECT_TIMEOUT_MS 5000

typedef struct pg_bridge pg_bridge;

struct pg_bridge_config {
    const char *host;
    int port;
    const char *username; /* NULL: anonymous */
    const char *password;
    const char *client_id;
    int keepalive_s;
    int reconnect_min_ms;
    int reconnect_max_ms;
    /* an attempt whose TCP connect or CONNACK is not through by then is dropped and retried with backoff
       (<= 0: PG_BRIDGE_CONNECT_TIMEOUT_MS). Connecting never blocks; resolving a host name does (getaddrinfo). */
    int connect_timeout_ms;
    int publish_timeout_ms; /* a QoS 1 publish not acknowledged by then fails with PG_ETIMEDOUT */
    const char *will_topic; /* optional retained will (empty payload) */
};

/* A user property of a received message, in arrival order. */
struct pg_bridge_prop {
    const char *name, *value;
};

struct pg_bridge_ops {
    /* Socket to watch changed: fd is the new socket or -1 (disconnected). */
    void (*on_socket)(void *ud, int fd);
    /* The bridge has pending output: watch for writability. */
    void (*want_write)(void *ud);
    /* CONNACK accepted (connected=1) or session lost (connected=0). */
    void (*on_state)(void *ud, int connected);
    /* A message on one of our filters. props/nprops: its v5 user properties. Borrowed for the call. */
    void (*on_message)(void *ud, const char *topic, const void *payload, size_t len, const struct pg_bridge_prop *props,
                       size_t nprops);
    /* level: 0 debug, 1 info, 2 warning, 3 error */
    void (*on_log)(void *ud, int level, const char *msg);
    /* Between two packets of one read (pg_bridge_io): 0 stops reading until the next readiness (the owner paused
       its input). NULL: read on. */
    int (*read_more)(void *ud);
};

/*
 * Result of a publish: 0 acknowledged by the broker; PG_EBUSY connection lost;
 * PG_ETIMEDOUT no PUBACK within publish_timeout_ms; PG_EDENIED PUBACK reason >= 0x80.
 */
typedef void (*pg_bridge_ack_cb)(void *ud, int result);

int pg_bridge_new(const struct pg_bridge_config *cfg, const struct pg_bridge_ops *ops, void *ud, pg_bridge **out);
/* Disconnects cleanly when connected; pending publishes fail with PG_EBUSY. */
void pg_bridge_free(pg_bridge *b);

/* Start connecting (non-fatal if the broker is down: the bridge keeps retrying with backoff). The TCP connect
   runs in the background: the socket is handed to on_socket() at once and want_write() asks for writability. */
void pg_bridge_start(pg_bridge *b);
int pg_bridge_connected(const pg_bridge *b);
/* Connected, and every subscription that existed when the connection came up (or was made by on_state) has been
   answered by a SUBACK: from then on a message on a granted filter reaches this process. A refused filter counts
   as answered (it would never be granted; the refusal is logged as an error). */
int pg_bridge_ready(const pg_bridge *b);

/*
 * Socket readiness. Readable: reads packets until the socket has no more, at
 * most PG_BRIDGE_READ_BATCH, or until ops.read_more says stop: the messages
 * that arrived together are handled in one loop pass, so what they queue for
 * clients leaves together (libmosquitto's mosquitto_loop_read() alone reads
 * one packet when no QoS 1 message is in flight).
 */
#define PG_BRIDGE_READ_BATCH 64
void pg_bridge_io(pg_bridge *b, int readable, int writable);
int pg_bridge_want_write(const pg_bridge *b);
/* Keepalive, reconnect, publish timeouts; also flushes (pg_bridge_flush). */
void pg_bridge_tick(pg_bridge *b);
/*
 * Send what the pass queued: the subscribes and unsubscribes made since the
 * last flush, batched, and the publishes. Call it once per loop pass, after
 * the pass's callbacks (and after the pass's output to clients) and before
 * the loop waits again: a publish or subscription waits for nothing but the
 * end of its pass (at the latest, pg_bridge_tick sends it). Cheap when
 * nothing is queued.
 */
void pg_bridge_flush(pg_bridge *b);

/*
 * QoS 1 publish, queued until the owner's next pg_bridge_flush(). props:
 * NULL-terminated name/value pairs of user properties (may be NULL). cb
 * (optional) is called exactly once, never from inside this call. Returns
 * PG_EBUSY at once when disconnected, PG_EINVAL for a bad topic.
 */
int pg_bridge_publish(pg_bridge *b, const char *topic, const void *payload, size_t len, const char *const *props,
                      int retain, pg_bridge_ack_cb cb, void *cb_ud);
/*
 * The same with an MQTT v5 message expiry interval (0: none): the broker drops
 * the message, retained copy included, expiry_s seconds after the publish.
 */
int pg_bridge_publish_expiring(pg_bridge *b, const char *topic, const void *payload, size_t len,
                               const char *const *props, int retain, uint32_t expiry_s, pg_bridge_ack_cb cb,
                               void *cb_ud);
/* Forget the callback of a publish still in flight (its owner went away). */
void pg_bridge_forget(pg_bridge *b, void *cb_ud);

/*
 * Refcounted subscribe / unsubscribe of a topic filter (QoS 1), sent at the
 * next flush. A filter is live once the broker granted it (SUBACK: each filter
 * of a batch has its own grant); after a reconnect it is re-subscribed and
 * live again at its next SUBACK. Subscribing and dropping a filter within one
 * pass sends nothing; dropping and subscribing it again sends UNSUBSCRIBE
 * before SUBSCRIBE.
 */
int pg_bridge_subscribe(pg_bridge *b, const char *filter);
/*
 * The same with subscription options, fixed by the filter's first subscribe:
 * a later subscribe of the filter with other options is refused (PG_EINVAL),
 * as are unknown bits.
 *
 * PG_BRIDGE_SUB_NO_LOCAL: MQTT v5 No Local. The broker does not send this
 * session's own publishes back on the filter (other clients' still come).
 * For an owner that delivers its own publishes itself; not for a shared
 * subscription ($share/...), where MQTT v5 makes it a protocol error.
 */
#define PG_BRIDGE_SUB_NO_LOCAL 1u
int pg_bridge_subscribe_opts(pg_bridge *b, const char *filter, unsigned opts);
/*
 * Is filter (already subscribed) live at the broker? 0: yes. 1: not yet, and
 * cb(ud, result) will be called once: 0 granted (also after a reconnect),
 * PG_EDENIED refused, PG_ETIMEDOUT not granted within publish_timeout_ms,
 * PG_EBUSY the filter was dropped or the bridge freed.
 */
int pg_bridge_subscribe_wait(pg_bridge *b, const char *filter, pg_bridge_ack_cb cb, void *ud);
int pg_bridge_unsubscribe(pg_bridge *b, const char *filter);

#endif
