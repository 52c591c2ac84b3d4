/*
 * A worker's listening socket (listen.h says why it is not lws's own), and
 * where each accepted connection goes.
 *
 * The socket is made in the worker, after the fork: each worker has its own,
 * and the kernel spreads new connections over them (SO_REUSEPORT hashes the
 * connection's addresses and ports). Connections queued on a worker's socket
 * when it dies are lost with it (they are reset): the clients reconnect, and
 * land on a living worker or the restarted one.
 *
 * The accept queue. The kernel holds up to listen_backlog connections (capped
 * by net.core.somaxconn) whose handshake is done and that this worker has not
 * accepted; past that it drops the SYNs and the handshakes' last ACKs of new
 * ones, silently: a client then retries its SYN, or believes it is connected
 * while this worker never sees the connection, until its own timeout. So a
 * readable listening socket is accepted from until EAGAIN, up to
 * PG_LISTEN_ACCEPTS_PER_PASS connections per pass (listen.h). When accept
 * finds no descriptor (the open-files limit, server.c), the socket is not
 * watched for PG_LISTEN_FULL_PAUSE_MS: it stays readable, and trying again
 * at once would spin the loop while the connections wait in the queue.
 *
 * Where a connection goes. An Engine.IO session lives in the worker that
 * made it, and its sid names that worker (proto/eio.h). Before lws sees an
 * accepted connection, its request line is looked at without reading it
 * (recv MSG_PEEK): a request at the Engine.IO path whose sid names another
 * running worker is passed to that worker over its hand-off channel
 * (handoff.h), which adopts it into lws exactly as its own accepted sockets;
 * nothing was consumed, so that worker's lws reads the whole request.
 * Anything else (another path, no sid, this worker's sid, a worker that is
 * not running, a full channel) is adopted here at once. Only a connection's
 * first request is placed this way: a kept-alive connection stays where it
 * is, and a later request on it for another worker's session is answered
 * 400 with Connection: close (proto/eio.c), so the client's next request
 * comes on a new connection.
 *
 * Waiting for the request line. The listening socket has TCP_DEFER_ACCEPT:
 * the kernel queues a connection for accept() once its first bytes are in, so
 * its request line is almost always there to look at (W3 in bench/README.md:
 * 13 % less of the gateway's CPU per connection opened). A connection whose
 * request line has not fully arrived waits in `pending`, watched by an epoll
 * descriptor of this module (edge-triggered: each arrival of bytes wakes it
 * once, so bytes that are there but not enough never spin the loop), itself
 * watched by lws. It waits at most PG_LISTEN_PEEK_TIMEOUT_MS and is looked at
 * up to max_header_bytes: past either, or when the peer shuts its side, it is
 * adopted here as it is. A received connection is never looked at again, so
 * nothing goes back and forth between workers.
 *
 * State: struct pg_listen (gw->listen), from pg_listen_start() to
 * pg_listen_free(). The listening socket, the epoll descriptor and a dup()
 * of the hand-off channel are lws's once adopted (lws closes them); the
 * waiting connections are this module's (closed by pg_listen_free when the
 * worker stops), and each is in `pending` and in the epoll set, or in
 * neither.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utlist.h>

#include "config.h"
#include "core/gw.h"
#include "handoff.h"
#include "listen.h"
#include "log.h"
#include "pg_common.h"
#include "proto/eio.h"

/*
 * How long a new connection may take to send its request line before it is
 * served where it landed. Clients send it with the connection, so this only
 * bounds a slow or silent peer; such a peer then waits in lws as it would
 * have (lws's own timeouts), and an Engine.IO request that came this late is
 * answered as a kept-alive one would be. Not an option: no client waits on
 * it, and lowering it only makes slow clients' polls fail more.
 */
#define PG_LISTEN_PEEK_TIMEOUT_MS 5000

#define ENGINE_IO_PATH "/socket.io"

struct pending {
    int fd;
    int64_t deadline_ms;
    struct pending *prev, *next; /* l->pending, oldest first: deadlines in order */
};

