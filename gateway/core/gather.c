/*
 * One send() for the frames lws writes for one session (core/gather.h).
 *
 * Why: libwebsockets 4.1 writes every WebSocket frame with a send() of its own (lws_write() puts the header in the
 * room before the payload and hands both to the socket), and nothing in its API frames a message into a buffer of
 * ours; the framing stays lws's. Under fan-out a session often has several frames queued when it is written (W1:
 * about two per write), and each send() is a trip through the kernel's TCP transmit path that costs several
 * times the bytes it copies (bench/README.md, "W1: one send() for a session's frames").
 *
 * How: this executable defines send(). The dynamic linker binds every library's calls to send() (lws' among
 * them) to the executable's definition before libc's, so each call comes here first. A call on the descriptor
 * this thread is gathering copies the bytes into the thread's buffer and reports them all sent; every other call
 * goes on, unchanged, to the next definition of send() (libc's, or a sanitizer's in front of it). Gathering is on
 * only between pg_gather_begin() and pg_gather_end(), around lws_write() calls of core/ws.c on one plain (not TLS,
 * not HTTP/2) WebSocket: no other code runs on that thread meanwhile, so no other bytes can go between them.
 *
 * Order on the socket: the gathered bytes leave in the order lws wrote them, before anything lws writes after;
 * what the kernel does not take of them, core/ws.c hands back to lws unframed, and lws sends it before anything
 * else, as it does with the part of a frame a socket refused.
 *
 * State: one struct per thread (the gateway's loop is one thread); the next send() is looked up once.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "core/gather.h"

static _Thread_local struct {
    int fd;     /* the descriptor being gathered, or -1 */
    int flags;  /* of the first send() gathered (lws: MSG_NOSIGNAL) */
    size_t len; /* bytes in buf */
    unsigned char buf[PG_GATHER_BYTES];
} g = {.fd = -1};

typedef ssize_t (*send_fn)(int, const void *, size_t, int);

/* libc's send(), or what stands before it (a sanitizer's); sendto() if none is found (a static link) */
static ssize_t next_send(int fd, const void *buf, size_t len, int flags)
{
    static send_fn next; /* read and written whole, by any thread; every writer writes the same value */
    send_fn f = __atomic_load_n(&next, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (send_fn)dlsym(RTLD_NEXT, "send");
        if (f)
            __atomic_store_n(&next, f, __ATOMIC_RELEASE);
        else
            return sendto(fd, buf, len, flags, NULL, 0);
    }
    return f(fd, buf, len, flags);
}

/* exported whatever the build's default visibility: lws must find it */
__attribute__((visibility("default"))) ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    if (fd < 0 || fd != g.fd)
        return next_send(fd, buf, len, flags);
    if (len > sizeof g.buf - g.len) {
        /* the caller checks the room before each frame: never reorder bytes, fail the write instead */
        errno = EMSGSIZE;
        return -1;
    }
    if (!g.len)
        g.flags = flags;
    memcpy(g.buf + g.len, buf, len);
    g.len += len;
    return (ssize_t)len;
}

int pg_gather_begin(int fd)
{
    if (g.fd >= 0 || fd < 0)
        return -1;
    g.fd = fd;
    g.len = 0;
    return 0;
}

size_t pg_gather_room(void)
{
    return g.fd >= 0 ? sizeof g.buf - g.len : 0;
}

int pg_gather_end(const unsigned char **rest, size_t *restlen)
{
    int fd = g.fd;
    size_t sent = 0;
    g.fd = -1;
    *rest = g.buf;
    *restlen = 0;
    if (fd < 0 || !g.len)
        return 0;
    ssize_t n;
    do
        n = next_send(fd, g.buf, g.len, g.flags);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
    if (n > 0)
        sent = (size_t)n;
    *rest = g.buf + sent;
    *restlen = g.len - sent;
    return 0;
}
