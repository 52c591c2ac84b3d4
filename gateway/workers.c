/*
 * Workers: `workers = N` runs the gateway as N processes that share one
 * listening port, so that every core serves connections. The parent only
 * supervises; it never serves.
 *
 * What a worker is. A worker is a whole gateway (server.c: its own lws
 * context, MQTT session, apps store connection, webhook client) and its own
 * cluster node. Everything the gateways of a cluster agree on (presence
 * members, channel counts, the webhook leader, user push, revocations, apps
 * written through the admin API) already travels between nodes over the
 * broker (cluster/), so workers of one host are nodes like those of two hosts,
 * with nothing shared in memory and nothing locked. The kernel spreads new
 * connections over the workers' listening sockets (each worker's own,
 * SO_REUSEPORT: listen.c); a connection stays with the worker that accepted
 * it, unless it is an Engine.IO request for a sibling's session (below).
 *
 * Node ids. With node_id set, worker i is node "<node_id>-w<i>" (still one
 * topic level), the same id after a restart: the cluster treats a worker's
 * restart like a node restarting under its id (cluster/cluster.c, file top).
 * Without node_id each worker, and each restart, draws a random id.
 *
 * What the parent may hold. The parent reads the configuration and logs;
 * it opens no lws context, MQTT client, SQLite connection, curl handle or
 * random state before forking (all are made in pg_server_run, in the
 * worker), so no descriptor or library state is shared between workers. The
 * one socket the parent opens is a probe bound to the listening address and
 * closed before the first fork: with SO_REUSEPORT two pushgates of the same
 * user could otherwise share a port by mistake, so a port already in use
 * fails the start as it does with one process.
 *
 * The apps store is one SQLite file opened by every worker. Writes are
 * serialised by SQLite's file lock and each connection waits for it (the
 * store's busy timeout, store/apps_store.c); a write made through the admin
 * API of one worker reaches the others by the apps replication over the
 * broker (cluster/apps.c), as it reaches another host's gateway.
 *
 * Supervision. The parent blocks SIGCHLD, SIGTERM and SIGINT and takes them
 * with sigtimedwait (no handler runs in the parent). A worker that ends while
 * the parent is not stopping is logged and started again: at once if it had
 * run PG_WORKER_STABLE_MS, otherwise after a delay doubling from
 * PG_WORKER_BACKOFF_MIN_MS up to PG_WORKER_BACKOFF_MAX_MS, so a worker that
 * dies at start does not spin. The exception is the first start: a worker
 * that exits with a failure status (it could not listen, could not open the
 * store) before PG_WORKER_STABLE_MS stops the whole gateway with status 1,
 * as one process would have. SIGTERM or SIGINT to the parent is passed to
 * every worker, which drains as a single gateway does (sessions closed with
 * 1001, webhooks sent, up to shutdown_grace_ms); the parent exits once all
 * have exited, 0 if the stop was asked for, after SIGKILLing any worker still
 * there PG_WORKER_STOP_SLACK_MS past its grace time.
 *
 * A worker dies with its parent (PR_SET_PDEATHSIG, SIGKILL): the parent only
 * ends before its workers when it is killed, and then its workers go the same
 * way at once, like threads of one process, instead of draining on a port a
 * restarted gateway would share with them.
 *
 * Connections that must reach one worker: an Engine.IO long-polling session
 * (proto/eio.c) lives in the worker that answered its handshake, and its
 * later requests come on new connections the kernel may give to any worker.
 * Its sid names its worker, and the worker that accepted such a connection
 * passes it, unread, to the owner (listen.c decides, handoff.h carries: the
 * parent makes one channel per worker before the first fork and keeps them,
 * so a restarted worker reads the channel its siblings send to, and marks in
 * a shared page which workers run). Limits (max_sessions, per-address
 * admission) are per worker.
 *
 * Each worker's HTTP answers carry X-Pushgate-Worker (http/http.c) and its
 * /metrics the pushgate_worker_info gauge (http/metrics.c): figures are per
 * worker, and say which worker gave them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core/gw.h"
#include "handoff.h"
#include "listen.h"
#include "log.h"
#include "pg_common.h"
#include "server.h"
#include "workers.h"

#define PG_WORKER_STABLE_MS 10000    /* a worker that ran this long restarts at once, and is past its first start */
#define PG_WORKER_BACKOFF_MIN_MS 100 /* first delay before restarting a worker that died young */
#define PG_WORKER_BACKOFF_MAX_MS 10000
#define PG_WORKER_STOP_SLACK_MS 5000 /* past shutdown_grace_ms, a stopping worker is killed */

