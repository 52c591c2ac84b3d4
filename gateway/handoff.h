/*
 * Hand-off channels: how one worker passes an accepted connection to a
 * sibling (gateway/workers.c runs the workers, gateway/listen.c decides
 * which connection goes where).
 *
 * Why: an Engine.IO long-polling session lives in the worker that answered
 * its handshake, but its later requests come on new connections the kernel
 * spreads over every worker (SO_REUSEPORT). The worker that accepted such a
 * connection passes the descriptor, unread, to the worker its sid names.
 *
 * One channel per worker: a SOCK_DGRAM socketpair made by the parent before
 * the first fork. Worker i reads its channel's receiving end; every other
 * worker holds its sending end. The parent keeps both ends of every channel
 * for the lifetime of the gateway, so a restarted worker i inherits the
 * receiving end its siblings already send to, and nothing but the gateway's
 * own processes can reach a channel (no name in any namespace).
 *
 * Wire format: one datagram per connection, one byte ("h") carrying the
 * descriptor as SCM_RIGHTS. The sender closes its copy once it is sent; the
 * connection is the receiver's from then on.
 *
 * Liveness: a page shared by the parent and the workers (MAP_SHARED) holds
 * one flag per worker, written by the parent only: set when it starts worker
 * i, cleared when it reaps it. Nothing is sent to a worker not running, so
 * no connection waits in a channel for a restart; one sent just before its
 * worker died is read by the restarted worker, which answers it (its
 * sessions are gone: 400 Session ID unknown), or closed with the channel
 * when the gateway stops.
 */
#ifndef PG_HANDOFF_H
#define PG_HANDOFF_H

struct pg_handoff;

/* In the parent, before the first fork: the channels of n workers and their flags. NULL (logged) on failure. */
struct pg_handoff *pg_handoff_new(int n);
/* In the parent: worker i runs (after its fork) / has ended (once reaped). */
void pg_handoff_started(struct pg_handoff *h, int i);
void pg_handoff_ended(struct pg_handoff *h, int i);
/*
 * In worker i, right after the fork: closes the ends it does not use (the
 * other workers' receiving ends, its own sending end). h stays owned by the
 * worker, which frees it after the server has run.
 */
void pg_handoff_enter(struct pg_handoff *h, int i);
/* This worker's receiving end (borrowed: lws watches a dup() of it), or -1 in the parent. */
int pg_handoff_fd(const struct pg_handoff *h);
/*
 * Passes fd to worker i: 0 when sent (the caller closes its copy), or a negative PG_E* error and fd stays the
 * caller's: PG_ENOTFOUND (no such worker, this one, or not running), PG_EBUSY (its channel is full), PG_EIO.
 */
int pg_handoff_send(struct pg_handoff *h, int i, int fd);
/* A connection a sibling sent (owned by the caller, close-on-exec), PG_EBUSY when none waits, or PG_EIO. */
int pg_handoff_recv(struct pg_handoff *h);
/* Closes what this process holds of the channels and frees h; NULL is ignored. */
void pg_handoff_free(struct pg_handoff *h);

#endif
