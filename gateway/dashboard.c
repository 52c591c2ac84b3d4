/*
 * Per-app dashboard: sessions now and over the last hour.
 */
#include "gateway.h"

int pg_dashboard_route(struct pg_gw *gw, struct pg_http *h)
{
    (void)gw;
    (void)h;
    return 0;
}

void pg_dashboard_tick(struct pg_gw *gw)
{
    (void)gw;
}
