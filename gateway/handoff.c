/*
 * Hand-off channels between workers (handoff.h says why and the wire format).
 *
 * State: struct pg_handoff, made by the parent and inherited by every
 * worker at its fork; each process closes what it does not use. in[i] and
 * out[i] are worker i's receiving and sending ends (-1 once closed here);
 * alive points into the shared page, written by the parent alone and read by
 * the workers with atomic loads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handoff.h"
#include "log.h"
#include "pg_common.h"

struct pg_handoff {
    int n;
    int self; /* this worker's number; -1 in the parent */
    int *in, *out;
    int *alive; /* n flags, MAP_SHARED between the parent and the workers */
};

struct pg_handoff *pg_handoff_new(int n)
{
    struct pg_handoff *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->n = n;
    h->self = -1;
    h->in = malloc((size_t)n * sizeof *h->in);
    h->out = malloc((size_t)n * sizeof *h->out);
    for (int i = 0; h->in && h->out && i < n; i++)
        h->in[i] = h->out[i] = -1;
    void *page = mmap(NULL, (size_t)n * sizeof *h->alive, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    h->alive = page == MAP_FAILED ? NULL : page; /* zero-filled: no worker runs yet */
    if (!h->in || !h->out || !h->alive) {
        pg_log(PG_LOG_ERROR, "handoff", "cannot make the workers' channels: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        int sv[2];
        /* nonblocking both ways: a full channel is a refusal (the connection stays where it is), never a wait */
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
            pg_log(PG_LOG_ERROR, "handoff", "cannot make the channel of worker %d: %s", i, strerror(errno));
            goto fail;
        }
        h->in[i] = sv[0];
        h->out[i] = sv[1];
    }
    return h;
fail:
    pg_handoff_free(h);
    return NULL;
}

void pg_handoff_started(struct pg_handoff *h, int i)
{
    __atomic_store_n(&h->alive[i], 1, __ATOMIC_RELEASE);
}

void pg_handoff_ended(struct pg_handoff *h, int i)
{
    __atomic_store_n(&h->alive[i], 0, __ATOMIC_RELEASE);
}

void pg_handoff_enter(struct pg_handoff *h, int i)
{
    h->self = i;
    for (int j = 0; j < h->n; j++) {
        if (j != i && h->in[j] >= 0) {
            close(h->in[j]);
            h->in[j] = -1;
        }
    }
    if (h->out[i] >= 0) {
        close(h->out[i]);
        h->out[i] = -1;
    }
}

int pg_handoff_fd(const struct pg_handoff *h)
{
    return h->self >= 0 ? h->in[h->self] : -1;
}

int pg_handoff_send(struct pg_handoff *h, int i, int fd)
{
    if (i < 0 || i >= h->n || i == h->self || h->out[i] < 0 || !__atomic_load_n(&h->alive[i], __ATOMIC_ACQUIRE))
        return PG_ENOTFOUND;
    char byte = 'h';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(h->out[i], &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
        return 0;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? PG_EBUSY : PG_EIO;
}

int pg_handoff_recv(struct pg_handoff *h)
{
    int in = pg_handoff_fd(h), fd = -1;
    if (in < 0)
        return PG_EIO;
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(in, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? PG_EBUSY : PG_EIO;
    /* one descriptor per datagram: more cannot be sent by a sibling, and the kernel closes what did not fit */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t k = 0; k < count; k++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + k * sizeof(int), sizeof got);
            if (fd < 0)
                fd = got;
            else
                close(got);
        }
    }
    /* a datagram without a descriptor: nothing to serve, the next one may have one */
    return fd >= 0 ? fd : PG_EBUSY;
}

void pg_handoff_free(struct pg_handoff *h)
{
    if (!h)
        return;
    for (int i = 0; h->in && h->out && i < h->n; i++) {
        if (h->in[i] >= 0)
            close(h->in[i]);
        if (h->out[i] >= 0)
            close(h->out[i]);
    }
    if (h->alive)
        munmap(h->alive, (size_t)h->n * sizeof *h->alive);
    free(h->in);
    free(h->out);
    free(h);
}
