/*
 * The apps admin API (ExPusherLite-style) and the per-app events API.
 */
#include "gateway.h"

int pg_admin_route(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    (void)h;
    return 0;
}