struct worker {
    pid_t pid;            /* 0: not running */
    long long started_ms; /* monotonic */
    long long restart_ms; /* monotonic time of the next start, while pid is 0 */
    int young_deaths;     /* deaths in a row before PG_WORKER_STABLE_MS: the backoff's exponent */
    int proven;           /* ran PG_WORKER_STABLE_MS once */
};

/* The worker count cfg->workers stands for: itself, or the online CPUs for 0 (at most PG_WORKERS_MAX). */
static int workers_count(const struct pg_config *cfg)
{
    long n = cfg->workers;
    if (n == 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > PG_WORKERS_MAX ? PG_WORKERS_MAX : (int)n;
}

/* In the new worker: never returns. */
static void worker_main(struct pg_config *cfg, struct pg_handoff *handoff, int index, pid_t parent,
                        const sigset_t *old_mask)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) /* the parent died before the prctl */
        _exit(1);
    sigprocmask(SIG_SETMASK, old_mask, NULL);
    pg_handoff_enter(handoff, index);
    cfg->worker = index;
    cfg->handoff = handoff;
    if (*cfg->node_id) {
        char id[sizeof(((struct pg_gw *)0)->node_id)], *copy;
        snprintf(id, sizeof id, "%s-w%d", cfg->node_id, index);
        if (!(copy = strdup(id)))
            _exit(1);
        free(cfg->node_id);
        cfg->node_id = copy;
    }
    int rc = pg_server_run(cfg);
    pg_config_free(cfg);
    pg_handoff_free(handoff);
    exit(rc); /* exit, not _exit: stdio is flushed and the sanitizers' exit checks run */
}

