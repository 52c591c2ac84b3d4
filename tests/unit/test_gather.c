/*
 * core/gather.c: send() calls on the gathered descriptor leave as one, in order; what the socket does not take is
 * handed back; every other descriptor's send() goes through at once. Over a real socket pair.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "core/gather.h"

/* one recv() of what is waiting on fd (non-blocking) */
static ssize_t take(int fd, char *buf, size_t len)
{
    return recv(fd, buf, len, MSG_DONTWAIT);
}

int main(void)
{
    int a[2], b[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0, "socket pair a");
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0, "socket pair b");
    char buf[PG_GATHER_BYTES * 2];
    const unsigned char *rest;
    size_t restlen;

    /* not gathering: send() goes straight through */
    CHECK_EQ(pg_gather_room(), 0, "no room while not gathering");
    CHECK_EQ(send(a[0], "x", 1, MSG_NOSIGNAL), 1, "plain send");
    CHECK_EQ(take(a[1], buf, sizeof buf), 1, "arrived at once");

    /* gathering on a[0]: its sends wait, b's do not, and the whole leaves in one piece, in order */
    CHECK_EQ(pg_gather_begin(a[0]), 0, "begin");
    CHECK_EQ(pg_gather_begin(b[0]), -1, "one gather at a time");
    CHECK_EQ(send(a[0], "one,", 4, MSG_NOSIGNAL), 4, "first send reported sent");
    CHECK_EQ(send(b[0], "other", 5, MSG_NOSIGNAL), 5, "another descriptor's send");
    CHECK_EQ(send(a[0], "two", 3, MSG_NOSIGNAL), 3, "second send reported sent");
    CHECK_EQ(pg_gather_room(), PG_GATHER_BYTES - 7, "room left");
    errno = 0;
    CHECK_EQ(take(a[1], buf, sizeof buf), -1, "nothing on the gathered socket yet");
    CHECK_EQ(take(b[1], buf, sizeof buf), 5, "the other descriptor's bytes went at once");
    CHECK_EQ(pg_gather_end(&rest, &restlen), 0, "end");
    CHECK_EQ(restlen, 0, "the socket took it all");
    memset(buf, 0, sizeof buf);
    CHECK_EQ(take(a[1], buf, sizeof buf), 7, "one piece");
    CHECK(!memcmp(buf, "one,two", 7), "in order: %.7s", buf);
    CHECK_EQ(send(a[0], "z", 1, MSG_NOSIGNAL), 1, "after the end, sends go through again");
    CHECK_EQ(take(a[1], buf, sizeof buf), 1, "at once");

    /* a send that does not fit the gather fails rather than overtake what is gathered */
    static char big[PG_GATHER_BYTES];
    memset(big, 'b', sizeof big);
    CHECK_EQ(pg_gather_begin(a[0]), 0, "begin");
    CHECK_EQ(send(a[0], "h", 1, MSG_NOSIGNAL), 1, "one byte");
    errno = 0;
    CHECK_EQ(send(a[0], big, sizeof big, MSG_NOSIGNAL), -1, "too big for the room left");
    CHECK_EQ(errno, EMSGSIZE, "EMSGSIZE");
    CHECK_EQ(pg_gather_end(&rest, &restlen), 0, "end");
    CHECK_EQ(take(a[1], buf, sizeof buf), 1, "only what fitted left");

    /* a socket that takes part: the rest comes back, to be sent first; a full one takes nothing (EAGAIN) */
    CHECK_EQ(fcntl(a[0], F_SETFL, O_NONBLOCK), 0, "non-blocking");
    int small = 1;
    (void)setsockopt(a[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    size_t filled = 0;
    while (send(a[0], big, sizeof big, MSG_NOSIGNAL) > 0)
        filled++;
    CHECK(errno == EAGAIN && filled > 0, "the socket is full (%zu sends, errno %d)", filled, errno);
    CHECK_EQ(pg_gather_begin(a[0]), 0, "begin on a full socket");
    CHECK_EQ(send(a[0], big, 1000, MSG_NOSIGNAL), 1000, "gathered");
    CHECK_EQ(pg_gather_end(&rest, &restlen), 0, "EAGAIN is no failure");
    CHECK_EQ(restlen, 1000, "all of it comes back");
    CHECK(rest && rest[0] == 'b' && rest[999] == 'b', "the gathered bytes");

    /* a socket whose peer is gone: the send fails, and says so */
    close(a[1]);
    CHECK_EQ(pg_gather_begin(a[0]), 0, "begin");
    CHECK_EQ(send(a[0], "late", 4, MSG_NOSIGNAL), 4, "gathered");
    errno = 0;
    CHECK_EQ(pg_gather_end(&rest, &restlen), -1, "the peer is gone");
    CHECK_EQ(errno, EPIPE, "EPIPE");
    CHECK_EQ(pg_gather_room(), 0, "no gather after the end");

    close(a[0]);
    close(b[0]);
    close(b[1]);
    return check_report("test_gather");
}
