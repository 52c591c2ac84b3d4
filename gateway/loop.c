/*
 * The event loop of a gateway process (event_loop). "uv": the lws context joins a libuv loop of ours as a foreign
 * loop; libuv waits with epoll, so a wakeup costs what the ready sockets cost, where lws's own poll() walks every
 * open socket each pass (most of the CPU at 10,000 connections: bench/README.md). "ev": the same on a libev loop.
 * lws changes a socket's events several times per HTTP request (and per accepted connection); libuv's
 * uv_poll_start() makes each change an epoll_ctl DEL and an ADD at once, where libev applies only a pass's net
 * change, as one MOD: 2 epoll_ctl per REST publish instead of 10 (bench/README.md, "W4: the box's capacity").
 * "poll": lws_service(), the fallback.
 *
 * One pass is one lws_service() (one poll()) or one libuv or libev iteration (one epoll_wait() and every callback
 * it makes due). At the end of each, before the loop waits again, the frames queued in it go to their sockets
 * (core/ws.c), then its publishes, subscribes and unsubscribes to the broker (the bridge). Owned by
 * pg_server_run(), on its one thread.
 *
 * Busy share (pg_loop_busy(), read by the tick for ws_nagle = busy): wall time less the time spent waiting in
 * epoll_wait(). libuv counts that time itself (UV_METRICS_IDLE_TIME); libev calls a release and an acquire
 * function around each wait, which count it here. Time the process was not scheduled while it had work counts as
 * busy: an overloaded box is what the share is meant to show.
 */
#include <string.h>
#include <time.h>

#include "core/gw.h"
#include "core/ws.h"
#include "log.h"
#include "loop.h"
#include "pushgate_bridge.h"

/* the frames queued in the pass that just ended go to their sockets, then its publishes, subscribes and
   unsubscribes to the broker, before the loop waits again: a publish local_first delivers here reaches this
   process's subscribers before the broker, busy with it on another core, competes with their readers */
static void end_of_pass(struct pg_gw *gw)
{
    pg_ws_flush(gw);
    pg_bridge_flush(gw->bridge);
}

static void flush_before_wait(uv_prepare_t *h)
{
    end_of_pass(h->data);
}

static void ev_flush_before_wait(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    end_of_pass(w->data);
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void ev_before_wait(struct ev_loop *loop) EV_NOEXCEPT
{
    struct pg_loop *l = ev_userdata(loop);
    l->ev_wait_from_ns = mono_ns();
}

static void ev_after_wait(struct ev_loop *loop) EV_NOEXCEPT
{
    struct pg_loop *l = ev_userdata(loop);
    l->ev_idle_ns += mono_ns() - l->ev_wait_from_ns;
}

int pg_loop_init(struct pg_loop *l, const char *kind, struct lws_context_creation_info *info)
{
    memset(l, 0, sizeof *l);
    if (!strcmp(kind, "ev")) {
        l->ev = 1;
        /* signals stay the server's own handlers (server.c), not libev's */
        if (!(l->ev_loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK))) {
            pg_log(PG_LOG_ERROR, "server", "cannot make a libev loop (epoll)");
            return -1;
        }
        ev_set_userdata(l->ev_loop, l); /* lws' libev glue uses neither the user data nor these callbacks */
        ev_set_loop_release_cb(l->ev_loop, ev_before_wait, ev_after_wait);
        l->foreign[0] = l->ev_loop;
        info->foreign_loops = l->foreign;
        info->options |= LWS_SERVER_OPTION_LIBEV;
        return 0;
    }
    l->uv = strcmp(kind, "poll") != 0;
    if (!l->uv)
        return 0;
    if (uv_loop_init(&l->uv_loop) != 0) {
        l->uv = 0; /* nothing for pg_loop_free() */
        pg_log(PG_LOG_ERROR, "server", "cannot make a libuv loop");
        return -1;
    }
    if (uv_loop_configure(&l->uv_loop, UV_METRICS_IDLE_TIME) != 0)
        pg_log(PG_LOG_WARN, "server", "libuv does not count its idle time: ws_nagle = busy acts as off");
    l->foreign[0] = &l->uv_loop;
    info->foreign_loops = l->foreign;
    info->options |= LWS_SERVER_OPTION_LIBUV;
    return 0;
}

