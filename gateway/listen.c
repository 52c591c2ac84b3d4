/*
 * A worker's listening socket (listen.h says why it is not lws's own).
 *
 * The socket is made in the worker, after the fork: each worker has its own,
 * and the kernel spreads new connections over them (SO_REUSEPORT hashes the
 * connection's addresses and ports). Connections queued on a worker's socket
 * when it dies are lost with it (they are reset): the clients reconnect, and
 * land on a living worker or the restarted one.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "listen.h"
#include "log.h"
#include "pg_common.h"

int pg_listen_open(const struct pg_config *cfg)
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
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
        pg_log(PG_LOG_ERROR, "listen", "cannot listen on %s:%lld: %s", cfg->listen_host, cfg->listen_port,
               strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return PG_EIO;
    }
    freeaddrinfo(ai);
    return fd;
}

int pg_listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    int lfd = lws_get_socket_fd(wsi), one = 1;
    for (int i = 0; i < PG_LISTEN_ACCEPTS_PER_PASS; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* EAGAIN: a sibling took it, or the queue is empty; EMFILE and the like: try again next pass */
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                pg_log(PG_LOG_WARN, "listen", "accept: %s", strerror(errno));
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as lws sets on what it accepts */
        lws_sock_file_fd_type s;
        s.sockfd = fd;
        /* lws owns fd from here, and closes it if the adoption fails */
        if (!lws_adopt_descriptor_vhost(lws_get_vhost(wsi), LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | LWS_ADOPT_ALLOW_SSL, s,
                                        NULL, NULL))
            pg_log(PG_LOG_WARN, "listen", "cannot adopt an accepted connection");
    }
    return 0;
}
