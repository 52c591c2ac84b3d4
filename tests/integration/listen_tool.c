/*
 * pushgate_listen_tool: a TCP listener on 127.0.0.1 that never completes a handshake, for bridge_connect.test.mjs.
 *
 *   pushgate_listen_tool PORT
 *
 * Listens on 127.0.0.1:PORT with a backlog of 0 and never accepts; it fills its own accept queue with one
 * connection of its own, so the kernel drops every later SYN and a client's connect() stays in progress (a blocking
 * one for the kernel's whole SYN retry time, minutes). Prints "full PORT" once the queue is full, then waits until
 * its stdin closes (or it is killed) and exits 0. Loopback only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pushgate_listen_tool PORT\n");
        return 2;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 0) != 0) {
        perror("listen");
        return 1;
    }
    /* the one connection the queue holds: established once the socket is writable */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c < 0) {
        perror("socket");
        return 1;
    }
    connect(c, (struct sockaddr *)&a, sizeof a);
    struct pollfd p = {.fd = c, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, 5000) != 1 || getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        fprintf(stderr, "filling the accept queue failed\n");
        return 1;
    }
    printf("full %s\n", argv[1]);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    close(c);
    close(l);
    return 0;
}
