/*
 * The event loop of a gateway process (loop.c): libuv (event_loop = uv), libev (ev) or lws's own poll() (poll).
 */
#ifndef PG_LOOP_H
#define PG_LOOP_H

#include <ev.h>
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
};

/* Readies l for kind ("uv", "ev" or "poll") and points info at it (foreign loop and option): before
   lws_create_context(). 0, or -1 (logged) when the loop cannot be made. */
int pg_loop_init(struct pg_loop *l, const char *kind, struct lws_context_creation_info *info);

/* Runs passes until gw->done. */
void pg_loop_run(struct pg_loop *l, struct pg_gw *gw);

/* After lws_context_destroy(*pctx): finishes lws' teardown on the loop and frees the loop. */
void pg_loop_free(struct pg_loop *l, struct lws_context **pctx);

/* "uv", "ev" or "poll", for the start-up log line */
const char *pg_loop_name(const struct pg_loop *l);

#endif