struct pg_listen {
    struct pg_gw *gw;
    struct pg_handoff *handoff; /* cfg->handoff, borrowed; NULL: every connection stays */
    int lfd, efd, cfd;          /* listening socket, epoll of pending, channel dup: lws's, to tell the wsis apart */
    struct pending *pending;
    lws_sorted_usec_list_t sul; /* the oldest pending connection's deadline */
    struct lws *lwsi;           /* the listening socket's, in lws */
    lws_sorted_usec_list_t sul_full; /* accepting again after the open-files limit was met */
    int64_t full_logged_ms;          /* when that was last logged */
    unsigned long full_pauses;       /* pauses since */
    char *peek;                 /* max_header_bytes */
    size_t peek_max;
};

/* ---- the request line --------------------------------------------------------------- */

int pg_listen_request_sid(const char *buf, size_t n, const char **sid, size_t *sid_len)
{
    size_t i = 0;
    /* the method: upper-case letters, then one space */
    while (i < n && buf[i] >= 'A' && buf[i] <= 'Z')
        i++;
    if (i == n)
        return PG_EBUSY;
    if (i == 0 || buf[i] != ' ')
        return 0;
    i++;
    /* the path: exactly /socket.io or /socket.io/ (http/routes.c), then the query */
    static const char path[] = ENGINE_IO_PATH;
    for (size_t k = 0; k < sizeof path - 1; k++, i++) {
        if (i == n)
            return PG_EBUSY;
        if (buf[i] != path[k])
            return 0;
    }
    if (i < n && buf[i] == '/')
        i++;
    if (i == n)
        return PG_EBUSY;
    if (buf[i] != '?')
        return 0;
    i++;
    /* the query's parameters up to the end of the target (a space, or the line's end for HTTP/0.9) */
    for (;;) {
        size_t start = i;
        while (i < n && buf[i] != '&' && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n')
            i++;
        if (i == n)
            return PG_EBUSY; /* the parameter may go on */
        if (i - start >= 4 && memcmp(buf + start, "sid=", 4) == 0) {
            *sid = buf + start + 4;
            *sid_len = i - start - 4;
            return 1;
        }
        if (buf[i] != '&')
            return 0;
        i++;
    }
}

/* ---- where a connection goes ---------------------------------------------------------- */

/* Adopts fd into lws as an accepted HTTP connection of this worker; lws owns fd from here. */
static void adopt(struct pg_listen *l, int fd)
{
    lws_sock_file_fd_type s;
    s.sockfd = fd;
    /* lws closes fd if the adoption fails */
    if (!lws_adopt_descriptor_vhost(l->gw->vhost, LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | LWS_ADOPT_ALLOW_SSL, s, NULL,
                                    NULL))
        pg_log(PG_LOG_WARN, "listen", "cannot adopt an accepted connection");
}

enum { DECIDE_WAIT = -2, DECIDE_HERE = -1 }; /* else: the worker to pass the connection to */

/* Where fd goes, from what has arrived of its request line. ended: its peer sent all it will for now (or failed). */
static int decide(struct pg_listen *l, int fd, int ended)
{
    ssize_t n = recv(fd, l->peek, l->peek_max, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return ended ? DECIDE_HERE : DECIDE_WAIT;
    if (n <= 0) /* closed or failed: lws finds out */
        return DECIDE_HERE;
    const char *sid = NULL;
    size_t len = 0;
    int r = pg_listen_request_sid(l->peek, (size_t)n, &sid, &len);
    if (r == PG_EBUSY)
        return ended || (size_t)n == l->peek_max ? DECIDE_HERE : DECIDE_WAIT;
    if (r != 1 || len != PG_EIO_SID_LEN)
        return DECIDE_HERE;
    int owner = pg_eio_sid_worker(sid, len);
    return owner < 0 || owner == l->gw->cfg->worker ? DECIDE_HERE : owner;
}

/* Passes fd on to worker owner, or adopts it here when that cannot be; fd is no longer the caller's. */
static void dispatch(struct pg_listen *l, int fd, int owner)
{
    if (owner >= 0) {
        int rc = pg_handoff_send(l->handoff, owner, fd);
        if (rc == 0) {
            pg_log(PG_LOG_DEBUG, "listen", "connection passed to worker %d", owner);
            close(fd); /* the owner has its own copy */
            return;
        }
        pg_log(rc == PG_ENOTFOUND ? PG_LOG_DEBUG : PG_LOG_WARN, "listen",
               "connection for worker %d served here: %s", owner,
               rc == PG_ENOTFOUND ? "it is not running" : rc == PG_EBUSY ? "its channel is full" : "cannot pass it");
    }
    adopt(l, fd);
}

static void pending_due(lws_sorted_usec_list_t *sul);

static void pending_remove(struct pg_listen *l, struct pending *p)
{
    epoll_ctl(l->efd, EPOLL_CTL_DEL, p->fd, NULL);
    DL_DELETE(l->pending, p);
    free(p);
}

/* A new connection: passed on, adopted, or left waiting for its request line. fd is no longer the caller's. */
static void place(struct pg_listen *l, int fd)
{
    int where = l->handoff ? decide(l, fd, 0) : DECIDE_HERE;
    if (where != DECIDE_WAIT) {
        dispatch(l, fd, where);
        return;
    }
    struct pending *p = calloc(1, sizeof *p);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p};
    if (!p || epoll_ctl(l->efd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(p);
        adopt(l, fd);
        return;
    }
    p->fd = fd;
    p->deadline_ms = pg_mono_ms() + PG_LISTEN_PEEK_TIMEOUT_MS;
    if (!l->pending) /* the timer is armed for the oldest (or nothing) */
        lws_sul_schedule(l->gw->ctx, 0, &l->sul, pending_due, PG_LISTEN_PEEK_TIMEOUT_MS * LWS_US_PER_MS);
    DL_APPEND(l->pending, p);
}

/* The oldest waiting connections' time is up: adopted here as they are. */
static void pending_due(lws_sorted_usec_list_t *sul)
{
    struct pg_listen *l = lws_container_of(sul, struct pg_listen, sul);
    int64_t now = pg_mono_ms();
    while (l->pending && l->pending->deadline_ms <= now) {
        int fd = l->pending->fd;
        pending_remove(l, l->pending);
        adopt(l, fd);
    }
    if (l->pending)
        lws_sul_schedule(l->gw->ctx, 0, &l->sul, pending_due, (l->pending->deadline_ms - now) * LWS_US_PER_MS);
}

/* ---- the watched descriptors ------------------------------------------------------------ */

static void accept_again(lws_sorted_usec_list_t *sul)
{
    struct pg_listen *l = lws_container_of(sul, struct pg_listen, sul_full);
    if (l->lwsi)
        lws_rx_flow_control(l->lwsi, 1);
}

/*
 * No descriptor for a new connection (EMFILE, ENFILE, or no memory for one): the connection stays in the kernel's
 * queue, and the listening socket stays readable, so accepting again at once would spin the loop. It is not
 * watched for PG_LISTEN_FULL_PAUSE_MS; logged at most every PG_LISTEN_FULL_LOG_MS.
 */
static void accept_pause(struct pg_listen *l, int err)
{
    int64_t now = pg_mono_ms();
    l->full_pauses++;
    if (now - l->full_logged_ms >= PG_LISTEN_FULL_LOG_MS) {
        pg_log(PG_LOG_WARN, "listen", "accept: %s: not accepting for %d ms (%lu times since the last report; "
               "max_open_files, max_sessions)", strerror(err), PG_LISTEN_FULL_PAUSE_MS, l->full_pauses);
        l->full_logged_ms = now;
        l->full_pauses = 0;
    }
    if (!l->lwsi)
        return;
    lws_rx_flow_control(l->lwsi, 0);
    lws_sul_schedule(l->gw->ctx, 0, &l->sul_full, accept_again, PG_LISTEN_FULL_PAUSE_MS * LWS_US_PER_MS);
}

static void on_listener(struct pg_listen *l)
{
    int one = 1;
    for (int i = 0; i < PG_LISTEN_ACCEPTS_PER_PASS; i++) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                accept_pause(l, err);
            /* EAGAIN: a sibling took it, or the queue is empty */
            else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ECONNABORTED)
                pg_log(PG_LOG_WARN, "listen", "accept: %s", strerror(err));
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as lws sets on what it accepts */
        place(l, fd);
    }
}

