/*
 * Gathering the frames lws writes for one session into one send() (core/gather.c says how, core/ws.c when).
 *
 *   pg_gather_begin(fd);               the send() calls lws makes on fd are taken into this thread's buffer
 *   lws_write(...) while it fits;      each frame, framed by lws, reported all sent
 *   pg_gather_end(&rest, &restlen);    one send() of the whole; what the socket did not take is left in rest
 *
 * A frame must fit whole (pg_gather_room() >= its length + PG_GATHER_HEADER_MAX) before its lws_write: lws sends
 * a frame of up to the protocol's tx_packet_size in one call, and a call that does not fit fails (EMSGSIZE) rather
 * than reorder bytes. One gather at a time per thread; begin while gathering fails.
 */
#ifndef PG_CORE_GATHER_H
#define PG_CORE_GATHER_H

#include <stddef.h>

/* the most one gather holds, and so the most lws may be handed back for a reader that takes nothing */
#define PG_GATHER_BYTES 4096
/* a WebSocket frame header from a server, payload under 64 KB: 2 bytes, 4 from 126 bytes of payload */
#define PG_GATHER_HEADER_MAX 4

/* 0, or -1 when this thread is gathering already (nothing changes then) */
int pg_gather_begin(int fd);
/* bytes a gather in progress can still take (0 when none is) */
size_t pg_gather_room(void);
/*
 * Ends the gather and sends what it holds in one send(). *rest / *restlen: the bytes the socket did not take
 * (borrowed from this thread's buffer, valid until its next pg_gather_begin), to be sent before anything else on
 * the socket. Returns 0, or -1 with errno when the socket failed (not EAGAIN: that leaves all of it in rest).
 */
int pg_gather_end(const unsigned char **rest, size_t *restlen);

#endif
