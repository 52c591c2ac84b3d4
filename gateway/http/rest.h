/*
 * The ScaleDrone-style REST publish: POST /{app}/{channel}/publish.
 * State: none. Who may call: the route table (http/routes.c).
 */
#ifndef PG_HTTP_REST_H
#define PG_HTTP_REST_H

struct pg_gw;
struct pg_http;

/* The route's handler: h->app is the path's app, the capture "channel" its channel; the body is complete. */
void pg_rest_publish(struct pg_gw *gw, struct pg_http *h);

#endif
