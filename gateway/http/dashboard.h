/*
 * The per-app dashboard.
 */
#ifndef PG_HTTP_DASHBOARD_H
#define PG_HTTP_DASHBOARD_H


struct pg_gw;
struct pg_http;

/* dashboard.c: /dashboard/{app} and its data; called by pg_admin_route. */
int pg_dashboard_route(struct pg_gw *gw, struct pg_http *h);
/* dashboard.c: sample per-app session counts (called from the loop's tick). */
void pg_dashboard_tick(struct pg_gw *gw);

#endif