static void on_pending(struct pg_listen *l)
{
    struct epoll_event evs[PG_LISTEN_EVENTS_PER_PASS];
    int n = epoll_wait(l->efd, evs, PG_LISTEN_EVENTS_PER_PASS, 0);
    for (int i = 0; i < n; i++) {
        struct pending *p = evs[i].data.ptr;
        int fd = p->fd, where = decide(l, fd, !!(evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)));
        if (where == DECIDE_WAIT)
            continue; /* the next bytes wake it again */
        pending_remove(l, p);
        dispatch(l, fd, where);
    }
}

static void on_channel(struct pg_listen *l)
{
    for (int i = 0; i < PG_LISTEN_EVENTS_PER_PASS; i++) {
        int fd = pg_handoff_recv(l->handoff);
        if (fd < 0) {
            if (fd != PG_EBUSY)
                pg_log(PG_LOG_WARN, "listen", "hand-off channel: %s", strerror(errno));
            break;
        }
        pg_log(PG_LOG_DEBUG, "listen", "connection received from a sibling");
        adopt(l, fd); /* as it came: a sibling looked at it already */
    }
}

int pg_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    struct pg_gw *gw = lws_context_user(lws_get_context(wsi));
    struct pg_listen *l = gw ? gw->listen : NULL;
    if (reason == LWS_CALLBACK_RAW_CLOSE_FILE && l && wsi == l->lwsi) { /* not watched any more: nothing to resume */
        l->lwsi = NULL;
        lws_sul_cancel(&l->sul_full);
    }
    if (reason != LWS_CALLBACK_RAW_RX_FILE || !l)
        return 0;
    int fd = lws_get_socket_fd(wsi);
    if (fd == l->lfd)
        on_listener(l);
    else if (fd == l->efd)
        on_pending(l);
    else if (fd == l->cfd)
        on_channel(l);
    return 0;
}

