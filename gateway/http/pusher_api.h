/*
 * The Pusher HTTP API.
 */
#ifndef PG_HTTP_PUSHER_API_H
#define PG_HTTP_PUSHER_API_H


struct pg_gw;
struct pg_http;

/*
 * http_pusher_api.c: the Pusher HTTP API under /apps/{id}/. route() returns 1
 * for its paths (h->pusher_api set, or an error answer already set);
 * body_done() runs once the request body (if any) is complete.
 */
int pg_pusher_api_route(struct pg_gw *gw, struct pg_http *h);
void pg_pusher_api_body_done(struct pg_gw *gw, struct pg_http *h);

#endif
