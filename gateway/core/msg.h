/*
 * Encoded frames shared by every session they are queued on, per-session
 * out-queues, and the JSON shapes of message payloads.
 *
 * Ownership: a struct pg_msg is reference counted; whoever queues it takes
 * a reference (pg_outq_push) and the writer drops it once the frame is
 * written (pg_outq_pop), so one encoding of a fanned-out message serves every
 * recipient without a copy. An out-queue belongs to its session (s->q).
 */
#ifndef PG_CORE_MSG_H
#define PG_CORE_MSG_H

#include <stdint.h>
#include <stddef.h>
#include <jansson.h>
#include <libwebsockets.h>

#include "pushgate_bridge.h"


/*
 * One encoded frame, shared by every session it is queued on. buf has
 * LWS_PRE bytes of headroom before the payload so lws can prepend its frame
 * header in place; lws copies whatever it cannot send at once, so the buffer
 * may be reused by the next session immediately.
 */
struct pg_msg {
    uint32_t refs;
    int reply; /* 1: a reply to its session's own request (one queue only), outside the out-queue limits */
    size_t len;
    unsigned char buf[]; /* LWS_PRE + len + 1 (NUL, handy for logs) */
};

struct pg_msg *pg_msg_new(const void *data, size_t len); /* refs = 1 */
struct pg_msg *pg_msg_from_json(json_t *obj);           /* compact encoding; NULL on failure */
void pg_msg_unref(struct pg_msg *m);
/* {"binary": "<base64>"}: how payload bytes that are not UTF-8 reach JSON clients. */
json_t *pg_binary_json(const void *payload, size_t len);
/* A message payload for JSON clients: JSON stays JSON, other UTF-8 becomes a string, anything else binary. */
json_t *pg_payload_json(const void *payload, size_t len);
/* The value of MQTT user property name, or def. */
const char *pg_prop_get(const struct pg_bridge_prop *props, size_t nprops, const char *name, const char *def);
static inline unsigned char *pg_msg_data(struct pg_msg *m)
{
    return m->buf + LWS_PRE;
}

/*
 * Bounded FIFO of message references. The limits bound the messages the
 * session did not ask for (fan-out); replies (m->reply) are counted apart,
 * in replies, and bounded by their sender reading no more requests while
 * too many wait (native flow control, proto/native.c).
 *
 * The ring doubles as messages queue up and, once it has grown past
 * PG_OUTQ_KEEP_SLOTS for a burst, is freed when the queue drains: an idle
 * session holds no more than it did before the burst (max_queue_messages 4000
 * would otherwise leave 32 KB per session that once fell behind, for good).
 */
#define PG_OUTQ_KEEP_SLOTS 64
struct pg_outq {
    struct pg_msg **ring;
    size_t head, count, cap;
    size_t bytes;
    size_t replies, reply_bytes; /* of count and bytes: the replies */
};
/* Takes a new reference on success; PG_ELIMIT when the other messages would exceed a limit. */
int pg_outq_push(struct pg_outq *q, struct pg_msg *m, size_t max_bytes, size_t max_msgs);
struct pg_msg *pg_outq_peek(const struct pg_outq *q);
void pg_outq_pop(struct pg_outq *q); /* drops the head's reference */
void pg_outq_clear(struct pg_outq *q);
/*
 * The messages the session did not ask for (fan-out), without its replies: what the out-queue limits bound, and
 * what says whether the gateway keeps up. A pipelining client's replies are its own backpressure (flow control on
 * its requests), never a sign that the gateway is behind.
 */
static inline size_t pg_outq_fanout_count(const struct pg_outq *q)
{
    return q->count - q->replies;
}
static inline size_t pg_outq_fanout_bytes(const struct pg_outq *q)
{
    return q->bytes - q->reply_bytes;
}

#endif
