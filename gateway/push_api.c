/*
 * notification-socket.io compatibility: the per-user push REST API and the
 * socket.io (protocol 5 / Engine.IO 4) endpoint.
 */
#include "gateway.h"

int pg_push_route(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    (void)h;
    return 0;
}