int pg_loop_busy(struct pg_loop *l)
{
    uint64_t idle;
    if (l->ev)
        idle = l->ev_idle_ns;
    else if (l->uv)
        idle = uv_metrics_idle_time(&l->uv_loop);
    else
        return -1;
    uint64_t now = mono_ns(), since = l->sample_ns, was_idle = l->sample_idle_ns;
    l->sample_ns = now;
    l->sample_idle_ns = idle;
    if (!since || now <= since)
        return -1;
    uint64_t wall = now - since, idle_part = idle - was_idle;
    if (idle_part > wall) /* the two clocks were read at different moments */
        idle_part = wall;
    return (int)((wall - idle_part) * 1000 / wall);
}

const char *pg_loop_name(const struct pg_loop *l)
{
    return l->ev ? "ev" : l->uv ? "uv" : "poll";
}

void pg_loop_run(struct pg_loop *l, struct pg_gw *gw)
{
    /*
     * One pass is one lws_service() (one poll()) or one libuv or libev iteration (one epoll_wait() and every
     * callback it makes due; lws 4.1 has no end-of-pass callback of its own). The frames those callbacks queued
     * for WebSockets are written at the end of the pass (core/ws.c: no WRITEABLE round per frame), and the
     * subscribes, unsubscribes and publishes they made go to the broker, batched, before the loop waits again: a
     * storm of session opens costs a few SUBSCRIBE packets, and a lone publish or subscribe still leaves in its own
     * pass (the bridge writes it then, or asks for writability if the socket is full). The 100 ms tick bounds
     * every wait, so gw->done is seen in time.
     */
    if (l->ev) {
        ev_prepare_init(&l->ev_flush, ev_flush_before_wait);
        l->ev_flush.data = gw;
        ev_prepare_start(l->ev_loop, &l->ev_flush);
        while (!gw->done)
            ev_run(l->ev_loop, EVRUN_ONCE);
        return;
    }
    if (!l->uv) {
        while (!gw->done && lws_service(gw->ctx, 0) >= 0)
            end_of_pass(gw);
        return;
    }
    uv_prepare_init(&l->uv_loop, &l->flush);
    l->flush.data = gw;
    uv_prepare_start(&l->flush, flush_before_wait);
    while (!gw->done)
        uv_run(&l->uv_loop, UV_RUN_ONCE);
}

/*
 * After lws_context_destroy(): lws closes its libuv handles through their close callbacks, which only a running
 * loop calls. On a foreign loop lws 4.1 stops there, its context not yet freed; *pctx (lws clears it when the
 * context is gone: info.pcontext) says so, and a second lws_context_destroy() finishes the job.
 */
void pg_loop_free(struct pg_loop *l, struct lws_context **pctx)
{
    if (l->ev) {
        /* libev has no close callbacks: lws stops its watchers inside lws_context_destroy() */
        if (!l->ev_loop || l->broken)
            return;
        if (l->ev_flush.data)
            ev_prepare_stop(l->ev_loop, &l->ev_flush);
        for (int i = 0; i < 3 && *pctx; i++) {
            ev_run(l->ev_loop, EVRUN_NOWAIT);
            lws_context_destroy(*pctx);
        }
        if (*pctx)
            pg_log(PG_LOG_WARN, "server", "lws context not freed on the libev loop");
        ev_loop_destroy(l->ev_loop);
        return;
    }
    if (!l->uv || l->broken)
        return;
    if (l->flush.data)
        uv_close((uv_handle_t *)&l->flush, NULL);
    uv_run(&l->uv_loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3 && *pctx; i++) {
        lws_context_destroy(*pctx);
        uv_run(&l->uv_loop, UV_RUN_DEFAULT);
    }
    if (*pctx)
        pg_log(PG_LOG_WARN, "server", "lws context not freed on the libuv loop");
    if (uv_loop_close(&l->uv_loop) != 0)
        pg_log(PG_LOG_WARN, "server", "libuv loop closed with handles still open");
}