/* ---- start and stop ----------------------------------------------------------------------- */

/*
 * client_unsent_bytes on a listening socket: the connections accepted from it inherit its TCP_NOTSENT_LOWAT. A
 * socket then takes no more bytes (EAGAIN, and no POLLOUT) while it holds that many unsent, so a slow reader's
 * backlog stays in the gateway's out-queue, counted by the slow-consumer and bounded-lag checks, and not in a
 * send buffer the kernel grows up to net.ipv4.tcp_wmem's maximum (4 MB per connection by default; under W1X at
 * 83ff4d8, 478 MB over 1000 readers, seconds of messages the gateway did not know it held: bench/README.md).
 */
static int limit_unsent(int fd, const struct pg_config *cfg)
{
    int lowat = (int)cfg->client_unsent_bytes;
    if (!lowat)
        return 0;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat) == 0)
        return 0;
    pg_log(PG_LOG_WARN, "listen", "client_unsent_bytes: TCP_NOTSENT_LOWAT %d refused: %s", lowat, strerror(errno));
    return -1;
}

/*
 * A socket bound to listen_host:listen_port with SO_REUSEADDR (as lws sets it: a TIME_WAIT of an earlier run is no
 * conflict, a listener is). share: SO_REUSEPORT and listening, for a worker; otherwise only bound, for the probe.
 * The fd, or a negative PG_E* error, logged.
 */
static int bind_listener(const struct pg_config *cfg, int share)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    int one = 1, fd, gai;
    snprintf(port, sizeof port, "%lld", cfg->listen_port);
    if ((gai = getaddrinfo(cfg->listen_host, port, &hints, &ai)) != 0 || !ai) {
        pg_log(PG_LOG_ERROR, "listen", "listen_host \"%s\" is not an address workers can listen on: %s",
               cfg->listen_host, gai ? gai_strerror(gai) : "no address");
        return PG_EINVAL;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (share && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || (share && listen(fd, (int)cfg->listen_backlog) != 0)) {
        pg_log(PG_LOG_ERROR, "listen", "cannot listen on %s:%lld: %s", cfg->listen_host, cfg->listen_port,
               strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return PG_EIO;
    }
    freeaddrinfo(ai);
    /* no waiting in `pending` (an epoll_ctl and a wakeup more) for nearly every connection (see the top of the file);
       a peer silent for PG_LISTEN_DEFER_ACCEPT_S is handed over all the same and waits there as before */
    int defer = PG_LISTEN_DEFER_ACCEPT_S;
    if (share) {
        if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer) != 0)
            pg_log(PG_LOG_DEBUG, "listen", "TCP_DEFER_ACCEPT: %s", strerror(errno));
        limit_unsent(fd, cfg);
    }
    return fd;
}

