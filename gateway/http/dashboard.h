/*
 * The per-app dashboard: /dashboard/{app} (the page) and /dashboard/{app}/data,
 * route handlers of http/routes.c (which checks the admin credentials and
 * sets h->app), and the session history sampled from the loop's tick.
 */
#ifndef PG_HTTP_DASHBOARD_H
#define PG_HTTP_DASHBOARD_H

struct pg_gw;
struct pg_http;

void pg_dashboard_page(struct pg_gw *gw, struct pg_http *h);
void pg_dashboard_data(struct pg_gw *gw, struct pg_http *h);
/* Sample per-app session counts (called from the loop's tick). */
void pg_dashboard_tick(struct pg_gw *gw);
/* At exit: the history goes. */
void pg_dashboard_free(struct pg_gw *gw);

#endif
