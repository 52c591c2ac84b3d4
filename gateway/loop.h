/*
 * The event loop of a gateway process (loop.c): libuv (event_loop = uv), libev (ev) or lws's own poll() (poll).
 */
#ifndef PG_LOOP_H
#define PG_LOOP_H

#include <ev.h>
#include <stdint.h>
#include <libwebsockets.h>
#include <uv.h>

struct pg_gw;

struct pg_loop {
    int uv;
    int ev;
    int broken; /* lws' context is left to the exit: its teardown would crash (pg_server_run) */
    uv_loop_t uv_loop;
    uv_prepare_t flush; /* runs once per libuv iteration, just before it waits */
    struct ev_loop *ev_loop;
    ev_prepare ev_flush; /* the same, once per libev iteration (before it polls) */
    void *foreign[1];
    /* how long the loop waited in epoll_wait (libev: counted around it; libuv counts its own) */
    uint64_t ev_idle_ns, ev_wait_from_ns;
    uint64_t sample_ns, sample_idle_ns; /* the last pg_loop_busy() */
};

/* Readies l for kind ("uv", "ev" or "poll") and points info at it (foreign loop and option): before
   lws_create_context(). 0, or -1 (logged) when the loop cannot be made. */
int pg_loop_init(struct pg_loop *l, const char *kind, struct lws_context_creation_info *info);

/* Runs passes until gw->done. */
void pg_loop_run(struct pg_loop *l, struct pg_gw *gw);

/* After lws_context_destroy(*pctx): finishes lws' teardown on the loop and frees the loop. */
void pg_loop_free(struct pg_loop *l, struct lws_context **pctx);

/*
 * The share of the time since the previous call that the loop spent working (not waiting for events), in
 * permille; -1 on the first call and for "poll", whose wait lws hides inside lws_service().
 */
int pg_loop_busy(struct pg_loop *l);

/* "uv", "ev" or "poll", for the start-up log line */
const char *pg_loop_name(const struct pg_loop *l);

#endif
