/*
 * Waiting for the broker on behalf of a requester that may be gone by then,
 * and what the broker's answer means to a client.
 *
 * A publish or subscribe is acknowledged later (QoS 1 PUBACK, SUBACK), when
 * the HTTP request or the session that asked may have left. A pending entry
 * therefore holds no pointer to its requester, only its serial: parked HTTP
 * requests and sessions are looked up by serial (pg_http_find,
 * pg_session_find), and find nothing once they are gone.
 *
 * An entry is the first member of its caller's own struct, which adds what
 * the answer needs:
 *
 *     struct my_ack { struct pg_pending p; char *room; };
 *     struct my_ack *a = pg_pending_new(gw, s->serial, sizeof *a, my_done, my_drop);
 *     rc = pg_bridge_publish(..., pg_pending_ack, a);   // rc != 0: pg_pending_ack(a, rc) or pg_pending_free(&a->p)
 *
 * One entry may wait for several acknowledgements (a Pusher trigger on many
 * channels): pg_pending_expect() before each further request, and the entry
 * completes with the last acknowledgement, carrying the first failure.
 *
 * State: none of its own; each entry is owned by whoever holds an
 * acknowledgement still due (the bridge, or the issuer before it issued).
 * Who may call: anything on the loop thread.
 */
#ifndef PG_CORE_PENDING_H
#define PG_CORE_PENDING_H

#include <stddef.h>
#include <stdint.h>

struct pg_gw;
struct pg_pending;

/* Runs once, when no acknowledgement is due any more: result 0 or the first failure. */
typedef void (*pg_pending_fn)(struct pg_pending *p, int result);
/* Frees what the embedding struct owns (not the struct itself). */
typedef void (*pg_pending_drop_fn)(struct pg_pending *p);

struct pg_pending {
    struct pg_gw *gw;
    uint64_t serial; /* the requester: a parked HTTP request or a session */
    int due;         /* acknowledgements still to come */
    int result;      /* 0, or the first failure so far */
    pg_pending_fn done;
    pg_pending_drop_fn drop; /* NULL: the struct owns nothing */
};

/*
 * A zeroed entry of size bytes (a struct that starts with struct pg_pending)
 * for the requester serial, expecting one acknowledgement; NULL when out of
 * memory.
 */
void *pg_pending_new(struct pg_gw *gw, uint64_t serial, size_t size, pg_pending_fn done, pg_pending_drop_fn drop);
/* One more acknowledgement is due: call it before each further request that acknowledges to this entry. */
void pg_pending_expect(struct pg_pending *p);
/*
 * A pg_bridge_ack_cb (ud: the entry): counts one acknowledgement with its
 * result; the last one due calls done, then drop, and frees the entry.
 */
void pg_pending_ack(void *ud, int result);
/* Frees an entry none of whose requests was issued: done does not run, drop does. */
void pg_pending_free(struct pg_pending *p);

/*
 * How a caller words the outcomes of a broker request (static strings).
 * The status says who failed: 403 the broker refused, 504 it did not answer
 * in time, 503 it is unreachable, 500 the request could not be made.
 */
struct pg_broker_words {
    const char *refused;     /* 403: PG_EDENIED */
    const char *late;        /* 504: PG_ETIMEDOUT */
    const char *unavailable; /* 503: PG_EBUSY (and every other failure when failed is NULL) */
    const char *failed;      /* 500: any other failure (out of memory, invalid request); NULL: counted as 503 */
};

/*
 * The HTTP-like status of a broker request's result: 200 for 0, otherwise
 * the failure's status with its words in *message.
 */
int pg_broker_status(int result, const struct pg_broker_words *w, const char **message);

#endif
