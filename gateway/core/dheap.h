/*
 * Deadline heap: per-session deadlines that differ from one entry to the
 * next (a token's expiry), kept out of lws' sorted timer list.
 *
 * Why a heap: lws_sul_schedule() walks its sorted list from the head on each
 * insert, so 10,000 sessions holding a timer make every arm a walk over most
 * of them. The deadline FIFOs of core/dueq.h are O(1) but need one constant
 * interval per queue; a token's remaining life is whatever its "exp" says,
 * so the queue would be out of order, and a queue per rounded interval has
 * no bound on how many queues there are. A binary min-heap keyed on the
 * deadline is the simplest structure that stays O(log n) for insert, move
 * and removal (each entry remembers its slot, so removal needs no search)
 * and O(1) to look at the earliest; the chosen libraries have none (uthash
 * has hashes and lists only).
 *
 * Precision: the loop's tick (server.c, every PG_BRIDGE_TICK_MS) pops what
 * is due, so a deadline is met at the first tick after it, up to one tick
 * (100 ms) late, as with core/dueq.h.
 *
 * Invariants: an entry is on at most one heap; at == 0 exactly while it is
 * on none, otherwise h->v[at - 1] == the entry; every parent's due_ms is <=
 * its children's. A popped entry is on no heap until set again; removing an
 * entry that is on none does nothing, so an owner removes its entry
 * unconditionally before freeing it.
 *
 * Memory: struct pg_dl is intrusive (16 bytes, in the owner's session
 * struct). The heap owns its array of borrowed entry pointers: it grows by
 * doubling, and is freed when the heap empties, so a heap whose entries are
 * all removed holds no memory (nothing to free at exit once every session is
 * released). Loop thread only.
 */
#ifndef PG_CORE_DHEAP_H
#define PG_CORE_DHEAP_H

#include <stddef.h>
#include <stdint.h>

struct pg_dl {
    int64_t due_ms; /* monotonic deadline (pg_mono_ms()); valid while on a heap */
    size_t at;      /* 1 + its index in the heap's array; 0: on none */
};

struct pg_dheap {
    struct pg_dl **v; /* owned array of borrowed entries, v[0] the earliest; NULL while empty */
    size_t n, cap;
};

/*
 * Puts e on h with deadline due_ms, or moves it there when it is on h already
 * (a move never allocates). 0, or PG_ENOMEM when the array cannot grow (e is
 * then on no heap).
 */
int pg_dheap_set(struct pg_dheap *h, struct pg_dl *e, int64_t due_ms);

/* Takes e off h; nothing when it is on none. e must be on h or on none. */
void pg_dheap_remove(struct pg_dheap *h, struct pg_dl *e);

/* The earliest entry of h, taken off it, when its deadline is <= now_ms; NULL when none is due or h is empty. */
struct pg_dl *pg_dheap_pop(struct pg_dheap *h, int64_t now_ms);

/* 1 when e is on a heap. */
static inline int pg_dl_queued(const struct pg_dl *e)
{
    return e->at != 0;
}

#endif
