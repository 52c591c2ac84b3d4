/*
 * pushgate_sockopt_tool: reads TCP_NODELAY, TCP_NOTSENT_LOWAT and the count of data segments sent off the
 * gateway's end of one loopback connection, for ws_nagle.test.mjs.
 *
 *   pushgate_sockopt_tool PORT PID...
 *
 * PORT is the client's local port, i.e. the peer port of the gateway's socket. The tool looks through the open
 * descriptors of each PID (the gateway, its workers), takes a copy of each socket (pidfd_getfd(2), which needs
 * ptrace rights over the process: root, as the tests run), and for the one whose peer is 127.0.0.1:PORT prints
 * "nodelay 0" or "nodelay 1", "notsent_lowat N" (0: none of its own, the sysctl applies) and "data_segs_out N"
 * (TCP_INFO: the TCP segments that carried data so far). A copy shares the socket, so what is read is the
 * gateway's own.
 *
 * Exit: 0 found, 1 no such connection, 2 usage or a system call refused (printed).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_data_segs_out, which glibc's lacks */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* 1 found (printed), 0 not this one, -1 refused (printed) */
static int look(int pidfd, int fd, unsigned port)
{
    int c = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    if (c < 0) {
        if (errno == EBADF)
            return 0; /* closed since the directory was read */
        perror("pidfd_getfd");
        return -1;
    }
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int found = 0;
    if (getpeername(c, (struct sockaddr *)&peer, &len) == 0 && peer.sin_family == AF_INET &&
        ntohs(peer.sin_port) == port && peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
        int v = -1, lowat = -1;
        socklen_t vlen = sizeof v, llen = sizeof lowat;
        struct tcp_info ti;
        socklen_t tlen = sizeof ti;
        memset(&ti, 0, sizeof ti);
        if (getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, &vlen) != 0 ||
            getsockopt(c, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, &llen) != 0 ||
            getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tlen) != 0) {
            perror("getsockopt");
            found = -1;
        } else {
            printf("nodelay %d\nnotsent_lowat %d\ndata_segs_out %u\n", v, lowat, ti.tcpi_data_segs_out);
            found = 1;
        }
    }
    close(c);
    return found;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pushgate_sockopt_tool PORT PID...\n");
        return 2;
    }
    unsigned port = (unsigned)atoi(argv[1]);
    for (int i = 2; i < argc; i++) {
        int pid = atoi(argv[i]), pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
            continue; /* gone: a worker that was restarted */
        char dir[32], link[320], target[64];
        snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
        DIR *d = opendir(dir);
        struct dirent *e;
        int rc = 0;
        while (d && rc == 0 && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n <= 0)
                continue;
            target[n] = 0;
            if (!strncmp(target, "socket:", 7))
                rc = look(pidfd, atoi(e->d_name), port);
        }
        if (d)
            closedir(d);
        close(pidfd);
        if (rc)
            return rc > 0 ? 0 : 2;
    }
    return 1;
}
