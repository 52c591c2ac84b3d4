/*
 * The apps admin API (ExPusherLite-style) and the per-app events API.
 */
#include "gateway.h"

int pg_admin_route(struct pg_gw *gw, struct pg_http *h)
{
    if (pg_dashboard_route(gw, h))
        return 1;
    return 0;
}
