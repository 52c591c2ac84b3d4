/*
 * GET /metrics: this process's counters (core/stats.h) and gauges in the
 * Prometheus text format. A route handler of http/routes.c; no state.
 */
#ifndef PG_HTTP_METRICS_H
#define PG_HTTP_METRICS_H

#include <stddef.h>

struct pg_gw;
struct pg_http;

/* This process's metrics in the Prometheus text format; caller frees the text. */
char *pg_metrics_render(struct pg_gw *gw, size_t *len);
/* The route's handler: answers h with pg_metrics_render()'s text. */
void pg_metrics_get(struct pg_gw *gw, struct pg_http *h);

#endif