void pg_listen_tune_lws(const struct pg_config *cfg)
{
    int found = 0;
    for (int fd = 0; fd < PG_LISTEN_LWS_FD_SCAN; fd++) {
        int listening = 0, defer = PG_LISTEN_DEFER_ACCEPT_S;
        socklen_t len = sizeof listening;
        struct sockaddr_storage a;
        socklen_t alen = sizeof a;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
            getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
            continue;
        unsigned port = a.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&a)->sin_port)
                        : a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                                  : 0;
        if (port == (unsigned)cfg->listen_port &&
            setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer) == 0 && limit_unsent(fd, cfg) == 0)
            found++;
    }
    pg_log(PG_LOG_DEBUG, "listen", "lws' listening sockets on port %lld tuned (accept deferred, unsent bytes): %d",
           cfg->listen_port, found);
}

int pg_listen_probe(const struct pg_config *cfg)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    /* an interface name (lws accepts one with a single process) is not an address: nothing to probe */
    if (getaddrinfo(cfg->listen_host, NULL, &hints, &ai) != 0 || !ai)
        return 0;
    freeaddrinfo(ai);
    int fd = bind_listener(cfg, 0);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

/*
 * Has lws watch fd as a raw descriptor of PG_LISTEN_PROTOCOL; lws owns it on success, else it is closed. Its wsi
 * goes to *wsi when wsi is not NULL.
 */
static int watch(struct pg_gw *gw, int fd, const char *what, struct lws **wsi)
{
    lws_sock_file_fd_type d;
    d.filefd = fd;
    struct lws *w = lws_adopt_descriptor_vhost(gw->vhost, LWS_ADOPT_RAW_FILE_DESC, d, PG_LISTEN_PROTOCOL, NULL);
    if (w) {
        if (wsi)
            *wsi = w;
        return 0;
    }
    pg_log(PG_LOG_ERROR, "listen", "cannot watch the %s", what);
    close(fd);
    return PG_EIO;
}

int pg_listen_start(struct pg_gw *gw)
{
    struct pg_listen *l = calloc(1, sizeof *l);
    if (!l)
        return PG_ENOMEM;
    l->gw = gw;
    l->handoff = gw->cfg->handoff;
    l->lfd = l->efd = l->cfd = -1;
    l->peek_max = (size_t)gw->cfg->max_header_bytes; /* a longer request line is refused (431) anyway */
    gw->listen = l;
    if (!(l->peek = malloc(l->peek_max)))
        return PG_ENOMEM;
    if (l->handoff) {
        l->efd = epoll_create1(EPOLL_CLOEXEC);
        if (l->efd < 0) {
            pg_log(PG_LOG_ERROR, "listen", "epoll_create1: %s", strerror(errno));
            return PG_EIO;
        }
        if (watch(gw, l->efd, "connections waiting for their request line", NULL) != 0)
            return PG_EIO;
        /* a dup: lws closes its copy, the worker (workers.c) the hand-off state's */
        l->cfd = fcntl(pg_handoff_fd(l->handoff), F_DUPFD_CLOEXEC, 0);
        if (l->cfd < 0) {
            pg_log(PG_LOG_ERROR, "listen", "the hand-off channel: %s", strerror(errno));
            return PG_EIO;
        }
        if (watch(gw, l->cfd, "hand-off channel", NULL) != 0)
            return PG_EIO;
    }
    l->lfd = bind_listener(gw->cfg, 1);
    if (l->lfd < 0)
        return l->lfd;
    return watch(gw, l->lfd, "listening socket", &l->lwsi);
}

void pg_listen_free(struct pg_gw *gw)
{
    struct pg_listen *l = gw->listen;
    if (!l)
        return;
    lws_sul_cancel(&l->sul);
    lws_sul_cancel(&l->sul_full);
    struct pending *p, *tmp;
    DL_FOREACH_SAFE(l->pending, p, tmp) {
        close(p->fd); /* the last reference: it leaves the epoll set too */
        DL_DELETE(l->pending, p);
        free(p);
    }
    free(l->peek);
    free(l);
    gw->listen = NULL;
}
