/* The list of wire protocols (proto/protocols.h). */
#include "proto/protocols.h"
#include "proto/native.h"
#include "proto/pusher.h"
#include "proto/sio.h"

const struct pg_proto *const pg_protocols[] = {&pg_native_proto, &pg_pusher_proto, &pg_sio_proto};
_Static_assert(sizeof pg_protocols / sizeof pg_protocols[0] == PG_NPROTOCOLS, "PG_NPROTOCOLS counts pg_protocols");

size_t pg_protocol_index(const struct pg_proto *p)
{
    size_t i = 0;
    while (i < PG_NPROTOCOLS && pg_protocols[i] != p)
        i++;
    return i;
}
