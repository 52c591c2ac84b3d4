/*
 * Deadline FIFOs: per-connection timeouts whose interval is the same for
 * every entry of a queue (a configured ping interval, a pong timeout, a
 * handshake deadline), kept out of lws' sorted timer list.
 *
 * Why: lws_sul_schedule() and lws_set_timeout() insert into one sorted list
 * per thread, walking it from the head; a constant interval puts every new
 * deadline last, so with 10,000 sessions each holding such a timer every
 * arm or re-arm walks 10,000 entries. Here an entry joins a queue's tail with
 * since_ms = now; since now only grows and the interval is the queue's
 * constant, the queue stays in deadline order by appending alone. Starting,
 * restarting (move to the tail) and stopping are O(1); the loop's tick
 * (server.c, every PG_BRIDGE_TICK_MS) pops the due entries from the head and
 * stops at the first that is not due, so a pass costs O(due + 1).
 *
 * Precision: a deadline is met at the first tick after it, up to
 * PG_BRIDGE_TICK_MS (100 ms) late. Users whose interval may be shorter than a
 * second say how they live with that (proto/eio.c pops its pings a tick early).
 *
 * Invariants: an entry is on at most one queue (pg_due_start() takes it off
 * the one it was on); every queue is in since_ms order, so callers only ever
 * append with the current pg_mono_ms(). A popped entry is off every queue
 * until started again; stopping an entry that is on none does nothing, so an
 * owner stops its entries unconditionally before freeing them.
 *
 * Memory: struct pg_due is intrusive (32 bytes on 64-bit, in the owner's
 * session struct); struct pg_dueq is a list head in struct pg_gw. Loop thread
 * only.
 */
#ifndef PG_CORE_DUEQ_H
#define PG_CORE_DUEQ_H

#include <stdint.h>
#include <libwebsockets.h>

struct pg_due {
    lws_dll2_t link;  /* in one struct pg_dueq, or detached */
    int64_t since_ms; /* monotonic: when it joined its queue (valid while on one) */
};

struct pg_dueq {
    lws_dll2_owner_t list; /* oldest since_ms first; zeroed is empty */
};

/* (Re)starts e's clock: e leaves the queue it was on and joins q's tail with since_ms = now_ms (pg_mono_ms()). */
static inline void pg_due_start(struct pg_dueq *q, struct pg_due *e, int64_t now_ms)
{
    lws_dll2_remove(&e->link);
    e->since_ms = now_ms;
    lws_dll2_add_tail(&e->link, &q->list);
}

/* Takes e off its queue; nothing when it is on none. */
static inline void pg_due_stop(struct pg_due *e)
{
    lws_dll2_remove(&e->link);
}

/* 1 when e is on a queue. */
static inline int pg_due_queued(const struct pg_due *e)
{
    return !lws_dll2_is_detached(&e->link);
}

/*
 * The head of q, taken off it, when it has been on q for after_ms or more at
 * now_ms; NULL when the head is not due (nor anything behind it) or q is
 * empty. after_ms is the queue's constant interval.
 */
static inline struct pg_due *pg_dueq_pop(struct pg_dueq *q, int64_t now_ms, int64_t after_ms)
{
    lws_dll2_t *d = lws_dll2_get_head(&q->list);
    if (!d)
        return NULL;
    struct pg_due *e = lws_container_of(d, struct pg_due, link);
    if (now_ms - e->since_ms < after_ms)
        return NULL;
    lws_dll2_remove(d);
    return e;
}

#endif