static int start(struct pg_config *cfg, struct pg_handoff *handoff, struct worker *w, int index,
                 const sigset_t *old_mask)
{
    pid_t parent = getpid();
    fflush(NULL); /* nothing the parent buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        pg_log(PG_LOG_ERROR, "workers", "cannot start worker %d: %s", index, strerror(errno));
        return PG_EIO;
    }
    if (pid == 0)
        worker_main(cfg, handoff, index, parent, old_mask);
    pg_handoff_started(handoff, index);
    w->pid = pid;
    w->started_ms = pg_mono_ms();
    pg_log(PG_LOG_INFO, "workers", "worker %d started (pid %d)", index, (int)pid);
    return 0;
}

static void describe(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

/* Asks every running worker to drain (SIGTERM); returns the monotonic time past which those left are killed. */
static long long stop_all(const struct pg_config *cfg, const struct worker *ws, int n)
{
    for (int i = 0; i < n; i++)
        if (ws[i].pid > 0)
            kill(ws[i].pid, SIGTERM);
    return pg_mono_ms() + cfg->shutdown_grace_ms + PG_WORKER_STOP_SLACK_MS;
}

int pg_workers_run(struct pg_config *cfg)
{
    int n = workers_count(cfg), rc = 0, stopping = 0, live = 0;
    long long kill_ms = 0;
    /* before anything starts, for one process too: lws on a libuv or libev loop cannot fail cleanly later (server.c) */
    if (pg_listen_probe(cfg) != 0)
        return 1;
    if (n == 1)
        return pg_server_run(cfg);
    if (*cfg->node_id && strlen(cfg->node_id) + sizeof "-w" + 3 > sizeof(((struct pg_gw *)0)->node_id)) {
        pg_log(PG_LOG_ERROR, "workers", "node_id \"%s\" is too long to name workers (<node_id>-w<i>)", cfg->node_id);
        return 2;
    }

    struct worker *ws = calloc((size_t)n, sizeof *ws);
    struct pg_handoff *handoff = ws ? pg_handoff_new(n) : NULL;
    if (!handoff) {
        free(ws);
        return 1;
    }
    sigset_t set, old_mask;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, &old_mask);
    pg_log(PG_LOG_INFO, "workers", "starting %d workers on %s:%lld (pid %d supervises)", n, cfg->listen_host,
           cfg->listen_port, (int)getpid());
    for (int i = 0; i < n; i++) {
        if (start(cfg, handoff, &ws[i], i, &old_mask) != 0) {
            rc = 1;
            stopping = 1;
            break;
        }
        live++;
    }
    if (stopping) /* a fork failed: stop the workers there are */
        kill_ms = stop_all(cfg, ws, n);

    while (live > 0 || !stopping) {
        long long now = pg_mono_ms(), wait_ms = 1000;
        for (int i = 0; i < n && !stopping; i++) {
            if (ws[i].pid)
                continue;
            if (ws[i].restart_ms <= now) {
                if (start(cfg, handoff, &ws[i], i, &old_mask) == 0)
                    live++;
                else
                    ws[i].restart_ms = now + PG_WORKER_BACKOFF_MAX_MS;
            }
            if (!ws[i].pid && ws[i].restart_ms - now < wait_ms)
                wait_ms = ws[i].restart_ms - now;
        }
        if (stopping && now >= kill_ms) {
            for (int i = 0; i < n; i++)
                if (ws[i].pid > 0) {
                    pg_log(PG_LOG_WARN, "workers", "worker %d (pid %d) still running: killed", i, (int)ws[i].pid);
                    kill(ws[i].pid, SIGKILL);
                }
            kill_ms = now + PG_WORKER_STOP_SLACK_MS;
        }
        struct timespec ts = {.tv_sec = wait_ms / 1000, .tv_nsec = (wait_ms % 1000) * 1000000L};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
            stopping = 1;
            pg_log(PG_LOG_INFO, "workers", "signal %d: stopping %d workers", sig, live);
            kill_ms = stop_all(cfg, ws, n);
        }
        /* reap whatever ended, whichever signal woke us (SIGCHLDs coalesce) */
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            int i = 0;
            while (i < n && ws[i].pid != pid)
                i++;
            if (i == n)
                continue;
            char how[64];
            long long ran = pg_mono_ms() - ws[i].started_ms;
            describe(status, how, sizeof how);
            ws[i].pid = 0;
            pg_handoff_ended(handoff, i);
            live--;
            if (ran >= PG_WORKER_STABLE_MS) {
                ws[i].proven = 1;
                ws[i].young_deaths = 0;
            }
            if (stopping) {
                pg_log(PG_LOG_INFO, "workers", "worker %d (pid %d) %s", i, (int)pid, how);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                    rc = rc ? rc : 1;
                continue;
            }
            if (!ws[i].proven && WIFEXITED(status) && WEXITSTATUS(status) != 0 && ran < PG_WORKER_STABLE_MS &&
                ws[i].young_deaths == 0) {
                /* its first start failed by itself: the configuration or the host is wrong for every worker */
                pg_log(PG_LOG_ERROR, "workers", "worker %d (pid %d) %s at start: stopping", i, (int)pid, how);
                rc = 1;
                stopping = 1;
                kill_ms = stop_all(cfg, ws, n);
                continue;
            }
            long long delay = 0;
            if (ran < PG_WORKER_STABLE_MS) {
                int shift = ws[i].young_deaths < 20 ? ws[i].young_deaths : 20;
                delay = (long long)PG_WORKER_BACKOFF_MIN_MS << shift;
                if (delay > PG_WORKER_BACKOFF_MAX_MS)
                    delay = PG_WORKER_BACKOFF_MAX_MS;
                ws[i].young_deaths++;
            }
            ws[i].restart_ms = pg_mono_ms() + delay;
            pg_log(PG_LOG_WARN, "workers", "worker %d (pid %d) %s after %lld ms: restarting in %lld ms", i, (int)pid,
                   how, ran, delay);
        }
    }
    pg_log(PG_LOG_INFO, "workers", "stopped");
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    pg_handoff_free(handoff);
    free(ws);
    return rc;
}
