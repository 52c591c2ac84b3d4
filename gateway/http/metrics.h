/*
 * GET /metrics.
 */
#ifndef PG_HTTP_METRICS_H
#define PG_HTTP_METRICS_H

#include <stddef.h>

struct pg_gw;

/* metrics.c: GET /metrics in the Prometheus text format; caller frees the text. */
char *pg_metrics_render(struct pg_gw *gw, size_t *len);

#endif
